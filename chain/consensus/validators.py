"""The validator set of one height: members, voting power, proposer selection.

[CONS-VALSET.1] A set is a tuple of validators sorted by address; no address
twice; every power a positive integer. Quorum: a group of validators whose
power ``p`` satisfies ``3 * p > 2 * total`` [CONS-QUORUM.1]; "more than f":
``3 * p > total`` [CONS-QUORUM.2].

[CONS-PROPOSER.1] Each height has a proposer order: a weighted draw without
replacement from the set. With ``remaining`` the not yet drawn validators in
address order, draw ``j`` (j = 0, 1, ...) takes ``x = int(SHA-256(encode(
["learningchain/v1", "proposer", set_hash, height, j]))[:8]) mod power(remaining)``
and picks the validator whose cumulative-power interval contains ``x``. The
proposer of (height, round) is ``order[round mod n]``. So the first proposer
of a height is chosen in proportion to power, and within any n consecutive
rounds every validator proposes once (an honest proposer within f + 1 rounds).
Stateless: every node computes it from (set, height, round) alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from chain.crypto import address_from_pubkey, sha256
from chain.encoding import encode
from chain.types import ADDRESS_LEN, PUBKEY_LEN, Address, Hash32, Height, PublicKeyBytes, Round

DOMAIN = "learningchain/v1"
MAX_VALIDATORS = 1000
MAX_POWER = 2**50
"""Total power stays far below 2**63, so every sum fits the encoding."""


@dataclass(frozen=True, slots=True)
class Validator:
    """One member of the permissioned set."""

    address: Address
    """20 bytes, derived from ``public_key`` [KEY-ADDR.1]."""
    public_key: PublicKeyBytes
    """33-byte compressed secp256k1 key that signs this validator's votes."""
    power: int
    """Voting power, a positive integer."""


@dataclass(frozen=True, slots=True)
class ValidatorSet:
    """The validators of one height, sorted by address [CONS-VALSET.1]."""

    validators: tuple[Validator, ...]
    """Members in ascending address order."""
    total_power: int = field(init=False)
    """Sum of all powers."""
    set_hash: Hash32 = field(init=False)
    """SHA-256 over ``encode([DOMAIN, "validator_set", [[address, pubkey, power], ...]])``."""
    _by_address: dict[Address, Validator] = field(init=False, repr=False, compare=False)
    _orders: dict[int, tuple[Validator, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.validators:
            raise ValueError("a validator set needs at least one validator")
        if len(self.validators) > MAX_VALIDATORS:
            raise ValueError(f"at most {MAX_VALIDATORS} validators")
        previous = b""
        for v in self.validators:
            if len(v.address) != ADDRESS_LEN or len(v.public_key) != PUBKEY_LEN:
                raise ValueError("validator address/public key has the wrong length")
            if address_from_pubkey(v.public_key) != v.address:
                raise ValueError("validator address does not match its public key")
            if not isinstance(v.power, int) or not 0 < v.power <= MAX_POWER:
                raise ValueError(f"validator power must be in [1, {MAX_POWER}]")
            if v.address <= previous:
                raise ValueError("validators must be sorted by address without duplicates")
            previous = v.address
        object.__setattr__(self, "total_power", sum(v.power for v in self.validators))
        members = [[v.address, v.public_key, v.power] for v in self.validators]
        object.__setattr__(self, "set_hash", sha256(encode([DOMAIN, "validator_set", members])))
        object.__setattr__(self, "_by_address", {v.address: v for v in self.validators})
        object.__setattr__(self, "_orders", {})

    @classmethod
    def from_members(cls, members: Iterable[tuple[PublicKeyBytes, int]]) -> ValidatorSet:
        """Builds a set from (public key, power) pairs in any order."""
        vals = [Validator(address_from_pubkey(pk), pk, power) for pk, power in members]
        return cls(tuple(sorted(vals, key=lambda v: v.address)))

    def __len__(self) -> int:
        return len(self.validators)

    def get(self, address: bytes) -> Validator | None:
        return self._by_address.get(Address(bytes(address)))

    def __contains__(self, address: object) -> bool:
        return isinstance(address, bytes) and address in self._by_address

    def power_of(self, addresses: Iterable[bytes]) -> int:
        """Sum of the power of the distinct members among ``addresses``."""
        seen = set(addresses)
        return sum(v.power for a in seen if (v := self._by_address.get(Address(a))) is not None)

    def is_quorum(self, power: int) -> bool:
        """[CONS-QUORUM.1] More than two thirds of the total power."""
        return 3 * power > 2 * self.total_power

    def exceeds_faulty(self, power: int) -> bool:
        """[CONS-QUORUM.2] More than one third: at least one honest validator included."""
        return 3 * power > self.total_power

    def proposer_order(self, height: Height) -> tuple[Validator, ...]:
        """[CONS-PROPOSER.1] The weighted draw without replacement for ``height``."""
        order = self._orders.get(height)
        if order is not None:
            return order
        remaining = list(self.validators)
        power = self.total_power
        drawn: list[Validator] = []
        for j in range(len(self.validators)):
            seed = sha256(encode([DOMAIN, "proposer", self.set_hash, height, j]))
            x = int.from_bytes(seed[:8], "big") % power
            for i, v in enumerate(remaining):
                if x < v.power:
                    drawn.append(remaining.pop(i))
                    power -= v.power
                    break
                x -= v.power
        if len(self._orders) >= 64:
            self._orders.clear()
        order = self._orders[height] = tuple(drawn)
        return order

    def proposer(self, height: Height, round_: Round) -> Validator:
        """[CONS-PROPOSER.1] ``proposer_order(height)[round mod n]``."""
        order = self.proposer_order(height)
        return order[round_ % len(order)]
