"""The round rules of the consensus core [CONS-PREVOTE.*] [CONS-LOCK.1] ... [CONS-SKIP.1].

Split from ``core.py`` to keep each module to one job: ``RoundRules`` holds the
conditions that move a round forward (Tendermint's "upon" rules); ``ConsensusCore``
holds the height's state, the inputs and the transitions these rules call.
"""

from __future__ import annotations

from enum import Enum

from chain.types import Address, Hash32, Round, TimeMs

from .actions import Action
from .messages import PRECOMMIT, PREVOTE, Proposal, VoteKind
from .tally import RoundTally
from .timeouts import TimeoutKind
from .validators import ValidatorSet


class Step(Enum):
    NEW_HEIGHT = 0
    PROPOSE = 1
    PREVOTE = 2
    PRECOMMIT = 3


class RoundRules:
    """The "upon" rules; the state they read and the transitions they call live in the core."""

    round: Round
    step: Step
    vset: ValidatorSet
    locked_round: Round
    locked_hash: Hash32 | None
    valid_round: Round
    valid_value: tuple[Hash32, bytes, TimeMs] | None
    proposals: dict[int, dict[Hash32, Proposal]]
    first_proposal: dict[int, Hash32]
    timely: dict[tuple[int, Hash32], bool]
    tallies: dict[tuple[VoteKind, int], RoundTally]
    max_round_seen: dict[Address, int]
    prevote_quorum: dict[int, Hash32]
    _done: set[tuple[str, int]]

    # transitions, defined by the core
    def _try_commit(self, now: int, out: list[Action]) -> bool:
        raise NotImplementedError

    def _prevote(self, block_hash: Hash32 | None, out: list[Action]) -> None:
        raise NotImplementedError

    def _precommit(self, block_hash: Hash32 | None, out: list[Action]) -> None:
        raise NotImplementedError

    def _start_round(self, round_: Round, now: int, out: list[Action]) -> None:
        raise NotImplementedError

    def _schedule(
        self, out: list[Action], kind: TimeoutKind, round_: Round, delay: int | None = None
    ) -> None:
        raise NotImplementedError

    def _valid(self, block_hash: Hash32, block: bytes, time_ms: TimeMs) -> bool:
        raise NotImplementedError

    def _valid_proposal(self, p: Proposal) -> bool:
        raise NotImplementedError

    def _block_of(self, block_hash: Hash32) -> tuple[bytes, TimeMs] | None:
        raise NotImplementedError

    # rules
    def _progress(self, now: int, out: list[Action]) -> None:
        """Applies every rule whose condition holds until none does."""
        while True:
            if self._try_commit(now, out):
                return
            fired = (
                self._rule_prevote(out)
                or self._rule_lock(out)
                or self._rule_valid_from_past_round()
                or self._rule_precommit_nil(out)
                or self._rule_wait_timeouts(out)
                or self._rule_skip_round(now, out)
            )
            if not fired:
                return

    def _rule_prevote(self, out: list[Action]) -> bool:
        """[CONS-PREVOTE.1] / [CONS-PREVOTE.2] Prevote on the round's proposal."""
        if self.step is not Step.PROPOSE or self.round not in self.first_proposal:
            return False
        p = self.proposals[self.round][self.first_proposal[self.round]]
        if p.pol_round < 0:  # [CONS-PREVOTE.1] a fresh block
            ok = (
                self.timely[(p.round, p.block_hash)]
                and self._valid_proposal(p)
                and (self.locked_round < 0 or self.locked_hash == p.block_hash)
            )
        else:  # [CONS-PREVOTE.2] a re-proposal justified by a proof of lock in pol_round
            pol = self.tallies.get((PREVOTE, p.pol_round))
            if pol is None or not self.vset.is_quorum(pol.power_for(p.block_hash)):
                return False  # wait for the proof of lock (or the propose timeout)
            ok = self._valid_proposal(p) and (
                self.locked_round <= p.pol_round or self.locked_hash == p.block_hash
            )
        self._prevote(p.block_hash if ok else None, out)
        return True

    def _rule_lock(self, out: list[Action]) -> bool:
        """[CONS-LOCK.1] >2/3 prevotes for a valid proposal of this round: lock and precommit."""
        if self.step not in (Step.PREVOTE, Step.PRECOMMIT) or ("lock", self.round) in self._done:
            return False
        tally = self.tallies.get((PREVOTE, self.round))
        if tally is None:
            return False
        for block_hash, p in self.proposals.get(self.round, {}).items():
            if self.vset.is_quorum(tally.power_for(block_hash)) and self._valid_proposal(p):
                self._done.add(("lock", self.round))
                self.valid_round = self.round
                self.valid_value = (block_hash, p.block, p.time_ms)
                if self.step is Step.PREVOTE:
                    self.locked_round, self.locked_hash = self.round, block_hash
                    self._precommit(block_hash, out)
                return True
        return False

    def _rule_valid_from_past_round(self) -> bool:
        """[CONS-VALID-VALUE.1] A polka seen late, for a past round: adopt it as valid value.

        Only changes what this node will propose (with that round as pol_round);
        peers check the proof themselves, so safety is unaffected. It lets an
        unlocked proposer free validators locked on that value.
        """
        for r, block_hash in self.prevote_quorum.items():
            if not self.valid_round < r < self.round:
                continue
            found = self._block_of(block_hash)
            if found is not None and self._valid(block_hash, *found):
                self.valid_round = Round(r)
                self.valid_value = (block_hash, found[0], found[1])
                return True
        return False

    def _rule_precommit_nil(self, out: list[Action]) -> bool:
        """[CONS-PRECOMMIT-NIL.1] >2/3 prevotes for nil: precommit nil."""
        if self.step is not Step.PREVOTE:
            return False
        tally = self.tallies.get((PREVOTE, self.round))
        if tally is None or not self.vset.is_quorum(tally.power_for(None)):
            return False
        self._precommit(None, out)
        return True

    def _rule_wait_timeouts(self, out: list[Action]) -> bool:
        """[CONS-PREVOTE-WAIT.1] / [CONS-PRECOMMIT-WAIT.1] >2/3 of any votes: start a timer."""
        r = self.round
        prevotes = self.tallies.get((PREVOTE, r))
        if (
            self.step is Step.PREVOTE
            and ("prevote_wait", r) not in self._done
            and prevotes is not None
            and self.vset.is_quorum(prevotes.total_power)
        ):
            self._done.add(("prevote_wait", r))
            self._schedule(out, TimeoutKind.PREVOTE, r)
            return True
        precommits = self.tallies.get((PRECOMMIT, r))
        if (
            self.step is not Step.NEW_HEIGHT
            and ("precommit_wait", r) not in self._done
            and precommits is not None
            and self.vset.is_quorum(precommits.total_power)
        ):
            self._done.add(("precommit_wait", r))
            self._schedule(out, TimeoutKind.PRECOMMIT, r)
            return True
        return False

    def _rule_skip_round(self, now: int, out: list[Action]) -> bool:
        """[CONS-SKIP.1] Messages of a higher round from more than f power: go there."""
        if all(r <= self.round for r in self.max_round_seen.values()):
            return False
        ahead = sorted(
            ((r, a) for a, r in self.max_round_seen.items() if r > self.round), reverse=True
        )
        power = 0
        for r, address in ahead:
            member = self.vset.get(address)
            power += member.power if member is not None else 0
            if self.vset.exceeds_faulty(power):
                self._start_round(Round(r), now, out)
                return True
        return False
