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

The token is a file (``[api] token_file``, read and written by ``client.api.token_file``):
its owner alone may read it (mode 0600),
one line of at least ``MIN_TOKEN_CHARS`` visible ASCII characters
(``learningchain node token FILE`` writes a fresh one). Clients send it from
``$LC_API_TOKEN``.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OPEN_WRITES = (re.compile(r"^/dashboard/first-render/[^/]+$"),)
"""Non-GET routes anyone may call: the dashboard page's "first view drawn" signal
[DASH-LOAD.1] (it only releases a held 1x1 image; bounded, writes nothing)."""
AUTHORIZED = web.RequestKey("lc_authorized", bool)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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
