"""The prediction tables: what the ledger remembers of models, executors and requests
[PRED-STATE.1].

``model`` (job id → ``DeployedModel``), ``predictor`` (address → bond, an integer),
``prediction`` (request id → ``Prediction``, never deleted, so the agreed answer stays
readable) and ``active_prediction`` (request id → true until settled, so the block tick
and the open-request count read only open requests). See protocol_spec/state.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from chain.predict.model import DeployedModel
from chain.predict.request import PredictionRequest
from chain.types import Address, Amount, Hash32, Height, TimeMs

PREDICT_TABLES = ("model", "predictor", "prediction", "active_prediction")


class PredictionStatus(StrEnum):
    DRAWING = "drawing"
    """Included; executors are drawn at ``included_height + 2`` [PRED-DRAW.1]."""
    COMMIT = "commit"
    """Drawn executors commit until ``deadline_ms`` [PRED-COMMIT.1]."""
    REVEAL = "reveal"
    """Committed executors open their answers until ``deadline_ms`` [PRED-REVEAL.1]."""
    AGREED = "agreed"
    """Settled with an agreed answer: fee paid out [PRED-SETTLE.1]."""
    NO_MAJORITY = "no_majority"
    """Settled without a majority: fee refunded [PRED-SETTLE.1]."""
    UNSERVED = "unserved"
    """Fewer candidates than k at the draw: fee refunded [PRED-DRAW.1]."""


OPEN = (PredictionStatus.DRAWING, PredictionStatus.COMMIT, PredictionStatus.REVEAL)


@dataclass(frozen=True, slots=True)
class ExecutorAnswer:
    """One drawn executor's commitment and, once opened, its answer."""

    executor: Address
    commitment: Hash32
    output_hash: Hash32 | None = None
    values: tuple[int, ...] | None = None
    """A ``values`` answer's integers [PRED-ANSWER.2]; None in other modes or for an invalid
    answer [PRED-IO.3]."""

    @property
    def opened(self) -> bool:
        return self.output_hash is not None

    def to_wire(self) -> list[Any]:
        return [self.executor, self.commitment, self.output_hash,
                None if self.values is None else list(self.values)]

    @classmethod
    def from_wire(cls, a: list[Any]) -> ExecutorAnswer:
        return cls(Address(a[0]), Hash32(a[1]), None if a[2] is None else Hash32(a[2]),
                   None if a[3] is None else tuple(a[3]))


@dataclass(frozen=True, slots=True)
class Prediction:
    """[PRED-STATE.1] A request and its progress. ``escrow`` holds the fee until settled
    (then 0); ``executors`` in draw order; ``answers`` in the order commits were applied;
    ``answer`` the agreed output hash."""

    request_id: Hash32
    requester: Address
    request: PredictionRequest
    included_height: Height
    status: PredictionStatus = PredictionStatus.DRAWING
    escrow: Amount = Amount(0)
    deadline_ms: TimeMs = TimeMs(0)
    executors: tuple[Address, ...] = ()
    answers: tuple[ExecutorAnswer, ...] = ()
    answer: Hash32 | None = None

    def answer_of(self, executor: Address) -> ExecutorAnswer | None:
        return next((a for a in self.answers if a.executor == executor), None)

    def to_wire(self) -> list[Any]:
        return [self.request_id, self.requester, self.request.to_wire(), self.included_height,
                str(self.status), self.escrow, self.deadline_ms, list(self.executors),
                [a.to_wire() for a in self.answers], self.answer]

    @classmethod
    def from_wire(cls, a: list[Any]) -> Prediction:
        return cls(Hash32(a[0]), Address(a[1]), PredictionRequest.from_wire(a[2]), Height(a[3]),
                   PredictionStatus(a[4]), Amount(a[5]), TimeMs(a[6]),
                   tuple(Address(x) for x in a[7]),
                   tuple(ExecutorAnswer.from_wire(x) for x in a[8]),
                   None if a[9] is None else Hash32(a[9]))


__all__ = ["OPEN", "PREDICT_TABLES", "DeployedModel", "ExecutorAnswer", "Prediction",
           "PredictionStatus"]
