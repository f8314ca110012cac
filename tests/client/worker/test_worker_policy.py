"""Which jobs a worker takes, when it claims, how it votes: pure functions, no Docker."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chain.crypto import address_to_text
from chain.jobspec import ParamSpec, ResourceLimits
from chain.records import Account, Claim, Job, JobStatus, VoteRecord
from chain.types import Address, Amount, Hash32, Height, TimeMs
from client.node.config import WorkerPolicy
from client.worker.policy import (
    Identity,
    another_attempt,
    claim_rank,
    claimed_loss,
    image_id_text,
    image_too_large,
    job_score,
    max_runs,
    pick_job,
    runs_exhausted,
    sample_params,
    sandbox_limits,
    seed_for,
    self_vote,
    should_self_vote,
    should_vote,
    skip_reason,
    skips_to_forget,
    vote_valid,
    worth_claiming,
)
from client.worker.selfcheck import CheckOutcome, judge
from sandbox.results import EvalResult, FailureReason
from tests.ledger.harness import job_spec

NOW = 1_700_000_000_000
ME = Address(b"\x01" * 20)
SUBMITTER = Address(b"\x02" * 20)
OTHER = Address(b"\x03" * 20)
POLICY = WorkerPolicy(min_bounty=10, min_time_left_s=20, max_memory_mb=1024,
                      max_cpu_millis=2000, max_time_s=600, max_disk_mb=256, max_attempts=3)


def member(address: Address = ME, banned: bool = False) -> Identity:
    return Identity(address, True, Account(Amount(1_000), 0, banned))


def open_job(job_id: bytes = b"\x0a" * 32, bounty: int = 100, expiry_in_ms: int = 60_000,
             **spec_changes: object) -> Job:
    spec = replace(job_spec(bounty=bounty, expiry_ms=NOW + expiry_in_ms), **spec_changes)
    return Job(Hash32(job_id), SUBMITTER, spec, Height(1), TimeMs(NOW - 1_000), JobStatus.OPEN,
               spec.escrow)


def claim(claimer: Address, loss: float, height: int = 5) -> Claim:
    return Claim(claimer, loss, Hash32(b"\x00" * 32), Height(height), 0)


# -- selection --------------------------------------------------------------------------

def test_an_acceptable_open_job_has_no_skip_reason() -> None:
    assert skip_reason(open_job(), member(), POLICY, NOW) is None


@pytest.mark.parametrize(("change", "expected"), [
    ({"bounty": Amount(9)}, "bounty 9 < min_bounty 10"),
    ({"limits": ResourceLimits(2048, 1000, 60, 64)}, "memory_mb 2048 > policy max 1024"),
    ({"limits": ResourceLimits(512, 4000, 60, 64)}, "cpu_millis 4000 > policy max 2000"),
    ({"limits": ResourceLimits(512, 1000, 601, 64)}, "time_s 601 > policy max 600"),
    ({"limits": ResourceLimits(512, 1000, 60, 257)}, "disk_mb 257 > policy max 256"),
    ({"expiry_ms": TimeMs(NOW + 20_000)}, "claim window closes in 20.0 s"),
])
def test_a_job_beyond_the_policy_is_skipped_with_the_reason(change: dict[str, object],
                                                            expected: str) -> None:
    job = open_job(**change)
    reason = skip_reason(job, member(), POLICY, NOW)
    assert reason is not None and str(reason).startswith(expected)


def test_own_job_non_member_banned_and_closed_jobs_are_skipped() -> None:
    job = open_job()
    assert str(skip_reason(replace(job, submitter=ME), member(), POLICY, NOW)) == "our own job"
    outsider = Identity(ME, False, Account())
    assert "not an admitted member" in str(skip_reason(job, outsider, POLICY, NOW))
    assert str(skip_reason(job, member(banned=True), POLICY, NOW)) == "this key is banned"
    assert str(skip_reason(replace(job, status=JobStatus.REVEAL), member(), POLICY,
                           NOW)) == "not open (reveal)"


def test_a_skip_reason_keeps_its_code_while_its_numbers_change() -> None:
    """The worker logs a skipped job again only when the kind of reason changes."""
    first = skip_reason(open_job(expiry_in_ms=15_000), member(), POLICY, NOW)
    later = skip_reason(open_job(expiry_in_ms=15_000), member(), POLICY, NOW + 500)
    assert first is not None and later is not None
    assert first.code == later.code == "time_left" and first.text != later.text


def test_skip_reasons_outlive_the_job_but_stay_bounded() -> None:
    """A refunded job's skip reason stays on the dashboard (the flake: the worker's periodic
    prune dropped it between the refund and the capture); only the newest 2 settled here."""
    a, b, c, d = (bytes([i]) * 32 for i in range(4))
    assert skips_to_forget([a, b, c, d], live={d}, kept=2) == [a]
    assert skips_to_forget([a, b], live=set(), kept=2) == []
    assert skips_to_forget([a, b, c], live={a, b, c}, kept=0) == []
    assert skips_to_forget([a, b, c], live=set(), kept=0) == [a, b, c]


def test_accept_lists_filter_submitters_and_images() -> None:
    job = open_job()
    only_other = replace(POLICY, accept_submitters=(address_to_text(OTHER),))
    assert str(skip_reason(job, member(), only_other, NOW)) == \
        "submitter not in accept_submitters"
    only_this = replace(POLICY, accept_submitters=(address_to_text(SUBMITTER),))
    assert skip_reason(job, member(), only_this, NOW) is None
    images = replace(POLICY, accept_images=("sha256:" + "ab" * 32,))
    assert "not in accept_images" in str(skip_reason(job, member(), images, NOW))

    images = replace(POLICY, accept_images=(image_id_text(job.spec),))
    assert skip_reason(job, member(), images, NOW) is None


def test_pick_prefers_bounty_per_core_second_then_earlier_expiry() -> None:
    cheap = open_job(b"\x01" * 32, bounty=100)  # 60 s x 1 core
    rich = open_job(b"\x02" * 32, bounty=150)
    heavy = open_job(b"\x03" * 32, bounty=150, limits=ResourceLimits(512, 2000, 60, 64))
    assert job_score(rich.spec) > job_score(cheap.spec) > job_score(heavy.spec)
    assert pick_job([cheap, heavy, rich]) is rich
    soon = open_job(b"\x04" * 32, bounty=150, expiry_in_ms=30_000)
    assert pick_job([rich, soon]) is soon
    assert pick_job([]) is None


# -- claims ------------------------------------------------------------------------------

def test_claim_must_beat_our_own_and_rank_within_the_turns() -> None:
    job = open_job()  # max_turns 3
    assert worth_claiming(job, ME, 0.5, NOW) is None
    ours = replace(job, claims=(claim(ME, 0.4),))
    assert "does not beat our own claim 0.4" in str(worth_claiming(ours, ME, 0.4, NOW))
    assert worth_claiming(ours, ME, 0.39, NOW) is None
    assert "does not beat our own claim 0.3" in str(
        worth_claiming(job, ME, 0.35, NOW, pending_loss=0.3))
    crowded = replace(job, claims=tuple(claim(Address(bytes([9, i]) * 10), loss)
                                        for i, loss in enumerate((0.1, 0.2, 0.3))))
    assert claim_rank(crowded, ME, 0.25) == 2
    assert worth_claiming(crowded, ME, 0.25, NOW) is None  # third: still gets a turn
    assert claim_rank(crowded, ME, 0.3) == 3  # ties rank after the earlier claim
    assert "3 better claims already" in str(worth_claiming(crowded, ME, 0.3, NOW))


def test_no_claim_after_the_expiry() -> None:
    job = open_job(expiry_in_ms=1_000)
    assert worth_claiming(job, ME, 0.1, NOW + 1_000) == "the claim window has closed"
    assert worth_claiming(replace(job, status=JobStatus.REVEAL), ME, 0.1,
                          NOW) == "the claim window has closed"


def test_another_attempt_needs_budget_time_and_room_to_improve() -> None:
    job = open_job(expiry_in_ms=60_000)
    assert another_attempt(job, 0, POLICY, NOW, None, None) is None
    assert another_attempt(job, 3, POLICY, NOW, None, 0.2) == "all 3 attempts used"
    assert "loss 0 reached" in str(another_attempt(job, 1, POLICY, NOW, 5_000, 0.0))
    assert another_attempt(job, 1, POLICY, NOW, 30_000, 0.2) is None  # 45 s + 2 s < 60 s
    assert "s left before the expiry" in str(another_attempt(job, 1, POLICY, NOW, 40_000, 0.2))
    closed = replace(job, status=JobStatus.REVEAL)
    assert another_attempt(closed, 0, POLICY, NOW, None, None) == "job is reveal"


def test_cheat_factor_scales_the_claimed_loss_only_when_set() -> None:
    assert claimed_loss(0.4, 0.0) == 0.4
    assert claimed_loss(0.4, 0.5) == 0.2


# -- attempts ----------------------------------------------------------------------------

def test_seeds_are_fixed_per_job_claimer_and_attempt() -> None:
    job_id = b"\x07" * 32
    seeds = {seed_for(job_id, ME, n) for n in range(1, 50)}
    assert len(seeds) == 49 and all(0 <= s < 2**63 for s in seeds)
    assert seed_for(job_id, ME, 1) == seed_for(job_id, ME, 1)
    assert seed_for(job_id, ME, 1) != seed_for(job_id, OTHER, 1)


def test_sampled_params_stay_in_the_search_space_and_repeat_per_seed() -> None:
    spec = replace(job_spec(), search_space=(
        ParamSpec("lr", "log_uniform", (1e-4, 1e-1)), ParamSpec("hidden", "choice", (16, 32)),
        ParamSpec("epochs", "int", (3, 6)), ParamSpec("dropout", "uniform", (0.0, 0.5))))
    for seed in range(200):
        params = sample_params(spec, seed)
        hp = params.hyperparameters
        assert params.seed == seed
        assert 1e-4 <= float(hp["lr"]) <= 1e-1 and hp["hidden"] in (16, 32)
        assert isinstance(hp["epochs"], int) and 3 <= hp["epochs"] <= 6
        assert 0.0 <= float(hp["dropout"]) <= 0.5
    assert sample_params(spec, 5) == sample_params(spec, 5)
    assert sample_params(spec, 5) != sample_params(spec, 6)


def test_sandbox_limits_follow_the_spec() -> None:
    spec = replace(job_spec(), limits=ResourceLimits(512, 1500, 90, 64))
    limits = sandbox_limits(spec)
    assert limits.memory_bytes == 512 * 1024 * 1024
    assert limits.nano_cpus == 1_500_000_000 and limits.wall_time_s == 90
    assert limits.tmp_bytes + limits.output_bytes == 64 * 1024 * 1024


# -- votes -------------------------------------------------------------------------------

def test_vote_is_valid_exactly_within_the_tolerance() -> None:
    """[JOB-DET.2] A measured loss up to the claim plus ``loss_tolerance`` confirms it."""
    assert vote_valid(0.30, 0.30, 0.01)
    assert vote_valid(0.30, 0.305, 0.01)
    assert not vote_valid(0.30, 0.3101, 0.01)
    assert not vote_valid(0.30, None, 0.01)


def test_should_vote_only_when_eligible_and_not_voted() -> None:
    job = replace(open_job(), status=JobStatus.VOTE_COMMIT, current=OTHER,
                  eligible_voters=(ME,))
    assert should_vote(job, ME)
    assert not should_vote(replace(job, eligible_voters=()), ME)
    assert not should_vote(replace(job, votes=(VoteRecord(ME, Hash32(b"\x00" * 32)),)), ME)
    assert not should_vote(replace(job, status=JobStatus.VOTE_REVEAL), ME)
    assert not should_vote(replace(job, current=ME), ME)


# -- issue 13: self-check, own vote, bounded runs, sizes -------------------------------------

def _ok(loss: float) -> EvalResult:
    return EvalResult(True, None, loss)


def _failed(reason: FailureReason) -> EvalResult:
    return EvalResult(False, reason, None, detail="why")


def test_work_selfcheck_1_agreeing_runs_claim_the_worse_loss() -> None:
    check = judge((_ok(0.30), _ok(0.3005)), 1e-3)
    assert check.outcome == CheckOutcome.AGREE and check.loss == 0.3005 and check.claimable


def test_work_selfcheck_1_disagreeing_runs_are_inconsistent_and_say_why() -> None:
    check = judge((_ok(0.5), _ok(5.0)), 1e-3)
    assert check.outcome == CheckOutcome.INCONSISTENT and check.loss is None
    assert "does not reproduce" in check.why and "0.5" in check.why and "5.0" in check.why
    assert judge((_ok(0.5), _ok(float("nan"))), 1.0).outcome == CheckOutcome.INCONSISTENT


@pytest.mark.parametrize("reason", sorted(set(FailureReason) - {
    FailureReason.ENGINE_ERROR, FailureReason.IMAGE_MISSING, FailureReason.HOST_ERROR}))
def test_work_selfcheck_1_a_jobs_failure_is_inconsistent(reason: FailureReason) -> None:
    assert judge((_failed(reason),), 1e-3).outcome == CheckOutcome.INCONSISTENT
    assert judge((_ok(0.2), _failed(reason)), 1e-3).outcome == CheckOutcome.INCONSISTENT


@pytest.mark.parametrize("reason", [FailureReason.ENGINE_ERROR, FailureReason.IMAGE_MISSING,
                                    FailureReason.HOST_ERROR])
def test_work_selfcheck_1_our_own_failure_is_a_worker_fault(reason: FailureReason) -> None:
    assert judge((_ok(0.2), _failed(reason)), 1e-3).outcome == CheckOutcome.WORKER_FAULT


def test_vote_self_1_honest_claimer_votes_what_it_measures_cheat_insists() -> None:
    assert self_vote(0.5, 0.5, 1e-3, 0.0) == (True, 0.5)
    assert self_vote(0.5, 5.0, 1e-3, 0.0) == (False, 5.0)  # the time bomb: withdrawn
    assert self_vote(0.5, None, 1e-3, 0.0) == (False, None)  # cannot evaluate: invalid
    assert self_vote(0.25, 5.0, 1e-3, 0.5) == (True, 0.25)  # the demo liar insists


def test_vote_self_1_only_on_our_own_turn_in_vote_commit() -> None:
    job = replace(open_job(), status=JobStatus.VOTE_COMMIT, current=ME,
                  model_hash=Hash32(b"\x05" * 32), eligible_voters=(OTHER,))
    assert should_self_vote(job, ME) and not should_vote(job, ME)
    assert not should_self_vote(replace(job, current=OTHER), ME)
    assert not should_self_vote(replace(job, status=JobStatus.VOTE_REVEAL), ME)
    assert not should_self_vote(replace(job, votes=(VoteRecord(ME, Hash32(b"\x00" * 32)),)), ME)


def test_work_attempts_1_absolute_bound_whatever_the_cause() -> None:
    policy = replace(POLICY, max_attempts=3, max_given_back=2)
    assert max_runs(policy) == 5
    assert runs_exhausted(2, 4, policy) is None
    assert runs_exhausted(3, 3, policy) == "all 3 attempts used"
    assert "5 runs started" in str(runs_exhausted(0, 5, policy))  # all given back
    job = open_job()
    assert "bound" in str(another_attempt(job, 1, policy, NOW, None, None, runs=5))


def test_work_image_1_declared_image_sizes_bounded_by_the_policy() -> None:
    policy = replace(POLICY, max_image_mb=100, max_image_unpacked_mb=300)
    fits = ResourceLimits(512, 1000, 60, 64, image_mb=100, image_unpacked_mb=300)
    assert image_too_large(replace(job_spec(), limits=fits), policy) is None
    big = replace(job_spec(), limits=replace(fits, image_mb=101))
    assert image_too_large(big, policy) == "declared image_mb 101 > policy max_image_mb 100"
    bomb = replace(job_spec(), limits=replace(fits, image_unpacked_mb=2048))
    assert "image_unpacked_mb 2048" in str(image_too_large(bomb, policy))
    skip = skip_reason(open_job(limits=bomb.limits), member(), policy, NOW)
    assert skip is not None and skip.code == "image_size"


def test_job_limits_1_model_bound_is_the_declared_model_mb_not_the_disk() -> None:
    """Issue 13 §5: a 40 MiB model passed a 4 MiB declaration (bounded by disk_mb)."""
    spec = replace(job_spec(), limits=ResourceLimits(512, 1000, 60, 64, model_mb=4))
    assert sandbox_limits(spec).model_bytes == 4 * 1024 * 1024
    assert sandbox_limits(spec).model_bytes < 40 * 1024 * 1024


def test_work_vote_1_voters_abstain_only_on_worker_faults() -> None:
    """[WORK-VOTE.1] [JOB-EXIT.5] Any failure of the model or the job is an invalid vote
    (measured nil); only this node's engine/host failures make a voter abstain."""
    from client.worker.votes import OUR_SIDE
    from sandbox.results import JOB_FAULTS, WORKER_FAULTS

    assert OUR_SIDE == WORKER_FAULTS
    assert FailureReason.BAD_METRICS in JOB_FAULTS and FailureReason.TIMEOUT in JOB_FAULTS
    assert FailureReason.CONTAINER_FAILED not in OUR_SIDE


