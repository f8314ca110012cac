"""Governance's transaction bodies [GOV-*] and equivocation evidence [TX-EVIDENCE.1]
(protocol_spec/ledger.md §3, §6)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from chain import fields as F
from chain.types import Hash32

GOV_ACTIONS = ("admit_member", "add_validator", "remove_validator")


@dataclass(frozen=True, slots=True)
class GovernanceAction:
    """What a proposal does once more than two thirds of validator power approve."""

    kind: str
    target: bytes
    """admit_member/remove_validator: an address; add_validator: a public key."""
    power: int = 0
    """add_validator only: the new validator's voting power."""

    def to_wire(self) -> list[Any]:
        return [self.kind, self.target, self.power]

    @classmethod
    def from_wire(cls, v: Any) -> GovernanceAction:
        a = F.array(v, "action", 3)
        kind = F.one_of(a[0], "action.kind", GOV_ACTIONS)
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
