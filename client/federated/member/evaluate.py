"""Host-side evaluation of a federated model of the digits template: numpy only, no torch.

A round's model is a strict ``ModelBlob`` [FED-MODEL.1] (integers, no code), never a torch
file, so the host may run it itself: the template's MLP (``sandbox/templates/digits``:
``Linear(64, h)``, ReLU, ``Linear(h, 10)``) flattened as ``parameters_to_vector`` gives it
(layer 0 weight row-major, bias, layer 2 weight, bias), coordinates ``q / 2**scale_bits``.
The data are the holdout part's CSV shards (``label,p0..p63`` per row, a ``label`` header
row skipped, pixels scaled by 1/16 as the template's ``lcjob.load_csv``), read strictly.
Pure functions: the node fetches and verifies the part (``member_node``).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

FEATURES = 64
CLASSES = 10
MAX_ROWS = 1_000_000


class TemplateEvalError(ValueError):
    """A model or data file the template evaluator cannot take; carries the bad value."""

    def __init__(self, message: str, got: object) -> None:
        shown = repr(got)
        self.got = shown if len(shown) <= 120 else shown[:120] + "…"
        super().__init__(f"{message} (got {self.got})")


Layers = list[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]


def template_layers(values: Sequence[int], scale_bits: int) -> Layers:
    """The template MLP's two layers from a flat model; dims must be ``75 h + 10``."""
    dims = len(values)
    hidden, rest = divmod(dims - CLASSES, FEATURES + 1 + CLASSES)
    if hidden < 1 or rest:
        raise TemplateEvalError("not the digits template's MLP (dims = 75 h + 10)", dims)
    flat = np.asarray(values, dtype=np.float64) / float(1 << scale_bits)
    cut = [FEATURES * hidden, hidden, hidden * CLASSES, CLASSES]
    w0, b0, w1, b1 = np.split(flat, np.cumsum(cut)[:-1])
    return [(w0.reshape(hidden, FEATURES), b0), (w1.reshape(CLASSES, hidden), b1)]


Rows = tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]


def read_rows(files: Sequence[Path]) -> Rows:
    """Every row of the CSV shards, in name order: integer label 0..9, 64 finite floats
    (divided by 16, as the template reads them); header rows (``label,...``) skipped."""
    xs: list[list[float]] = []
    ys: list[int] = []
    for path in sorted(files):
        with path.open(newline="") as f:
            for n, row in enumerate(csv.reader(f), 1):
                if not row or row[0] == "label":
                    continue
                if len(row) != FEATURES + 1 or len(ys) >= MAX_ROWS:
                    raise TemplateEvalError(f"{path.name}:{n}: a row is label and "
                                            f"{FEATURES} features", len(row))
                try:
                    label, feats = int(row[0]), [float(v) for v in row[1:]]
                except ValueError as e:
                    raise TemplateEvalError(f"{path.name}:{n}: not numbers", row[:3]) from e
                if not 0 <= label < CLASSES or not all(np.isfinite(feats)):
                    raise TemplateEvalError(f"{path.name}:{n}: bad label or feature", row[:3])
                xs.append([v / 16.0 for v in feats])
                ys.append(label)
    if not ys:
        raise TemplateEvalError("the part holds no rows", [p.name for p in files])
    return np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.int64)


def logits(layers: Layers, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    h = x
    for i, (w, b) in enumerate(layers):
        h = h @ w.T + b
        if i < len(layers) - 1:
            h = np.maximum(h, 0.0)
    return h


def accuracy_ppm(layers: Layers, x: npt.NDArray[np.float64], y: npt.NDArray[np.int64]) -> int:
    """Correct predictions per million (argmax; ties to the lowest class)."""
    right = int(np.sum(np.argmax(logits(layers, x), axis=1) == y))
    return right * 1_000_000 // len(y)


def loss_micro(layers: Layers, x: npt.NDArray[np.float64], y: npt.NDArray[np.int64]) -> int:
    """Mean cross-entropy in micro-units, rounded, capped to the vote's 2^40 − 1."""
    z = logits(layers, x)
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    loss = float(-log_p[np.arange(len(y)), y].mean())
    return min(round(loss * 1e6), (1 << 40) - 1)
