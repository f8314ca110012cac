"""Transactions: the bodies, the signed envelope, canonical wire form [TX-*].

Wire form of a signed transaction (canonical msgpack array):
``[tag, sender_pubkey, nonce, body_fields, signature]``. The signature covers
``SHA-256(encode(["learningchain/v1", chain_id, "tx", tag, sender_pubkey, nonce,
body_fields]))`` so a transaction cannot be replayed on another chain or
reinterpreted as another type [TX-SIG.1]. The transaction id is SHA-256 of
the whole wire form.
"""

from __future__ import annotations

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
from chain.jobspec import DataRef, JobSpec
from chain.predict.bodies import (
    PREDICT_BODIES,
    DeployModel,
    OfferPrediction,
    PredictCommit,
    PredictReveal,
    RequestPrediction,
    WithdrawPrediction,
)
from chain.types import Address, Amount, Hash32, PublicKeyBytes, Signature

DOMAIN = "learningchain/v1"
MAX_TX_SIZE = 16 * 1024
"""[TX-SIZE.1] An encoded transaction larger than this is rejected."""
MAX_NONCE = 2**63 - 1
SALT_LEN = 32


@dataclass(frozen=True, slots=True)
class Transfer:
    """[TX-TRANSFER] Move credits to another address."""

    TAG: ClassVar[str] = "transfer"
    to: Address
    amount: Amount

    def to_wire(self) -> list[Any]:
        return [self.to, self.amount]

    @classmethod
    def from_wire(cls, a: list[Any]) -> Transfer:
        F.array(a, "transfer", 2)
        return cls(F.address(a[0], "to"), F.amount(a[1], "amount"))


@dataclass(frozen=True, slots=True)
class PostJob:
    """[TX-POST-JOB] Post a job; its escrow leaves the sender in the same block."""

    TAG: ClassVar[str] = "post_job"
    spec: JobSpec

    def to_wire(self) -> list[Any]:
        return [self.spec.to_wire()]

    @classmethod
    def from_wire(cls, a: list[Any]) -> PostJob:
        F.array(a, "post_job", 1)
        return cls(JobSpec.from_wire(a[0]))


@dataclass(frozen=True, slots=True)
class ClaimLoss:
    """[TX-CLAIM] Announce a loss with a commitment binding the model to the claimer."""

    TAG: ClassVar[str] = "claim"
    job_id: Hash32
    loss: float
    commitment: Hash32
    """``model_commitment(job_id, claimer, model_hash, salt)``."""

    def to_wire(self) -> list[Any]:
        return [self.job_id, self.loss, self.commitment]

    @classmethod
    def from_wire(cls, a: list[Any]) -> ClaimLoss:
        F.array(a, "claim", 3)
        return cls(F.hash32(a[0], "job_id"), F.finite_float(a[1], "loss"),
                   F.hash32(a[2], "commitment"))


@dataclass(frozen=True, slots=True)
class RevealModel:
    """[TX-REVEAL] The claimer whose turn it is opens its commitment."""

    TAG: ClassVar[str] = "reveal"
    job_id: Hash32
    model_hash: Hash32
    salt: bytes

    def to_wire(self) -> list[Any]:
        return [self.job_id, self.model_hash, self.salt]

    @classmethod
    def from_wire(cls, a: list[Any]) -> RevealModel:
        F.array(a, "reveal", 3)
        return cls(F.hash32(a[0], "job_id"), F.hash32(a[1], "model_hash"),
                   F.blob(a[2], "salt", SALT_LEN))


@dataclass(frozen=True, slots=True)
class VoteCommit:
    """[TX-VOTE-COMMIT] A hidden vote on the current turn's claim (no copying possible)."""

    TAG: ClassVar[str] = "vote_commit"
    job_id: Hash32
    claimer: Address
    commitment: Hash32
    """``vote_commitment(job_id, claimer, voter, valid, measured_loss, salt)``."""

    def to_wire(self) -> list[Any]:
        return [self.job_id, self.claimer, self.commitment]

    @classmethod
    def from_wire(cls, a: list[Any]) -> VoteCommit:
        F.array(a, "vote_commit", 3)
        return cls(F.hash32(a[0], "job_id"), F.address(a[1], "claimer"),
                   F.hash32(a[2], "commitment"))


