"""Executor side of plaintext predictions: an input blob and a safe model → the answer's bytes.

[PRED-IO.1-3] fix the bytes; this module computes them. Scores are computed in float64
(``Mlp.forward``); a label is the argmax (lowest index on a tie); a regression value is
``round-half-even(y × 10^scale_exp)``. An input that does not fit the model gets the fixed
invalid answer instead of an error, so that honest executors still agree on something.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from chain.predict.io import decode_rows, invalid_blob, labels_blob, output_hash
from chain.predict.model import DeployedModel
from chain.types import Hash32

_INT64 = float(2**63)


class Scorer(Protocol):
    """A loaded model: ``Mlp`` (safetensors-mlp) or ``OnnxScorer`` (ONNX, in the sandbox)."""

    def forward(self, rows: np.ndarray) -> np.ndarray:
        """Scores of ``rows`` [n, features], float64, [n, width]."""


def _scores(model: Scorer, record: DeployedModel, blob: bytes, rows: int) -> np.ndarray | str:
    parsed = decode_rows(blob, record.input, rows)
    if isinstance(parsed, str):
        return parsed
    x = np.frombuffer(parsed.data, dtype="<f4" if parsed.dtype == "float32" else "<f8")
    scores = model.forward(x.reshape(parsed.rows, parsed.features))
    return scores if np.isfinite(scores).all() else "not_finite"


def answer_labels(model: Scorer, record: DeployedModel, blob: bytes, rows: int) -> bytes:
    """[PRED-IO.2] The labels blob (or [PRED-IO.3] the invalid blob) for a ``labels`` request."""
    if record.output.kind != "classes":
        raise ValueError("labels mode needs a classes model")
    scores = _scores(model, record, blob, rows)
    if isinstance(scores, str):
        return invalid_blob(scores)
    return labels_blob([int(i) for i in np.argmax(scores, axis=1)], len(record.output.labels))


def values_or_invalid(model: Scorer, record: DeployedModel, blob: bytes,
                      rows: int) -> tuple[int, ...] | bytes:
    """[PRED-ANSWER.2] The fixed-point values of a ``values`` request, row-major, or the
    [PRED-IO.3] invalid blob itself (``out_of_range`` beyond int64): what the sandbox sends
    back, since the hash alone would not say the reason."""
    if record.output.kind != "regression":
        raise ValueError("values mode needs a regression model")
    scores = _scores(model, record, blob, rows)
    if isinstance(scores, str):
        return invalid_blob(scores)
    scaled = np.rint(scores * float(10 ** record.output.scale_exp))
    if not (np.isfinite(scaled).all() and (np.abs(scaled) < _INT64).all()):
        return invalid_blob("out_of_range")
    return tuple(int(v) for v in scaled.ravel())


def answer_values(model: Scorer, record: DeployedModel, blob: bytes,
                  rows: int) -> tuple[int, ...] | Hash32:
    """[PRED-ANSWER.2] The fixed-point values of a ``values`` request, row-major, or
    [PRED-IO.3] the invalid answer's output hash (``out_of_range`` beyond int64)."""
    answer = values_or_invalid(model, record, blob, rows)
    return output_hash(answer) if isinstance(answer, bytes) else answer
