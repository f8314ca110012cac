"""A bonded verifier's side of federated jobs: aggregate when drawn, vote on every ballot.

One ``step`` at a time over the committed state (``chain.federated.open.reads``'s ``duty``) and
the participant's ports (submit, read and store blobs), so the same loop runs in a node
(``client.federated.member.node_loop``) and against the ledger harness in tests:

- drawn aggregator [FED-ROUND.3]: fetch the revealed update blobs, recompute the round
  (``member_compute``, numpy fast path, bit for bit the reference), publish the model blob
  and send ``fed_aggregate`` [TX-FED.4];
- voter on a round [FED-VOTE.2]: recompute, compare with the posted model hash and weights
  [FED-VOTE.3], evaluate the model's accuracy on the holdout's public part (the
  ``Evaluator`` port), commit then reveal [FED-VOTE.1] [TX-FED.5] [TX-FED.6];
- voter on the end ballot [FED-END.1]: replay the final and leave-one-out models
  (``api_replay.end_models``), evaluate their losses on the hidden part, vote.

A vote's content and salt are written to the ``VoteStore`` *before* its commitment is sent,
so a node restarted between commit and reveal opens what it committed.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from chain.federated.blobs import ModelBlob, model_hash
from chain.federated.job_copies import credited_losses
from chain.federated.open.reads import (
    END_ROUND,
    FedPhase,
    aggregate_body,
    duty,
    fed_job,
    fed_rounds,
    vote_bodies,
)
from chain.federated.open.records import FedJob
from chain.federated.open.replay import end_copy_counts, end_models, replay_plan
from chain.federated.spec import FederatedSpec
from chain.jobspec import DataRef
from chain.state import StateReader
from chain.versions import JOB_COPY_VERSION, REPLAY_VERSION
from client.federated.member.compute import (
    RoundAggregate,
    earlier_updates,
    first_draw,
    matches,
    needed_blobs,
    round_aggregate,
    step_base,
)
from client.federated.member.private import private_aggregate, private_blobs
from client.federated.participant.rounds import RESEND_MS, Ports
from client.node.atomic_write import write_replacing

PREFETCH_PHASES = (FedPhase.SHARES, FedPhase.REVEAL, FedPhase.UNMASK)
"""A private round's phases in which members fetch the blobs named so far [FED-PRIV.9]."""


class Evaluator(Protocol):
    """Measures models on a job's holdout parts (host-side or in the job's sandbox)."""

    def accuracy(self, job_id: bytes, spec: FederatedSpec, part: DataRef,
                 model: ModelBlob) -> int | None:
        """Accuracy in ppm on the public ``part``; None while still working on it."""
        ...

    def losses(self, job_id: bytes, spec: FederatedSpec, part: DataRef,
               models: Sequence[tuple[int, ...]]) -> list[int] | bool:
        """Each model's loss in micro-units on the hidden ``part``; True while still
        working, False when the part does not match its root or cannot be evaluated (an
        invalid end vote [FED-END.2])."""
        ...


@dataclass(frozen=True, slots=True)
class VoteRecord:
    round: int
    attempt: int
    valid: bool
    accuracy_ppm: int | None
    losses: tuple[int, ...] | None
    salt: bytes


