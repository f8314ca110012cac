"""Vectors for [VOTE-AGREE.1] and [VOTE-VERDICT.2]: protocol_spec/vectors/verdicts.json.

Each case is the pure input of a turn's verdict (eligible voters, the job's quorum,
supermajority and tolerance, the claimed loss, the opened votes and the claimer's own
vote) and the outcome with its agreed loss, so a second implementation can check its
arithmetic without building blocks. Regenerate with ``LC_WRITE_VECTORS=1``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from chain.encoding import encode
from chain.records import Claim, Job, JobStatus, Outcome, Verdict, VoteRecord
from chain.train.challenge import ChallengeAnswer, turn_rewards
from chain.train.verdict import agreement, unpaid_ending, verdict_of
from chain.types import Address, Amount, Hash32, Height, TimeMs
from tests.ledger.harness import job_spec
from tests.ledger.vector_files import check_vector_file

CLAIMER = Address(b"\xc0" * 20)
AGREEMENT_CASES: list[tuple[list[float | None], float]] = [
    ([0.5, 0.505, 0.508, 0.9, None], 0.01),
    ([0.5, 0.7, None, None], 0.01),
    ([0.1, 0.5], 0.01),
    ([0.1, None], 0.01),
    ([0.9, 0.91], 0.01),  # 0.91 - 0.9 > 0.01 in IEEE-754 doubles
    ([], 0.01),
]
Vote = tuple[bool, float | None]
VERDICT_CASES: list[tuple[str, int, list[Vote], Vote | None]] = [
    # name, eligible voters, opened voter votes, the claimer's own vote
    ("valid", 4, [(True, 0.2)] * 4, (True, 0.2)),
    ("cheat_claimer_insists", 4, [(False, 5.0)] * 4, (True, 0.2)),
    ("cheat_claimer_silent", 4, [(False, 5.0)] * 4, None),
    ("withdrawn", 4, [(False, 5.0)] * 4, (False, 5.0)),
    ("inconsistent", 4, [(True, 0.2), (False, 5.0), (False, 2.0), (True, 0.1)], (True, 0.2)),
    ("no_quorum", 5, [(True, 0.2)] * 2, (True, 0.2)),
    ("no_eligible_voter", 0, [], (True, 0.2)),
    ("inconclusive", 3, [(True, 0.2005), (False, 0.2012), (True, 0.2005)], (True, 0.2)),
    # [VOTE-FAILED.1] every voter's evaluation failed: the job's fault, even when the claimer
    # insists (it may be honest and the job may tell the voters' machines from its own)
    ("eval_failed_model_unusable", 3, [(False, None)] * 3, None),
    ("eval_failed_claimer_insists", 3, [(False, None)] * 3, (True, 0.2)),
]
CLAIMED, TOLERANCE, QUORUM, SUPERMAJORITY = 0.2, 0.001, 667, 750


def _job(eligible: int, votes: list[Vote], own: Vote | None) -> Job:
    voters = tuple(Address(bytes([i + 1]) * 20) for i in range(eligible))
    records = [VoteRecord(voters[i], Hash32(b"\0" * 32), True, ok, loss)
               for i, (ok, loss) in enumerate(votes)]
    if own is not None:
        records.append(VoteRecord(CLAIMER, Hash32(b"\0" * 32), True, own[0], own[1]))
    spec = job_spec(tolerance=TOLERANCE, quorum=QUORUM, supermajority=SUPERMAJORITY)
    return replace(
        Job(Hash32(b"\1" * 32), Address(b"\5" * 20), spec, Height(1), TimeMs(0),
            JobStatus.VOTE_REVEAL, Amount(0)),
        claims=(Claim(CLAIMER, CLAIMED, Hash32(b"\2" * 32), Height(2), 0),),
        current=CLAIMER, eligible_voters=voters, votes=tuple(records))


Answer = tuple[bool, float | None]
REWARD_CASES: list[tuple[str, list[Answer], int]] = [
    # name, opened voter votes as (agreed with the verdict, challenge loss), pool
    ("all_agree_in_group", [(True, 0.41), (True, 0.412), (True, 0.409)], 33),
    ("lazy_echo_outside", [(True, 0.41), (True, 0.412), (True, 0.409), (True, 0.3)], 33),
    ("disagreeing_voter_not_paid", [(False, 0.41), (True, 0.412), (True, 0.409)], 10),
    ("no_supermajority_group", [(True, 0.1), (True, 0.2), (True, 0.3)], 30),
    ("no_answer_at_all_pays_as_vote_reward_1", [(True, None), (True, None), (False, None)],
     10),
    ("silent_voter_outside", [(True, 0.41), (True, 0.412), (True, 0.409), (True, None)], 9),
    ("median_keeps_every_honest_answer",
     [(True, 0.400 + i * 0.008 / 7) for i in range(8)] + [(True, 0.3975)] * 3, 110),
]
REWARD_TOLERANCE, REWARD_SUPERMAJORITY = 0.01, 667


def _rewards() -> list[dict[str, Any]]:
    """[VOTE-REWARD.2] Each case: the opened votes (voter i is address bytes([i + 1]) * 20)
    and what each voter is paid."""
    out = []
    for name, answers, pool in REWARD_CASES:
        voters = [Address(bytes([i + 1]) * 20) for i in range(len(answers))]
        paid = turn_rewards([ChallengeAnswer(v, agrees, loss)
                             for v, (agrees, loss) in zip(voters, answers, strict=True)],
                            REWARD_TOLERANCE, REWARD_SUPERMAJORITY, pool)
        out.append({"name": name, "pool": pool,
                    "votes": [{"agrees": a, "challenge_loss": loss} for a, loss in answers],
                    "paid": [paid.get(v, 0) for v in voters]})
    return out


Turn = tuple[str, float | None, bool]
ENDING_CASES: list[tuple[str, list[Turn]]] = [
    # name, the job's verdicts in order as (outcome, verified loss, claimer banned since);
    # the last one ends the job (no quorum, inconclusive, or the last turn's outcome when
    # no turn is left) [JOB-TURN.2] [VOTE-FAILED.2]
    ("nothing_to_pay_refunds", [("cheat", 5.0, True), ("no_quorum", None, False)]),
    ("forfeits_only_refund", [("forfeit", None, False), ("forfeit", None, False)]),
    ("eval_failed_then_no_turn_left_burns", [("eval_failed", None, False)]),
    ("eval_failed_then_no_quorum_burns",
     [("eval_failed", None, False), ("no_quorum", None, False)]),
    ("eval_failed_then_inconclusive_burns",
     [("eval_failed", None, False), ("inconclusive", 0.3, False)]),
    ("withdrawn_then_no_quorum_pays_withdrawn",
     [("withdrawn", 5.0, False), ("no_quorum", None, False)]),
    ("best_withdrawn_paid_before_eval_failed_burn",
     [("withdrawn", 0.9, False), ("eval_failed", None, False), ("withdrawn", 0.5, False),
      ("no_quorum", None, False)]),
    ("withdrawn_tie_pays_the_earlier",
     [("withdrawn", 0.5, False), ("withdrawn", 0.5, False), ("forfeit", None, False)]),
    ("banned_withdrawn_skipped_next_paid",
     [("withdrawn", 0.4, True), ("withdrawn", 0.6, False), ("no_quorum", None, False)]),
    ("every_withdrawn_banned_then_eval_failed_burns",
     [("withdrawn", 0.4, True), ("eval_failed", None, False), ("no_quorum", None, False)]),
]


def _endings() -> list[dict[str, Any]]:
    """[JOB-TURN.2] [VOTE-FAILED.2] Each case: a job's verdicts (claimer i is bytes([0x40 + i])
    * 20) and how the job ends: status, and the index of the verdict whose claimer is paid."""
    out = []
    for name, turns in ENDING_CASES:
        verdicts = [Verdict(Address(bytes([0x40 + i]) * 20), Outcome(outcome), 0, 0, 0,
                            TimeMs(0), None, loss)
                    for i, (outcome, loss, _) in enumerate(turns)]
        banned = frozenset(v.claimer for v, t in zip(verdicts, turns, strict=True) if t[2])
        ending = unpaid_ending(verdicts, banned)
        out.append({"name": name,
                    "verdicts": [{"outcome": o, "verified_loss": loss, "claimer_banned": b}
                                 for o, loss, b in turns],
                    "status": str(ending.status),
                    "paid_verdict": None if ending.paid is None
                    else verdicts.index(ending.paid)})
    return out


def _vote(v: Vote | None) -> Any:
    return None if v is None else {"valid": v[0], "measured_loss": v[1]}


# -- what a turn records and pays, through the ledger's own decide [VOTE-RECORD.1] ---------------

MODEL = Hash32(b"\x3d" * 32)
DECIDED_AT = TimeMs(1_700_000_050_000)
AnsweredVote = tuple[bool, float | None, float | None]
"""(valid, measured_loss, challenge_loss) of an opened voter vote."""
RECORD_CASES: list[tuple[str, int, list[Vote], int, Vote | None, str]] = [
    # name, eligible voters, opened voter votes, committed votes never opened, the claimer's
    # own vote, how the turn ends: "judged" (step 8), "forfeit_reveal" (no reveal by the
    # deadline [JOB-FORFEIT.1] (a)), "forfeit_banned" (claimer banned before the judgement (c))
    ("eval_failed_all_failed", 3, [(False, None)] * 3, 0, None, "judged"),
    ("eval_failed_one_measured_invalid", 4, [(False, None)] * 3 + [(False, 5.0)], 0,
     (True, 0.2), "judged"),
    ("eval_failed_one_valid", 4, [(False, None)] * 3 + [(True, 0.2)], 0, None, "judged"),
    ("cheat_one_failed", 4, [(False, 5.0)] * 3 + [(False, None)], 0, (True, 0.2), "judged"),
    ("valid_one_failed", 4, [(True, 0.2)] * 3 + [(False, None)], 0, (True, 0.2), "judged"),
    ("inconsistent_two_failed", 4, [(False, 5.0)] * 2 + [(False, None)] * 2, 0, None,
     "judged"),
    ("no_quorum_one_failed_one_unopened", 5, [(False, None)], 1, None, "judged"),
    ("claimer_failed_vote_not_counted", 4, [(True, 0.2)] * 4, 0, (False, None), "judged"),
    ("forfeit_missed_reveal", 0, [], 0, None, "forfeit_reveal"),
    ("forfeit_claimer_banned_before_judgement", 4, [(True, 0.2)] * 2 + [(False, None)], 1,
     None, "forfeit_banned"),
]
FAILED_REWARD_CASES: list[tuple[str, list[AnsweredVote], Vote | None]] = [
    # name, the opened votes of E = len(votes) eligible voters, the claimer's own vote;
    # the pool is REWARD_POOL [VOTE-FAILED.5]
    ("cheat_failed_vote_agrees_paid_without_answers",
     [(False, 5.0, None)] * 3 + [(False, None, None)], (True, 0.2)),
    ("cheat_failed_vote_unpaid_without_its_answer",
     [(False, 5.0, 4.0)] * 3 + [(False, None, None)], (True, 0.2)),
    ("cheat_failed_vote_with_an_answer_in_the_group_paid",
     [(False, 5.0, 4.0)] * 3 + [(False, None, 4.0)], (True, 0.2)),
    ("withdrawn_failed_vote_agrees_paid",
     [(False, 5.0, None)] * 3 + [(False, None, None)], (False, 5.0)),
    ("valid_failed_vote_disagrees_unpaid",
     [(True, 0.2, None)] * 3 + [(False, None, None)], (True, 0.2)),
    ("inconsistent_failed_votes_paid",
     [(False, 5.0, None)] * 2 + [(False, None, None)] * 2, None),
    ("eval_failed_pays_nobody", [(False, None, None)] * 3 + [(True, 0.2, None)], (True, 0.2)),
]
REWARD_POOL, BOUNTY_FOR_RECORDS = 12, 100


def _ledger_job(eligible: int, votes: list[AnsweredVote], unopened: int,
                own: Vote | None) -> Job:
    """A train/v1 job in VOTE_REVEAL on CLAIMER's revealed MODEL, with the escrow of
    ``job_spec`` (voter_reward REWARD_POOL, three turns)."""
    voters = tuple(Address(bytes([i + 1]) * 20) for i in range(eligible))
    records = [VoteRecord(voters[i], Hash32(b"\0" * 32), True, ok, loss, challenge_loss=c)
               for i, (ok, loss, c) in enumerate(votes)]
    records += [VoteRecord(voters[len(votes) + i], Hash32(b"\0" * 32))
                for i in range(unopened)]
    if own is not None:
        records.append(VoteRecord(CLAIMER, Hash32(b"\0" * 32), True, own[0], own[1]))
    spec = job_spec(BOUNTY_FOR_RECORDS, tolerance=TOLERANCE, quorum=QUORUM,
                    supermajority=SUPERMAJORITY, voter_reward=REWARD_POOL)
    return replace(
        Job(Hash32(b"\1" * 32), Address(b"\5" * 20), spec, Height(1), TimeMs(0),
            JobStatus.VOTE_REVEAL, spec.escrow),
        claims=(Claim(CLAIMER, CLAIMED, Hash32(b"\2" * 32), Height(2), 0),),
        current=CLAIMER, model_hash=MODEL, eligible_voters=voters, votes=tuple(records),
        phase_deadline_ms=DECIDED_AT)


def _end_in_ledger(job: Job, ending: str) -> tuple[Job, dict[Address, int]]:
    """Runs the ledger's own step on ``job`` at DECIDED_AT: ``decide`` [VOTE-VERDICT.2], or
    the tick of a REVEAL whose deadline passed [JOB-FORFEIT.1]; returns the job after it and
    what each voter's balance gained."""
    from chain.genesis import genesis_state
    from chain.state import Overlay
    from chain.train.rules import decide, tick_job
    from tests.ledger.harness import make_genesis

    state = genesis_state(make_genesis()[0])
    view = Overlay(state)
    if ending == "forfeit_banned":
        view.put_account(CLAIMER, replace(view.account(CLAIMER), banned=True))
    if ending == "forfeit_reveal":
        job = replace(job, status=JobStatus.REVEAL, model_hash=None, votes=(),
                      eligible_voters=())
        after = tick_job(view, job, DECIDED_AT, Height(9))
    else:
        after = decide(view, job, DECIDED_AT, Height(9))
    voters = [v.voter for v in job.votes if v.voter != CLAIMER]
    return after, {v: view.account(v).balance for v in voters}


