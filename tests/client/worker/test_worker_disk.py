"""[WORK-GC.1] Job images and blobs of settled jobs, removed under the disk budget.

A stand-in engine and node (what is removed is recorded, not done); the
worker's state file is real, so what is owned survives a restart. Shown: only
items this worker recorded are removed, only when every job that used them
is settled, oldest first, and only while over the budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import docker.errors

from chain.records import JobStatus
from chain.types import Address
from client.node.config import WorkerPolicy
from client.node.handle import NodeHandle
from client.worker.disk import MIB, DiskKeeper
from client.worker.state import WorkerStore

ME = Address(b"\x01" * 20)
SETTLED_JOB, OPEN_JOB, OTHER_SETTLED = b"\xaa" * 32, b"\xbb" * 32, b"\xcc" * 32
BLOB = b"\x0b" * 32


@dataclass
class _Job:
    status: JobStatus


@dataclass
class _State:
    jobs: dict[bytes, _Job]

    def job(self, job_id: bytes) -> _Job | None:
        return self.jobs.get(job_id)


@dataclass
class _Node:
    state: _State
    blobs: dict[bytes, Path]
    clock: int = 1_000

    def now_ms(self) -> int:
        self.clock += 1  # each record is later than the one before
        return self.clock

    def blob_path(self, blob: bytes) -> Path | None:
        return self.blobs.get(blob)

    def remove_blob(self, blob: bytes) -> bool:
        """As ``BlobStore.remove``: the file goes, and the node no longer holds the blob."""
        path = self.blobs.pop(blob, None)
        if path is None:
            return False
        path.unlink(missing_ok=True)
        return True


@dataclass
class _Images:
    present: set[str]
    removed: list[str] = field(default_factory=list)

    def remove(self, image_id: str, **_kw: Any) -> None:
        if image_id not in self.present:
            raise docker.errors.ImageNotFound(image_id)
        self.present.discard(image_id)
        self.removed.append(image_id)


@dataclass
class _Client:
    images: _Images


def _keeper(tmp_path: Path, budget_mb: int) -> tuple[DiskKeeper, _Client, _Node, WorkerStore]:
    blob_file = tmp_path / "blob"
    blob_file.write_bytes(b"x" * 10)
    node = _Node(_State({SETTLED_JOB: _Job(JobStatus.PAID), OPEN_JOB: _Job(JobStatus.OPEN),
                         OTHER_SETTLED: _Job(JobStatus.REFUNDED)}),
                 {BLOB: blob_file})
    client = _Client(_Images({"sha256:old", "sha256:shared", "sha256:operator"}))
    store = WorkerStore(tmp_path / "worker", ME)
    store.open()
    keeper = DiskKeeper(cast(NodeHandle, node), cast(Any, client), store,
                        WorkerPolicy(disk_budget_mb=budget_mb))
    return keeper, client, node, store


async def test_work_gc_1_only_own_items_of_settled_jobs_go_oldest_first_within_budget(
        tmp_path: Path) -> None:
    keeper, client, node, store = _keeper(tmp_path, budget_mb=150)
    keeper.record("image", "sha256:old", 100 * MIB, SETTLED_JOB)
    keeper.record("blob", BLOB.hex(), 100 * MIB, OTHER_SETTLED)
    keeper.record("image", "sha256:shared", 100 * MIB, SETTLED_JOB)
    keeper.use("sha256:shared", OPEN_JOB)  # an open job still uses it: kept
    assert keeper.total_bytes() == 300 * MIB
    forgotten: list[str] = []
    keeper.on_removed_image.append(forgotten.append)

    await keeper.collect()

    # 300 MiB > 150: the oldest removable (the image) goes, then the blob; 100 MiB fit
    assert client.images.removed == ["sha256:old"] and forgotten == ["sha256:old"]
    assert not (tmp_path / "blob").exists()
    assert "sha256:shared" in client.images.present  # its open job is not settled
    assert "sha256:operator" in client.images.present  # never recorded: never touched
    assert keeper.total_bytes() == 100 * MIB
    assert keeper.removed == ["image:sha256:old", f"blob:{BLOB.hex()}"]

    # the record is in the state file: a restarted worker still owns the shared image
    again = WorkerStore(tmp_path / "worker", ME)
    again.open()
    assert list(again.state.owned) == ["sha256:shared"]
    assert again.state.owned["sha256:shared"].jobs == [SETTLED_JOB.hex(), OPEN_JOB.hex()]


async def test_work_gc_1_nothing_is_removed_within_the_budget(tmp_path: Path) -> None:
    keeper, client, _node, _store = _keeper(tmp_path, budget_mb=1024)
    keeper.record("image", "sha256:old", 100 * MIB, SETTLED_JOB)
    keeper.maybe_collect()  # under budget: no collection starts
    assert keeper.task is None
    await keeper.collect()
    assert client.images.removed == [] and keeper.total_bytes() == 100 * MIB
    keeper.policy = replace(keeper.policy, disk_budget_mb=0)
    await keeper.collect()
    assert client.images.removed == ["sha256:old"] and keeper.total_bytes() == 0


async def test_work_gc_1_kept_checkpoints_count_and_stale_ones_go_first(tmp_path: Path) -> None:
    """[WORK-GC.1] [JOB-CHECKPOINT.2] Kept checkpoints count toward the budget. Over it,
    those of a settled job and of a job the worker no longer follows go first; the
    checkpoint of a followed open job stays (its attempt may resume), and so does a
    settled job's item while removing stale checkpoints is enough."""
    keeper, client, _node, store = _keeper(tmp_path, budget_mb=1)
    keeper.record("image", "sha256:old", MIB // 2, SETTLED_JOB)
    store.state.job(OPEN_JOB)
    store.state.job(SETTLED_JOB)  # settled on chain, its cleanup never ran (a crash)
    sizes = {store.checkpoint_dir(OPEN_JOB, 1): 300_000,
             store.checkpoint_dir(SETTLED_JOB, 2): 400_000,
             store.checkpoint_dir(OTHER_SETTLED, 1): 500_000}  # not followed: abandoned
    for folder, size in sizes.items():
        (folder / "step-3").mkdir(parents=True)
        (folder / "step-3" / "model.pt").write_bytes(b"c" * size)
        (folder / "step-3" / "link").symlink_to(tmp_path / "blob")  # not counted
    assert keeper.checkpoint_bytes() == 1_200_000
    assert keeper.total_bytes() == MIB // 2 + 1_200_000
    assert keeper.summary()["checkpoint_bytes"] == 1_200_000
    assert sorted(p.name for p in keeper.stale_checkpoints()) == sorted(
        store.checkpoint_dir(j, n).name for j, n in ((SETTLED_JOB, 2), (OTHER_SETTLED, 1)))

    await keeper.collect()

    assert store.checkpoint_dir(OPEN_JOB, 1).is_dir()
    assert not store.checkpoint_dir(SETTLED_JOB, 2).exists()
    assert not store.checkpoint_dir(OTHER_SETTLED, 1).exists()
    assert keeper.total_bytes() == MIB // 2 + 300_000 <= MIB
    assert client.images.removed == []  # within the budget once the stale ones went
    assert (tmp_path / "blob").exists()  # a link in a checkpoint: removed, not followed

    keeper.policy = replace(keeper.policy, disk_budget_mb=0)
    await keeper.collect()  # the open job's checkpoint is never removed
    assert client.images.removed == ["sha256:old"]
    assert keeper.total_bytes() == keeper.checkpoint_bytes() == 300_000