@dataclass(frozen=True, slots=True)
class VoteReveal:
    """[TX-VOTE-REVEAL] Opens a vote: valid/invalid and the loss the voter measured, and
    the model's loss on the turn's challenge subset [VOTE-CHALLENGE.1] when it has one."""

    TAG: ClassVar[str] = "vote_reveal"
    job_id: Hash32
    claimer: Address
    valid: bool
    measured_loss: float | None
    """None when the model could not be evaluated at all (then ``valid`` is False)."""
    salt: bytes
    challenge_loss: float | None = None
    """[VOTE-CHALLENGE.1] The loss on the challenge subset, measured in the same run; None:
    no answer (the 5-element form every vote had before the challenge)."""

    def to_wire(self) -> list[Any]:
        wire = [self.job_id, self.claimer, self.valid, self.measured_loss, self.salt]
        if self.challenge_loss is not None:
            wire.append(self.challenge_loss)
        return wire

    @classmethod
    def from_wire(cls, a: list[Any]) -> VoteReveal:
        """5 elements (no challenge answer) or 6, the sixth a finite float: one encoding
        per vote [ENC-CANON.1], and every vote sent before the challenge still decodes."""
        F.array(a, "vote_reveal")
        if len(a) not in (5, 6):
            raise FieldError("vote_reveal", "array of 5 or 6 items", f"{len(a)} items")
        challenge = F.finite_float(a[5], "challenge_loss") if len(a) == 6 else None
        return cls(F.hash32(a[0], "job_id"), F.address(a[1], "claimer"),
                   F.boolean(a[2], "valid"), F.optional_float(a[3], "measured_loss"),
                   F.blob(a[4], "salt", SALT_LEN), challenge)


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


@dataclass(frozen=True, slots=True)
class HoldoutPublish:
    """[TX-HOLDOUT-PUBLISH] The submitter names the public part of its holdout pool
    [HOLDOUT-PUBLISH.1]: a data blob whose samples are the split's public indices."""

    TAG: ClassVar[str] = "holdout_publish"
    job_id: Hash32
    part: DataRef

    def to_wire(self) -> list[Any]:
        return [self.job_id, self.part.to_wire()]

    @classmethod
    def from_wire(cls, a: list[Any]) -> HoldoutPublish:
        F.array(a, "holdout_publish", 2)
        return cls(F.hash32(a[0], "job_id"), DataRef.from_wire(a[1], "public"))


@dataclass(frozen=True, slots=True)
class HoldoutReveal:
    """[TX-HOLDOUT-REVEAL] After expiry the submitter names the hidden part
    [HOLDOUT-REVEAL.1]; voters check it against the pool's root."""

    TAG: ClassVar[str] = "holdout_reveal"
    job_id: Hash32
    part: DataRef

    def to_wire(self) -> list[Any]:
        return [self.job_id, self.part.to_wire()]

    @classmethod
    def from_wire(cls, a: list[Any]) -> HoldoutReveal:
        F.array(a, "holdout_reveal", 2)
        return cls(F.hash32(a[0], "job_id"), DataRef.from_wire(a[1], "hidden"))


