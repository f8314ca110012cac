"""The node's web dashboard [DASH-*]: static HTML, JS and CSS served beside the HTTP API.

``install_dashboard(app, node)`` adds, before the server starts:

* ``GET /``: the single page (``static/index.html``), with its asset URLs
  versioned by content so a new release is never served from a stale cache;
* ``GET /dashboard/<file>``: the page's scripts, styles and icon, read from
  this package (no CDN, no build step: the files are the source);
* ``GET /api/v1/jobs/{job_id}/history``: every claim the job received, in
  chain order, with the best-loss steps (``client.observe.dashboard.history``), which
  the ledger's ``Job`` record alone cannot give. It is documented in
  ``client.api.openapi`` like every other ``/api/`` route.

* ``GET|POST /dashboard/first-render/<token>``: holds the page's ``load`` event
  until its first view is on screen [DASH-LOAD.1] (``FirstRenderHolds``).

The page reads only the JSON API and follows the chain by long-polling
``/api/v1/wait`` from a worker (``static/follow.js``), started after its ``load``
event. Every dashboard response carries a strict Content Security Policy
(same-origin scripts, styles and requests only), so the page works offline and
text from the chain can never run as code.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web

from client.api.json_forms import addr, parse_hash
from client.api.limits import API_PREFIX
from client.api.problems import ApiProblem
from client.node.handle import NodeHandle
from client.observe.dashboard.first_render import FirstRenderHolds
from client.observe.dashboard.history import ClaimHistory, ClaimPoint, JobHistory

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
ASSET_PREFIX = "/dashboard"
ASSETS = ("app.js", "views.js", "panels.js", "plot.js", "models.js", "federated.js",
          "style.css", "logo.svg")
"""The files ``index.html`` refers to (their content hash versions the URLs)."""
WORKER_ASSETS = ("follow.js",)
"""Scripts the page starts as workers (``app.js`` gives them its own version)."""
API_ROUTES = (("GET", "/jobs/{job_id}/history"),)
"""Routes this package adds under ``API_PREFIX`` (each documented in ``client.api.openapi``)."""
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
Json = dict[str, Any]


def install_dashboard(app: web.Application, node: NodeHandle) -> Dashboard:
    """Adds the dashboard's routes to ``app`` (before it starts) and indexes claims."""
    dashboard = Dashboard(node)
    dashboard.install(app)
    return dashboard


class Dashboard:
    """The dashboard of one node: its page, its assets, and its claim history index."""

    def __init__(self, node: NodeHandle) -> None:
        self.node = node
        self.history = ClaimHistory(node)
        self.version = asset_version()
        self._index = (STATIC_DIR / "index.html").read_text(encoding="utf-8") \
            .replace("__VERSION__", self.version)
        self._backfill: asyncio.Task[None] | None = None
        self.first_render = FirstRenderHolds()

    def install(self, app: web.Application) -> None:
        app.router.add_get("/", self.get_index)
        self.first_render.install(app, ASSET_PREFIX)  # before the static files' prefix
        app.router.add_static(ASSET_PREFIX + "/", STATIC_DIR, name="dashboard")
        for method, path in API_ROUTES:
            app.router.add_route(method, API_PREFIX + path, self.get_history)
        app.on_response_prepare.append(_security_headers)
        app.cleanup_ctx.append(self._run_backfill)
        self.history.attach()

    async def _run_backfill(self, _app: web.Application) -> AsyncIterator[None]:
        """Owned by the app: the backfill starts with the server and is cancelled with it."""
        self._backfill = asyncio.create_task(self.history.backfill(), name="claim-history")
        yield
        self._backfill.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._backfill

    async def get_index(self, request: web.Request) -> web.Response:
        return web.Response(text=self._index, content_type="text/html",
                            headers={"Cache-Control": "no-cache"})

    async def get_history(self, request: web.Request) -> web.Response:
        job_id = parse_hash(request.match_info["job_id"], "job_id")
        job = self.node.state.job(job_id)
        if job is None:
            raise ApiProblem(404, "unknown_job", f"no job {job_id.hex()}")
        return web.json_response(history_json(self.history.history(job)))


def asset_version() -> str:
    """A short hash of the page's files: changes whenever any of them does."""
    digest = hashlib.sha256()
    for name in ("index.html", *ASSETS, *WORKER_ASSETS):
        digest.update((STATIC_DIR / name).read_bytes())
    return digest.hexdigest()[:12]


def claim_point_json(point: ClaimPoint) -> Json:
    return {"claimer": addr(point.claimer), "loss": point.loss, "height": point.height,
            "index": point.index, "time_ms": point.time_ms, "tx_hash": point.tx_hash.hex()}


def history_json(history: JobHistory) -> Json:
    """[DASH-HISTORY.2] The shape ``client.api.openapi`` documents as ``ClaimHistory``."""
    return {
        "job_id": history.job_id.hex(),
        "complete": history.complete,
        "claims": [claim_point_json(p) for p in history.claims],
        "best": [claim_point_json(p) for p in history.best_steps()],
    }


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    if request.path == "/" or request.path.startswith(ASSET_PREFIX + "/"):
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"


__all__ = ["API_ROUTES", "WORKER_ASSETS", "Dashboard", "history_json", "install_dashboard"]
