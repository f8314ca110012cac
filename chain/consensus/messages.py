"""Consensus messages, their signed payloads and wire encodings [CONS-MSG.*].

Every signed payload is SHA-256 over the canonical encoding of a list that
starts with the domain and chain id [CONS-SIGN.1]:

- proposal:  ``["learningchain/v1", chain_id, "proposal", height, round, pol_round,
  block_hash, time_ms]``
- prevote:   ``["learningchain/v1", chain_id, "prevote", height, round, block_hash | nil]``
- precommit: ``["learningchain/v1", chain_id, "precommit", height, round, block_hash | nil]``

Wire forms (canonical msgpack arrays, first element a tag) [CONS-MSG.1]:

- ``["proposal", height, round, pol_round, block_hash, time_ms, block, proposer, sig]``
- ``["prevote" | "precommit", height, round, block_hash | nil, validator, sig]``
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from chain import fields
from chain.blocks import BLOCK_FRAMING_ROOM, MAX_BLOCK_BODY_BYTES
from chain.crypto import PrivateKey, sha256
from chain.encoding import encode
from chain.errors import FieldError
from chain.types import (
    ADDRESS_LEN,
    HASH_LEN,
    SIGNATURE_LEN,
    Address,
    Hash32,
    Height,
    Round,
    Signature,
    TimeMs,
)

from .errors import InvalidMessage
from .validators import DOMAIN

PREVOTE: Literal["prevote"] = "prevote"
PRECOMMIT: Literal["precommit"] = "precommit"
VoteKind = Literal["prevote", "precommit"]
VOTE_KINDS: tuple[VoteKind, VoteKind] = (PREVOTE, PRECOMMIT)

MAX_BLOCK_BYTES = MAX_BLOCK_BODY_BYTES + BLOCK_FRAMING_ROOM
"""[CONS-MSG.2] A proposal's block: the ledger's largest body (2 MiB of transactions,
[BLOCK-SIZE.2]) plus its header and framing (64 KiB)."""
MAX_MESSAGE_BYTES = MAX_BLOCK_BYTES + 256 * 1024
MAX_HEIGHT = 2**62
MAX_ROUND = 2**31
MAX_TIME_MS = 2**62


def proposal_digest(
    chain_id: str,
    height: int,
    round_: int,
    pol_round: int,
    block_hash: bytes,
    time_ms: int,
) -> Hash32:
    """[CONS-SIGN.1] The digest a proposer signs."""
    return sha256(
        encode([DOMAIN, chain_id, "proposal", height, round_, pol_round, block_hash, time_ms])
    )


def vote_digest(
    chain_id: str, kind: str, height: int, round_: int, block_hash: bytes | None
) -> Hash32:
    """[CONS-SIGN.1] The digest a validator signs for a prevote or precommit."""
    return sha256(encode([DOMAIN, chain_id, kind, height, round_, block_hash]))


@dataclass(frozen=True, slots=True)
class Proposal:
    """A proposer's signed offer of a block for (height, round) [CONS-PROPOSE.1]."""

    height: Height
    round: Round
    pol_round: Round
    """-1 for a fresh block; else the round whose >2/3 prevotes justify re-proposing it."""
    block_hash: Hash32
    time_ms: TimeMs
    """The block time; the block itself embeds the same value [CONS-TIME.1]."""
    block: bytes
    """The opaque block, hashed and checked by the application."""
    proposer: Address
    signature: Signature

    def digest(self, chain_id: str) -> Hash32:
        return proposal_digest(
            chain_id, self.height, self.round, self.pol_round, self.block_hash, self.time_ms
        )

    def to_wire(self) -> list[Any]:
        return [
            "proposal",
            self.height,
            self.round,
            self.pol_round,
            self.block_hash,
            self.time_ms,
            self.block,
            self.proposer,
            self.signature,
        ]


MAX_REFS = 1 << 20
"""A proposal by reference names at most this many transactions (the block's own bound)."""
MAX_HEAD_BYTES = 64 * 1024
SHORT_ID_LEN = 8
"""[CONS-MSG.4] A short id is the first 8 bytes of a transaction's hash."""


