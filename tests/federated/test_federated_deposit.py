"""The reveal deposit against commit-and-vanish crowding [FED-DEPOSIT.1], through real blocks
(tests/ledger/harness.py): locked at ``fed_commit``, returned at ``fed_reveal``, burned when
the reveal window ends unopened, returned when the job ends before anyone could reveal.
Every block of every test is followed by a [BANK.1] check: the locked deposits sit in the
job's escrow, so credits are neither created nor lost.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from chain.federated.open.reads import fed_rounds, update_bodies
from chain.federated.open.records import FedPhase
from chain.federated.open.steps import reveal_deposit
from chain.federated.rounds import Aggregation
from chain.transactions import Transfer
from chain.types import Amount
from tests.federated.fed_ledger_story import (
    BOUNTY,
    PARTICIPANTS,
    FedStory,
    conserved,
    fed_job_spec,
    fed_spec,
    salt_of,
)

STORY_DEPOSIT = BOUNTY // (2 * 3)
"""The story's spec: bounty 300, 2 rounds, 3 participants a round: 50 credits a commitment."""


def test_amount_is_one_slot_share_of_one_round() -> None:
    """[FED-DEPOSIT.1] ``max(1, bounty // (rounds × max_participants))``: crowding every slot
    of every round burns at least the bounty less the rounding; never 0."""
    assert reveal_deposit(BOUNTY, fed_spec()) == STORY_DEPOSIT == 50
    assert reveal_deposit(1, fed_spec(rounds=1000, max_participants=256)) == 1
    assert reveal_deposit(0, fed_spec()) == 1
    for bounty in (7, 600, 10**9):
        spec = fed_spec(rounds=10, max_participants=6)
        d, slots = reveal_deposit(bounty, spec), spec.rounds * spec.max_participants
        assert d * slots <= bounty or d == 1
        assert bounty - d * slots < slots


def test_commit_locks_reveal_returns() -> None:
    """[FED-DEPOSIT.1] [TX-FED.2] [TX-FED.3] [BANK.1] A commitment moves the deposit from the
    participant's balance into the job's escrow; its reveal moves it back."""
    s = FedStory()
    s.post()
    s.publish()
    before = s.chain.balance("alice")
    escrow = s.chain.job(s.job_id).escrow
    s.chain.block(s.chain.tx("alice", s.bodies("alice", 1).commit))
    assert s.chain.balance("alice") == before - STORY_DEPOSIT
    assert s.chain.job(s.job_id).escrow == escrow + STORY_DEPOSIT
    conserved(s.chain)
    s.until_deadline()
    s.chain.block(s.chain.tx("alice", s.bodies("alice", 1).reveal))
    assert s.chain.balance("alice") == before
    assert s.chain.job(s.job_id).escrow == escrow
    conserved(s.chain)


def test_vanished_commitment_burns_its_deposit() -> None:
    """[FED-DEPOSIT.1] [FED-ROUND.2] [BANK.1] A participant that commits and does not reveal
    is out of the round and its deposit is burned when the reveal window ends; the others
    get theirs back and the round goes on (accepted). A later reveal is refused and cannot
    bring the deposit back."""
    s = FedStory()
    s.post()
    s.publish()
    tx = s.chain.tx
    balances = {n: s.chain.balance(n) for n in PARTICIPANTS}
    burned = s.chain.state.burned
    s.chain.block(*(tx(n, s.bodies(n, 1).commit) for n in PARTICIPANTS))
    s.until_deadline()
    s.chain.block(*(tx(n, s.bodies(n, 1).reveal) for n in ("alice", "bob")))
    conserved(s.chain)
    s.until_deadline()
    assert s.chain.state.burned == burned + STORY_DEPOSIT
    assert s.fed.phase == FedPhase.AGGREGATE
    assert s.chain.reject(tx("carol", s.bodies("carol", 1).reveal)) == "not_in_reveal_window"
    conserved(s.chain)
    blob, weights = s.honest(("alice", "bob"))
    s.post_aggregate(blob, weights)
    s.vote({n: (True, 700_000, None) for n in s.voters()})
    assert [r.outcome for r in fed_rounds(s.chain.state, s.job_id)] == ["accepted"]
    voter_pay = {n: s.chain.balance(n) - balances[n] for n in ("alice", "bob")}
    assert all(0 <= v <= 5 for v in voter_pay.values())  # only voter rewards moved them
    carol_voted = s.chain.balance("carol") - (balances["carol"] - STORY_DEPOSIT)
    assert 0 <= carol_voted <= 5
    conserved(s.chain)


def test_commit_and_vanish_crowding_costs_the_crowders() -> None:
    """[FED-DEPOSIT.1] [FED-ROUND.2] §8's crowding attack: two members fill
    ``max_participants`` = 2 first, the honest owner is refused (``round_full``), the
    crowders never reveal and the round is void. Each crowder loses its deposit per round it
    crowds; the honest owner loses nothing, and in round 2 (uncrowded) it is a participant."""
    s = FedStory()
    s.post(fed_job_spec(max_participants=2, min_participants=2))
    s.publish()
    tx = s.chain.tx
    deposit = reveal_deposit(BOUNTY, fed_spec(max_participants=2, min_participants=2))
    assert deposit == 75
    before = {n: s.chain.balance(n) for n in ("alice", "bob", "carol", "dave")}
    burned = s.chain.state.burned
    s.chain.block(tx("carol", s.bodies("carol", 1).commit),
                  tx("dave", update_bodies(s.job_id, 1, s.chain.addr("dave"),
                                           s.update_blob("alice", 1), salt_of("d")).commit))
    assert s.chain.reject(tx("alice", s.bodies("alice", 1).commit)) == "round_full"
    s.until_deadline()
    s.until_deadline()
    assert [r.outcome for r in fed_rounds(s.chain.state, s.job_id)] == ["void"]
    assert s.chain.state.burned == burned + 2 * deposit
    assert s.chain.balance("carol") == before["carol"] - deposit
    assert s.chain.balance("dave") == before["dave"] - deposit
    assert s.chain.balance("alice") == before["alice"]
    conserved(s.chain)
    assert s.fed.round == 2 and s.fed.phase == FedPhase.COMMIT
    s.commit_and_reveal(("alice", "bob"))
    assert s.chain.balance("alice") == before["alice"]
    assert s.fed.phase == FedPhase.AGGREGATE
    print({"reveal_deposit": deposit, "crowders_lost": 2 * deposit, "honest_lost": 0})
    conserved(s.chain)