def _records() -> list[dict[str, Any]]:
    """[VOTE-RECORD.1] [JOB-FORFEIT.1] Each case: a turn's votes and the Verdict it appends."""
    out = []
    for name, eligible, votes, unopened, own, ending in RECORD_CASES:
        job = _ledger_job(eligible, [(ok, loss, None) for ok, loss in votes], unopened, own)
        verdict = _end_in_ledger(job, ending)[0].verdicts[-1]
        out.append({"name": name, "eligible_voters": eligible,
                    "opened_votes": [_vote(v) for v in votes], "unopened_votes": unopened,
                    "claimer_vote": _vote(own), "ending": ending,
                    "record": {"claimer": verdict.claimer.hex(), "outcome": str(verdict.outcome),
                               "valid_votes": verdict.valid_votes,
                               "invalid_votes": verdict.invalid_votes,
                               "eligible": verdict.eligible, "time_ms": verdict.time_ms,
                               "model_hash": None if verdict.model_hash is None
                               else verdict.model_hash.hex(),
                               "verified_loss": verdict.verified_loss},
                    "record_wire": encode(verdict.to_wire()).hex()})
    return out


def _failed_vote_rewards() -> list[dict[str, Any]]:
    """[VOTE-FAILED.5] Each case: a turn with failed votes, its outcome and what each opened
    voter vote is paid (the ledger's decide on a one-validator genesis state)."""
    out = []
    for name, votes, own in FAILED_REWARD_CASES:
        job = _ledger_job(len(votes), votes, 0, own)
        after, balances = _end_in_ledger(job, "judged")
        out.append({"name": name, "pool": REWARD_POOL,
                    "opened_votes": [{"valid": ok, "measured_loss": loss, "challenge_loss": c}
                                     for ok, loss, c in votes],
                    "claimer_vote": _vote(own), "outcome": str(after.verdicts[-1].outcome),
                    "paid": [balances[r.voter] for r in job.votes if r.voter != CLAIMER]})
    return out


