"""Who may write through the HTTP API [API-AUTH.1-6]: the node's token, checked per request.

Reads (GET, HEAD, OPTIONS: the dashboard, the chain, ``/metrics``) are open to anyone
who can reach the API. Every other method on every route of the app is a *write*
(posting transactions, uploading blobs, and any write route added later: the check
is by method, not by a list of routes), and so is having the node fetch a blob from
its peers for a client (``GET /blobs/{blob}`` of a blob it lacks: that costs it disk
and bandwidth). A write needs ``Authorization: Bearer <token>`` with the node's
token, compared in constant time (``hmac.compare_digest``); else 401 with the JSON
error shape and ``WWW-Authenticate: Bearer``. Only ``OPEN_WRITES`` are exempt.

Without a token, an API bound to a loopback address (127.0.0.0/8, ::1,
``localhost``) takes writes from anyone on the machine, as it always did; an API
bound to any other address refuses to start. A loopback-bound node with a token
configured requires it as any other (a reverse proxy on the machine makes every
client look local).

The token is a file (``[api] token_file``): its owner alone may read it (mode 0600),
one line of at least ``MIN_TOKEN_CHARS`` visible ASCII characters
(``learningchain node token FILE`` writes a fresh one). Clients send it from
``$LC_API_TOKEN``.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
import secrets
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Middleware

TOKEN_ENV = "LC_API_TOKEN"
"""Where the CLI (``client.api.http_client``) takes the token from."""
MIN_TOKEN_CHARS = 32
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OPEN_WRITES = (re.compile(r"^/dashboard/first-render/[^/]+$"),)
"""Non-GET routes anyone may call: the dashboard page's "first view drawn" signal
[DASH-LOAD.1] (it only releases a held 1x1 image; bounded, writes nothing)."""
AUTHORIZED = web.RequestKey("lc_authorized", bool)
TOKEN_RE = re.compile(r"^[\x21-\x7e]+$")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class TokenError(ValueError):
    """The API token is missing where it is needed, or its file is not fit to hold it."""


def is_loopback_host(host: str) -> bool:
    """[API-AUTH.1] Whether binding ``host`` reaches only this machine."""
    name = host.strip().lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name (or "" = every address): not known to be local


def no_token_message(host: str) -> str:
    return (f"the API binds {host!r}, which is not a loopback address: anyone who reaches it "
            "could post transactions and upload blobs, so writes need a token. Add "
            'token_file = "api_token" to [api] and create it with `learningchain node token '
            'api_token` (beside the config; clients send it from $LC_API_TOKEN), or bind '
            'host = "127.0.0.1"')


def check_token(token: str, where: str) -> str:
    """[API-AUTH.5] A token fit to use, or ``TokenError`` saying what is wrong with it."""
    if len(token) < MIN_TOKEN_CHARS or not TOKEN_RE.match(token):
        raise TokenError(f"{where}: the API token must be one line of at least "
                         f"{MIN_TOKEN_CHARS} visible ASCII characters (no spaces); make one "
                         "with `learningchain node token FILE`")
    return token


def read_token_file(path: Path) -> str:
    """[API-AUTH.5] The token in ``path``: owner-only mode, one line, long enough."""
    try:
        info = path.stat()
        text = path.read_bytes().decode("ascii", "replace")  # not ASCII: refused below
    except FileNotFoundError:
        raise TokenError(f"[api] token_file {path} does not exist: create it with "
                         f"`learningchain node token {path}`") from None
    except OSError as e:
        raise TokenError(f"cannot read [api] token_file {path}: {e}") from None
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise TokenError(f"[api] token_file {path} is readable by others (mode {mode:04o}): "
                         f"chmod 600 {path}")
    return check_token(text.strip(), f"[api] token_file {path}")


def new_token() -> str:
    return secrets.token_hex(32)


def write_token_file(path: Path) -> None:
    """A fresh token in a new file, created 0600 (never over an existing file)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(new_token() + "\n")


def is_write(request: web.Request) -> bool:
    """[API-AUTH.2] Any method but GET/HEAD/OPTIONS on a served route, bar ``OPEN_WRITES``."""
    if request.method in SAFE_METHODS or request.match_info.http_exception is not None:
        return False  # a 404/405 is answered as such: nothing is written
    return not any(p.match(request.path) for p in OPEN_WRITES)


def bearer_matches(request: web.Request, token: str) -> bool | None:
    """None: no credentials sent; else whether they are the token (constant time)."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode("utf-8", "surrogateescape"),
                               token.encode("ascii"))


def unauthorized(sent: bool | None, what: str) -> web.Response:
    """[API-AUTH.3] 401 in the API's error shape, with the Bearer challenge."""
    if sent is None:
        code, message = "token_required", (
            f"{what} needs this node's API token: send 'Authorization: Bearer <token>' "
            "(the CLI sends $LC_API_TOKEN)")
    else:
        code, message = "bad_token", f"{what}: the API token sent is not this node's"
    response = web.json_response({"error": {"code": code, "message": message}}, status=401)
    response.headers["WWW-Authenticate"] = 'Bearer realm="learningchain"'
    return response


def auth_middleware(token: str | None) -> Middleware:
    """Marks each request ``AUTHORIZED`` (may write) and answers 401 to unauthorised writes."""

    @web.middleware
    async def authorize(request: web.Request, handler: Handler) -> web.StreamResponse:
        sent = None if token is None else bearer_matches(request, token)
        request[AUTHORIZED] = token is None or bool(sent)
        if not request[AUTHORIZED] and is_write(request):
            return unauthorized(sent, f"{request.method} {request.path}")
        return await handler(request)

    return authorize
