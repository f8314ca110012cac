"""Governance's record [GOV-*]: a proposal waiting for approvals (the ``proposal`` table,
protocol_spec/state.md §2)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chain.governance.bodies import GovernanceAction
from chain.types import Address, Hash32, TimeMs


@dataclass(frozen=True, slots=True)
class Proposal:
    """A governance proposal waiting for more than two thirds of validator power."""

    proposal_id: Hash32
    proposer: Address
    action: GovernanceAction
    created_ms: TimeMs
    approvals: tuple[Address, ...]

    def to_wire(self) -> list[Any]:
        return [self.proposal_id, self.proposer, self.action.to_wire(), self.created_ms,
                list(self.approvals)]

    @classmethod
    def from_wire(cls, a: list[Any]) -> Proposal:
        return cls(Hash32(a[0]), Address(a[1]), GovernanceAction.from_wire(a[2]),
                   TimeMs(a[3]), tuple(Address(x) for x in a[4]))
