"""The proposer's size policy (client/node/proposal_size.py): pure, no node."""

from __future__ import annotations

from client.node.proposal_size import BUDGET_S, CEILING, FLOOR, MIN_SAMPLE_TXS, START, ProposalSizer


def test_before_any_measurement_the_old_cap_bounded_by_the_graph() -> None:
    sizer = ProposalSizer()
    assert sizer.limit(0, 20_000) == START
    assert sizer.limit(0, 500) == 500  # [BLOCK-SIZE.1] max_block_txs always wins
    sizer.observe(MIN_SAMPLE_TXS - 1, 10.0)  # too few to time more than fixed costs
    sizer.observe(5_000, 0.0)
    assert sizer.per_tx_s is None


def test_the_budget_sets_the_size_between_floor_and_ceiling() -> None:
    sizer = ProposalSizer()
    sizer.observe(4_000, 4_000 * 25e-6)  # 25 us a transaction
    assert sizer.limit(0, 20_000) == int(BUDGET_S / 25e-6) == 8_000
    assert ProposalSizer(per_tx_s=1e-6).limit(0, 20_000) == CEILING
    assert ProposalSizer(per_tx_s=1e-3).limit(0, 20_000) == FLOOR


def test_a_later_round_halves_the_size_each_round() -> None:
    sizer = ProposalSizer(per_tx_s=25e-6)
    assert [sizer.limit(r, 20_000) for r in range(4)] == [8_000, 4_000, 2_000, 1_000]
    assert sizer.limit(40, 20_000) == 1  # never zero: a proposal may still carry one


def test_the_running_mean_moves_a_quarter_of_the_way_to_each_measurement() -> None:
    sizer = ProposalSizer()
    sizer.observe(1_000, 1_000 * 40e-6)
    sizer.observe(1_000, 1_000 * 20e-6)
    assert sizer.per_tx_s is not None and abs(sizer.per_tx_s - 35e-6) < 1e-12
