"""The challenge rule's pure logic (chain/train/challenge.py; ledger.md [VOTE-CHALLENGE.1],
[VOTE-REWARD.2]): the arithmetic the ledger pays voters with and the incentive
simulation prices, so that the figures in docs/incentives.md mean what the rule says.
"""

from __future__ import annotations

import pytest

from chain.train.challenge import (
    CHALLENGE_SIZE,
    ChallengeAnswer,
    challenge_group,
    challenge_rewards,
    challenge_seed,
    challenge_subset,
    turn_rewards,
)
from chain.types import Address


def addr(i: int) -> Address:
    return Address(bytes([i]) * 20)


def test_vote_challenge_1_seed_is_fixed_by_the_reveal_block_and_the_turn() -> None:
    """[VOTE-CHALLENGE.1] Same inputs, same seed; another reveal block, claimer or model
    gives another seed (so nothing known at claim time predicts it)."""
    args = (b"\x01" * 32, b"\x02" * 32, addr(3), b"\x04" * 32)
    seed = challenge_seed(*args)
    assert seed == challenge_seed(*args) and len(seed) == 32
    for i in range(4):
        changed = list(args)
        changed[i] = b"\xff" * len(args[i])
        assert challenge_seed(*changed) != seed


def test_vote_challenge_1_subset_is_deterministic_distinct_sorted_and_in_range() -> None:
    seed = challenge_seed(b"\x01" * 32, b"\x02" * 32, addr(3), b"\x04" * 32)
    subset = challenge_subset(seed, 1000, 50)
    assert subset == challenge_subset(seed, 1000, 50)
    assert len(subset) == 50 == len(set(subset)) and list(subset) == sorted(subset)
    assert all(0 <= i < 1000 for i in subset)
    assert challenge_subset(b"\x00" * 32, 1000, 50) != subset
    assert challenge_subset(seed, 7, 7) == tuple(range(7))  # the whole set when asked
    assert challenge_subset(seed, 10, 11) == tuple(range(10))  # or when it has fewer
    assert len(challenge_subset(seed, 1000)) == CHALLENGE_SIZE


def test_vote_challenge_1_subset_draws_are_spread_over_the_examples() -> None:
    """Rejection sampling: over many seeds every example is drawn about equally often."""
    counts = [0] * 10
    for n in range(2000):
        for i in challenge_subset(n.to_bytes(32, "big"), 10, 1):
            counts[i] += 1
    assert min(counts) > 150 and max(counts) < 250


@pytest.mark.parametrize("examples,size", [(0, 1), (10, 0)])
def test_vote_challenge_1_impossible_subsets_are_refused(examples: int, size: int) -> None:
    with pytest.raises(ValueError, match=f"cannot draw {size} of {examples}"):
        challenge_subset(b"\x00" * 32, examples, size)


def test_vote_reward_2_the_group_is_the_largest_interval_and_ignores_missing_answers() -> None:
    answers = [ChallengeAnswer(addr(1), True, 0.300), ChallengeAnswer(addr(2), True, 0.305),
               ChallengeAnswer(addr(3), True, 0.309), ChallengeAnswer(addr(4), True, 0.250),
               ChallengeAnswer(addr(5), True, None), ChallengeAnswer(addr(6), True, None),
               ChallengeAnswer(addr(7), True, None), ChallengeAnswer(addr(8), True, None)]
    assert challenge_group(answers, 0.01) == (addr(1), addr(2), addr(3))
    tie = [ChallengeAnswer(addr(1), True, 0.5), ChallengeAnswer(addr(2), True, 0.1)]
    assert challenge_group(tie, 0.01) == (addr(2),)  # ties: the lowest interval


def test_vote_reward_2_a_lazy_echo_outside_the_group_is_not_paid() -> None:
    """Seven voters measured ~0.41 on the subset; two echoed the claimed 0.30 without
    evaluating: the pool goes to the seven, 33 // 7 each."""
    honest = [ChallengeAnswer(addr(i), True, 0.41 + i * 0.001) for i in range(7)]
    lazy = [ChallengeAnswer(addr(10 + i), True, 0.30) for i in range(2)]
    paid = challenge_rewards(honest + lazy, 0.01, 667, 33)
    assert paid == {a.voter: 4 for a in honest}


def test_vote_reward_2_only_voters_that_agreed_with_the_verdict_are_paid() -> None:
    answers = [ChallengeAnswer(addr(i), i != 0, 0.4) for i in range(3)]
    assert challenge_rewards(answers, 0.01, 667, 10) == {addr(1): 5, addr(2): 5}


def test_vote_reward_2_without_a_supermajority_group_nobody_is_paid() -> None:
    """Challenge answers scattered (no group of 2/3): the pool stays in escrow."""
    answers = [ChallengeAnswer(addr(i), True, 0.1 * i) for i in range(6)]
    assert challenge_rewards(answers, 0.01, 667, 60) == {}
    assert challenge_rewards([], 0.01, 667, 60) == {}
    with pytest.raises(ValueError, match="negative reward pool -1"):
        challenge_rewards(answers, 0.01, 667, -1)


def test_vote_reward_2_a_turn_without_any_answer_pays_as_vote_reward_1() -> None:
    """[VOTE-REWARD.2] [VOTE-REWARD.1] Votes from before the challenge (or holdout votes)
    carry no answer: every agreeing voter shares the pool, as before. One answer in the
    turn is enough for the challenge rule to apply, and then the silent are not paid."""
    silent = [ChallengeAnswer(addr(i), i != 0, None) for i in range(4)]
    assert turn_rewards(silent, 0.01, 667, 9) == {addr(1): 3, addr(2): 3, addr(3): 3}
    one = [*silent[1:], ChallengeAnswer(addr(9), True, 0.4)]
    assert turn_rewards(one, 0.01, 667, 9) == {}  # 1 of 4 in the group: no supermajority


def test_vote_reward_2_a_banned_voter_counts_but_is_not_paid() -> None:
    """[VOTE-REWARD.2] A voter banned since it voted still counts in the group and the
    supermajority; the pool is split among the others."""
    answers = [ChallengeAnswer(addr(i), True, 0.4) for i in range(3)]
    assert turn_rewards(answers, 0.01, 667, 10, frozenset({addr(0)})) == \
        {addr(1): 5, addr(2): 5}


def test_vote_reward_2_a_lucky_echo_cannot_push_an_honest_answer_out() -> None:
    """[VOTE-REWARD.2] Eight honest answers spread over 0.8 tolerance; three echoes land
    just below them, so the largest window holds the echoes and six honest answers. Every
    honest voter is still paid: the pay reaches every answer within tolerance of the
    group's lower median, which lies among the honest answers."""
    honest = [ChallengeAnswer(addr(i), True, 0.400 + i * 0.008 / 7) for i in range(8)]
    echoes = [ChallengeAnswer(addr(20 + i), True, 0.3975) for i in range(3)]
    group = challenge_group(honest + echoes, 0.01)
    assert len(group) == 10 and addr(7) not in group  # the window left an honest answer out
    paid = turn_rewards(honest + echoes, 0.01, 667, 110)
    assert {a.voter for a in honest} <= set(paid)