def build_vectors() -> dict[str, Any]:
    agreements = []
    for losses, tolerance in AGREEMENT_CASES:
        group = agreement([VoteRecord(CLAIMER, Hash32(b"\0" * 32), True, False, x)
                           for x in losses], tolerance)
        agreements.append({"measured_losses": losses, "tolerance": tolerance,
                           "size": group.size, "verified_loss": group.verified_loss})
    verdicts = []
    for name, eligible, votes, own in VERDICT_CASES:
        outcome, verified = verdict_of(_job(eligible, votes, own))
        verdicts.append({"name": name, "eligible_voters": eligible,
                         "opened_votes": [_vote(v) for v in votes], "claimer_vote": _vote(own),
                         "outcome": str(outcome), "verified_loss": verified})
    return {"agreement": agreements,
            "verdict_params": {"claimed_loss": CLAIMED, "loss_tolerance": TOLERANCE,
                               "quorum_permille": QUORUM,
                               "supermajority_permille": SUPERMAJORITY},
            "verdicts": verdicts,
            "reward_params": {"loss_tolerance": REWARD_TOLERANCE,
                              "supermajority_permille": REWARD_SUPERMAJORITY},
            "rewards": _rewards(),
            "unpaid_endings": _endings(),
            "verdict_records": _records(),
            "failed_vote_rewards": _failed_vote_rewards()}