def test_work_data_1_data_sizes_and_kinds_are_checked_before_fetching() -> None:
    """[WORK-DATA.1] [JOB-KIND.1] A train/v2 job whose declared data fit is taken; a data
    blob larger than max_image_mb, or data whose blob plus unpacked copy exceed the disk
    budget, is skipped (``data_size``) before anything is fetched; an unknown kind is
    skipped (``kind``)."""
    from chain.jobspec import TRAIN_V2, DataRef
    from client.worker.policy import MIB, data_too_large

    def data(train: int, valid: int = 1) -> dict[str, object]:
        return {"kind": TRAIN_V2, "data": (("train", DataRef(Hash32(b"\x31" * 32), train)),
                                           ("valid", DataRef(Hash32(b"\x32" * 32), valid))),
                "limits": ResourceLimits(512, 1000, 60, 64, image_mb=10, image_unpacked_mb=10)}

    policy = replace(POLICY, max_image_mb=100, disk_budget_mb=150)
    assert skip_reason(open_job(**data(60 * MIB)), member(), policy, NOW) is None
    assert data_too_large(open_job(**data(100 * MIB)).spec,
                          replace(policy, disk_budget_mb=201)) is None
    big = skip_reason(open_job(**data(100 * MIB + 1)), member(), policy, NOW)
    assert big is not None and big.code == "data_size" and "max_image_mb 100" in big.text
    budget = skip_reason(open_job(**data(50 * MIB, 26 * MIB)), member(), policy, NOW)
    assert budget is not None and budget.code == "data_size" and "disk_budget_mb 150" in \
        budget.text
    unknown = open_job()
    object.__setattr__(unknown.spec, "kind", "predict/v1")  # a kind this worker cannot know
    skip = skip_reason(unknown, member(), policy, NOW)
    assert skip is not None and skip.code == "kind"
