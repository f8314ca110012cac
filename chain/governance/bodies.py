"""Governance's transaction bodies [GOV-*], upgrade plans [UPGRADE-PLAN.*] and equivocation
evidence [TX-EVIDENCE.1] (protocol_spec/ledger.md §3, §6, §10)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from chain import fields as F
from chain.errors import FieldError
from chain.types import Hash32
from chain.versions import MAX_PLANNED_VERSION

GOV_ACTIONS = ("admit_member", "add_validator", "remove_validator", "schedule_upgrade",
               "cancel_upgrade")
UPGRADE_ACTIONS = ("schedule_upgrade", "cancel_upgrade")
_PLAN_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,31}")


def plan_name(value: Any, name: str = "plan.name") -> str:
    """[UPGRADE-PLAN.1] 1..32 characters of ``a-z 0-9 . _ -``, starting with a letter or digit:
    it names the release operators install, in logs, files and file names."""
    text = F.text(value, name, 32, 1)
    if not _PLAN_NAME.fullmatch(text):
        raise FieldError(name, "a-z 0-9 . _ - (first a-z 0-9)", text)
    return text


@dataclass(frozen=True, slots=True)
class UpgradePlan:
    """[UPGRADE-PLAN.1] Protocol version ``version`` from block ``height`` on; the
    ``upgrade_plan`` record while pending, the body of a ``schedule_upgrade`` action."""

    name: str
    """The release's name (e.g. ``v2-memo``): what the halting node tells its operator."""
    version: int
    """The protocol version blocks carry from ``height`` on [BLOCK-VERSION.1]."""
    height: int
    """The first block of the new version."""

    def to_wire(self) -> list[Any]:
        return [self.name, self.version, self.height]

    @classmethod
    def from_wire(cls, v: Any) -> UpgradePlan:
        a = F.array(v, "plan", 3)
        return cls(plan_name(a[0]), F.uint(a[1], "plan.version", 2, MAX_PLANNED_VERSION),
                   F.uint(a[2], "plan.height", 1))


@dataclass(frozen=True, slots=True)
class GovernanceAction:
    """What a proposal does once more than two thirds of validator power approve."""

    kind: str
    target: bytes
    """admit_member/remove_validator: an address; add_validator: a public key;
    schedule_upgrade/cancel_upgrade: the plan's name (ASCII)."""
    power: int = 0
    """add_validator only: the new validator's voting power."""
    plan: UpgradePlan | None = None
    """schedule_upgrade only: the plan [UPGRADE-PLAN.1]."""

    def to_wire(self) -> list[Any]:
        if self.kind == "schedule_upgrade" and self.plan is not None:
            return [self.kind, self.plan.to_wire()]
        if self.kind == "cancel_upgrade":
            return [self.kind, self.target.decode("ascii")]
        return [self.kind, self.target, self.power]

    @classmethod
    def schedule(cls, plan: UpgradePlan) -> GovernanceAction:
        return cls("schedule_upgrade", plan.name.encode("ascii"), 0, plan)

    @classmethod
    def cancel(cls, name: str) -> GovernanceAction:
        return cls("cancel_upgrade", name.encode("ascii"))

    @classmethod
    def from_wire(cls, v: Any) -> GovernanceAction:
        a = F.array(v, "action", max_len=3)
        kind = F.one_of(a[0] if a else None, "action.kind", GOV_ACTIONS)
        if kind == "schedule_upgrade":  # [UPGRADE-PLAN.1] ["schedule_upgrade", plan]
            F.array(a, "action", 2)
            return cls.schedule(UpgradePlan.from_wire(a[1]))
        if kind == "cancel_upgrade":  # [UPGRADE-PLAN.3] ["cancel_upgrade", name]
            F.array(a, "action", 2)
            return cls.cancel(plan_name(a[1]))
        F.array(a, "action", 3)
        if kind == "add_validator":
            return cls(kind, F.pubkey(a[1], "action.target"), F.uint(a[2], "power", 1, 1000))
        return cls(kind, F.address(a[1], "action.target"), F.uint(a[2], "power", 0, 0))


@dataclass(frozen=True, slots=True)
class GovernancePropose:
    """[TX-GOV-PROPOSE] A validator proposes an action; its own approval counts."""

    TAG: ClassVar[str] = "gov_propose"
    action: GovernanceAction

    def to_wire(self) -> list[Any]:
        return [self.action.to_wire()]

    @classmethod
    def from_wire(cls, a: list[Any]) -> GovernancePropose:
        F.array(a, "gov_propose", 1)
        return cls(GovernanceAction.from_wire(a[0]))


@dataclass(frozen=True, slots=True)
class GovernanceApprove:
    """[TX-GOV-APPROVE] A validator approves a pending proposal."""

    TAG: ClassVar[str] = "gov_approve"
    proposal_id: Hash32

    def to_wire(self) -> list[Any]:
        return [self.proposal_id]

    @classmethod
    def from_wire(cls, a: list[Any]) -> GovernanceApprove:
        F.array(a, "gov_approve", 1)
        return cls(F.hash32(a[0], "proposal_id"))


@dataclass(frozen=True, slots=True)
class Evidence:
    """[TX-EVIDENCE] Two conflicting signed consensus votes by one validator."""

    TAG: ClassVar[str] = "evidence"
    vote_a: bytes
    vote_b: bytes

    def to_wire(self) -> list[Any]:
        return [self.vote_a, self.vote_b]

    @classmethod
    def from_wire(cls, a: list[Any]) -> Evidence:
        F.array(a, "evidence", 2)
        return cls(F.blob(a[0], "vote_a", max_len=1024), F.blob(a[1], "vote_b", max_len=1024))
