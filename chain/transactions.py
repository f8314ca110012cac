"""Transactions: the signed envelope, its canonical wire form, and the list of every
part's bodies [TX-*] (each part keeps its own in its ``bodies`` module; the transfer,
which every part shares, is here).

Wire form of a signed transaction (canonical msgpack array):
``[tag, sender_pubkey, nonce, body_fields, signature]``. The signature covers
``SHA-256(encode(["learningchain/v1", chain_id, "tx", tag, sender_pubkey, nonce,
body_fields]))`` so a transaction cannot be replayed on another chain or
reinterpreted as another type [TX-SIG.1]. The transaction id is SHA-256 of
the whole wire form.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from typing import Any, ClassVar

from chain import fields as F
from chain.crypto import PrivateKey, address_from_pubkey, verify
from chain.encoding import decode, encode
from chain.errors import DecodeError, FieldError
from chain.federated.open.bodies import (
    FED_BODIES,
    FedAggregate,
    FedCommit,
    FedPart,
    FedReveal,
    FedVoteCommit,
    FedVoteReveal,
)
from chain.governance.bodies import Evidence, GovernanceApprove, GovernancePropose
from chain.predict.bodies import (
    PREDICT_BODIES,
    DeployModel,
    OfferPrediction,
    PredictCommit,
    PredictReveal,
    RequestPrediction,
    WithdrawPrediction,
)
from chain.train.bodies import ClaimLoss, PostJob, RevealModel, VoteCommit, VoteReveal
from chain.train.holdout.bodies import HoldoutPublish, HoldoutReveal, HoldoutVoteReveal
from chain.types import (
    ADDRESS_LEN,
    DOMAIN,
    MAX_AMOUNT,
    SIGNATURE_LEN,
    Address,
    Amount,
    Hash32,
    PublicKeyBytes,
    Signature,
)
from chain.verifiers.bodies import VerifierJoin, VerifierLeave

MAX_TX_SIZE = 16 * 1024
"""[TX-SIZE.1] An encoded transaction larger than this is rejected."""
MAX_NONCE = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Transfer:
    """[TX-TRANSFER] Move credits to another address."""

    TAG: ClassVar[str] = "transfer"
    to: Address
    amount: Amount
    memo: bytes = b""
    """[TX-TRANSFER.2] The sender's reference (1..64 bytes), from protocol version 2; empty
    (and absent from the wire, so every earlier transfer keeps its bytes) without one."""

    def to_wire(self) -> list[Any]:
        if self.memo:
            return [self.to, self.amount, self.memo]
        return [self.to, self.amount]

    @classmethod
    def from_wire(cls, a: list[Any]) -> Transfer:
        F.array(a, "transfer", max_len=3)
        if len(a) == 3:  # one encoding only: a memo is 1..64 bytes, never empty
            return cls(F.address(a[0], "to"), F.amount(a[1], "amount"),
                       F.blob(a[2], "memo", max_len=MAX_MEMO_LEN) or _empty_memo())
        F.array(a, "transfer", 2)
        return cls(F.address(a[0], "to"), F.amount(a[1], "amount"))


MAX_MEMO_LEN = 64
"""[TX-TRANSFER.2] The longest transfer memo: a reference, not a message channel."""


def _empty_memo() -> bytes:
    raise FieldError("memo", "1..64 bytes (a transfer without a memo has 2 elements)", b"")
































Body = (Transfer | PostJob | ClaimLoss | RevealModel | VoteCommit | VoteReveal
        | GovernancePropose | GovernanceApprove | Evidence | VerifierJoin | VerifierLeave
        | HoldoutPublish | HoldoutReveal | HoldoutVoteReveal
        | DeployModel | OfferPrediction | WithdrawPrediction | RequestPrediction
        | PredictCommit | PredictReveal
        | FedCommit | FedReveal | FedAggregate | FedVoteCommit | FedVoteReveal | FedPart)
BODY_TYPES: dict[str, Any] = {
    t.TAG: t
    for t in (Transfer, PostJob, ClaimLoss, RevealModel, VoteCommit, VoteReveal,
              GovernancePropose, GovernanceApprove, Evidence, VerifierJoin, VerifierLeave,
              HoldoutPublish, HoldoutReveal, HoldoutVoteReveal, *PREDICT_BODIES, *FED_BODIES)
}


def signing_digest(chain_id: str, tag: str, pubkey: bytes, nonce: int, body: list[Any]) -> Hash32:
    payload = encode([DOMAIN, chain_id, "tx", tag, pubkey, nonce, body])
    return Hash32(hashlib.sha256(payload).digest())


_SIGNATURE_TAIL = 2 + SIGNATURE_LEN
"""A signature's encoding: bin 8 (0xc4), its length (0x40), the 64 bytes."""


