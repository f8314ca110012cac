"""A job's data blobs on the worker: checked against the policy, fetched, unpacked.

[JOB-DATA.4], node.md [WORK-DATA.1]: the declared sizes must fit the policy
before anything is fetched; each blob is fetched by id in checked chunks like
an image (``NodeHandle.fetch_blob``), the fetch cancelled as soon as it turns
out larger than declared; then unpacked once, bounded [JOB-DATA.2], into
``<root>/<blob id>``, which every run of every job naming that blob mounts
read-only at ``/data/<role>`` [JOB-DATA.3]. What this worker fetched or
unpacked is recorded for the disk budget [WORK-GC.1].

A train/v3 job's ``valid`` folder is the public part of its holdout pool, named
on chain after the split [HOLDOUT-PUBLISH.1]; its hidden part, revealed after
expiry, replaces it for a voter's hidden evaluation [HOLDOUT-VOTE.1]. Each part
is unpacked and checked against the job's root and seed (``sandbox.holdout_blob``)
before anything runs on it [HOLDOUT-BLOB.5].
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from chain.jobspec import TRAIN_V3, DataRef, JobSpec
from client.node.config import WorkerPolicy
from client.node.handle import NodeHandle
from client.worker.policy import data_too_large
from p2p.blobstore import BlobError
from sandbox.data_blob import DataBlobError, DataHostError, unpack_data
from sandbox.holdout_blob import HoldoutPartError, open_part

if TYPE_CHECKING:
    from client.worker.disk import DiskKeeper

log = logging.getLogger("learningchain.worker")

DATA_KEY_PREFIX = "data-"
"""Key of an unpacked folder in the disk record (the blob itself is keyed by its id)."""


class Threads(Protocol):
    """``sandboxing.Threads``: runs a blocking call off the event loop."""

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any: ...


PART_NOT_NAMED_RETRY_S = 1.0
"""A train/v3 job is open before its submitter names the public part [HOLDOUT-PUBLISH.1]
(usually a block or two later): ask again after a second, not after the 30 s an unreachable
blob waits, which would hold training back by half a minute."""


class DataUnavailable(Exception):
    """A data blob could not be had (not fetched, another size, refused by [JOB-DATA.2])."""

    def __init__(self, message: str, *, permanent: bool, retry_s: float | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_s = retry_s
        """How soon to try again, when sooner than the worker's default: a part the chain
        will name within a block or two is worth asking for again at once."""


class HoldoutPartRefused(Exception):
    """A holdout part does not open the job's commitment [HOLDOUT-BLOB.5] (or was not served):
    the submitter's fault. For the hidden part this is a vote ``holdout_ok = false``."""


