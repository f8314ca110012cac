"""Upgrades at a height, as pure rules on a chain in memory (protocol_spec/ledger.md §10).

A plan passes by governance [UPGRADE-PLAN.1-3], switches the version at the start of its
block [UPGRADE-PLAN.4], blocks carry the version in force [BLOCK-VERSION.1], and version 2's
rule (a transfer memo [TX-TRANSFER.2]) holds from exactly that block, never before.
"""

from __future__ import annotations

import dataclasses

import pytest

from chain.blocks import Block, BlockHeader
from chain.encoding import decode, encode
from chain.errors import DecodeError, InvalidBlock
from chain.governance.bodies import (
    GovernanceAction,
    GovernanceApprove,
    GovernancePropose,
    UpgradePlan,
)
from chain.transactions import SignedTransaction, Transfer
from chain.transition import apply_block, build_block, preview_next_block
from chain.types import Amount, TimeMs
from chain.versions import MAX_PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS, UPGRADE_MIN_DELAY
from tests.ledger.harness import Chain


def _schedule(chain: Chain, by: str, name: str, version: int, height: int) -> SignedTransaction:
    return chain.tx(by, GovernancePropose(GovernanceAction.schedule(
        UpgradePlan(name, version, height))))


def _plan_passed(height: int = 20) -> Chain:
    """One validator (its proposal passes at once) and a plan to version 2 at ``height``."""
    chain = Chain(validators=1)
    chain.block(_schedule(chain, "v0", "v2-memo", 2, height))
    return chain


def _memo(chain: Chain, memo: bytes = b"invoice-17") -> SignedTransaction:
    return chain.tx("alice", Transfer(chain.addr("bob"), Amount(5), memo))


def test_upgrade_plan_1_wire_forms_and_bounds() -> None:
    """[UPGRADE-PLAN.1] schedule_upgrade is [kind, [name, version, height]], cancel_upgrade
    [kind, name]; the other kinds keep their 3 elements; names, versions out of bounds fail."""
    plan = UpgradePlan("v2-memo", 2, 40)
    action = GovernanceAction.schedule(plan)
    assert action.to_wire() == ["schedule_upgrade", ["v2-memo", 2, 40]]
    assert GovernanceAction.from_wire(action.to_wire()) == action
    cancel = GovernanceAction.cancel("v2-memo")
    assert cancel.to_wire() == ["cancel_upgrade", "v2-memo"]
    assert GovernanceAction.from_wire(cancel.to_wire()) == cancel
    admit = GovernanceAction("admit_member", b"\x01" * 20)
    assert GovernanceAction.from_wire(admit.to_wire()) == admit
    for bad in (["schedule_upgrade", ["V2", 2, 40]],           # upper case
                ["schedule_upgrade", ["", 2, 40]],             # empty name
                ["schedule_upgrade", ["-x", 2, 40]],           # starts with a dash
                ["schedule_upgrade", ["a" * 33, 2, 40]],       # 33 characters
                ["schedule_upgrade", ["v2", 1, 40]],           # version 1 is genesis's
                ["schedule_upgrade", ["v2", 65_536, 40]],      # above the bound
                ["schedule_upgrade", ["v2", 2, 0]],            # height 0
                ["schedule_upgrade", ["v2", 2, 40], 0],        # extra element
                ["cancel_upgrade", "v2", 0],
                ["admit_member", b"\x01" * 20],                # the old kinds keep 3
                []):
        with pytest.raises(DecodeError):
            GovernanceAction.from_wire(bad)


def test_upgrade_plan_1_a_plan_for_a_version_this_software_does_not_know_is_accepted() -> None:
    """[UPGRADE-PLAN.1] Old software must accept a plan it cannot run, or it could not halt
    at it: the plan's version is bounded by 65,535, not by the versions known here."""
    unknown = MAX_PROTOCOL_VERSION + 5
    chain = Chain(validators=1)
    chain.block(_schedule(chain, "v0", "far-future", unknown, 30))
    assert chain.state.upgrade_plan == UpgradePlan("far-future", unknown, 30)
    assert chain.state.version_at(29) == 1 and chain.state.version_at(30) == unknown


