"""The worker's side of the sandbox: getting a job's image into the engine, off the loop.

Every engine call blocks, so it runs on a worker thread; the threads are
tracked so that ``stop`` can kill their containers and wait for them
instead of leaving a training run behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import docker
import docker.errors
import requests.exceptions

from chain.jobspec import JobSpec
from client.node.config import WorkerPolicy
from client.node.handle import NodeHandle
from client.worker.data_blobs import DataCache
from client.worker.image_fetch import load_by_layers
from client.worker.policy import image_id_text, image_too_large
from p2p.blobstore import BlobError
from sandbox.errors import ImageBlobError, ImageDigestMismatch
from sandbox.image_blob import load_image
from sandbox.image_check import MIB, ImageTooLarge
from sandbox.image_layers import ImageManifestError, is_manifest

if TYPE_CHECKING:
    from client.worker.disk import DiskKeeper
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
            all=True, filters={"label": [f"{LABEL_MANAGED}=1", f"{LABEL_NODE}={node_id}"]},
            ignore_removed=True)  # one removed meanwhile is not an error
    except EngineErrors as e:
        log.warning("could not list job containers to clean up: %s", e)
        return removed
    for container in found:
        if not str(container.labels.get(LABEL_JOB, "")).endswith(suffix):
            continue
        with contextlib.suppress(*EngineErrors):
            container.remove(force=True, v=True)  # its tmpfs volumes [JOB-OUT.6]
            removed.append(str(container.name))
    return removed


ENGINE_POLL_S = 2.0
"""Seconds between pings of a Docker engine that failed ([VOTE-FAILED.6], a training's
attempt given back)."""


async def wait_for_engine(threads: Threads, client: docker.DockerClient,
                          time_left: Callable[[], bool],
                          report: Callable[[str], None]) -> float | None:
    """Ping the engine every ``ENGINE_POLL_S`` while ``time_left()``; the seconds it took to
    answer, or None when time ran out first. ``report`` gets the latest ping's failure."""
    started = time.monotonic()
    while time_left():
        try:
            await threads.run(client.ping)
        except Exception as e:  # docker raises a zoo of types for a dead socket
            report(type(e).__name__)
            await asyncio.sleep(ENGINE_POLL_S)
            continue
        return time.monotonic() - started
    return None


def disk_room(spec: JobSpec) -> int:
    """[WORK-DISK.1] Bytes a job's run may write on this machine's disk: its output and a
    kept model (``disk_mb`` + ``model_mb``)."""
    return (spec.limits.disk_mb + spec.limits.model_mb) * MIB


async def wait_for_disk(folder: Path, need: int, time_left: Callable[[], bool],
                        report: Callable[[str], None]) -> float | None:
    """[WORK-DISK.1] Poll ``folder``'s file system every ``ENGINE_POLL_S`` while
    ``time_left()`` until ``need`` bytes are free; the seconds it took, or None."""
    started = time.monotonic()
    while time_left():
        free = shutil.disk_usage(folder).free
        if free >= need:
            return time.monotonic() - started
        report(f"{free // MIB} MiB free in {folder}, the job needs {need // MIB} MiB")
        await asyncio.sleep(ENGINE_POLL_S)
    return None


def remove_stopped_before(client: docker.DockerClient, node_id: str, address: bytes,
                          before: float) -> list[str]:
    """[VOTE-FAILED.6] Remove the job containers of this worker that an engine outage left
    behind: exited or dead, created before ``before`` (epoch seconds, when the outage was
    seen). A container made since, or still running (an engine with live restore keeps
    them), belongs to a run in progress and is left alone; names of those removed."""
    removed: list[str] = []
    suffix = "-" + address.hex()[:12]
    try:
        found = client.containers.list(
            all=True, filters={"label": [f"{LABEL_MANAGED}=1", f"{LABEL_NODE}={node_id}"],
                               "status": ["exited", "dead"]}, ignore_removed=True)
    except EngineErrors as e:
        log.warning("could not list job containers to clean up: %s", e)
        return removed
    for container in found:
        created = _created_epoch(container.attrs.get("Created", ""))
        if not str(container.labels.get(LABEL_JOB, "")).endswith(suffix) or \
                created is None or created >= before:
            continue
        with contextlib.suppress(*EngineErrors):
            container.remove(force=True, v=True)
            removed.append(str(container.name))
    return removed


