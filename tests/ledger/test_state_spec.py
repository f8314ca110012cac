"""protocol_spec/state.md against the code: record field lists, conventions, identifiers.

The record lists of the chapter are parsed and compared with the dataclasses
and their ``to_wire`` order, so a field added in the code and not in the
spec (or the reverse) fails here.
"""

from __future__ import annotations

import dataclasses
import re
from enum import Enum
from pathlib import Path
from typing import Any

import pytest

from chain import jobspec, records
from chain.crypto import PrivateKey
from chain.federated.open import records as fed_records
from chain.genesis import genesis_records
from chain.governance import records as gov_records
from chain.governance.bodies import (
    GovernanceAction,
    GovernanceApprove,
    GovernancePropose,
    UpgradePlan,
)
from chain.predict import records as predict_records
from chain.predict.model import InputSchema
from chain.predict.request import PredictionRequest
from chain.records import JobStatus, Outcome
from chain.state import decode_record
from chain.train.bodies import PostJob
from chain.train.holdout import records as holdout_records
from chain.types import Address, Hash32
from tests.ledger.harness import Chain, job_spec
from tests.ledger.story import tell_story

STATE_MD = Path(__file__).resolve().parents[2] / "protocol_spec" / "state.md"
RECORD_LINE = re.compile(r"^\s*- `(\w+)` = `\[([^\]]*)\]`", re.MULTILINE)
CLASSES: dict[str, Any] = {
    "Account": records.Account, "Validator": records.Validator, "Job": records.Job,
    "Claim": records.Claim, "VoteRecord": records.VoteRecord, "Verdict": records.Verdict,
    "Proposal": gov_records.Proposal, "ValidatorChange": records.ValidatorChange,
    "Params": records.Params, "JobSpec": jobspec.JobSpec,
    "ResourceLimits": jobspec.ResourceLimits, "ParamSpec": jobspec.ParamSpec,
    "VotingParams": jobspec.VotingParams, "GovernanceAction": GovernanceAction,
    "DataRef": jobspec.DataRef, "Holdout": jobspec.Holdout,
    "HoldoutState": holdout_records.HoldoutState, "Finalist": holdout_records.Finalist,
    "DeployedModel": predict_records.DeployedModel, "InputSchema": InputSchema,
    "PredictionRequest": PredictionRequest, "Prediction": predict_records.Prediction,
    "ExecutorAnswer": predict_records.ExecutorAnswer,
    "FedJob": fed_records.FedJob, "FedUpdate": fed_records.FedUpdate,
    "FedVote": fed_records.FedVote, "PostedAggregate": fed_records.PostedAggregate,
    "FedRound": fed_records.FedRound, "UpgradePlan": UpgradePlan,
}


def spec_field_lists() -> dict[str, list[str]]:
    return {m.group(1): [f.strip() for f in m.group(2).split(",")]
            for m in RECORD_LINE.finditer(STATE_MD.read_text())}


def test_state_md_lists_every_record_with_the_code_fields_in_order() -> None:
    """[STATE-RECORD.1] [JOB-SPEC-WIRE.1] Each record's fields in state.md equal the code's."""
    listed = spec_field_lists()
    assert set(listed) == set(CLASSES), "state.md lists other records than the code has"
    for name, cls in CLASSES.items():
        fields = [f.name for f in dataclasses.fields(cls) if f.init]
        assert listed[name] == fields, f"{name}: state.md {listed[name]} vs code {fields}"


def _wire(value: Any) -> Any:
    if isinstance(value, Enum):
        return str(value.value)
    if hasattr(value, "to_wire"):
        return value.to_wire()
    if isinstance(value, tuple):
        return [_wire(v) for v in value]
    return value


