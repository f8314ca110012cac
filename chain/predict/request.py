"""The prediction request and its bounds [PRED-REQ.1-6].

Wire: a fixed array. ``from_wire`` checks each field alone [PRED-REQ.1-3] [PRED-REQ.6];
``check_request`` checks it against the named model and the requester's open requests
[PRED-REQ.4] [PRED-REQ.5], the part that needs state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chain import fields
from chain.errors import FieldError, InvalidTransaction
from chain.predict.model import DeployedModel
from chain.predict.params import (
    MAX_CKKS_FEATURES,
    MAX_INLINE_VALUES,
    MAX_K,
    MAX_OPEN_PER_REQUESTER,
    MAX_ROWS,
    MAX_WINDOW_MS,
    MIN_FEE_PER_ROW,
    MIN_K,
    MIN_WINDOW_MS,
)
from chain.types import MAX_AMOUNT, Amount, Hash32

MODES = ("labels", "values", "ciphertext")
"""[PRED-REQ.1] ``labels``: a classifier's labels, agreed exactly. ``values``: fixed-point
regression outputs, agreed within ``tolerance``. ``ciphertext``: an encrypted linear score
(CKKS), agreed on the exact bytes of the result [PRED-AGREE.3]."""
MAX_TOLERANCE = 2**62


@dataclass(frozen=True, slots=True)
class PredictionRequest:
    """[PRED-REQ.1] Ask ``k`` executors to run model ``model_id`` on ``rows`` rows held in blob
    ``input_blob``; ``fee`` is escrowed at inclusion. ``tolerance`` (fixed-point units, ``values``
    mode only, else 0) bounds how far two agreeing answers may differ per value."""

    model_id: Hash32
    input_blob: Hash32
    rows: int
    fee: Amount
    k: int
    mode: str
    tolerance: int
    commit_window_ms: int
    reveal_window_ms: int

    def __post_init__(self) -> None:
        check_fields(self)

    def to_wire(self) -> list[Any]:
        return [self.model_id, self.input_blob, self.rows, self.fee, self.k, self.mode,
                self.tolerance, self.commit_window_ms, self.reveal_window_ms]

    @classmethod
    def from_wire(cls, wire: Any) -> PredictionRequest:
        w = fields.array(wire, "request", 9)
        return cls(fields.hash32(w[0], "model_id"), fields.hash32(w[1], "input_blob"),
                   fields.uint(w[2], "rows", 1, MAX_ROWS), fields.amount(w[3], "fee"),
                   fields.uint(w[4], "k", MIN_K, MAX_K), fields.one_of(w[5], "mode", MODES),
                   fields.uint(w[6], "tolerance", 0, MAX_TOLERANCE),
                   fields.uint(w[7], "commit_window_ms", MIN_WINDOW_MS, MAX_WINDOW_MS),
                   fields.uint(w[8], "reveal_window_ms", MIN_WINDOW_MS, MAX_WINDOW_MS))


def check_fields(req: PredictionRequest) -> None:
    """[PRED-REQ.2] k odd in [3, 15]. [PRED-REQ.3] 1..4096 rows. [PRED-REQ.6] windows in
    [1 s, 1 h]; tolerance only in ``values`` mode."""
    if not MIN_K <= req.k <= MAX_K or req.k % 2 == 0:
        raise FieldError("k", f"odd int in [{MIN_K}, {MAX_K}]", req.k)
    if not 1 <= req.rows <= MAX_ROWS:
        raise FieldError("rows", f"int in [1, {MAX_ROWS}]", req.rows)
    if req.mode not in MODES:
        raise FieldError("mode", f"one of {list(MODES)}", req.mode)
    if not 0 <= req.tolerance <= MAX_TOLERANCE or (req.mode != "values" and req.tolerance):
        raise FieldError("tolerance", "0 unless mode is values; at most 2**62", req.tolerance)
    if not 1 <= req.fee <= MAX_AMOUNT:
        raise FieldError("fee", f"int in [1, {MAX_AMOUNT}]", req.fee)
    for name in ("commit_window_ms", "reveal_window_ms"):
        value = getattr(req, name)
        if not MIN_WINDOW_MS <= value <= MAX_WINDOW_MS:
            raise FieldError(name, f"int in [{MIN_WINDOW_MS}, {MAX_WINDOW_MS}]", value)


def min_fee(rows: int, k: int) -> int:
    """[PRED-REQ.4] ``rows × k × MIN_FEE_PER_ROW``: every run of every row is paid for."""
    return rows * k * MIN_FEE_PER_ROW


def check_request(req: PredictionRequest, model: DeployedModel | None, open_requests: int) -> None:
    """[PRED-REQ.1] the model exists, is not unservable [PRED-UNLOADABLE.3], and its output
    fits the mode ([PRED-CKKS.1]: one output and at most 128 features for ciphertext mode);
    [PRED-REQ.4] the fee covers every run; [PRED-REQ.5] the requester holds fewer than 8
    open requests."""
    if model is None:
        raise InvalidTransaction("unknown_model", f"no deployed model {req.model_id.hex()}")
    if model.unservable_by is not None:  # [PRED-UNLOADABLE.3]
        raise InvalidTransaction("model_unservable", f"model {req.model_id.hex()} does not load: "
                                                     "request "
                                                     f"{model.unservable_by.hex()} agreed so")
    kind = model.output.kind
    if (req.mode == "labels") != (kind == "classes"):
        raise InvalidTransaction("mode_mismatch", f"mode {req.mode} does not fit a {kind} model")
    if req.mode == "values" and req.rows * model.output.outputs > MAX_INLINE_VALUES:
        raise InvalidTransaction("too_many_values",
                                 f"{req.rows} rows × {model.output.outputs} outputs > "
                                 f"{MAX_INLINE_VALUES} inline values")
    if req.mode == "ciphertext" and (model.output.outputs != 1
                                     or model.input.features > MAX_CKKS_FEATURES):
        raise InvalidTransaction("not_ckks_model", f"ciphertext mode needs one output and at most "
                                                   f"{MAX_CKKS_FEATURES} features, the model has "
                                                   f"{model.output.outputs} and "
                                                   f"{model.input.features}")
    if req.fee < min_fee(req.rows, req.k):
        raise InvalidTransaction("fee_too_low", f"fee {req.fee} < {min_fee(req.rows, req.k)} "
                                                f"({req.rows} rows × k={req.k} × "
                                                f"{MIN_FEE_PER_ROW})")
    if open_requests >= MAX_OPEN_PER_REQUESTER:
        raise InvalidTransaction("too_many_open_requests",
                                 f"{open_requests} open requests; at most "
                                 f"{MAX_OPEN_PER_REQUESTER}")
