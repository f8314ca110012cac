"""[WORK-GC.1] The worker's disk: job images and blobs of settled jobs, under a budget.

A worker that trains or verifies many jobs would otherwise keep every job's
image in its engine and every image and model blob in its blob store.
This module records what the worker itself put on the machine (an image it
loaded because the engine did not have it, a blob it fetched because the
store did not have it) with the jobs that used it, in the worker's state
file, so the record survives restarts. When the recorded total exceeds the
policy's ``disk_budget_mb``, items whose every job is settled on chain are
removed, oldest first, until the total fits. Nothing the worker did not
load or fetch itself is ever removed: an image the operator had, a blob this
node's user uploaded, the base image.

Kept checkpoints [JOB-CHECKPOINT.2] (``checkpoints/<job>-<n>/`` in the worker's
folder) count toward the total too: measured on disk, not recorded, since a
run writes them as it goes. Those of a job the worker no longer follows, or
settled on chain (left behind by a crash between the settle and its cleanup),
are removed first when over budget: nothing can resume from them. A checkpoint
of a job still followed and open is never removed (its attempt may resume).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions

from chain.records import SETTLED
from client.node.config import WorkerPolicy
from client.node.handle import NodeHandle
from client.worker.state import OwnedItem, WorkerStore

log = logging.getLogger("learningchain.worker")

MIB = 1024 * 1024
EngineErrors = (docker.errors.DockerException, requests.exceptions.RequestException, OSError)


class DiskKeeper:
    """Records what the worker put on disk and removes it when its jobs are settled."""

    def __init__(self, node: NodeHandle, client: docker.DockerClient, store: WorkerStore,
                 policy: WorkerPolicy) -> None:
        self.node = node
        self.client = client
        self.store = store
        self.policy = policy
        self.task: asyncio.Task[None] | None = None
        self.removed: list[str] = []
        """What was removed since start, ``kind:id`` (for the summary and tests)."""
        self.on_removed_image: list[Any] = []
        """Callbacks told of each removed image id (the image cache forgets it)."""
        self._dirty = False

    # -- recording -----------------------------------------------------------------------

    def record(self, kind: str, key: str, size_bytes: int, job_id: bytes) -> None:
        """The worker itself fetched (``blob``) or loaded (``image``) ``key`` for a job."""
        owned = self.store.state.owned
        item = owned.get(key)
        if item is None:
            item = owned[key] = OwnedItem(kind, int(size_bytes), [], self.node.now_ms())
        if job_id and job_id.hex() not in item.jobs:
            item.jobs.append(job_id.hex())
        self.store.save()
        self._dirty = True

    def use(self, key: str, job_id: bytes) -> None:
        """A job uses an item the worker owns already: it is kept until that job settles."""
        item = self.store.state.owned.get(key)
        if item is not None and job_id.hex() not in item.jobs:
            item.jobs.append(job_id.hex())
            self.store.save()

    def job_settled(self, job_id: bytes) -> None:
        """A job the worker followed is settled: its items may go when over budget."""
        self._dirty = True

    def total_bytes(self) -> int:
        """Recorded items and kept checkpoints: what the budget bounds."""
        return (sum(item.size_bytes for item in self.store.state.owned.values())
                + self.checkpoint_bytes())

    def checkpoint_bytes(self) -> int:
        """[WORK-GC.1] Bytes of every kept checkpoint folder, measured on disk."""
        return sum(_tree_bytes(folder) for folder in self._checkpoint_folders())

    def summary(self) -> dict[str, object]:
        return {"owned_bytes": self.total_bytes(), "owned": len(self.store.state.owned),
                "checkpoint_bytes": self.checkpoint_bytes(),
                "budget_bytes": self.policy.disk_budget_mb * MIB,
                "removed": list(self.removed[-20:])}

    # -- collecting ----------------------------------------------------------------------

    def removable(self) -> list[tuple[str, OwnedItem]]:
        """Owned items whose every job is settled on chain, oldest first."""
        state = self.node.state
        out = []
        for key, item in self.store.state.owned.items():
            jobs = [state.job(bytes.fromhex(j)) for j in item.jobs]
            if all(job is not None and job.status in SETTLED for job in jobs):
                out.append((key, item))
        return sorted(out, key=lambda pair: (pair[1].added_ms, pair[0]))

    def stale_checkpoints(self) -> list[Path]:
        """[WORK-GC.1] Checkpoint folders nothing can resume from: their job is not followed
        by this worker any more (no record has the folder's job prefix), or is settled."""
        followed = {job_hex[:16]: job_hex for job_hex in self.store.state.jobs}
        out = []
        for folder in self._checkpoint_folders():
            job_hex = followed.get(folder.name.rpartition("-")[0])
            job = self.node.state.job(bytes.fromhex(job_hex)) if job_hex else None
            if job_hex is None or (job is not None and job.status in SETTLED):
                out.append(folder)
        return out

    def _checkpoint_folders(self) -> list[Path]:
        try:
            return sorted(p for p in self.store.checkpoints.iterdir() if p.is_dir())
        except OSError:  # no checkpoint kept yet
            return []

    def maybe_collect(self) -> None:
        """After a block: start a collection when something changed and none runs."""
        if not self._dirty or (self.task is not None and not self.task.done()):
            return
        self._dirty = False
        if self.total_bytes() <= self.policy.disk_budget_mb * MIB:
            return
        self.task = asyncio.create_task(self.collect(), name="worker-disk-gc")

    async def collect(self) -> None:
        """[WORK-GC.1] Remove settled jobs' items, oldest first, until within the budget."""
        budget = self.policy.disk_budget_mb * MIB
        for folder in self.stale_checkpoints():
            if self.total_bytes() <= budget:
                return
            size = _tree_bytes(folder)
            await asyncio.to_thread(shutil.rmtree, folder, True)
            self.removed.append(f"checkpoint:{folder.name}")
            log.info("disk budget: removed the kept checkpoint %s (%d bytes) of a job settled "
                     "or no longer followed", folder.name, size)
        for key, item in self.removable():
            if self.total_bytes() <= budget:
                break
            if await asyncio.to_thread(self._remove, key, item):
                del self.store.state.owned[key]
                self.store.save()
                self.removed.append(f"{item.kind}:{key}")
                log.info("disk budget: removed %s %s (%d bytes) of settled jobs; %d of %d "
                         "bytes kept", item.kind, key[:19], item.size_bytes,
                         self.total_bytes(), budget)

    def _remove(self, key: str, item: OwnedItem) -> bool:
        if item.kind == "image":
            try:
                self.client.images.remove(key, noprune=False)
            except docker.errors.ImageNotFound:
                pass
            except EngineErrors as e:  # in use by a container, engine down: try later
                log.warning("disk budget: image %s not removed: %s", key[:19], e)
                return False
            for callback in self.on_removed_image:
                callback(key)
            return True
        if item.kind == "data":  # an unpacked data folder [WORK-DATA.1]
            folder = self.store.dir / "data" / key.removeprefix("data-")
            shutil.rmtree(folder, ignore_errors=True)
            return not folder.exists()
        self.node.remove_blob(bytes.fromhex(key))
        return True


def _tree_bytes(folder: Path) -> int:
    """The apparent size of the regular files under ``folder`` (links not followed)."""
    total = 0
    for parent, _dirs, files in os.walk(folder):
        for name in files:
            try:
                info = os.lstat(os.path.join(parent, name))
            except OSError:  # removed meanwhile
                continue
            total += info.st_size if stat.S_ISREG(info.st_mode) else 0
    return total