@dataclass(frozen=True, slots=True)
class ProposalRefs:
    """A proposal sent by reference [CONS-MSG.3] [NODE-CONS.4]: the block's head (the
    application's bytes of its header) and its transactions' hashes instead of the block.
    The signature is the proposal's own; a receiver rebuilds the block from its mempool."""

    height: Height
    round: Round
    pol_round: Round
    block_hash: Hash32
    time_ms: TimeMs
    head: bytes
    refs: tuple[bytes, ...]
    """Transaction hashes (32 bytes each) or, when ``short``, short ids [CONS-MSG.4]."""
    proposer: Address
    signature: Signature
    short: bool = False
    """[CONS-MSG.4] ``refs`` are short ids: the form ``proposal-ids``."""

    def shell(self) -> Proposal:
        """The proposal without its block: its digest and content id are the same."""
        return Proposal(self.height, self.round, self.pol_round, self.block_hash,
                        self.time_ms, b"", self.proposer, self.signature)

    def digest(self, chain_id: str) -> Hash32:
        return self.shell().digest(chain_id)

    def with_block(self, block: bytes) -> Proposal:
        return Proposal(self.height, self.round, self.pol_round, self.block_hash,
                        self.time_ms, block, self.proposer, self.signature)

    def to_short(self) -> ProposalRefs:
        """[CONS-MSG.4] The same proposal naming each transaction by its short id."""
        return replace(self, refs=tuple(r[:SHORT_ID_LEN] for r in self.refs), short=True)

    def to_wire(self) -> list[Any]:
        if self.short:
            return ["proposal-ids", self.height, self.round, self.pol_round, self.block_hash,
                    self.time_ms, self.head, b"".join(self.refs), self.proposer,
                    self.signature]
        return ["proposal-refs", self.height, self.round, self.pol_round, self.block_hash,
                self.time_ms, self.head, list(self.refs), self.proposer, self.signature]


@dataclass(frozen=True, slots=True)
class Vote:
    """A prevote or precommit for a block hash, or for nil (``block_hash is None``)."""

    kind: VoteKind
    height: Height
    round: Round
    block_hash: Hash32 | None
    validator: Address
    signature: Signature

    def digest(self, chain_id: str) -> Hash32:
        return vote_digest(chain_id, self.kind, self.height, self.round, self.block_hash)

    def to_wire(self) -> list[Any]:
        return [self.kind, self.height, self.round, self.block_hash, self.validator, self.signature]


def sign_proposal(
    key: PrivateKey,
    chain_id: str,
    height: Height,
    round_: Round,
    pol_round: Round,
    block_hash: Hash32,
    time_ms: TimeMs,
    block: bytes,
) -> Proposal:
    digest = proposal_digest(chain_id, height, round_, pol_round, block_hash, time_ms)
    return Proposal(
        height, round_, pol_round, block_hash, time_ms, block, key.address, key.sign(digest)
    )


def sign_vote(
    key: PrivateKey,
    chain_id: str,
    kind: VoteKind,
    height: Height,
    round_: Round,
    block_hash: Hash32 | None,
) -> Vote:
    digest = vote_digest(chain_id, kind, height, round_, block_hash)
    return Vote(kind, height, round_, block_hash, key.address, key.sign(digest))


# ---------------------------------------------------------------- wire decoding


def _int(value: Any, name: str, low: int, high: int) -> int:
    """The ledger's field reader (``chain.fields``), as a consensus ``bad_field`` error."""
    try:
        return fields.uint(value, name, low, high)
    except FieldError as e:
        raise InvalidMessage("bad_field", str(e)) from None


def _bytes(value: Any, name: str, length: int) -> bytes:
    try:
        return fields.blob(value, name, length, length)
    except FieldError as e:
        raise InvalidMessage("bad_field", str(e)) from None


def _rounds(fields: list[Any]) -> tuple[int, int]:
    """A proposal's round and pol_round (fields 2 and 3), -1 <= pol_round < round."""
    round_ = _int(fields[2], "round", 0, MAX_ROUND)
    pol_round = _int(fields[3], "pol_round", -1, MAX_ROUND)
    if pol_round >= round_:
        raise InvalidMessage("bad_pol_round", "pol_round must be -1 or below round")
    return round_, pol_round


