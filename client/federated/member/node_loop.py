"""The member loop inside a node: every bonded verifier aggregates and votes for federated jobs.

``FederatedMember`` steps a ``Member`` for every running federated job after each committed
block. Its evaluator fetches the job's holdout part (a data blob), unpacks and verifies it
against the job's commitment and the chain's split seed [HOLDOUT-BLOB.5] (a hidden part that
does not verify is an invalid end vote [FED-END.2]), and measures the round's model on it
host-side (``member_eval``: numpy only, the model is a strict ModelBlob, never a pickle).
Wired by ``LedgerNode`` for worker nodes with ``[worker] verify`` and ``federated`` on.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence

from chain.federated.blobs import ModelBlob
from chain.federated.open.reads import fed_job
from chain.federated.spec import FederatedSpec
from chain.jobspec import DataRef
from client.federated.member.duties import Member, VoteStore
from client.federated.member.evaluate import (
    Rows,
    TemplateEvalError,
    accuracy_ppm,
    loss_micro,
    read_rows,
    template_layers,
)
from client.federated.participant.node_loop import NodePorts
from client.node.handle import CommittedBlock, NodeHandle
from sandbox.errors import SandboxError
from sandbox.holdout_blob import open_part

log = logging.getLogger("learningchain.federated")


class HostEvaluator:
    """Fetches, verifies and reads a holdout part once per (job, part); evaluates host-side."""

    def __init__(self, node: NodeHandle, ports: NodePorts) -> None:
        self.node, self.ports = node, ports
        self._rows: dict[tuple[bytes, str], Rows | Exception] = {}

    def _part(self, job_id: bytes, spec: FederatedSpec, part: DataRef, which: str
              ) -> Rows | Exception | None:
        key = (job_id, which)
        if key in self._rows:
            return self._rows[key]
        fed = fed_job(self.node.state, job_id)
        if fed is None or fed.seed is None:
            raise ValueError(f"job {job_id.hex()[:12]}: no split seed yet")
        if self.ports.read_blob(part.blob) is None:
            return None  # fetching
        path = self.node.blob_path(part.blob)
        assert path is not None
        dest = self.node.data_dir / "federated" / job_id.hex() / f"part-{which}"
        shutil.rmtree(dest, ignore_errors=True)
        h = spec.holdout
        try:
            verified = open_part(path, part.size, dest, h.root, h.pool, h.public_permille,
                                 fed.seed, which)
            rows: Rows | Exception = read_rows(list(verified.files))
        except (SandboxError, TemplateEvalError) as e:
            log.error("federated %s: the %s part is refused: %s", job_id.hex()[:12], which, e)
            rows = e
        self._rows[key] = rows
        return rows

    def accuracy(self, job_id: bytes, spec: FederatedSpec, part: DataRef,
                 model: ModelBlob) -> int | None:
        rows = self._part(job_id, spec, part, "public")
        if rows is None:
            return None
        if isinstance(rows, Exception):
            raise rows  # no accuracy to vote: this member abstains (logged by the caller)
        x, y = rows
        return accuracy_ppm(template_layers(model.values, model.scale_bits), x, y)

    def losses(self, job_id: bytes, spec: FederatedSpec, part: DataRef,
               models: Sequence[tuple[int, ...]]) -> list[int] | bool:
        rows = self._part(job_id, spec, part, "hidden")
        if rows is None:
            return True
        if isinstance(rows, Exception):
            return False  # the hidden part does not open its commitment [FED-END.2]
        x, y = rows
        try:
            return [loss_micro(template_layers(m, spec.scale_bits), x, y) for m in models]
        except TemplateEvalError as e:
            log.error("federated %s: cannot evaluate: %s", job_id.hex()[:12], e)
            return False


class FederatedMember:
    """Aggregates and votes for every federated job from a running node."""

    def __init__(self, node: NodeHandle, cheat_aggregate: bool = False,
                 cheat_first_draw: bool = False) -> None:
        folder = node.data_dir / "federated" / "member"
        folder.mkdir(parents=True, exist_ok=True)
        self.node = node
        ports = NodePorts(node, b"federated-member", folder)
        self.member = Member(node.key.address, ports, HostEvaluator(node, ports),
                             VoteStore(folder), cheat_aggregate=cheat_aggregate,
                             cheat_first_draw=cheat_first_draw,
                             log=lambda m: log.info("federated member: %s", m))
        self.last: dict[bytes, str] = {}

    def start(self) -> None:
        self.node.add_block_listener(self._on_block)
        self.node.add_tick_listener(self.step)  # [CONS-PACE.1] a graph at rest has no blocks

    def _on_block(self, _event: CommittedBlock) -> None:
        self.step()

    def step(self) -> None:
        for job_id in sorted(self.node.state.keys("active_fed")):
            try:
                self.last[job_id] = self.member.step(job_id)
            except Exception as e:  # a bad blob or part: log, the next block tries again
                log.error("federated %s: member step failed: %s", job_id.hex()[:12], e)
                self.last[job_id] = "error"