def test_vote_agree_1_and_vote_verdict_2_vectors_match_the_committed_file() -> None:
    """[VOTE-AGREE.1] [VOTE-VERDICT.2] [VOTE-SELF.1] [VOTE-FAILED.1] every outcome of a turn,
    as vectors."""
    vectors = build_vectors()
    assert {v["outcome"] for v in vectors["verdicts"]} == {
        "valid", "cheat", "withdrawn", "inconsistent", "no_quorum", "inconclusive",
        "eval_failed"}
    check_vector_file("verdicts.json", vectors)


def test_vote_reward_2_vectors_pay_what_the_rule_says() -> None:
    """[VOTE-REWARD.2] [VOTE-REWARD.1] The reward cases of verdicts.json: the echo outside
    the group and the silent voter are paid nothing, a turn without any answer pays every
    agreeing voter, a scattered turn pays nobody, every honest answer near the median is
    paid."""
    cases = {c["name"]: c["paid"] for c in build_vectors()["rewards"]}
    assert cases["all_agree_in_group"] == [11, 11, 11]
    assert cases["lazy_echo_outside"] == [11, 11, 11, 0]
    assert cases["disagreeing_voter_not_paid"] == [0, 5, 5]
    assert cases["no_supermajority_group"] == [0, 0, 0]
    assert cases["no_answer_at_all_pays_as_vote_reward_1"] == [5, 5, 0]
    assert cases["silent_voter_outside"] == [3, 3, 3, 0]
    assert all(cases["median_keeps_every_honest_answer"][:8])


def test_job_turn_2_and_vote_failed_2_unpaid_endings_follow_one_order() -> None:
    """[JOB-TURN.2] [VOTE-FAILED.2] The endings of verdicts.json: a no-quorum or inconclusive
    turn after a failed evaluation burns (the chain refunded it before), after a withdrawal
    pays the withdrawn claim; the best withdrawn claim by an unbanned claimer comes first."""
    cases = {c["name"]: (c["status"], c["paid_verdict"]) for c in build_vectors()["unpaid_endings"]}
    assert cases == {
        "nothing_to_pay_refunds": ("refunded", None),
        "forfeits_only_refund": ("refunded", None),
        "eval_failed_then_no_turn_left_burns": ("broken", None),
        "eval_failed_then_no_quorum_burns": ("broken", None),
        "eval_failed_then_inconclusive_burns": ("broken", None),
        "withdrawn_then_no_quorum_pays_withdrawn": ("paid", 0),
        "best_withdrawn_paid_before_eval_failed_burn": ("paid", 2),
        "withdrawn_tie_pays_the_earlier": ("paid", 0),
        "banned_withdrawn_skipped_next_paid": ("paid", 1),
        "every_withdrawn_banned_then_eval_failed_burns": ("broken", None),
    }
