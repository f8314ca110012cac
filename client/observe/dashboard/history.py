"""Every claim a job received, in chain order [DASH-HISTORY.1]: "best loss over time".

The ledger's ``Job`` record keeps only each claimer's latest claim, so the
history is rebuilt from the ``ClaimLoss`` transactions in blocks. Every
transaction in a committed block was applied (an invalid one makes the
whole block invalid), so each ``ClaimLoss`` seen in a block is a claim the
ledger accepted.

Two sources fill the index, and they never overlap:

* a block listener records every block committed after ``start_height``
  (the chain height when the index was attached);
* ``backfill()``, a task started with the API server, scans the stored
  blocks up to ``start_height`` once, for the jobs that had claims then:
  for each, from its posted height to its last claim's height (a claimer's
  live claim is its latest, so the highest claim height of a job is the
  height of its last ``ClaimLoss``).

Both are bounded: at most ``max_jobs`` jobs (oldest-touched dropped first;
the backfill takes the most recently posted), ``max_points`` claims per job
(beyond that only claims that lower the best loss are kept, so the
best-loss line stays exact, up to twice as many), and the backfill reads at
most ``max_backfill_blocks`` blocks, newest first, yielding to the event
loop between slices. Stored blocks are read
raw and only transactions whose wire form starts with the ``claim`` tag are
decoded, so blocks full of transfers cost almost nothing.

A job whose history may miss claims (dropped, truncated, or not yet
backfilled) is reported with ``complete = False``; the claims its ``Job``
record still holds are always merged in, so the plot never misses a claim
the leaderboard shows.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from chain import fields as F
from chain.blocks import Block, BlockHeader
from chain.encoding import decode, encode
from chain.errors import ChainError
from chain.records import Job
from chain.train.bodies import ClaimLoss
from chain.transactions import SignedTransaction
from chain.types import Address, Hash32
from client.node.handle import CommittedBlock, NodeHandle

log = logging.getLogger(__name__)

MAX_JOBS = 2_000
MAX_POINTS = 5_000
MAX_BACKFILL_BLOCKS = 20_000
BACKFILL_SLICE = 32
"""Blocks read between two yields to the event loop while backfilling."""
CLAIM_PREFIX = b"\x95" + encode(ClaimLoss.TAG)
"""How every canonical ``claim`` transaction's wire form starts: a msgpack 5-array, the tag."""
MERGED_CACHE = 4_096
"""Claims read back from blocks for jobs the index does not fully hold (LRU)."""


@dataclass(frozen=True, slots=True)
class ClaimPoint:
    """One accepted ``ClaimLoss``: who, what loss, where and when in the chain."""

    height: int
    index: int
    """Position of the transaction in its block."""
    time_ms: int
    """The block's time."""
    claimer: Address
    loss: float
    tx_hash: Hash32


@dataclass(slots=True)
class _JobHistory:
    points: dict[tuple[int, int], ClaimPoint] = field(default_factory=dict)
    complete: bool = True
    best: float | None = None

    def add(self, point: ClaimPoint, max_points: int) -> None:
        key = (point.height, point.index)
        if key in self.points:
            return
        improves = self.best is None or point.loss < self.best
        if len(self.points) >= max_points and not (improves and len(self.points) < 2 * max_points):
            self.complete = False
            return
        self.points[key] = point
        if improves:
            self.best = point.loss


@dataclass(frozen=True, slots=True)
class JobHistory:
    """What ``ClaimHistory.history`` answers for one job."""

    job_id: Hash32
    claims: tuple[ClaimPoint, ...]
    """In chain order: height, then position in the block."""
    complete: bool
    """False when claims may be missing (index bounds, or backfill still running)."""

    def best_steps(self) -> list[ClaimPoint]:
        """The claims that lowered the best loss so far, in order (the best-loss line)."""
        steps: list[ClaimPoint] = []
        for point in self.claims:
            if not steps or point.loss < steps[-1].loss:
                steps.append(point)
        return steps


def claim_points(block: Block) -> list[tuple[Hash32, ClaimPoint]]:
    """The (job id, claim) pairs of a decoded block."""
    out = []
    for index, tx in enumerate(block.txs):
        if isinstance(tx.body, ClaimLoss):
            out.append((tx.body.job_id, ClaimPoint(
                int(block.header.height), index, int(block.header.time_ms), tx.sender,
                float(tx.body.loss), tx.hash)))
    return out


def claim_points_raw(block_bytes: bytes) -> list[tuple[Hash32, ClaimPoint]]:
    """The same from a stored block's bytes, decoding only the claim transactions."""
    a = F.array(decode(block_bytes), "block", 2)
    header = BlockHeader.from_wire(a[0])
    out = []
    for index, raw in enumerate(F.array(a[1], "txs")):
        if not (isinstance(raw, bytes) and raw.startswith(CLAIM_PREFIX)):
            continue
        tx = SignedTransaction.decode(raw)
        if isinstance(tx.body, ClaimLoss):
            out.append((tx.body.job_id, ClaimPoint(
                int(header.height), index, int(header.time_ms), tx.sender,
                float(tx.body.loss), tx.hash)))
    return out


