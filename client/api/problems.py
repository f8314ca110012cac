"""[API-ERR.1] The API's one error shape, ``{"error": {"code", "message"}}``, and its exception."""

from __future__ import annotations

from aiohttp import web


class ApiProblem(Exception):
    """A request the API refuses: HTTP status, stable code, one-line message (and headers,
    e.g. ``Retry-After`` on a 429)."""

    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_response(status: int, code: str, message: str,
                   headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status,
                             headers=headers)