class DataCache:
    """Makes sure a job's data folders exist: unpacked already, or fetched and unpacked."""

    def __init__(self, node: NodeHandle, threads: Threads, root: Path,
                 policy: WorkerPolicy, disk: DiskKeeper | None = None) -> None:
        self.node = node
        self.threads = threads
        self.root = root
        self.policy = policy
        self.disk = disk
        self._locks: dict[bytes, asyncio.Lock] = {}

    def folder(self, blob: bytes) -> Path:
        return self.root / blob.hex()

    async def ensure(self, spec: JobSpec, job_label: str, job_id: bytes = b"") -> dict[str, Path]:
        """role -> unpacked folder for every data blob of ``spec`` (``{}`` for train/v1)."""
        if not spec.data:
            return {}
        too_large = data_too_large(spec, self.policy)
        if too_large is not None:
            raise DataUnavailable(f"data refused before fetching: {too_large}", permanent=True)
        out = {}
        for role, ref in spec.data:
            out[role] = await self._one(role, ref, job_label, job_id)
        if spec.kind == TRAIN_V3:
            try:
                out["valid"] = await self.holdout_part(spec, job_id, "public", job_label)
            except HoldoutPartRefused as e:
                raise DataUnavailable(str(e), permanent=True) from e
        return out

    async def holdout_part(self, spec: JobSpec, job_id: bytes, part: str,
                           job_label: str) -> Path:
        """[HOLDOUT-PUBLISH.1] [HOLDOUT-REVEAL.1] A train/v3 job's public or hidden part,
        fetched, unpacked and verified against the root and the seed, into a folder of its
        own per job (the check depends on the job's commitment). Not named on chain yet:
        ``DataUnavailable`` (try again later); refused or not served: ``HoldoutPartRefused``."""
        holdout = self.node.state.holdout(job_id)
        terms = spec.holdout
        if holdout is None or terms is None:
            raise DataUnavailable(f"job {job_label} has no hidden test set", permanent=True)
        ref = holdout.public if part == "public" else holdout.hidden
        if ref is None or holdout.seed is None:
            raise DataUnavailable(f"the {part} part of job {job_label} is not named on chain "
                                  "yet", permanent=False, retry_s=PART_NOT_NAMED_RETRY_S)
        folder = self.root / f"{part}-{job_id.hex()[:16]}-{ref.blob.hex()}"
        lock = self._locks.setdefault(ref.blob + job_id, asyncio.Lock())
        async with lock:
            if self.disk is not None:
                self.disk.use(ref.blob.hex(), job_id)
                self.disk.use(DATA_KEY_PREFIX + folder.name, job_id)
            if folder.is_dir():
                return folder
            try:
                path = await self._fetch(f"holdout {part}", ref, job_label, job_id)
            except DataUnavailable as e:
                if part == "hidden":
                    raise HoldoutPartRefused(f"hidden part not had: {e}") from e
                raise
            seed = holdout.seed
            try:
                await self.threads.run(open_part, path, ref.size, folder, terms.root, terms.pool,
                                       terms.public_permille, seed, part)
            except (HoldoutPartError, DataBlobError) as e:
                raise HoldoutPartRefused(f"the {part} part of job {job_label} does not open "
                                         f"its commitment: {e}") from e
            except (DataHostError, OSError) as e:
                raise DataUnavailable(f"holdout {part}: could not unpack: {e}",
                                      permanent=False) from e
            if self.disk is not None:
                self.disk.record("data", DATA_KEY_PREFIX + folder.name, ref.size, job_id)
            log.info("job %s: the %s part checks against the pool's root", job_label, part)
            return folder

    async def _one(self, role: str, ref: DataRef, job_label: str, job_id: bytes) -> Path:
        folder = self.folder(ref.blob)
        lock = self._locks.setdefault(ref.blob, asyncio.Lock())
        async with lock:
            if self.disk is not None and job_id:
                self.disk.use(ref.blob.hex(), job_id)
                self.disk.use(DATA_KEY_PREFIX + ref.blob.hex(), job_id)
            # fetched (or found) and its size checked every time: the folder may be another
            # job's, which declared the same blob with its true size
            path = await self._fetch(role, ref, job_label, job_id)
            if folder.is_dir():
                return folder
            log.info("job %s: unpacking data %s (%s, %d bytes)", job_label, role,
                     ref.blob.hex()[:16], ref.size)
            try:
                await self.threads.run(unpack_data, path, folder, ref.size)
            except DataBlobError as e:
                raise DataUnavailable(f"data {role} ({ref.blob.hex()[:16]}): {e}",
                                      permanent=True) from e
            except (DataHostError, OSError) as e:
                raise DataUnavailable(f"data {role}: could not unpack: {e}",
                                      permanent=False) from e
            if self.disk is not None:
                self.disk.record("data", DATA_KEY_PREFIX + ref.blob.hex(), ref.size, job_id)
            return folder

    async def _fetch(self, role: str, ref: DataRef, job_label: str, job_id: bytes) -> Path:
        """Fetch the blob; cancelled as soon as the peer's size is not the declared one."""
        had = self.node.blob_path(ref.blob) is not None
        wrong: list[int] = []
        task: asyncio.Task[Path] | None = None

        def progress(_done: int, total: int) -> None:
            if total != ref.size and not wrong:
                wrong.append(total)
                if task is not None:
                    task.cancel()

        log.info("job %s: fetching data %s (blob %s, %d bytes)", job_label, role,
                 ref.blob.hex()[:16], ref.size)
        task = asyncio.ensure_future(self.node.fetch_blob(ref.blob, progress))
        try:
            path = await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if wrong and (current is None or current.cancelling() == 0):
                raise DataUnavailable(f"data {role}: blob {ref.blob.hex()[:16]} is {wrong[0]} "
                                      f"bytes, declared {ref.size}; refused while fetching",
                                      permanent=True) from None
            raise
        except BlobError as e:
            raise DataUnavailable(f"data {role}: blob {ref.blob.hex()[:16]} could not be "
                                  f"fetched: {e}", permanent=False) from e
        size = path.stat().st_size
        if size != ref.size:
            raise DataUnavailable(f"data {role}: blob {ref.blob.hex()[:16]} is {size} bytes, "
                                  f"declared {ref.size}", permanent=True)
        if self.disk is not None and not had:
            self.disk.record("blob", ref.blob.hex(), size, job_id)
        return path
