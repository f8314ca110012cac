"""The worker's side of the sandbox: getting a job's image into the engine, off the loop.

Every engine call blocks, so it runs on a worker thread; the threads are
tracked so that ``stop`` can kill their containers and wait for them
instead of leaving a training run behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import docker
import docker.errors
import requests.exceptions

from chain.jobspec import JobSpec
from client.node.handle import NodeHandle
from client.worker.policy import image_id_text
from p2p.blobstore import BlobError
from sandbox.errors import ImageBlobError, ImageDigestMismatch
from sandbox.image_blob import load_image
from sandbox.policy import LABEL_JOB, LABEL_MANAGED, LABEL_NODE

log = logging.getLogger("learningchain.worker")

T = TypeVar("T")
P = ParamSpec("P")
EngineErrors = (docker.errors.DockerException, requests.exceptions.RequestException, OSError)
PROGRESS_EVERY_S = 2.0


class ImageUnavailable(Exception):
    """The job's image could not be had (blob missing, mismatched, engine refused)."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent
        """True when trying again cannot help (the blob is not the job's image)."""


class Threads:
    """Runs blocking calls on threads and remembers the ones still running."""

    def __init__(self) -> None:
        self._running: set[asyncio.Task[Any]] = set()
        self.on_result: Callable[[str, Any], None] | None = None
        """Metrics hook: (name of the function, its result) for each call that returned."""

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``await asyncio.to_thread(fn, ...)``; a cancelled caller leaves the thread tracked."""
        task = asyncio.ensure_future(asyncio.to_thread(fn, *args, **kwargs))
        task.set_name(getattr(fn, "__name__", "call"))  # metrics: which calls are running
        self._running.add(task)
        task.add_done_callback(self._finished)
        return await asyncio.shield(task)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._running.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a caller that was cancelled will not ask for it
        if self.on_result is not None and not task.cancelled() and task.exception() is None:
            self.on_result(task.get_name(), task.result())

    @property
    def running(self) -> int:
        return len(self._running)

    def running_names(self) -> list[str]:
        """Names of the functions running now (``train``, ``evaluate``, ...), for metrics."""
        return [task.get_name() for task in self._running]

    async def wait(self, timeout_s: float) -> bool:
        """Wait for the running threads; False if some are still running after the timeout."""
        if not self._running:
            return True
        _done, pending = await asyncio.wait(set(self._running), timeout=timeout_s)
        for task in _done:
            with contextlib.suppress(BaseException):
                task.result()  # retrieved, so asyncio does not warn
        return not pending


def container_label(job_id: bytes, address: bytes) -> str:
    """The job label of this worker's containers: which job, and whose."""
    return f"{job_id.hex()[:16]}-{address.hex()[:12]}"


def remove_containers(client: docker.DockerClient, node_id: str, address: bytes) -> list[str]:
    """Force-remove the job containers this worker (node id + address) started; return names."""
    removed: list[str] = []
    suffix = "-" + address.hex()[:12]
    try:
        found = client.containers.list(
            all=True, filters={"label": [f"{LABEL_MANAGED}=1", f"{LABEL_NODE}={node_id}"]})
    except EngineErrors as e:
        log.warning("could not list job containers to clean up: %s", e)
        return removed
    for container in found:
        if not str(container.labels.get(LABEL_JOB, "")).endswith(suffix):
            continue
        with contextlib.suppress(*EngineErrors):
            container.remove(force=True)
            removed.append(str(container.name))
    return removed


def has_image(client: docker.DockerClient, image_id: str) -> bool:
    try:
        client.images.get(image_id)
    except docker.errors.ImageNotFound:
        return False
    return True


class ImageCache:
    """Makes sure a job's image is in the engine: present already, or fetched and loaded.

    The image id is content-addressed (the config it hashes lists every
    layer's digest, checked by the engine on load), so an engine that
    already holds that id holds exactly the job's image and nothing is
    fetched. Otherwise the blob is fetched by ``spec.image_blob`` and loaded
    only if it holds ``spec.image_digest`` [JOB-IMAGE.3].
    """

    def __init__(self, node: NodeHandle, client: docker.DockerClient, threads: Threads) -> None:
        self.node = node
        self.client = client
        self.threads = threads
        self._locks: dict[str, asyncio.Lock] = {}
        self._ready: set[str] = set()

    def forget(self, image_id: str) -> None:
        """The engine reported the image missing: look again next time."""
        self._ready.discard(image_id)

    async def ensure(self, spec: JobSpec, job_label: str) -> str:
        image_id = image_id_text(spec)
        if image_id in self._ready:
            return image_id
        lock = self._locks.setdefault(image_id, asyncio.Lock())
        async with lock:
            if image_id in self._ready:
                return image_id
            try:
                present = await self.threads.run(has_image, self.client, image_id)
            except EngineErrors as e:
                raise ImageUnavailable(f"engine error looking for {image_id}: {e}",
                                       permanent=False) from e
            if present:
                log.info("job %s: image %s already in the engine", job_label, image_id[:19])
            else:
                await self._fetch_and_load(spec, image_id, job_label)
            self._ready.add(image_id)
        return image_id

    async def _fetch_and_load(self, spec: JobSpec, image_id: str, job_label: str) -> None:
        blob = spec.image_blob
        log.info("job %s: fetching image blob %s", job_label, blob.hex()[:16])
        last = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if done >= total or now - last[0] >= PROGRESS_EVERY_S:
                last[0] = now
                pct = 100.0 * done / total if total else 100.0
                log.info("job %s: image blob %s: %d / %d bytes (%.0f%%)", job_label,
                         blob.hex()[:16], done, total, pct)

        try:
            path = await self.node.fetch_blob(blob, progress)
        except BlobError as e:
            raise ImageUnavailable(f"image blob {blob.hex()[:16]} could not be fetched: {e}",
                                   permanent=False) from e
        log.info("job %s: loading image %s into the engine", job_label, image_id[:19])
        try:
            await self.threads.run(load_image, self.client, path, image_id)
        except ImageDigestMismatch as e:  # the blob is not the job's image: it never will be
            raise ImageUnavailable(str(e), permanent=True) from e
        except ImageBlobError as e:
            raise ImageUnavailable(str(e), permanent=False) from e
        log.info("job %s: image %s loaded", job_label, image_id[:19])
