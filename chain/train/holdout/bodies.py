"""train/v3's hidden test set's transaction bodies [HOLDOUT-PUBLISH.1]
[HOLDOUT-REVEAL.1] [HOLDOUT-VOTE.1] and the holdout vote's commitment."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, ClassVar

from chain import fields as F
from chain.encoding import encode
from chain.errors import FieldError
from chain.jobspec import DataRef
from chain.types import DOMAIN, SALT_LEN, Address, Hash32


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