@functools.lru_cache(maxsize=16)
def _signing_prefix(chain_id: str) -> bytes:
    """The signing array's header and first three items, encoded (one per chain id)."""
    return b"\x97" + encode(DOMAIN) + encode(chain_id) + encode("tx")


@dataclass(frozen=True, slots=True)
class SignedTransaction:
    """A body with its sender, nonce and signature; ``wire`` and ``hash`` are cached."""

    body: Body
    sender_pubkey: PublicKeyBytes
    nonce: int
    signature: Signature
    wire: bytes = field(repr=False, compare=False)
    hash: Hash32 = field(compare=False)
    sender: Address = field(compare=False)

    @classmethod
    def create(cls, body: Body, sender_pubkey: PublicKeyBytes, nonce: int,
               signature: Signature) -> SignedTransaction:
        wire = encode([body.TAG, sender_pubkey, nonce, body.to_wire(), signature])
        if len(wire) > MAX_TX_SIZE:
            raise DecodeError(f"transaction of {len(wire)} bytes exceeds {MAX_TX_SIZE}",
                              code="oversized")
        return cls(body, sender_pubkey, nonce, signature, wire,
                   Hash32(hashlib.sha256(wire).digest()), address_from_pubkey(sender_pubkey))

    def digest(self, chain_id: str) -> Hash32:
        """[TX-SIG.1] ``signing_digest``, hashed from the wire's own bytes where it can be.

        A msgpack array is its header and its items' encodings side by side, and the wire
        is canonical, so its items tag, pubkey, nonce and body (every byte between the
        5-array header and the signature's 66) are exactly the signing array's last four
        items: no body is encoded again (a quarter of a transfer's decode, on every node).
        """
        wire = self.wire
        if wire[0] == 0x95 and wire[-_SIGNATURE_TAIL:-SIGNATURE_LEN] == b"\xc4\x40":
            h = hashlib.sha256(_signing_prefix(chain_id))
            h.update(wire[1:-_SIGNATURE_TAIL])
            return Hash32(h.digest())
        return signing_digest(chain_id, self.body.TAG, self.sender_pubkey, self.nonce,
                              self.body.to_wire())

    def signature_valid(self, chain_id: str) -> bool:
        return verify(self.sender_pubkey, self.digest(chain_id), self.signature)

    @classmethod
    def decode(cls, data: bytes) -> SignedTransaction:
        """Parses the canonical wire form; every structural error is a ``DecodeError``.

        A plain transfer, nearly every transaction a busy node sees, is read from its
        bytes directly (``_plain_transfer``); anything else, or any doubt, takes the
        general path (``decode_general``), which gives every error."""
        if type(data) is bytes:
            tx = _plain_transfer(data)
            if tx is not None:
                return tx
        return cls.decode_general(data)

    @classmethod
    def decode_general(cls, data: bytes) -> SignedTransaction:
        """``decode`` for every kind: canonical msgpack, then each field's own check."""
        value = decode(data, max_size=MAX_TX_SIZE)
        a = F.array(value, "transaction", 5)
        tag = a[0]
        body_type = BODY_TYPES.get(tag) if isinstance(tag, str) else None
        if body_type is None:
            raise DecodeError(f"unknown transaction type {tag!r}", code="unknown_type")
        body = body_type.from_wire(F.array(a[3], "body"))
        pubkey = F.pubkey(a[1], "sender_pubkey")
        return cls(
            body,
            pubkey,
            F.uint(a[2], "nonce", 0, MAX_NONCE),
            F.signature(a[4], "signature"),
            bytes(data),
            Hash32(hashlib.sha256(data).digest()),
            # [KEY-ADDR.1] as address_from_pubkey, whose checks F.pubkey has just made
            Address(hashlib.sha256(pubkey).digest()[:ADDRESS_LEN]),
        )


