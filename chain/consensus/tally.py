"""Vote bookkeeping for one (kind, round).

[CONS-COUNT.1] "More than 2/3 of the power voted v" counts each validator at
most once per value, and counts a validator that voted two values for both
(as the protocol's message counting does): two quorums for different values
still share an honest validator, so safety holds, and a proof of lock stays
provable to nodes that first heard an equivocator's other vote. "More than
2/3 voted anything" counts each validator once. To bound memory a validator's
votes beyond its first are kept only for nil, for blocks the node holds, or
as its second value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chain.types import Address, Hash32

from .messages import Vote

MAX_UNHELD_VALUES = 2


@dataclass(slots=True)
class RoundTally:
    """The votes of one kind in one round."""

    first: dict[Address, Vote] = field(default_factory=dict)
    """Each validator's first vote."""
    by_value: dict[Hash32 | None, dict[Address, Vote]] = field(default_factory=dict)
    power_by_value: dict[Hash32 | None, int] = field(default_factory=dict)
    total_power: int = 0
    """Power of the validators that voted at all (each once)."""
    values_of: dict[Address, int] = field(default_factory=dict)

    def add(self, vote: Vote, power: int, *, held: bool) -> tuple[bool, Vote | None]:
        """Counts ``vote``; returns (counted, the earlier conflicting vote if any).

        ``held``: the node holds the block voted for (or it is nil).
        """
        voters = self.by_value.get(vote.block_hash)
        if voters is not None and vote.validator in voters:
            return False, None  # duplicate
        earlier = self.first.get(vote.validator)
        if earlier is None:
            self.first[vote.validator] = vote
            self.total_power += power
        elif not held and self.values_of.get(vote.validator, 0) >= MAX_UNHELD_VALUES:
            return False, earlier
        self.values_of[vote.validator] = self.values_of.get(vote.validator, 0) + 1
        self.by_value.setdefault(vote.block_hash, {})[vote.validator] = vote
        self.power_by_value[vote.block_hash] = self.power_by_value.get(vote.block_hash, 0) + power
        return True, earlier

    def power_for(self, value: Hash32 | None) -> int:
        return self.power_by_value.get(value, 0)

    def votes_for(self, value: Hash32 | None) -> list[Vote]:
        return list(self.by_value.get(value, {}).values())

    def has_voted(self, vote: Vote) -> bool:
        return vote.validator in self.by_value.get(vote.block_hash, {})
