"""Governance [GOV-*]: validators admit members and change the validator set.

A validator proposes; the proposal executes in the block where validators
holding more than two thirds of the voting power have approved it. Validator
changes take effect ``validator_change_delay`` heights later on every node
alike, so consensus never switches sets in the middle of a height.
"""

from __future__ import annotations

from dataclasses import replace

from chain.context import TxContext
from chain.crypto import address_from_pubkey, address_to_text
from chain.errors import InvalidTransaction
from chain.governance.bodies import (
    UPGRADE_ACTIONS,
    GovernanceAction,
    GovernanceApprove,
    GovernancePropose,
)
from chain.governance.records import Proposal
from chain.governance.upgrade import check_upgrade_action, execute_upgrade_action
from chain.penalties import schedule_validator_change, schedule_validator_removal
from chain.records import Validator, ValidatorChange
from chain.state import Overlay, height_key
from chain.types import Address, Height, PublicKeyBytes, TimeMs


def _require_validator(view: Overlay, sender: Address) -> None:
    if sender not in view.validators():
        raise InvalidTransaction("not_validator", "only validators may propose or approve "
                                                  "governance actions")


def _check_action(view: Overlay, action: GovernanceAction, height: Height) -> None:
    validators = view.validators()
    if action.kind in UPGRADE_ACTIONS:  # [UPGRADE-PLAN.2] [UPGRADE-PLAN.3]
        check_upgrade_action(view, action, height)
    elif action.kind == "admit_member":
        target = Address(action.target)
        if view.is_member(target):
            raise InvalidTransaction("already_member", f"{address_to_text(target)} is a member")
        if view.account(target).banned:
            raise InvalidTransaction("target_banned", "a banned address cannot be admitted")
    elif action.kind == "add_validator":
        target = address_from_pubkey(action.target)
        if target in validators:
            raise InvalidTransaction("already_validator", "already a validator")
        if view.account(target).banned:
            raise InvalidTransaction("target_banned", "a banned address cannot validate")
    else:
        target = Address(action.target)
        if target not in validators:
            raise InvalidTransaction("unknown_validator", "not a validator")
        if len(validators) == 1:
            raise InvalidTransaction("last_validator", "cannot remove the last validator")


def apply_propose(view: Overlay, sender: Address, body: GovernancePropose,
                  ctx: TxContext) -> None:
    """[GOV-PROPOSE.1] A validator proposes a valid action; it counts as its approval."""
    _require_validator(view, sender)
    _check_action(view, body.action, ctx.height)
    proposal = Proposal(ctx.tx_hash, sender, body.action, ctx.time_ms, (sender,))
    _store_or_execute(view, proposal, ctx)


def apply_approve(view: Overlay, sender: Address, body: GovernanceApprove,
                  ctx: TxContext) -> None:
    """[GOV-APPROVE.1] Another validator approves a live proposal, once."""
    _require_validator(view, sender)
    proposal = view.proposal(body.proposal_id)
    if proposal is None:
        raise InvalidTransaction("unknown_proposal", "no such pending proposal")
    if ctx.time_ms >= proposal.created_ms + view.params.governance_window_ms:
        raise InvalidTransaction("proposal_expired", "the proposal's window has passed")
    if sender in proposal.approvals:
        raise InvalidTransaction("already_approved", "this validator already approved")
    _store_or_execute(view, replace(proposal, approvals=(*proposal.approvals, sender)), ctx)


def approved(view: Overlay, proposal: Proposal) -> bool:
    """[GOV-THRESHOLD.1] More than two thirds of the current validators' power approve."""
    validators = view.validators()
    total = sum(v.power for v in validators.values())
    power = sum(validators[a].power for a in proposal.approvals if a in validators)
    return power * 3 > total * 2


def _store_or_execute(view: Overlay, proposal: Proposal, ctx: TxContext) -> None:
    if not approved(view, proposal):
        view.put("proposal", proposal.proposal_id, proposal)
        return
    view.delete("proposal", proposal.proposal_id)
    # still valid now? (e.g. not admitted meanwhile; an upgrade's height still far enough)
    _check_action(view, proposal.action, ctx.height)
    _execute(view, proposal.action, ctx.height)


def _execute(view: Overlay, action: GovernanceAction, height: Height) -> None:
    if action.kind in UPGRADE_ACTIONS:
        execute_upgrade_action(view, action)
    elif action.kind == "admit_member":
        view.put("member", action.target, True)
    elif action.kind == "add_validator":
        address = address_from_pubkey(action.target)
        view.put("member", address, True)
        change = ValidatorChange("add", address, PublicKeyBytes(action.target), action.power)
        schedule_validator_change(view, height, change)
    else:
        schedule_validator_removal(view, Address(action.target), height)


def tick_proposals(view: Overlay, now: TimeMs) -> None:
    """[GOV-EXPIRE.1] Proposals past their window are dropped."""
    window = view.params.governance_window_ms
    for key in view.keys("proposal"):
        proposal = view.proposal(key)
        if proposal is not None and now >= proposal.created_ms + window:
            view.delete("proposal", key)


def apply_validator_changes(view: Overlay, next_height: int) -> None:
    """[GOV-VALSET.1] At the end of block h, changes effective at h+1 enter the set."""
    key = height_key(next_height)
    changes = view.get("valset_change", key)
    if not changes:
        return
    for change in changes:
        if change.kind == "add" and change.pubkey is not None:
            view.put("validator", change.address, Validator(change.pubkey, change.power))
        elif (change.kind == "remove" and change.address in view.validators()
              and len(view.validators()) > 1):
            view.delete("validator", change.address)
    view.delete("valset_change", key)