def test_insufficient_balance_refuses_the_commitment() -> None:
    """[FED-DEPOSIT.1] [TX-FED.2] A member whose balance is below the deposit cannot commit
    (``insufficient_balance``, checked after ``round_full``); one credit more and it can."""
    s = FedStory()
    s.post()
    s.publish()
    tx = s.chain.tx
    keep = STORY_DEPOSIT - 1
    s.chain.block(tx("alice", Transfer(s.chain.addr("erin"),
                                       Amount(s.chain.balance("alice") - keep))))
    assert s.chain.balance("alice") == keep
    assert s.chain.reject(tx("alice", s.bodies("alice", 1).commit)) == "insufficient_balance"
    s.chain.block(tx("erin", Transfer(s.chain.addr("alice"), Amount(1))))
    s.chain.block(tx("alice", s.bodies("alice", 1).commit))
    assert s.chain.balance("alice") == 0
    conserved(s.chain)


def test_job_ending_in_the_first_commit_window_returns_deposits() -> None:
    """[FED-DEPOSIT.1] [FED-END.3] Commitments made before the owner named its public part:
    the job ends at the commit deadline (nobody could reveal), every deposit is returned,
    only the owner's holdout deposit is burned."""
    s = FedStory()
    s.post()
    tx = s.chain.tx
    before = {n: s.chain.balance(n) for n in PARTICIPANTS}
    s.chain.block(*(tx(n, s.bodies(n, 1).commit) for n in PARTICIPANTS))
    assert all(s.chain.balance(n) == before[n] - STORY_DEPOSIT for n in PARTICIPANTS)
    s.until_deadline()
    assert s.fed.phase == FedPhase.DONE
    assert {n: s.chain.balance(n) for n in PARTICIPANTS} == before
    assert s.chain.job(s.job_id).escrow == 0
    conserved(s.chain)


def test_fltrust_owner_reference_vanishing_burns_the_owner_deposit() -> None:
    """[FED-DEPOSIT.1] [FED-ROUND.2] Under FLTrust the owner's reference commitment locks a
    deposit too: an owner that voids a round by withholding its reference pays for it."""
    s = FedStory()
    spec = fed_job_spec(aggregation=Aggregation("fltrust", 0), max_participants=2)
    s.post(spec)
    s.publish()
    tx = s.chain.tx
    owner = update_bodies(s.job_id, 1, s.chain.addr("submitter"), s.update_blob("alice", 1),
                          salt_of("ref"))
    owner_before = s.chain.balance("submitter")
    burned = s.chain.state.burned
    s.chain.block(tx("alice", s.bodies("alice", 1).commit), tx("bob", s.bodies("bob", 1).commit),
                  tx("submitter", owner.commit))
    s.until_deadline()
    s.chain.block(tx("alice", s.bodies("alice", 1).reveal), tx("bob", s.bodies("bob", 1).reveal))
    s.until_deadline()
    assert spec.federated is not None
    deposit = reveal_deposit(BOUNTY, spec.federated)
    assert [r.outcome for r in fed_rounds(s.chain.state, s.job_id)] == ["void"]
    assert s.chain.state.burned == burned + deposit
    assert s.chain.balance("submitter") == owner_before - deposit
    conserved(s.chain)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=3, max_size=3),
       st.integers(1, 3))
def test_any_commit_reveal_pattern_conserves_and_burns_exactly_the_vanished(
        pattern: list[tuple[bool, bool]], max_participants: int) -> None:
    """[FED-DEPOSIT.1] [BANK.1] For any choice of who commits and who reveals, after the
    reveal window: burned grows by the deposit times the commitments not revealed, every
    revealer's balance is unchanged, and [BANK.1] holds after every block."""
    s = FedStory()
    spec = fed_job_spec(max_participants=max_participants, min_participants=1)
    s.post(spec)
    s.publish()
    assert spec.federated is not None
    deposit = reveal_deposit(BOUNTY, spec.federated)
    tx = s.chain.tx
    before = {n: s.chain.balance(n) for n in PARTICIPANTS}
    burned = s.chain.state.burned
    committed: list[str] = []
    for name, (commit, _) in zip(PARTICIPANTS, pattern, strict=True):
        if commit and len(committed) < max_participants:
            s.chain.block(tx(name, s.bodies(name, 1).commit))
            committed.append(name)
            conserved(s.chain)
    s.until_deadline()
    revealers = [n for n, (_, reveal) in zip(PARTICIPANTS, pattern, strict=True)
                 if reveal and n in committed]
    if revealers:
        s.chain.block(*(tx(n, s.bodies(n, 1).reveal) for n in revealers))
    conserved(s.chain)
    s.until_deadline()
    vanished = len(committed) - len(revealers)
    assert s.chain.state.burned == burned + deposit * vanished
    for n in PARTICIPANTS:
        lost = deposit if n in committed and n not in revealers else 0
        assert s.chain.balance(n) == before[n] - lost
    conserved(s.chain)
