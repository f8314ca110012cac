"""The train job's transaction bodies [TX-*] (protocol_spec/ledger.md §3, §5): post a
job, claim a loss, reveal the model, commit and reveal a vote; and the commitments
that bind a model and a vote to their authors [JOB-COMMIT.1] [VOTE-COMMIT.1]."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, ClassVar

from chain import fields as F
from chain.encoding import encode
from chain.errors import FieldError
from chain.jobspec import JobSpec
from chain.types import DOMAIN, SALT_LEN, Address, Hash32


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
