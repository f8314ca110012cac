"""The blob routes of the HTTP API: upload (bounded per client), download, info.

Split from ``client.api.server`` (which registers them with its own routes). An
upload streams to a temporary file under ``data_dir/api-uploads`` and never sits in
memory; its size is bounded by ``max_upload_bytes`` [API-LIMIT.2] and, per client, by
``client.api.upload_limits`` [API-UPLOAD.*]. A download of a blob this node lacks
asks its peers, which only an authorised client may make it do [API-AUTH.4].
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from client.api.access import AUTHORIZED, unauthorized
from client.api.json_forms import BadInput, parse_hash
from client.api.limits import MAX_UPLOADS, UPLOAD_CHUNK
from client.api.problems import ApiProblem
from client.api.upload_limits import Refused, UploadLimiter, client_of
from client.node.handle import NodeHandle
from p2p.blobstore import BlobError, BlobTooLarge, BlobWriteFailed

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def too_many(refused: Refused) -> ApiProblem:
    """[API-UPLOAD.4] A 429 that says when to come back."""
    return ApiProblem(429, refused.code, refused.message,
                      {"Retry-After": str(refused.retry_after_s)})


class BlobRoutes:
    """Blob handlers; ``routes()`` lists them relative to the prefix."""

    def __init__(self, node: NodeHandle, limiter: UploadLimiter,
                 blob_fetch_timeout_s: float) -> None:
        self.node = node
        self.limiter = limiter
        self.blob_fetch_timeout_s = blob_fetch_timeout_s
        self.uploads = 0
        """Uploads under way, every client together (at most ``MAX_UPLOADS``)."""

    @property
    def max_upload_bytes(self) -> int:
        return self.limiter.limits.max_upload_bytes

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("POST", "/blobs", self.post_blob),
            ("GET", "/blobs/{blob}", self.get_blob),
            ("GET", "/blobs/{blob}/info", self.get_blob_info),
        ]

    async def post_blob(self, request: web.Request) -> web.Response:
        """Streams the body to a temporary file (bounded), then adds it to the blob store."""
        if request.content_type not in ("application/octet-stream", ""):
            raise ApiProblem(415, "unsupported_media_type",
                             "upload the blob as application/octet-stream")
        declared = request.content_length
        if declared == 0:  # before any limit: how a client checks its token cheaply
            raise BadInput("empty_blob", "the upload is empty")
        if declared is not None and declared > self.max_upload_bytes:
            raise ApiProblem(413, "too_large",
                             f"blob of {declared} bytes exceeds {self.max_upload_bytes}")
        if self.uploads >= MAX_UPLOADS:
            raise ApiProblem(503, "busy", "too many uploads at once; retry later",
                             {"Retry-After": "1"})
        client = client_of(request.remote)
        refused = self.limiter.start(client, declared)
        if refused is not None:
            raise too_many(refused)
        self.uploads += 1
        tmp_dir = Path(self.node.data_dir) / "api-uploads"
        tmp = tmp_dir / f"upload-{os.getpid()}-{secrets.token_hex(8)}"
        try:
            size = await self._receive(request, tmp_dir, tmp, None if declared else client)
            if size == 0:
                raise BadInput("empty_blob", "the upload is empty")
            try:
                blob = self.node.put_blob_file(tmp)
            except BlobTooLarge as e:
                raise ApiProblem(413, "too_large", str(e)) from None
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise ApiProblem(507, "storage_full",  # [API-UPLOAD.5] nothing of it is kept
                             f"this node cannot store the upload: {e.strerror}") from None
        finally:
            self.uploads -= 1
            self.limiter.finish(client)
            with contextlib.suppress(OSError):
                tmp.unlink()
        return web.json_response({"blob": blob.hex(), "size": size}, status=201)

    async def _receive(self, request: web.Request, tmp_dir: Path, tmp: Path,
                       chunked_client: str | None) -> int:
        """The body into ``tmp``; a chunked one (no length declared) is charged as it comes."""
        await asyncio.to_thread(tmp_dir.mkdir, parents=True, exist_ok=True)
        size = 0
        with open(tmp, "wb") as f:
            while True:
                chunk = await request.content.read(UPLOAD_CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > self.max_upload_bytes:
                    raise ApiProblem(413, "too_large",
                                     f"blob exceeds {self.max_upload_bytes} bytes")
                if chunked_client is not None:
                    refused = self.limiter.charge(chunked_client, len(chunk))
                    if refused is not None:
                        raise too_many(refused)
                await asyncio.to_thread(f.write, chunk)
        return size

    async def get_blob(self, request: web.Request) -> web.StreamResponse:
        blob = parse_hash(request.match_info["blob"], "blob")
        path = self.node.blob_path(blob)
        if path is None:
            if not request.get(AUTHORIZED, True):  # [API-AUTH.4] a peer fetch is a write
                return unauthorized(None if "Authorization" not in request.headers else False,
                                    f"blob {blob.hex()} is not stored here; fetching it "
                                    "from peers")
            try:
                async with asyncio.timeout(self.blob_fetch_timeout_s):
                    path = await self.node.fetch_blob(blob)
            except BlobWriteFailed as e:  # [WIRE-BLOB.11] our disk, not the peers
                raise ApiProblem(507, "storage_full",
                                 f"blob {blob.hex()} is not here and this node cannot store "
                                 f"it: {e}") from None
            except (BlobError, TimeoutError) as e:
                raise ApiProblem(404, "blob_unavailable",
                                 f"blob {blob.hex()} is not here and no peer served it"
                                 f" ({type(e).__name__}: {e})") from None
        return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})

    async def get_blob_info(self, request: web.Request) -> web.Response:
        """Whether this node stores the blob; never asks peers (``job submit`` uploads what
        the node lacks)."""
        blob = parse_hash(request.match_info["blob"], "blob")
        path = self.node.blob_path(blob)
        if path is None:
            raise ApiProblem(404, "blob_not_here", f"blob {blob.hex()} is not stored here")
        return web.json_response({"blob": blob.hex(), "size": path.stat().st_size})
