"""federated.md §7's implicit values, pinned on the real ledger (tests/federated/fed_ledger_story).

Issue 29: what a verifier written from the spec had to guess about the federated step:
which records a step writes [FED-ROUND.1], ``tried`` [FED-ROUND.3], ``voter_paid`` and
zero pools [FED-VOTE.5], the fields the hidden phase and the end keep [FED-END.1], and
the bound on a blob ``size`` [TX-FED.9] [TX-FED.10].
"""

from __future__ import annotations

import pytest

from chain.encoding import decode, encode
from chain.errors import DecodeError
from chain.federated.open.records import FedPhase
from chain.federated.private.bodies import FedShares, FedUnmask
from chain.genesis import genesis_state
from chain.state import Change
from chain.transition import advance, apply_block
from tests.federated.fed_ledger_story import FedStory, fed_job_spec


def block_changes(story: FedStory, index: int = -1) -> list[Change]:
    """The changes of one of the story's blocks, replayed from genesis."""
    chain = story.chain
    state = genesis_state(chain.genesis)
    wanted = chain.blocks[index]
    for block in chain.blocks:
        output = apply_block(state, block)
        if block is wanted:
            return output.changes
        advance(state, block, output)
    raise AssertionError("block not found")


def accepted_round_one(voter_reward: int) -> FedStory:
    story = FedStory()
    story.post(fed_job_spec(voter_reward=voter_reward))
    story.publish()
    story.commit_and_reveal()
    story.accept_round()
    return story


def test_fed_vote_5_voter_paid_counts_the_dust() -> None:
    """[FED-VOTE.5] A pool of 5 among 6 agreeing voters: each share is 0, every voter's
    account is still written, and voter_paid grows by the whole 5."""
    story = accepted_round_one(voter_reward=5)
    fed = story.fed
    assert fed.round == 2
    rounds_voters = 6  # the 7 bonded verifiers (v0 and every member) less the aggregator
    assert 5 // rounds_voters == 0 and fed.voter_paid == 5
    written = {c.key for c in block_changes(story) if c.table == "account"}
    assert len(written) == rounds_voters


def test_fed_vote_5_a_zero_pool_writes_no_account() -> None:
    """[FED-VOTE.5] voter_reward 0: the decided ballot writes no account, voter_paid stays 0;
    [FED-ROUND.1] the step writes both fed_job and job."""
    story = accepted_round_one(voter_reward=0)
    assert story.fed.voter_paid == 0 and story.fed.round == 2
    tables = [c.table for c in block_changes(story)]
    assert "account" not in tables
    assert "fed_job" in tables and "job" in tables


def test_fed_round_1_job_is_written_when_only_fed_job_changes() -> None:
    """[FED-ROUND.1] The block at posted_height + 2 draws the split seed: only fed_job
    changes, and the job record is written too (with its old value)."""
    story = FedStory()
    story.post()
    story.chain.block()
    story.chain.block()  # the seed is drawn in this block's tick
    assert story.fed.seed is not None
    changes = {c.table: c for c in block_changes(story)}
    assert set(changes) == {"fed_job", "job"}
    assert changes["job"].value == encode(story.chain.job(story.job_id).to_wire())


def test_fed_round_3_a_failed_aggregator_joins_tried_at_the_next_draw() -> None:
    """[FED-ROUND.3] [FED-ROUND.6] A silent aggregator: the next draw writes attempt 1 and
    tried = [it], and clears posted, voters, votes."""
    story = FedStory()
    story.post()
    story.publish()
    story.commit_and_reveal()
    first = story.fed.aggregator
    assert story.fed.tried == () and story.fed.attempt == 0 and first is not None
    story.until_deadline()  # it posts nothing
    fed = story.fed
    assert fed.attempt == 1 and fed.tried == (first,) and fed.aggregator not in (None, first)
    assert (fed.posted, fed.voters, fed.votes) == (None, (), ())


def test_fed_end_1_fields_the_end_keeps() -> None:
    """[FED-END.1] [FED-END.4] A job with loo_permille 0 ends without an end ballot: done,
    deadline 0, updates, posted, voters, votes emptied; round, attempt, aggregator and
    tried keep the last draw's values."""
    story = FedStory()
    story.post(fed_job_spec(rounds=1, loo_permille=0))
    story.publish()
    story.commit_and_reveal()
    aggregator = story.fed.aggregator
    story.accept_round()
    fed = story.fed
    assert fed.phase == FedPhase.DONE and fed.deadline_ms == 0
    assert (fed.updates, fed.posted, fed.voters, fed.votes) == ((), None, (), ())
    assert (fed.round, fed.attempt, fed.aggregator, fed.tried) == (1, 0, aggregator, ())


@pytest.mark.parametrize("body", [FedShares, FedUnmask])
@pytest.mark.parametrize("size", [0, -1, (1 << 40) + 1])
def test_tx_fed_9_10_size_out_of_bounds_is_a_decode_error(body: type, size: int) -> None:
    """[TX-FED.9] [TX-FED.10] size is 1..2^40 on the wire; outside, bad_field."""
    wire = [b"\x01" * 32, 1, b"\x02" * 32, size]
    with pytest.raises(DecodeError) as caught:
        body.from_wire(decode(encode(wire)))
    assert caught.value.code == "bad_field"
    assert body.from_wire(decode(encode([*wire[:3], 1 << 40]))).size == 1 << 40


def test_fed_spec_1_entry_points_a_federated_spec_must_name() -> None:
    """[FED-SPEC.1] [JOB-KIND.1] A federated/v1 spec decodes with ``train`` and ``evaluate``
    (no ``federate`` needed by the ledger) and not without either one."""
    from dataclasses import replace

    from chain.jobspec import JobSpec

    spec = fed_job_spec()
    assert {name for name, _ in spec.entry_points} == {"train", "evaluate"}
    assert JobSpec.from_wire(decode(encode(spec.to_wire()))) == spec
    for dropped in ("train", "evaluate"):
        partial = replace(spec, entry_points=tuple(
            (n, argv) for n, argv in spec.entry_points if n != dropped))
        with pytest.raises(DecodeError) as caught:
            JobSpec.from_wire(decode(encode(partial.to_wire())))
        assert caught.value.code == "bad_field"
