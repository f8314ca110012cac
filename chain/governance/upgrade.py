"""Upgrades at a height [UPGRADE-PLAN.*] [BLOCK-VERSION.1]: a plan that validators pass by
governance switches the protocol version at a fixed height, identically on every node.

The shape of the Cosmos SDK's x/upgrade: one pending plan at a time, a later plan replaces
it, a cancel removes it, and the switch happens at the start of the plan's block (its
begin-block step runs first), so every rule of block H runs under the new version and every
rule of every block below H under the old one.
"""

from __future__ import annotations

from chain.errors import InvalidTransaction
from chain.governance.bodies import GovernanceAction, UpgradePlan
from chain.state import META_PROTOCOL_VERSION, UPGRADE_PLAN_KEY, Overlay, StateReader
from chain.types import Height
from chain.versions import UPGRADE_MIN_DELAY


def check_upgrade_action(view: StateReader, action: GovernanceAction, height: Height) -> None:
    """[UPGRADE-PLAN.2] [UPGRADE-PLAN.3] Checked when proposed and again when it passes."""
    if action.kind == "schedule_upgrade":
        plan = action.plan
        if plan is None:  # the decoder always sets it; a hand-made action may not
            raise InvalidTransaction("bad_plan", "schedule_upgrade without a plan")
        current = view.protocol_version
        if plan.version <= current:
            raise InvalidTransaction("upgrade_not_newer", f"plan {plan.name!r} names version "
                                     f"{plan.version}; version {current} is already in force")
        earliest = height + UPGRADE_MIN_DELAY
        if plan.height < earliest:
            raise InvalidTransaction("upgrade_too_soon", f"plan {plan.name!r} at height "
                                     f"{plan.height}; the earliest allowed from block {height} "
                                     f"is {earliest}")
        return
    name = action.target.decode("ascii")
    pending = view.upgrade_plan
    if pending is None or pending.name != name:
        raise InvalidTransaction("no_such_plan", f"no pending upgrade plan named {name!r} "
                                 f"(pending: {pending.name if pending else 'none'!r})")


def execute_upgrade_action(view: Overlay, action: GovernanceAction) -> None:
    """[UPGRADE-PLAN.3] A passed plan replaces any pending one; a passed cancel removes it."""
    if action.kind == "schedule_upgrade" and action.plan is not None:
        view.put("upgrade_plan", UPGRADE_PLAN_KEY, action.plan)
    else:
        view.delete("upgrade_plan", UPGRADE_PLAN_KEY)


def activate_upgrade(view: Overlay, height: Height) -> UpgradePlan | None:
    """[UPGRADE-PLAN.4] At the start of the plan's block the version switches and the plan
    is done; returns the plan that took effect, if one did."""
    plan = view.upgrade_plan
    if plan is None or height < plan.height:
        return None
    view.put("meta", META_PROTOCOL_VERSION, plan.version)
    view.delete("upgrade_plan", UPGRADE_PLAN_KEY)
    return plan