def _instances() -> list[Any]:
    story = tell_story()
    out: list[Any] = []
    changes = genesis_records(story.genesis) + [c for b in story.blocks for c in b.changes]
    for change in changes:
        if change.value is None or change.table in ("member", "verifier", "active_job",
                                                    "meta", "evidence"):
            continue
        record = decode_record(change.table, change.value)
        out.extend(record if isinstance(record, list) else [record])
    jobs = [r for r in out if isinstance(r, records.Job)]
    for job in jobs:
        out.extend((job.spec, job.spec.limits, job.spec.voting, *job.spec.search_space,
                    *job.claims, *job.votes, *job.verdicts))
    out.extend(p.action for p in out if isinstance(p, gov_records.Proposal))
    plan = UpgradePlan("v2-memo", 2, 40)  # [UPGRADE-PLAN.1] the story schedules no upgrade
    out.extend((plan, GovernanceAction.schedule(plan)))
    v2 = dataclasses.replace(job_spec(), kind=jobspec.TRAIN_V2, data=(
        ("train", jobspec.DataRef(Hash32(b"\x01" * 32), 10)),
        ("valid", jobspec.DataRef(Hash32(b"\x02" * 32), 5))))
    out.extend((v2, *(ref for _, ref in v2.data)))  # [JOB-DATA.1] the story's job is v1
    holdout = jobspec.Holdout(Hash32(b"\x03" * 32), 10, 500, 2, 7, 60_000, 0.01)
    v3 = dataclasses.replace(v2, kind=jobspec.TRAIN_V3, data=v2.data[:1], holdout=holdout)
    finalist = holdout_records.Finalist(v3_claimer := job_spec().image_digest[:20], 0.25, 4, 1)
    state = holdout_records.HoldoutState(Hash32(b"\x04" * 32), v2.data[0][1], v2.data[1][1],
                                         holdout_records.HoldoutStatus.VERIFIED, (finalist,))
    vote = records.VoteRecord(v3_claimer, Hash32(b"\x05" * 32), True, True, 0.3, True, 0.31)
    out.extend((v3, holdout, state, finalist, vote))  # [HOLDOUT-STATE.1] [HOLDOUT-VOTE.1]
    out.extend((dataclasses.replace(vote, hidden_challenge_loss=0.33),  # [HOLDOUT-CHALLENGE.1]
                dataclasses.replace(vote, hidden_challenge_loss=0.33, challenge_loss=0.29),
                dataclasses.replace(vote, hidden_loss=None, challenge_loss=0.29)))
    out.append(dataclasses.replace(job_spec().limits, gpu_count=2, gpu_memory_mb=8192))
    out.extend(_prediction_records())  # [PRED-STATE.1]
    out.extend(_federated_records())  # [FED-STATE.1] [FED-STATE.2]
    return out


def _federated_records() -> list[Any]:
    from tests.federated.fed_ledger_story import fed_job_spec
    addr, h = Address(job_spec().image_digest[:20]), Hash32(b"\x07" * 32)
    ref = jobspec.DataRef(h, 3)
    update = fed_records.FedUpdate(addr, h, h, 84, h)
    vote = fed_records.FedVote(addr, h, True, True, None, (1, 2))
    posted = fed_records.PostedAggregate(addr, h, h, ((addr, 7),))
    fed = fed_records.FedJob(h, addr, fed_records.FedPhase.VOTE_REVEAL, 2, 9, h, h, 1, h, ref,
                             ref, (update,), addr, (addr,), (addr,), posted, (addr,), (vote,),
                             5, 700_000, (addr,), fed_records.DepositStatus.HELD,
                             ((addr, 3),), 4)
    done = fed_records.FedRound(2, "accepted", h, h, ((addr, 7),), 700_000, addr, (addr,),
                                (update,))
    return [fed_job_spec(), update, vote, posted, fed, done]