def proposal_from_wire(fields: list[Any]) -> Proposal:
    if len(fields) != 9 or fields[0] != "proposal":
        raise InvalidMessage("bad_shape", "proposal must have 9 fields")
    height = _int(fields[1], "height", 1, MAX_HEIGHT)
    round_, pol_round = _rounds(fields)
    block = fields[6]
    if not isinstance(block, bytes) or len(block) > MAX_BLOCK_BYTES:
        raise InvalidMessage("bad_field", f"block must be bytes of at most {MAX_BLOCK_BYTES}")
    return Proposal(
        Height(height),
        Round(round_),
        Round(pol_round),
        Hash32(_bytes(fields[4], "block_hash", HASH_LEN)),
        TimeMs(_int(fields[5], "time_ms", 0, MAX_TIME_MS)),
        block,
        Address(_bytes(fields[7], "proposer", ADDRESS_LEN)),
        Signature(_bytes(fields[8], "signature", SIGNATURE_LEN)),
    )


def proposal_refs_from_wire(fields: list[Any]) -> ProposalRefs:
    if len(fields) != 10 or fields[0] != "proposal-refs":
        raise InvalidMessage("bad_shape", "a proposal by reference must have 10 fields")
    round_, pol_round = _rounds(fields)
    head = fields[6]
    if not isinstance(head, bytes) or len(head) > MAX_HEAD_BYTES:
        raise InvalidMessage("bad_field", f"head must be bytes of at most {MAX_HEAD_BYTES}")
    refs = fields[7]
    if not isinstance(refs, list) or len(refs) > MAX_REFS:
        raise InvalidMessage("bad_field", f"refs must be a list of at most {MAX_REFS}")
    return ProposalRefs(
        Height(_int(fields[1], "height", 1, MAX_HEIGHT)), Round(round_), Round(pol_round),
        Hash32(_bytes(fields[4], "block_hash", HASH_LEN)),
        TimeMs(_int(fields[5], "time_ms", 0, MAX_TIME_MS)), head,
        tuple(Hash32(_bytes(r, "ref", HASH_LEN)) for r in refs),
        Address(_bytes(fields[8], "proposer", ADDRESS_LEN)),
        Signature(_bytes(fields[9], "signature", SIGNATURE_LEN)))


def proposal_ids_from_wire(fields: list[Any]) -> ProposalRefs:
    """[CONS-MSG.4] ``proposal-ids``: the refs field is one byte string of short ids."""
    if len(fields) != 10 or fields[0] != "proposal-ids":
        raise InvalidMessage("bad_shape", "a proposal by short ids must have 10 fields")
    ids = fields[7]
    if not isinstance(ids, bytes) or len(ids) % SHORT_ID_LEN or \
            len(ids) > MAX_REFS * SHORT_ID_LEN:
        raise InvalidMessage("bad_field", f"ids must be bytes, {SHORT_ID_LEN} per "
                                          f"transaction, at most {MAX_REFS} of them")
    full = proposal_refs_from_wire(["proposal-refs", *fields[1:7], [], *fields[8:]])
    return replace(full, refs=tuple(ids[i:i + SHORT_ID_LEN]
                                    for i in range(0, len(ids), SHORT_ID_LEN)), short=True)


def vote_from_wire(fields: list[Any]) -> Vote:
    if len(fields) != 6 or fields[0] not in VOTE_KINDS:
        raise InvalidMessage("bad_shape", "vote must have 6 fields and a vote kind")
    kind: VoteKind = PREVOTE if fields[0] == PREVOTE else PRECOMMIT
    block_hash = None if fields[3] is None else Hash32(_bytes(fields[3], "block_hash", HASH_LEN))
    return Vote(
        kind,
        Height(_int(fields[1], "height", 1, MAX_HEIGHT)),
        Round(_int(fields[2], "round", 0, MAX_ROUND)),
        block_hash,
        Address(_bytes(fields[4], "validator", ADDRESS_LEN)),
        Signature(_bytes(fields[5], "signature", SIGNATURE_LEN)),
    )
