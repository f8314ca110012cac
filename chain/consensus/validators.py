"""The validator set of one height: members, voting power, proposer selection.

[CONS-VALSET.1] A set is a tuple of validators sorted by address; no address
twice; every power a positive integer. Quorum: a group of validators whose
power ``p`` satisfies ``3 * p > 2 * total`` [CONS-QUORUM.1]; "more than f":
``3 * p > total`` [CONS-QUORUM.2].

[CONS-PROPOSER.1] The proposer of (height, round) is chosen by weight from a
hash: ``x = int(SHA-256(encode(["learningchain/v1", "proposer", set_hash,
height, round]))[:8]) mod total``; the validator whose cumulative-power
interval (in address order) contains ``x`` proposes. Stateless, so every node
computes it from (set, height, round) alone, and proportional to power.
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

    def proposer(self, height: Height, round_: Round) -> Validator:
        """[CONS-PROPOSER.1] Weighted, hash-seeded choice for (height, round)."""
        seed = sha256(encode([DOMAIN, "proposer", self.set_hash, height, round_]))
        x = int.from_bytes(seed[:8], "big") % self.total_power
        for v in self.validators:
            if x < v.power:
                return v
            x -= v.power
        raise AssertionError("unreachable: x < total_power")  # pragma: no cover