def _created_epoch(text: str) -> float | None:
    """The engine's ``Created`` (RFC 3339, nanoseconds) as epoch seconds; None if unreadable."""
    try:
        whole, _, rest = text.partition(".")
        fraction = rest.rstrip("Z").split("+")[0].split("-")[0]
        moment = datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.UTC)
        return moment.timestamp() + (float(f"0.{fraction}") if fraction.isdigit() else 0.0)
    except ValueError:
        return None


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
    only if it holds ``spec.image_digest`` [JOB-IMAGE.3]. When that blob is
    an image manifest, only the layers the engine lacks are fetched
    (``client.worker.image_fetch``, [JOB-IMAGE.6-8]).

    Sizes [WORK-IMAGE.1]: the job's declared ``image_mb`` and
    ``image_unpacked_mb`` must fit this worker's policy before anything is
    fetched; the fetch is cancelled as soon as the blob turns out larger than
    ``image_mb``; and the blob's layers are measured against
    ``image_unpacked_mb`` before the engine sees it [JOB-IMAGE.5]. Each of
    these refusals is permanent: the job is never fetched again.
    What this worker fetched or loaded itself is recorded for [WORK-GC.1].
    """

    def __init__(self, node: NodeHandle, client: docker.DockerClient, threads: Threads,
                 policy: WorkerPolicy | None = None, disk: DiskKeeper | None = None,
                 data_root: Path | None = None) -> None:
        self.node = node
        self.client = client
        self.threads = threads
        self.policy = policy if policy is not None else WorkerPolicy()
        self.disk = disk
        self.data = DataCache(node, threads, data_root or node.data_dir / "job-data",
                              self.policy, disk)
        """A train/v2 job's data blobs [JOB-DATA.4]: ``await images.data.ensure(spec, ...)``."""
        self._locks: dict[str, asyncio.Lock] = {}
        self._ready: set[str] = set()

    def forget(self, image_id: str) -> None:
        """The engine reported the image missing (or it was removed): look again next time."""
        self._ready.discard(image_id)

    async def ensure(self, spec: JobSpec, job_label: str, job_id: bytes = b"") -> str:
        image_id = image_id_text(spec)
        too_large = image_too_large(spec, self.policy)
        if too_large is not None:
            raise ImageUnavailable(f"image refused before fetching: {too_large}",
                                   permanent=True)
        if self.disk is not None and job_id:
            self.disk.use(image_id, job_id)
            self.disk.use(spec.image_blob.hex(), job_id)
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
                await self._fetch_and_load(spec, image_id, job_label, job_id)
            self._ready.add(image_id)
        return image_id

    async def _fetch(self, blob: bytes, limit: int, job_label: str, what: str = "image blob",
                     progress_log: Callable[[int, int], None] | None = None) -> Path:
        """Fetch ``blob``; cancelled as soon as its size turns out more than ``limit`` bytes."""
        last = [0.0]
        too_large: list[int] = []
        task: asyncio.Task[Path] | None = None

        def progress(done: int, total: int) -> None:
            if total > limit and not too_large:
                too_large.append(total)
                if task is not None:
                    task.cancel()
                return
            if progress_log is not None:
                progress_log(done, total)
                return
            now = time.monotonic()
            if done >= total or now - last[0] >= PROGRESS_EVERY_S:
                last[0] = now
                pct = 100.0 * done / total if total else 100.0
                log.info("job %s: %s %s: %d / %d bytes (%.0f%%)", job_label, what,
                         blob.hex()[:16], done, total, pct)

        task = asyncio.ensure_future(self.node.fetch_blob(blob, progress))
        try:
            path = await task
        except asyncio.CancelledError:
            if too_large and not _cancelling():
                raise ImageUnavailable(
                    f"{what} {blob.hex()[:16]} is {too_large[0]} bytes, more than the "
                    f"{limit} declared; refused while fetching", permanent=True) from None
            raise
        if too_large or path.stat().st_size > limit:
            raise ImageUnavailable(
                f"{what} {blob.hex()[:16]} is {path.stat().st_size} bytes, more than the "
                f"{limit} declared", permanent=True)
        return path

    async def _fetch_and_load(self, spec: JobSpec, image_id: str, job_label: str,
                              job_id: bytes) -> None:
        blob = spec.image_blob
        had_blob = self.node.blob_path(blob) is not None
        log.info("job %s: fetching image blob %s", job_label, blob.hex()[:16])
        try:
            path = await self._fetch(blob, spec.limits.image_mb * MIB, job_label)
        except BlobError as e:
            raise ImageUnavailable(f"image blob {blob.hex()[:16]} could not be fetched: {e}",
                                   permanent=False) from e
        if self.disk is not None and not had_blob:
            self.disk.record("blob", blob.hex(), path.stat().st_size, job_id)
        log.info("job %s: loading image %s into the engine", job_label, image_id[:19])
        try:
            if is_manifest(path):  # [JOB-IMAGE.6-8] only the layers the engine lacks travel
                await self._load_by_layers(spec, path, image_id, job_label, job_id)
            else:
                await self.threads.run(load_image, self.client, path, image_id,
                                       image_mb=spec.limits.image_mb,
                                       image_unpacked_mb=spec.limits.image_unpacked_mb)
        except (ImageDigestMismatch, ImageTooLarge, ImageManifestError) as e:  # never will be
            raise ImageUnavailable(str(e), permanent=True) from e
        except ImageBlobError as e:
            raise ImageUnavailable(str(e), permanent=False) from e
        except BlobError as e:
            raise ImageUnavailable(f"image layers could not be fetched: {e}",
                                   permanent=False) from e
        except EngineErrors as e:
            raise ImageUnavailable(f"engine error loading {image_id}: {e}",
                                   permanent=False) from e
        if self.disk is not None:
            self.disk.record("image", image_id, spec.limits.image_unpacked_mb * MIB, job_id)
        log.info("job %s: image %s loaded", job_label, image_id[:19])

    async def _load_by_layers(self, spec: JobSpec, path: Path, image_id: str, job_label: str,
                              job_id: bytes) -> None:
        def record(blob: bytes, size: int) -> None:
            if self.disk is not None and blob.hex() not in had_before:
                self.disk.record("blob", blob.hex(), size, job_id)

        async def fetch(blob: bytes, size: int,
                        progress: Callable[[int, int], None] | None) -> Path:
            if self.node.blob_path(blob) is None:
                had_before.discard(blob.hex())
            else:
                had_before.add(blob.hex())
            found = await self._fetch(blob, size, job_label, "image layer", progress)
            if found.stat().st_size != size:
                raise ImageManifestError(f"blob {blob.hex()[:16]} is {found.stat().st_size} "
                                         f"bytes, the manifest says {size}")
            return found

        had_before: set[str] = set()
        workdir = self.node.data_dir / "image-assembly"
        workdir.mkdir(parents=True, exist_ok=True)
        await load_by_layers(spec, path, image_id, job_label, client=self.client, fetch=fetch,
                             run=self.threads.run, record=record, workdir=workdir)


def _cancelling() -> bool:
    """True when the current task itself is being cancelled (not only the fetch)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
