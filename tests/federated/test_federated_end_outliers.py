"""The end ballot leaves the job's outliers out [FED-END.5]: a real ledger story in which one
participant's every update points elsewhere (a positive weight in each round, less than
half the others'), and a property that the cut never changes a payout.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from chain.federated.blobs import ModelBlob, UpdateBlob
from chain.federated.open.reads import fed_rounds, part_body, vote_bodies
from chain.federated.open.records import FedPhase
from chain.federated.open.steps import end_participants
from chain.federated.rewards import job_outliers, payout
from chain.federated.rounds import Aggregation, aggregate_round, apply_aggregate
from tests.federated.fed_ledger_story import (
    BOUNTY,
    DIMS,
    PARTICIPANTS,
    SCALE,
    UPDATES,
    FedStory,
    conserved,
    fed_job_spec,
    salt_of,
)

OUTLIER_UPDATES = {**UPDATES, "carol": (-300, 300, 200, -1000)}
"""alice and bob as in the shared story; carol's update points elsewhere: its trust against
the round's mean is ~12,800 against ~28,800 for the others (positive, but below half)."""


class OutlierStory(FedStory):
    """The shared story with carol sending ``OUTLIER_UPDATES['carol']`` times the round."""

    def update_blob(self, name: str, r: int) -> bytes:
        values = tuple(v * r for v in OUTLIER_UPDATES[name])
        return UpdateBlob(self.job_id, r, self.chain.addr(name), SCALE, values).to_bytes()

    def honest(self, names: tuple[str, ...] = PARTICIPANTS) -> tuple[bytes, dict[bytes, int]]:
        r = self.fed.round
        updates = {self.chain.addr(n): tuple(v * r for v in OUTLIER_UPDATES[n]) for n in names}
        result = aggregate_round(Aggregation("trimmed_mean", 0), updates, None, DIMS)
        model = apply_aggregate(self.model, result.aggregate)
        return ModelBlob(SCALE, model).to_bytes(), dict(result.weights)


def two_rounds_with_an_outlier() -> OutlierStory:
    s = OutlierStory()
    s.post(fed_job_spec(rounds=2))
    s.publish()
    for accuracy in (600_000, 650_000):
        s.commit_and_reveal()
        s.accept_round(accuracy)
    return s


def test_end_ballot_leaves_the_jobs_outlier_out() -> None:
    """[FED-END.5] [FED-END.1] [FED-REWARD.9] [TX-FED.6] carol has a positive recorded
    weight in both accepted rounds but is the job's outlier: the end ballot lists alice and
    bob only; a vote that carries a loss for carol too (4 losses) is refused (``bad_vote``);
    the votes of the listed participants' losses are accepted and the payout is
    [FED-REWARD.5] of the recorded weights (carol paid 0)."""
    s = two_rounds_with_an_outlier()
    addr = {n: s.chain.addr(n) for n in PARTICIPANTS}
    weights = [dict(r.weights) for r in fed_rounds(s.chain.state, s.job_id)]
    assert all(ws[addr["carol"]] > 0 for ws in weights)
    assert job_outliers(weights) == {addr["carol"]}
    fed = s.fed
    assert fed.phase == FedPhase.HIDDEN
    assert list(fed.loo_participants) == sorted((addr["alice"], addr["bob"]))
    s.chain.block(s.chain.tx("submitter", part_body(s.job_id, "hidden", b"\x32" * 32, 1000)))
    voter = s.voters()[0]
    too_many = vote_bodies(s.job_id, 0, 0, s.chain.addr(voter), True,
                           losses=[100, 300, 250, 120], salt=salt_of("four losses"))
    s.chain.block(s.chain.tx(voter, too_many.commit))
    s.until_deadline()
    assert s.chain.reject(s.chain.tx(voter, too_many.reveal)) == "bad_vote"
    s.until_deadline()  # the end ballot with one unopened vote: undecided, no losses
    assert s.fed.phase == FedPhase.DONE
    assert s.fed.paid == payout(BOUNTY, 500, weights).paid
    assert dict(s.fed.paid).get(addr["carol"], 0) == 0
    conserved(s.chain)


def test_end_ballot_of_the_listed_participants_pays_by_their_losses() -> None:
    """[FED-END.5] [FED-END.2] [FED-END.4] The end ballot carries the final loss and one loss
    per listed participant (3 values, not 4): accepted, the payout is [FED-REWARD.5] with
    those losses; carol, the outlier, is paid nothing; the bounty is paid in full."""
    s = two_rounds_with_an_outlier()
    s.chain.block(s.chain.tx("submitter", part_body(s.job_id, "hidden", b"\x32" * 32, 1000)))
    losses = [100, 300, 250]
    s.vote({n: (True, None, losses) for n in s.voters()})
    fed = s.fed
    assert fed.phase == FedPhase.DONE
    weights = [dict(r.weights) for r in fed_rounds(s.chain.state, s.job_id)]
    expected = payout(BOUNTY, 500, weights, losses[0],
                      dict(zip(fed.loo_participants, losses[1:], strict=True)))
    assert expected.loo_pool > 0 and fed.paid == expected.paid
    assert dict(fed.paid).get(s.chain.addr("carol"), 0) == 0
    assert sum(v for _, v in fed.paid) == BOUNTY
    conserved(s.chain)


ADDRS = [bytes([i]) * 20 for i in range(6)]
ROUND = st.dictionaries(st.sampled_from(ADDRS), st.integers(0, 1 << 16), max_size=6)


@settings(max_examples=300, deadline=None)
@given(rounds=st.lists(ROUND, min_size=1, max_size=5),
       losses=st.dictionaries(st.sampled_from(ADDRS), st.integers(0, 1000), min_size=6),
       final=st.integers(0, 1000))
def test_leaving_the_outliers_out_never_changes_the_payout(
        rounds: list[dict[bytes, int]], losses: dict[bytes, int], final: int) -> None:
    """[FED-END.5] [FED-REWARD.3] [FED-REWARD.9] Whatever the round weights and the losses:
    the end ballot holds no outlier, and the payout with losses for the end ballot's
    participants only equals the payout with a loss for every participant of positive
    weight (the outliers' losses were never read)."""
    listed = end_participants(rounds)
    assert not set(listed) & job_outliers(rounds)
    assert listed == sorted(listed)
    positive = {a for ws in rounds for a, w in ws.items() if w > 0}
    every = payout(1000, 500, rounds, final, {a: losses[a] for a in positive})
    only = payout(1000, 500, rounds, final, {a: losses[a] for a in listed})
    assert every == only