def _prediction_records() -> list[Any]:
    from chain.predict.model import OutputSchema
    addr, h = job_spec().image_digest[:20], Hash32(b"\x06" * 32)
    model = predict_records.DeployedModel(h, h, "safetensors-mlp", InputSchema("float32", 3),
                                          OutputSchema("regression", (), 1, 2), addr, 100)
    req = PredictionRequest(h, h, 2, 30, 3, "values", 4, 1_000, 2_000)
    opened = predict_records.ExecutorAnswer(addr, h, h, (5, -6))
    pending = predict_records.ExecutorAnswer(addr, h)
    rec = predict_records.Prediction(h, addr, req, 7, predict_records.PredictionStatus.AGREED,
                                     0, 9_000, (addr,), (opened, pending), h)
    marked = dataclasses.replace(model, unservable_by=h)  # [PRED-UNLOADABLE.3]
    return [model, marked, model.input, req, rec, opened, pending]


def test_record_wire_order_is_the_field_order() -> None:
    """[STATE-RECORD.1] to_wire lists the fields in declaration order (entry points as a map)."""
    seen = set()
    for record in _instances():
        expected = []
        for f in dataclasses.fields(record):
            value = getattr(record, f.name)
            if f.name == "entry_points":
                value = {k: list(v) for k, v in value}
            if f.name == "data":  # [JOB-KIND.1] a map, and only on a train/v2 wire
                if record.kind in (jobspec.TRAIN_V1, jobspec.FEDERATED_V1):
                    continue
                value = {role: ref.to_wire() for role, ref in value}
            if f.name == "holdout" and record.kind != jobspec.TRAIN_V3:
                continue  # [HOLDOUT-SPEC.1] only train/v3 has one
            if f.name == "federated" and record.kind != jobspec.FEDERATED_V1:
                continue  # [FED-SPEC.1] only federated/v1 has one
            if isinstance(record, records.VoteRecord) and not record.is_holdout_vote \
                    and f.name in ("holdout_ok", "hidden_loss"):
                continue  # [HOLDOUT-VOTE.1] a plain vote is 5 elements
            if isinstance(record, records.VoteRecord) and f.name == "challenge_loss" \
                    and record.challenge_loss is None:
                continue  # [VOTE-CHALLENGE.1] ... and 6 with a challenge answer
            if isinstance(record, records.VoteRecord) and f.name == "hidden_challenge_loss" \
                    and (not record.is_holdout_vote or (record.hidden_challenge_loss is None
                                                        and record.challenge_loss is None)):
                continue  # [HOLDOUT-CHALLENGE.1] a holdout vote is 7, 8 or 9 elements
            if isinstance(record, predict_records.DeployedModel) and f.name == "unservable_by" \
                    and record.unservable_by is None:
                continue  # [PRED-UNLOADABLE.3] 7 elements while servable, 8 once marked
            if isinstance(record, GovernanceAction) and f.name in (
                    ("plan",) if record.plan is None else ("target", "power")):
                continue  # [UPGRADE-PLAN.1] schedule_upgrade is [kind, plan]; others no plan
            if isinstance(record, jobspec.ResourceLimits) and not record.gpu_count \
                    and f.name in ("gpu_count", "gpu_memory_mb"):
                continue  # [JOB-GPU.1] a job without GPUs keeps the 7-element limits
            expected.append(_wire(value))
        assert record.to_wire() == expected, type(record).__name__
        seen.add(type(record).__name__)
    assert seen == set(CLASSES)


def test_status_and_outcome_strings_are_documented_by_the_code() -> None:
    """[STATE-RECORD.1] status and outcome travel as their string values."""
    assert [str(s) for s in JobStatus] == [s.value for s in JobStatus]
    assert all(isinstance(o.value, str) for o in Outcome)


def test_proposal_id_is_the_proposing_transaction_id() -> None:
    """[GOV-PROPOSAL-ID.1] The record's key and id are the gov_propose transaction's id."""
    chain = Chain(validators=4)
    propose = chain.tx("v0", GovernancePropose(
        GovernanceAction("admit_member", chain.addr("mallory"))))
    chain.block(propose)
    proposal = chain.state.proposal(propose.hash)
    assert proposal is not None and proposal.proposal_id == propose.hash
    chain.block(chain.tx("v1", GovernanceApprove(propose.hash)))
    approved = chain.state.proposal(propose.hash)
    assert approved is not None and approved.approvals == (chain.addr("v0"), chain.addr("v1"))


