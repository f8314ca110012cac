"""Random federated jobs through real blocks: whatever participants, aggregators, voters and
the owner do (or fail to do), credits are conserved at every block and the job ends with
its escrow emptied and the bounty exactly split. (Hypothesis draws the behaviour.)
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain.federated.blobs import ModelBlob
from chain.federated.open.reads import fed_rounds, part_body
from chain.federated.open.records import FedPhase
from chain.records import JobStatus
from tests.federated.fed_ledger_story import (
    BOUNTY,
    PARTICIPANTS,
    SCALE,
    FedStory,
    conserved,
    fed_job_spec,
)

BEHAVIOUR = st.fixed_dictionaries({
    "publish": st.booleans(),
    "rounds": st.lists(st.fixed_dictionaries({
        "committers": st.lists(st.sampled_from(PARTICIPANTS), unique=True),
        "revealers": st.sets(st.sampled_from(PARTICIPANTS)),
        "aggregators": st.lists(st.sampled_from(("silent", "honest", "wrong")), min_size=3,
                                max_size=3),
        "votes": st.lists(st.sampled_from(("valid", "invalid", "absent")), min_size=7,
                          max_size=7),
    }), min_size=2, max_size=2),
    "hidden": st.booleans(),
    "end_votes": st.lists(st.sampled_from(("valid", "invalid", "absent", "liar")), min_size=7,
                          max_size=7),
})


def _vote(s: FedStory, plan: list[str], honest: bool, end: bool) -> None:
    ballots = {}
    for voter, what in zip(s.voters(), plan, strict=False):
        if what == "absent":
            continue
        ok = (what == "valid") == honest if not end else what in ("valid", "liar")
        losses = None
        if end and ok:
            base = [100] + [150 + 10 * i for i in range(len(s.fed.loo_participants))]
            losses = [v * 1000 if what == "liar" else v for v in base]
        ballots[voter] = (ok, 650_000 if ok and not end else None, losses)
    if ballots:
        s.vote(ballots)
    else:
        s.until_deadline()
        s.until_deadline()


def _run(b: dict) -> FedStory:  # type: ignore[type-arg]
    s = FedStory()
    s.post(fed_job_spec(max_turns=3))
    if b["publish"]:
        s.publish()
    for plan in b["rounds"]:
        if s.fed.phase != FedPhase.COMMIT:
            break
        committers = tuple(n for n in plan["committers"]
                           if not s.chain.state.account(s.chain.addr(n)).banned)
        r = s.fed.round
        if committers:
            s.chain.block(*(s.chain.tx(n, s.bodies(n, r).commit) for n in committers))
        s.until_deadline()
        if s.fed.phase != FedPhase.REVEAL:
            break
        revealers = tuple(n for n in committers if n in plan["revealers"]
                          and not s.chain.state.account(s.chain.addr(n)).banned)
        if revealers:
            s.chain.block(*(s.chain.tx(n, s.bodies(n, r).reveal) for n in revealers))
        s.until_deadline()
        for behaviour in plan["aggregators"]:
            if s.fed.phase != FedPhase.AGGREGATE:
                break
            if behaviour == "silent":
                s.until_deadline()
                continue
            blob, weights = s.honest(revealers)
            if behaviour == "wrong":
                blob = ModelBlob(SCALE, (7, 7, 7, 7)).to_bytes()
            s.post_aggregate(blob, weights)
            _vote(s, plan["votes"], behaviour == "honest", end=False)
            if behaviour == "honest" and s.fed.round != r:
                s.model = ModelBlob.from_bytes(blob).values
        while s.fed.phase == FedPhase.AGGREGATE:
            s.until_deadline()
    if s.fed.phase == FedPhase.HIDDEN:
        if b["hidden"]:
            s.chain.block(s.chain.tx("submitter", part_body(s.job_id, "hidden", b"\x32" * 32,
                                                            9)))
            _vote(s, b["end_votes"], True, end=True)
        else:
            s.until_deadline()
    return s


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(BEHAVIOUR)
def test_any_behaviour_conserves_credits_and_splits_the_bounty(b: dict) -> None:  # type: ignore[type-arg]
    """[BANK.1] [FED-END.4] [FED-ROUND.5] [FED-ROUND.6] [FED-VOTE.3] Credits are conserved
    after every block; the job settles with escrow 0 and pays at most the bounty, exactly
    the bounty when anyone has a positive weight in an accepted round; every slashed
    aggregator is banned."""
    s = _run(b)
    conserved(s.chain)
    while s.fed.phase != FedPhase.DONE:  # whatever is left runs out its windows
        s.until_deadline()
        conserved(s.chain)
    job = s.chain.job(s.job_id)
    assert job.escrow == 0 and job.status in (JobStatus.PAID, JobStatus.REFUNDED)
    rounds = fed_rounds(s.chain.state, s.job_id)
    scored = any(r.outcome == "accepted" and any(w for _, w in r.weights) for r in rounds)
    paid = sum(v for _, v in s.fed.paid)
    assert paid + s.fed.refund == BOUNTY
    assert (paid == BOUNTY) == scored
    for r in rounds:
        for cheat in r.slashed:
            assert s.chain.state.account(cheat).banned