def test_upgrade_plan_2_version_must_be_newer_than_the_one_in_force() -> None:
    """[UPGRADE-PLAN.2] A plan to the version in force (or an older one) is refused."""
    chain = _plan_passed(height=13)
    while chain.state.height < 13:
        chain.block()
    assert chain.state.protocol_version == 2
    tx = _schedule(chain, "v0", "again", 2, 100)
    assert chain.reject(tx) == "upgrade_not_newer"


def test_upgrade_plan_2_height_must_be_far_enough_ahead() -> None:
    """[UPGRADE-PLAN.2] Proposed in block h, H must be at least h + UPGRADE_MIN_DELAY."""
    chain = Chain(validators=1)
    chain.block()
    next_height = chain.state.height + 1
    too_soon = _schedule(chain, "v0", "v2", 2, next_height + UPGRADE_MIN_DELAY - 1)
    assert chain.reject(too_soon) == "upgrade_too_soon"
    chain.block(_schedule(chain, "v0", "v2", 2, next_height + UPGRADE_MIN_DELAY))
    assert chain.state.upgrade_plan is not None


def test_upgrade_plan_2_rechecked_when_it_passes() -> None:
    """[UPGRADE-PLAN.2] A proposal far enough ahead when made but too near when the last
    approval arrives does not pass: the approving transaction is refused."""
    chain = Chain(validators=4)
    h = chain.state.height + 1 + UPGRADE_MIN_DELAY
    propose = _schedule(chain, "v0", "v2", 2, h)
    chain.block(propose)
    chain.block(chain.tx("v1", GovernanceApprove(propose.hash)))
    while chain.state.height + 1 + UPGRADE_MIN_DELAY <= h:
        chain.block()
    late = chain.tx("v2", GovernanceApprove(propose.hash))
    assert chain.reject(late) == "upgrade_too_soon"
    assert chain.state.upgrade_plan is None


def test_upgrade_plan_3_needs_more_than_two_thirds_like_every_action() -> None:
    """[UPGRADE-PLAN.3] [GOV-THRESHOLD.1] With 4 validators the plan waits for 3 approvals."""
    chain = Chain(validators=4)
    propose = _schedule(chain, "v0", "v2", 2, 50)
    chain.block(propose)
    chain.block(chain.tx("v1", GovernanceApprove(propose.hash)))
    assert chain.state.upgrade_plan is None
    chain.block(chain.tx("v2", GovernanceApprove(propose.hash)))
    assert chain.state.upgrade_plan == UpgradePlan("v2", 2, 50)


def test_upgrade_plan_3_a_later_plan_replaces_and_a_cancel_removes() -> None:
    """[UPGRADE-PLAN.3] One plan at a time: the one passed last wins; a cancel must name the
    pending plan (a stale cancel cannot remove a newer plan), and then removes it."""
    chain = _plan_passed(height=40)
    chain.block(_schedule(chain, "v0", "v2-fixed", 2, 60))
    assert chain.state.upgrade_plan == UpgradePlan("v2-fixed", 2, 60)
    stale = chain.tx("v0", GovernancePropose(GovernanceAction.cancel("v2-memo")))
    assert chain.reject(stale) == "no_such_plan"
    chain.block(chain.tx("v0", GovernancePropose(GovernanceAction.cancel("v2-fixed"))))
    assert chain.state.upgrade_plan is None
    for _ in range(60):
        chain.block()
    assert chain.state.protocol_version == 1
    assert all(b.header.version == 1 for b in chain.blocks)


def test_upgrade_plan_4_version_switches_at_exactly_h() -> None:
    """[UPGRADE-PLAN.4] [BLOCK-VERSION.1] Blocks below H carry 1, block H and after carry 2;
    the plan is gone and the version in force is 2 once H is applied."""
    chain = _plan_passed(height=15)
    while chain.state.height < 17:
        chain.block()
    assert [b.header.version for b in chain.blocks] == [1] * 14 + [2] * 3
    assert chain.state.protocol_version == 2 and chain.state.upgrade_plan is None
    assert chain.state.version_at(100) == 2