_PLAIN_TRANSFER_HEAD = b"\x95\xa8transfer\xc4\x21"
"""A transaction's canonical bytes up to its public key when it is a transfer: a 5-array,
the tag ``transfer`` (fixstr 8) and the 33-byte key's bin 8 header."""
_PLAIN_TRANSFER_BODY = b"\x92\xc4\x14"
"""A transfer body without a memo: a 2-array whose first item is a 20-byte bin 8."""
_PLAIN_TRANSFER_SIZES = range(12 + 33 + 1 + 3 + 20 + 1 + _SIGNATURE_TAIL,
                              12 + 33 + 9 + 3 + 20 + 9 + _SIGNATURE_TAIL + 1)
"""A plain transfer is 136..152 bytes (each of its two integers takes 1..9)."""
_UINT_FORMS = {0xCC: (1, 0x80), 0xCD: (2, 0x100), 0xCE: (4, 0x1_0000), 0xCF: (8, 0x1_0000_0000)}
"""msgpack's unsigned int heads: (bytes that follow, the least value that needs them)."""


def _uint_at(data: bytes, pos: int) -> tuple[int, int]:
    """The unsigned int at ``pos`` in its shortest msgpack form (as ``encode`` writes it)
    and the position after it; (-1, pos) for anything else."""
    head = data[pos]
    if head < 0x80:
        return head, pos + 1
    form = _UINT_FORMS.get(head)
    if form is None:
        return -1, pos
    size, least = form
    value = int.from_bytes(data[pos + 1:pos + 1 + size], "big")
    return (value, pos + 1 + size) if value >= least else (-1, pos)


def _plain_transfer(data: bytes) -> SignedTransaction | None:
    """A transfer without a memo read straight from its bytes, or None to take the general
    path. It accepts only bytes the general path accepts and builds the same transaction
    ([TX-SIZE.1], the canonical encoding, [KEY-ADDR.1], the fields' ranges); every check
    that fails returns None, so the general path decides and words the error
    (tests/ledger/test_tx_plain_transfer.py compares the two on random and broken bytes).
    It skips the general path's generic msgpack round trip: two thirds of a transfer's
    decode, which every node makes once per transaction."""
    if len(data) not in _PLAIN_TRANSFER_SIZES or not data.startswith(_PLAIN_TRANSFER_HEAD) \
            or data[-_SIGNATURE_TAIL:-SIGNATURE_LEN] != b"\xc4\x40" or data[12] not in (2, 3):
        return None
    nonce, pos = _uint_at(data, 45)
    if not 0 <= nonce <= MAX_NONCE or data[pos:pos + 3] != _PLAIN_TRANSFER_BODY:
        return None
    amount, end = _uint_at(data, pos + 23)
    if end != len(data) - _SIGNATURE_TAIL or not 1 <= amount <= MAX_AMOUNT:
        return None
    pubkey = data[12:45]
    return SignedTransaction(
        Transfer(Address(data[pos + 3:pos + 23]), Amount(amount)), PublicKeyBytes(pubkey),
        nonce, Signature(data[-SIGNATURE_LEN:]), data, Hash32(hashlib.sha256(data).digest()),
        Address(hashlib.sha256(pubkey).digest()[:ADDRESS_LEN]))


def sign_transaction(key: PrivateKey, chain_id: str, nonce: int, body: Body) -> SignedTransaction:
    digest = signing_digest(chain_id, body.TAG, key.public_key, nonce, body.to_wire())
    return SignedTransaction.create(body, key.public_key, nonce, key.sign(digest))






