"""The prediction transactions' bodies and wire forms [TX-PREDICT.1].

Kept apart from their handlers (``chain.predict.tx``) and free of ``chain.transactions``
so that ``chain.transactions`` can list them in its type dispatch without an import cycle.
Each wire form is a fixed array; ``predict_reveal`` has 3 elements, or 4 with the inline
``values`` of a ``values`` answer [PRED-ANSWER.2].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from chain import fields as F
from chain.errors import FieldError
from chain.predict.model import FORMATS, InputSchema, OutputSchema
from chain.predict.params import MAX_INLINE_VALUES, MAX_ROYALTY_PERMILLE
from chain.predict.request import PredictionRequest
from chain.types import Hash32

SALT_LEN = 32
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def int64_list(value: Any, name: str, max_len: int) -> tuple[int, ...]:
    """[PRED-ANSWER.2] An array of at most ``max_len`` signed 64-bit integers."""
    items = F.array(value, name, max_len=max_len)
    for i, v in enumerate(items):
        if isinstance(v, bool) or not isinstance(v, int) or not INT64_MIN <= v <= INT64_MAX:
            raise FieldError(f"{name}[{i}]", "int64", v)
    return tuple(items)


@dataclass(frozen=True, slots=True)
class DeployModel:
    """[PRED-DEPLOY.1] The job's submitter makes its paid winner's model deployable."""

    TAG: ClassVar[str] = "deploy_model"
    job_id: Hash32
    model_hash: Hash32
    format: str
    input: InputSchema
    output: OutputSchema
    royalty_permille: int

    def to_wire(self) -> list[Any]:
        return [self.job_id, self.model_hash, self.format, self.input.to_wire(),
                self.output.to_wire(), self.royalty_permille]

    @classmethod
    def from_wire(cls, a: list[Any]) -> DeployModel:
        F.array(a, "deploy_model", 6)
        return cls(F.hash32(a[0], "job_id"), F.hash32(a[1], "model_hash"),
                   F.one_of(a[2], "format", FORMATS), InputSchema.from_wire(a[3]),
                   OutputSchema.from_wire(a[4]),
                   F.uint(a[5], "royalty_permille", 0, MAX_ROYALTY_PERMILLE))


@dataclass(frozen=True, slots=True)
class OfferPrediction:
    """[PRED-OFFER.1] A member joins the executor lottery and locks ``PREDICT_BOND``."""

    TAG: ClassVar[str] = "offer_prediction"

    def to_wire(self) -> list[Any]:
        return []

    @classmethod
    def from_wire(cls, a: list[Any]) -> OfferPrediction:
        F.array(a, "offer_prediction", 0)
        return cls()


@dataclass(frozen=True, slots=True)
class WithdrawPrediction:
    """[PRED-WITHDRAW.1] An executor leaves the lottery; what is left of its bond returns."""

    TAG: ClassVar[str] = "withdraw_prediction"

    def to_wire(self) -> list[Any]:
        return []

    @classmethod
    def from_wire(cls, a: list[Any]) -> WithdrawPrediction:
        F.array(a, "withdraw_prediction", 0)
        return cls()


@dataclass(frozen=True, slots=True)
class RequestPrediction:
    """[PRED-REQUEST.1] Ask for predictions; the fee is escrowed from the sender."""

    TAG: ClassVar[str] = "request_prediction"
    request: PredictionRequest

    def to_wire(self) -> list[Any]:
        return [self.request.to_wire()]

    @classmethod
    def from_wire(cls, a: list[Any]) -> RequestPrediction:
        F.array(a, "request_prediction", 1)
        return cls(PredictionRequest.from_wire(a[0]))


@dataclass(frozen=True, slots=True)
class PredictCommit:
    """[PRED-COMMIT.1] A drawn executor's hidden answer [PRED-ANSWER.1]."""

    TAG: ClassVar[str] = "predict_commit"
    request_id: Hash32
    commitment: Hash32

    def to_wire(self) -> list[Any]:
        return [self.request_id, self.commitment]

    @classmethod
    def from_wire(cls, a: list[Any]) -> PredictCommit:
        F.array(a, "predict_commit", 2)
        return cls(F.hash32(a[0], "request_id"), F.hash32(a[1], "commitment"))


@dataclass(frozen=True, slots=True)
class PredictReveal:
    """[PRED-REVEAL.1] Opens a commitment: the output hash, the salt and, for a ``values``
    answer, the values themselves (None otherwise: 3 wire elements)."""

    TAG: ClassVar[str] = "predict_reveal"
    request_id: Hash32
    output_hash: Hash32
    salt: bytes
    values: tuple[int, ...] | None = None

    def to_wire(self) -> list[Any]:
        wire: list[Any] = [self.request_id, self.output_hash, self.salt]
        if self.values is not None:
            wire.append(list(self.values))
        return wire

    @classmethod
    def from_wire(cls, a: list[Any]) -> PredictReveal:
        F.array(a, "predict_reveal")
        if len(a) not in (3, 4):
            raise FieldError("predict_reveal", "array of 3 or 4 items", f"{len(a)} items")
        values = int64_list(a[3], "values", MAX_INLINE_VALUES) if len(a) == 4 else None
        return cls(F.hash32(a[0], "request_id"), F.hash32(a[1], "output_hash"),
                   F.blob(a[2], "salt", SALT_LEN), values)


PREDICT_BODIES = (DeployModel, OfferPrediction, WithdrawPrediction, RequestPrediction,
                  PredictCommit, PredictReveal)