def test_tx_transfer_2_memo_refused_before_h_accepted_from_h() -> None:
    """[TX-TRANSFER.2] Software that knows version 2 keeps version 1's rule below H: a memo
    transfer is refused in block H-1 and accepted in block H."""
    chain = _plan_passed(height=12)
    while chain.state.height < 10:
        chain.block()
    assert chain.reject(_memo(chain)) == "needs_protocol_version"  # block 11 = H - 1
    chain.block()
    block = chain.block(_memo(chain))
    assert block.header.height == 12 and block.header.version == 2
    assert block.txs[0].body.memo == b"invoice-17"
    assert chain.balance("bob") == 1_005


def test_tx_transfer_2_mempool_admits_a_memo_for_block_h() -> None:
    """[TX-TRANSFER.2] [MEMPOOL-ADMIT.1] With H next, the preview of the next block runs
    under version 2, so a memo transfer is admitted before H is built."""
    chain = _plan_passed(height=12)
    while chain.state.height < 11:
        chain.block()
    assert preview_next_block(chain.state, chain.now + 1_000).protocol_version == 2


def test_tx_transfer_2_memo_wire() -> None:
    """[TX-TRANSFER.2] Without a memo a transfer keeps its 2 elements (so every earlier
    transfer keeps its bytes); with one, 3; an empty or 65-byte memo does not decode."""
    to = b"\x02" * 20
    assert Transfer(to, Amount(5)).to_wire() == [to, 5]
    assert Transfer.from_wire([to, 5, b"x" * 64]).memo == b"x" * 64
    for bad in ([to, 5, b""], [to, 5, b"x" * 65], [to, 5, "text"], [to, 5, b"m", 0]):
        with pytest.raises(DecodeError):
            Transfer.from_wire(bad)


def _forged(block: Block, version: int) -> Block:
    return Block(dataclasses.replace(block.header, version=version), block.txs)


def test_block_version_1_wrong_version_either_side_of_h() -> None:
    """[BLOCK-VERSION.1] Block H-1 carrying 2, or block H carrying 1, is invalid
    (`wrong_version`); the honest blocks apply."""
    chain = _plan_passed(height=14)
    while chain.state.height < 12:
        chain.block()
    honest, _, _ = build_block(chain.state, [], TimeMs(chain.now + 1_000), chain.addr("v0"))
    assert honest.header.version == 1
    with pytest.raises(InvalidBlock) as raised:
        apply_block(chain.state, _forged(honest, 2))
    assert raised.value.code == "wrong_version"
    chain.block()
    honest, _, _ = build_block(chain.state, [], TimeMs(chain.now + 1_000), chain.addr("v0"))
    assert honest.header.version == 2
    with pytest.raises(InvalidBlock) as raised:
        apply_block(chain.state, _forged(honest, 1))
    assert raised.value.code == "wrong_version"


def test_block_version_2_the_software_declares_what_each_version_changes() -> None:
    """[BLOCK-VERSION.2] Versions known here are 1..MAX, each described; a header of an
    unknown version does not decode, one of a known version does."""
    assert sorted(SUPPORTED_PROTOCOL_VERSIONS) == list(range(1, MAX_PROTOCOL_VERSION + 1))
    assert all(SUPPORTED_PROTOCOL_VERSIONS.values())
    chain = _plan_passed(height=11)
    while chain.state.height < 10:
        chain.block()
    block = chain.block()
    header = decode(block.header.encode())
    assert BlockHeader.from_wire(header).version == 2
    with pytest.raises(DecodeError):
        BlockHeader.from_wire([MAX_PROTOCOL_VERSION + 1, *header[1:]])
    assert Block.decode(block.encode()) == block
    assert encode(block.header.to_wire())[1] == 2  # version first in the header array