def test_single_validator_proposal_executes_at_once_and_is_never_stored() -> None:
    """[GOV-PROPOSAL-ID.1] [GOV-THRESHOLD.1] One validator holds all power: no record."""
    chain = Chain(validators=1)
    propose = chain.tx("v0", GovernancePropose(
        GovernanceAction("admit_member", chain.addr("mallory"))))
    chain.block(propose)
    assert chain.state.is_member(chain.addr("mallory"))
    assert chain.state.proposal(propose.hash) is None


def test_key_written_with_its_old_value_is_still_a_change() -> None:
    """[STATE-CHANGES.1] A ban of an empty account writes meta burned unchanged (+0)."""
    from chain.penalties import ban
    from chain.state import Overlay

    chain = Chain(validators=1)
    view = Overlay(chain.state)
    ban(view, PrivateKey.from_seed(b"nobody").address, chain.state.height)
    changed = {(c.table, c.key) for c in view.changes()}
    assert ("meta", b"burned") in changed and chain.state.burned == 0


def test_delete_of_an_absent_key_is_not_a_change() -> None:
    """[STATE-CHANGES.1] Deleting what did not exist before the block writes nothing."""
    from chain.state import Overlay

    chain = Chain()
    view = Overlay(chain.state)
    view.put("active_job", b"\x01" * 32, True)
    view.delete("active_job", b"\x01" * 32)
    view.delete("proposal", b"\x02" * 32)
    assert view.changes() == []


@pytest.fixture
def lonely_job() -> tuple[Chain, bytes]:
    """v0 (the only validator) posts; alice is the only other member: no eligible voter."""
    chain = Chain(validators=1, members=("alice",))
    post = chain.tx("v0", PostJob(job_spec()))
    chain.block(post)
    chain.block(chain.claim("alice", post.hash, 0.2))
    chain.block(at=chain.job(post.hash).spec.expiry_ms)
    chain.block(chain.reveal("alice", post.hash))
    return chain, post.hash


def test_phase_with_no_eligible_voter_waits_for_its_windows(
        lonely_job: tuple[Chain, bytes]) -> None:
    """[JOB-PHASE-ENTRY.1] No eligible voter: VOTE_COMMIT and VOTE_REVEAL each last their
    window; then no quorum and a refund. Nothing ends on entry."""
    chain, job_id = lonely_job
    job = chain.job(job_id)
    assert job.status == JobStatus.VOTE_COMMIT and job.eligible_voters == ()
    chain.block()  # inside the commit window: still waiting
    assert chain.job(job_id).status == JobStatus.VOTE_COMMIT
    chain.block(at=chain.job(job_id).phase_deadline_ms)
    assert chain.job(job_id).status == JobStatus.VOTE_REVEAL  # no commitment: not decided
    chain.block()
    assert chain.job(job_id).status == JobStatus.VOTE_REVEAL
    chain.block(at=chain.job(job_id).phase_deadline_ms)
    job = chain.job(job_id)
    assert job.status == JobStatus.REFUNDED
    assert job.verdicts[-1].outcome == Outcome.NO_QUORUM


def test_late_block_moves_a_job_one_window_and_restarts_the_clock() -> None:
    """[JOB-PHASE-STEP.1] A block far past the expiry starts the reveal window from its time."""
    chain = Chain()
    post = chain.tx("submitter", PostJob(job_spec()))
    chain.block(post)
    chain.block(chain.claim("alice", post.hash, 0.2))
    late = chain.job(post.hash).spec.expiry_ms + 60_000  # far past expiry + every window
    chain.block(at=late)
    job = chain.job(post.hash)
    assert job.status == JobStatus.REVEAL
    assert job.phase_deadline_ms == late + job.spec.voting.reveal_window_ms
