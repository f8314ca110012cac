"""[DASH-LOAD.1] The page's ``load`` event waits for its first rendered view.

The dashboard draws every view from the JSON API after the page has loaded, so
anything that acts on ``load`` (``chromium --headless --screenshot`` or
``--dump-dom``, printing to PDF, a test driver's ``goto``) used to see
"Loading…". A browser delays ``load`` while an image is being fetched; the page
adds one hidden image, ``GET /dashboard/first-render/<token>``, that this node
answers only once the page says its first view is on screen (``POST`` to the
same URL), or after ``HOLD_S`` whatever happens. The token is the page's own
random one; nothing here is a secret, and at most ``MAX_HOLDS`` requests are
held at once (past that one is answered at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time

from aiohttp import web

HOLD_S = 10.0
"""The longest a page's ``load`` waits for its first view (an API that does not answer)."""
MAX_HOLDS = 64
TOKEN = re.compile(r"^[0-9a-f]{32}$")
PIXEL = ('<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1" '
         'viewBox="0 0 1 1"></svg>')
"""What the held image resolves to: an empty 1x1 SVG."""


class FirstRenderHolds:
    """The held image requests by token, and their releases."""

    def __init__(self, hold_s: float = HOLD_S, max_holds: int = MAX_HOLDS) -> None:
        self.hold_s = hold_s
        self.max_holds = max_holds
        self._released: dict[str, asyncio.Event] = {}
        self._since: dict[str, float] = {}

    def install(self, app: web.Application, prefix: str) -> None:
        path = prefix + "/first-render/{token}"
        app.router.add_get(path, self.get_hold)
        app.router.add_post(path, self.post_release)
        app.on_shutdown.append(self._release_all)

    def _token(self, request: web.Request) -> str:
        token = request.match_info["token"]
        if not TOKEN.match(token):
            raise web.HTTPBadRequest(text=f"bad first-render token {token[:40]!r}: "
                                          "want 32 lowercase hex digits")
        return token

    def _event(self, token: str) -> asyncio.Event | None:
        """The token's event, made if there is room; releases nobody asked for expire."""
        now = time.monotonic()
        for old, since in list(self._since.items()):
            if now - since > 2 * self.hold_s and self._released[old].is_set():
                del self._released[old], self._since[old]
        event = self._released.get(token)
        if event is None and len(self._released) < self.max_holds:
            event = self._released[token] = asyncio.Event()
            self._since[token] = now
        return event

    async def get_hold(self, request: web.Request) -> web.Response:
        """Answers once the page released ``token`` (or after ``hold_s``)."""
        token = self._token(request)
        event = self._event(token)
        if event is not None:
            try:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.hold_s):
                        await event.wait()
            finally:
                self._released.pop(token, None)
                self._since.pop(token, None)
        return web.Response(text=PIXEL, content_type="image/svg+xml",
                            headers={"Cache-Control": "no-store"})

    async def post_release(self, request: web.Request) -> web.Response:
        """The page's first view is drawn: its held image may load (even if not asked yet)."""
        event = self._event(self._token(request))
        if event is not None:
            event.set()
        return web.Response(status=204)

    @property
    def held(self) -> int:
        """Tokens waiting for their image request or for their release."""
        return len(self._released)

    async def _release_all(self, _app: web.Application) -> None:
        """On shutdown: no held request keeps the server waiting."""
        for event in self._released.values():
            event.set()