class VoteStore:
    """One JSON file per ballot in a job's folder, written to a temporary name and renamed."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def _path(self, job_id: bytes, round_no: int, attempt: int) -> Path:
        return self.folder / job_id.hex() / f"vote-{round_no}-{attempt}.json"

    def get(self, job_id: bytes, round_no: int, attempt: int) -> VoteRecord | None:
        path = self._path(job_id, round_no, attempt)
        if not path.is_file():
            return None
        d = json.loads(path.read_text())
        return VoteRecord(round_no, attempt, bool(d["valid"]), d["accuracy_ppm"],
                          None if d["losses"] is None else tuple(d["losses"]),
                          bytes.fromhex(d["salt"]))

    def put(self, job_id: bytes, record: VoteRecord) -> None:
        path = self._path(job_id, record.round, record.attempt)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_replacing(path, json.dumps({  # a full disk leaves no partial copy [WORK-FED.2]
            "valid": record.valid, "accuracy_ppm": record.accuracy_ppm,
            "losses": None if record.losses is None else list(record.losses),
            "salt": record.salt.hex()}).encode())


class Member:
    """Aggregates and votes for every running federated job as ``address``."""

    def __init__(self, address: bytes, ports: Ports, evaluator: Evaluator, store: VoteStore,
                 *, cheat_aggregate: bool = False, cheat_first_draw: bool = False,
                 log: Callable[[str], None] = lambda _m: None) -> None:
        self.address, self.ports, self.evaluator, self.store = address, ports, evaluator, store
        self.cheat_aggregate, self.log = cheat_aggregate, log
        self.cheat_first_draw = cheat_first_draw
        self._cheated: set[tuple[bytes, int, int]] = set()
        self._sent: dict[tuple[bytes, int, int, str], int] = {}
        self._computed: dict[tuple[bytes, int, int], RoundAggregate] = {}
        self.disk_problem: str | None = None
        """The last full-disk failure of a step [WORK-FED.2], kept to say it once."""

    def step_all(self) -> dict[bytes, str]:
        """``step`` every running federated job (``active_fed``, job id order)."""
        state = self.ports.state()
        return {job_id: self.step(job_id) for job_id in sorted(state.keys("active_fed"))}

    def step(self, job_id: bytes) -> str:
        """Do what the state asks of this member for ``job_id`` now; returns what was done
        or waited for: ``no_job``, ``done``, ``wait``,
        ``fetching``, ``evaluating``, ``aggregated``, ``vote_committed``, ``vote_revealed``,
        ``lost_vote`` (a reveal is due but the store lost the vote), ``sent_recently`` or
        ``disk_full`` (a vote or model blob could not be written; nothing was sent, and the
        next step tries again [WORK-FED.2])."""
        try:
            done = self._step(job_id)
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            why = f"job {job_id.hex()[:12]}: cannot write: {e}"
            if self.disk_problem != why:
                self.log(f"{why}; nothing sent, trying again")
            self.disk_problem = why
            return "disk_full"
        if self.disk_problem is not None and job_id.hex()[:12] in self.disk_problem:
            self.disk_problem = None
        return done

    def _step(self, job_id: bytes) -> str:
        state = self.ports.state()
        fed = fed_job(state, job_id)
        job = state.job(job_id)
        if fed is None or job is None or job.spec.federated is None:
            return "no_job"
        if fed.phase == FedPhase.DONE:
            return "done"
        spec = job.spec.federated
        if spec.privacy != "open" and fed.phase in PREFETCH_PHASES:
            self._prefetch(fed)
        what = duty(state, job_id, self.address, self.ports.now_ms())
        if what not in ("aggregate", "vote_commit", "vote_reveal"):
            return "wait"
        end = fed.phase in (FedPhase.END_COMMIT, FedPhase.END_REVEAL)
        round_no, attempt = (END_ROUND, 0) if end else (fed.round, fed.attempt)
        if what == "vote_reveal":
            record = self.store.get(job_id, round_no, attempt)
            return "lost_vote" if record is None else self._reveal(job_id, record)
        if end:
            return self._end_vote(state, job_id, fed, spec)
        mine = self._aggregate(job_id, fed, spec)
        if isinstance(mine, str):
            return mine
        if what == "aggregate":
            return self._post(job_id, fed, mine)
        return self._round_vote(job_id, fed, spec, mine)

    def _prefetch(self, fed: FedJob) -> None:
        """[FED-PRIV.9] Fetches a private round's blobs as soon as they are named: a
        participant that drops out after sharing is gone when the aggregator is drawn, and
        its share blob would be on no other node (a void round on a real graph)."""
        for blob_id in sorted(private_blobs(self.ports.state(), fed)):
            self.ports.read_blob(blob_id)

    def _read_all(self, blob_ids: Iterable[bytes]) -> dict[bytes, bytes] | None:
        """Every blob's bytes, or None while any is missing, with a fetch started for each
        missing one at once: stopping at the first made a round's blobs arrive one per step
        (a step a second on a graph at rest), and 6 owners' updates took about 10 s, the
        whole of an attempt's window, so every first attempt went unvoted in ``make
        demo-federated`` (2026-11-29)."""
        found: dict[bytes, bytes] = {}
        missing = False
        for blob_id in sorted(blob_ids):
            data = self.ports.read_blob(blob_id)
            if data is None:
                missing = True
            else:
                found[blob_id] = data
        return None if missing else found

    # --- aggregator -------------------------------------------------------------------
    def _aggregate(self, job_id: bytes, fed: FedJob, spec: FederatedSpec
                   ) -> RoundAggregate | str:
        key = (job_id, fed.round, fed.attempt)
        if key in self._computed:
            return self._computed[key]
        private = spec.privacy != "open"  # [FED-PRIV.9] unmasked from the public blobs
        state = self.ports.state()
        earlier = [] if private else fed_rounds(state, job_id)
        base = step_base(spec, earlier)
        history = earlier_updates(earlier) if state.protocol_version >= REPLAY_VERSION else ()
        blobs = self._read_all(private_blobs(self.ports.state(), fed) if private
                               else needed_blobs(fed, base, history))
        if blobs is None:
            return "fetching"
        cheat = fed.aggregator == self.address and (self.cheat_aggregate or (
            self.cheat_first_draw and first_draw(fed, fed_rounds(self.ports.state(), job_id))))
        if cheat:
            self._cheated.add(key)
        mine = private_aggregate(self.ports.state(), fed, spec, blobs, cheat=cheat) \
            if private else round_aggregate(fed, spec, blobs, base=base, history=history,
                                            stale_and_cap=state.protocol_version
                                            >= REPLAY_VERSION,
                                            cheat=cheat)
        self._computed = {k: v for k, v in self._computed.items() if k[0] != job_id}
        self._computed[key] = mine
        return mine

    def _post(self, job_id: bytes, fed: FedJob, mine: RoundAggregate) -> str:
        if self._recent(job_id, fed.round, fed.attempt, "aggregate"):
            return "sent_recently"
        self.ports.put_blob(mine.model_blob)
        body = aggregate_body(job_id, fed.round, fed.attempt, mine.model_blob,
                              dict(mine.weights))
        if self.ports.submit(body, "aggregate"):
            self._mark(job_id, fed.round, fed.attempt, "aggregate")
            self.log(f"round {fed.round} attempt {fed.attempt}: aggregate "
                     f"{mine.model_hash.hex()[:12]} posted"
                     + (" (DELIBERATELY WRONG)" if (job_id, fed.round, fed.attempt)
                        in self._cheated else ""))
        return "aggregated"

    # --- voter ------------------------------------------------------------------------
    def _round_vote(self, job_id: bytes, fed: FedJob, spec: FederatedSpec,
                    mine: RoundAggregate) -> str:
        record = self.store.get(job_id, fed.round, fed.attempt)
        if record is None:
            valid = matches(fed, mine)
            accuracy = None
            if valid:
                if fed.public is None:
                    raise ValueError(f"job {job_id.hex()[:12]} has no public part to evaluate")
                accuracy = self.evaluator.accuracy(job_id, spec, fed.public, mine.model)
                if accuracy is None:
                    return "evaluating"
            if valid:  # the same bytes as the aggregator's: serve them too (next round)
                self.ports.put_blob(mine.model_blob)
            record = VoteRecord(fed.round, fed.attempt, valid, accuracy, None, os.urandom(32))
            self.store.put(job_id, record)  # before the commitment leaves [FED-VOTE.1]
            self.log(f"round {fed.round} attempt {fed.attempt}: vote "
                     f"{'valid' if valid else 'INVALID'}"
                     + (f", accuracy {accuracy} ppm" if accuracy is not None else ""))
        return self._commit(job_id, record)

    def _end_vote(self, state: StateReader, job_id: bytes, fed: FedJob,
                  spec: FederatedSpec) -> str:
        record = self.store.get(job_id, END_ROUND, 0)
        if record is None:
            plan = replay_plan(state, job_id)
            if plan is None or fed.hidden is None:
                return "wait"
            blobs = self._read_all(plan.blobs())
            if blobs is None:
                return "fetching"
            final, loo = end_models(plan, blobs)
            if fed.model_hash is not None and \
                    model_hash(ModelBlob(spec.scale_bits, final).to_bytes()) != fed.model_hash:
                raise ValueError(f"job {job_id.hex()[:12]}: the replayed final model is not "
                                 "the recorded one")
            models = [final, *(loo[a] for a in plan.loo_participants)]
            losses = self.evaluator.losses(job_id, spec, fed.hidden, models)
            if losses is True:
                return "evaluating"
            if isinstance(losses, list) and state.protocol_version >= JOB_COPY_VERSION:
                losses = [losses[0], *credited_losses(losses[0], losses[1:],
                                                      end_copy_counts(plan, blobs))]
            valid = isinstance(losses, list)
            record = VoteRecord(END_ROUND, 0, valid, None,
                                tuple(losses) if isinstance(losses, list) else None,
                                os.urandom(32))
            self.store.put(job_id, record)
            self.log(f"end ballot: vote {'valid' if valid else 'INVALID'}"
                     + (f", losses {list(record.losses)}" if record.losses else ""))
        return self._commit(job_id, record)

    def _bodies(self, job_id: bytes, record: VoteRecord):  # type: ignore[no-untyped-def]
        return vote_bodies(job_id, record.round, record.attempt, self.address, record.valid,
                           accuracy_ppm=record.accuracy_ppm,
                           losses=None if record.losses is None else list(record.losses),
                           salt=record.salt)

    def _commit(self, job_id: bytes, record: VoteRecord) -> str:
        if self._recent(job_id, record.round, record.attempt, "vote_commit"):
            return "sent_recently"
        if self.ports.submit(self._bodies(job_id, record).commit, "vote_commit"):
            self._mark(job_id, record.round, record.attempt, "vote_commit")
        return "vote_committed"

    def _reveal(self, job_id: bytes, record: VoteRecord) -> str:
        if self._recent(job_id, record.round, record.attempt, "vote_reveal"):
            return "sent_recently"
        if self.ports.submit(self._bodies(job_id, record).reveal, "vote_reveal"):
            self._mark(job_id, record.round, record.attempt, "vote_reveal")
        return "vote_revealed"

    # --- resend bookkeeping -------------------------------------------------------------
    def _recent(self, job_id: bytes, round_no: int, attempt: int, what: str) -> bool:
        last = self._sent.get((job_id, round_no, attempt, what))
        return last is not None and self.ports.now_ms() - last < RESEND_MS

    def _mark(self, job_id: bytes, round_no: int, attempt: int, what: str) -> None:
        self._sent[(job_id, round_no, attempt, what)] = self.ports.now_ms()