@dataclass(frozen=True, slots=True)
class HoldoutVoteReveal:
    """[TX-HOLDOUT-VOTE-REVEAL] Opens a holdout vote [HOLDOUT-VOTE.1]: the public verdict as
    ``vote_reveal``, whether the hidden part matched its root, and the hidden loss."""

    TAG: ClassVar[str] = "holdout_vote_reveal"
    job_id: Hash32
    claimer: Address
    valid: bool
    measured_loss: float | None
    holdout_ok: bool
    hidden_loss: float | None
    """None when the hidden part did not match (then ``holdout_ok`` is False) or the model
    could not be evaluated on it."""
    salt: bytes
    hidden_challenge_loss: float | None = None
    """[HOLDOUT-CHALLENGE.1] The model's loss on the turn's challenge subset of the hidden
    part, measured in the hidden run; None: no answer (the 7-element form of votes sent
    before the rule)."""
    challenge_loss: float | None = None
    """[HOLDOUT-CHALLENGE.1] The public run's answer to the turn's challenge
    [VOTE-CHALLENGE.1]; None: none (then the form has at most 8 elements)."""

    def to_wire(self) -> list[Any]:
        wire = [self.job_id, self.claimer, self.valid, self.measured_loss, self.holdout_ok,
                self.hidden_loss, self.salt]
        if self.challenge_loss is not None:
            wire += [self.hidden_challenge_loss, self.challenge_loss]
        elif self.hidden_challenge_loss is not None:
            wire.append(self.hidden_challenge_loss)
        return wire

    @classmethod
    def from_wire(cls, a: list[Any]) -> HoldoutVoteReveal:
        """7 elements (no answer), 8 (the hidden answer, a finite float) or 9 (the hidden
        answer or nil, then the public answer, a finite float) [HOLDOUT-CHALLENGE.1]: one
        encoding per vote [ENC-CANON.1], and every vote sent before the rule still decodes."""
        F.array(a, "holdout_vote_reveal")
        if len(a) not in (7, 8, 9):
            raise FieldError("holdout_vote_reveal", "array of 7, 8 or 9 items",
                             f"{len(a)} items")
        hidden = None
        if len(a) == 8:
            hidden = F.finite_float(a[7], "hidden_challenge_loss")
        elif len(a) == 9:
            hidden = None if a[7] is None else F.finite_float(a[7], "hidden_challenge_loss")
        public = F.finite_float(a[8], "challenge_loss") if len(a) == 9 else None
        return cls(F.hash32(a[0], "job_id"), F.address(a[1], "claimer"),
                   F.boolean(a[2], "valid"), F.optional_float(a[3], "measured_loss"),
                   F.boolean(a[4], "holdout_ok"), F.optional_float(a[5], "hidden_loss"),
                   F.blob(a[6], "salt", SALT_LEN), hidden, public)


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
        return signing_digest(chain_id, self.body.TAG, self.sender_pubkey, self.nonce,
                              self.body.to_wire())

    def signature_valid(self, chain_id: str) -> bool:
        return verify(self.sender_pubkey, self.digest(chain_id), self.signature)

    @classmethod
    def decode(cls, data: bytes) -> SignedTransaction:
        """Parses the canonical wire form; every structural error is a ``DecodeError``."""
        value = decode(data, max_size=MAX_TX_SIZE)
        a = F.array(value, "transaction", 5)
        tag = a[0]
        body_type = BODY_TYPES.get(tag) if isinstance(tag, str) else None
        if body_type is None:
            raise DecodeError(f"unknown transaction type {tag!r}", code="unknown_type")
        body = body_type.from_wire(F.array(a[3], "body"))
        return cls(
            body,
            F.pubkey(a[1], "sender_pubkey"),
            F.uint(a[2], "nonce", 0, MAX_NONCE),
            F.signature(a[4], "signature"),
            bytes(data),
            Hash32(hashlib.sha256(data).digest()),
            address_from_pubkey(a[1]),
        )


def sign_transaction(key: PrivateKey, chain_id: str, nonce: int, body: Body) -> SignedTransaction:
    digest = signing_digest(chain_id, body.TAG, key.public_key, nonce, body.to_wire())
    return SignedTransaction.create(body, key.public_key, nonce, key.sign(digest))


def model_commitment(job_id: bytes, claimer: bytes, model_hash: bytes, salt: bytes) -> Hash32:
    """[JOB-COMMIT.1] Binds a model to the job and the claimer: copying it helps no one."""
    return Hash32(hashlib.sha256(
        encode([DOMAIN, "model-commitment", job_id, claimer, model_hash, salt])).digest())


def vote_commitment(job_id: bytes, claimer: bytes, voter: bytes, valid: bool,
                    measured_loss: float | None, salt: bytes,
                    challenge_loss: float | None = None) -> Hash32:
    """[VOTE-COMMIT.1] Binds a hidden vote to its voter so a vote cannot be copied; with a
    challenge answer [VOTE-CHALLENGE.1] the answer is the ninth element, so it is fixed at
    the commit like the rest of the vote."""
    fields: list[Any] = [DOMAIN, "vote-commitment", job_id, claimer, voter, valid,
                         measured_loss, salt]
    if challenge_loss is not None:
        fields.append(challenge_loss)
    return Hash32(hashlib.sha256(encode(fields)).digest())


def holdout_vote_commitment(job_id: bytes, claimer: bytes, voter: bytes, valid: bool,
                            measured_loss: float | None, holdout_ok: bool,
                            hidden_loss: float | None, salt: bytes,
                            hidden_challenge_loss: float | None = None,
                            challenge_loss: float | None = None) -> Hash32:
    """[HOLDOUT-VOTE.1] A holdout vote's commitment: the vote commitment's fields plus the
    hidden-part check and the hidden loss, under its own label; the answers
    [HOLDOUT-CHALLENGE.1] follow as in the vote's wire form (the hidden one eleventh; with a
    public one, the hidden one or nil eleventh and the public one twelfth), fixed at the
    commit."""
    fields: list[Any] = [DOMAIN, "holdout-vote-commitment", job_id, claimer, voter, valid,
                         measured_loss, holdout_ok, hidden_loss, salt]
    if challenge_loss is not None:
        fields += [hidden_challenge_loss, challenge_loss]
    elif hidden_challenge_loss is not None:
        fields.append(hidden_challenge_loss)
    return Hash32(hashlib.sha256(encode(fields)).digest())