def _merge_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Inclusive height ranges merged where they overlap or touch, ascending."""
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


class ClaimHistory:
    """The claim index of one node; ``attach()`` it, then run ``backfill()`` once."""

    def __init__(self, node: NodeHandle, *, max_jobs: int = MAX_JOBS,
                 max_points: int = MAX_POINTS,
                 max_backfill_blocks: int = MAX_BACKFILL_BLOCKS) -> None:
        self.node = node
        self.max_jobs = max_jobs
        self.max_points = max_points
        self.max_backfill_blocks = max_backfill_blocks
        self.start_height = 0
        self._live_height = 0
        self._jobs: OrderedDict[bytes, _JobHistory] = OrderedDict()
        self._dropped: set[bytes] = set()
        """Jobs whose claims the index no longer holds in full (beyond ``max_jobs``)."""
        self._merged: OrderedDict[tuple[int, int], ClaimPoint | None] = OrderedDict()
        self.backfilled = asyncio.Event()
        self.blocks_scanned = 0

    # -- filling ------------------------------------------------------------------------

    def attach(self) -> None:
        """Listens from the current height on; older claims are ``backfill()``'s part."""
        self.start_height = self._live_height = self.node.height
        self.node.add_block_listener(self.on_block)

    def on_block(self, event: CommittedBlock) -> None:
        height = int(event.block.header.height)
        if height <= self._live_height:
            return  # committed before the index existed: the backfill's part
        if height > self._live_height + 1:  # never expected; read what was skipped
            for missing in range(self._live_height + 1, height):
                self._record_stored(missing)
        for job_id, point in claim_points(event.block):
            self._add(job_id, point)
        self._live_height = height

    async def backfill(self) -> None:
        """Scans the stored blocks up to ``start_height`` for the claims of earlier jobs.

        Newest blocks first, at most ``max_backfill_blocks``; a job whose range
        reaches below what was scanned stays incomplete. Yields to the event loop
        between slices, so the node keeps running meanwhile.
        """
        try:
            ranges = await self._claim_ranges()
            budget = self.max_backfill_blocks
            lowest = self.start_height + 1
            for lo, hi in reversed(_merge_ranges(ranges.values())):
                for height in range(hi, lo - 1, -1):
                    if budget <= 0:
                        break
                    self._record_stored(height)
                    budget -= 1
                    lowest = height
                    if budget % BACKFILL_SLICE == 0:
                        await asyncio.sleep(0)
            short = [job_id for job_id, (lo, _hi) in ranges.items() if lo < lowest]
            for job_id in short:
                self._entry(job_id).complete = False
            if short:
                log.info("claim history: %d jobs have claims below the %d blocks scanned",
                         len(short), self.max_backfill_blocks)
        finally:
            self.backfilled.set()

    async def _claim_ranges(self) -> dict[bytes, tuple[int, int]]:
        """Per job that had claims at ``start_height`` (newest ``max_jobs``): where they are.

        A job's live claims are each claimer's latest, so the highest of their
        heights is its last claim's. When a claimer has claimed again since
        ``start_height``, its earlier claim may be anywhere up to it.
        """
        state = self.node.state
        found = []
        for i, key in enumerate(state.keys("job")):
            job = state.job(key)
            if job is not None and job.claims and job.posted_height <= self.start_height:
                heights = [c.height for c in job.claims]
                last = self.start_height if max(heights) > self.start_height else max(heights)
                found.append((int(job.posted_height), job.job_id, int(last)))
            if i % 256 == 255:
                await asyncio.sleep(0)
        found.sort(reverse=True)
        for _posted, job_id, _last in found[self.max_jobs:]:
            self._dropped.add(job_id)
            if job_id in self._jobs:
                self._jobs[job_id].complete = False
        return {job_id: (posted, last) for posted, job_id, last in found[:self.max_jobs]}

    def _record_stored(self, height: int) -> None:
        data = self.node.block_with_certificate(height)
        if data is None:
            return
        try:
            points = claim_points_raw(data[0])
        except ChainError as e:  # a stored block always decodes; never fail the node for it
            log.warning("claim history: block %d unreadable: %s", height, e)
            return
        self.blocks_scanned += 1
        for job_id, point in points:
            self._add(job_id, point)

    def _entry(self, job_id: bytes) -> _JobHistory:
        entry = self._jobs.get(job_id)
        if entry is None:
            entry = self._jobs[job_id] = _JobHistory(complete=job_id not in self._dropped)
            while len(self._jobs) > self.max_jobs:
                dropped, _ = self._jobs.popitem(last=False)
                self._dropped.add(dropped)
        else:
            self._jobs.move_to_end(job_id)
        return entry

    def _add(self, job_id: bytes, point: ClaimPoint) -> None:
        self._entry(job_id).add(point, self.max_points)

    # -- reading ---------------------------------------------------------------------------

    def history(self, job: Job) -> JobHistory:
        """The job's claims in chain order; its ``Job`` record's live claims merged in."""
        entry = self._jobs.get(job.job_id)
        points = dict(entry.points) if entry is not None else {}
        # No entry: either no claim ever (claims are never removed from the record), or dropped.
        complete = entry.complete if entry is not None else not job.claims
        if job.claims and job.posted_height <= self.start_height \
                and not self.backfilled.is_set():
            complete = False  # its earlier claims are still being read
        for claim in job.claims:
            key = (int(claim.height), claim.index)
            if key not in points:
                point = self._point_of_claim(claim.height, claim.index)
                if point is not None:
                    points[key] = point
        ordered = tuple(points[k] for k in sorted(points))
        return JobHistory(job.job_id, ordered, complete)

    def _point_of_claim(self, height: int, index: int) -> ClaimPoint | None:
        key = (int(height), index)
        if key in self._merged:
            self._merged.move_to_end(key)
            return self._merged[key]
        point = self._read_claim(height, index)
        self._merged[key] = point
        if len(self._merged) > MERGED_CACHE:
            self._merged.popitem(last=False)
        return point

    def _read_claim(self, height: int, index: int) -> ClaimPoint | None:
        block = self.node.block(height)
        if block is None or index >= len(block.txs):
            return None
        tx = block.txs[index]
        if not isinstance(tx.body, ClaimLoss):
            return None
        return ClaimPoint(int(height), index, int(block.header.time_ms), tx.sender,
                          float(tx.body.loss), tx.hash)

