"""The verifiers' transaction bodies [VERIFY-JOIN.1] [VERIFY-LEAVE.1]: opt in with a
bond, opt out (protocol_spec/ledger.md §3, §5)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from chain import fields as F


@dataclass(frozen=True, slots=True)
class VerifierJoin:
    """[TX-VERIFIER-JOIN] A member opts in to verify jobs and bonds ``verifier_bond``."""

    TAG: ClassVar[str] = "verifier_join"

    def to_wire(self) -> list[Any]:
        return []

    @classmethod
    def from_wire(cls, a: list[Any]) -> VerifierJoin:
        F.array(a, "verifier_join", 0)
        return cls()


@dataclass(frozen=True, slots=True)
class VerifierLeave:
    """[TX-VERIFIER-LEAVE] A verifier opts out; its bond returns to its balance."""

    TAG: ClassVar[str] = "verifier_leave"

    def to_wire(self) -> list[Any]:
        return []

    @classmethod
    def from_wire(cls, a: list[Any]) -> VerifierLeave:
        F.array(a, "verifier_leave", 0)
        return cls()
