"""Vote bookkeeping for one (kind, round): first vote per validator, power per value."""

from __future__ import annotations

from dataclasses import dataclass, field

from chain.types import Address, Hash32

from .messages import Vote


@dataclass(slots=True)
class RoundTally:
    """The votes of one kind in one round; the first vote of each validator counts."""

    votes: dict[Address, Vote] = field(default_factory=dict)
    power_by_value: dict[Hash32 | None, int] = field(default_factory=dict)
    total_power: int = 0

    def add(self, vote: Vote, power: int) -> Vote | None:
        """Adds ``vote``; returns a previously counted conflicting vote, if any.

        A duplicate of a counted vote changes nothing and returns None.
        """
        existing = self.votes.get(vote.validator)
        if existing is not None:
            return existing if existing.block_hash != vote.block_hash else None
        self.votes[vote.validator] = vote
        self.power_by_value[vote.block_hash] = self.power_by_value.get(vote.block_hash, 0) + power
        self.total_power += power
        return None

    def power_for(self, value: Hash32 | None) -> int:
        return self.power_by_value.get(value, 0)

    def votes_for(self, value: Hash32 | None) -> list[Vote]:
        return [v for v in self.votes.values() if v.block_hash == value]
