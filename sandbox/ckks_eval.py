"""Executor side of encrypted predictions: w·x + b on CKKS ciphertexts [PRED-CKKS.1] [PRED-CKKS.2].

The requester packs its batch column-wise: ciphertext j holds feature j of every row, one
row per slot (up to 4096 rows at poly modulus degree 8192). The linear score of every row is
then ``Σ_j w_j · ct_j + b``: plaintext-scalar products and additions only, so the executor
needs no Galois (rotation) keys and no relinearisation, and the result is one ciphertext
holding all rows' scores. The executor holds only the public context: it refuses one that
carries a secret key, so it can never decrypt what it evaluates.

Blobs are canonical msgpack (chain.encoding), never pickle:
input ``["ckks-batch/v1", public_context, rows, [ct_0, ..., ct_{F-1}]]``,
output ``["ckks-scores/v1", ct]``. ``python -m sandbox.ckks_eval`` is the executor's entry
(one process per run; the test runs three to measure bit-for-bit agreement).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tenseal as ts

from chain.encoding import decode, encode
from chain.errors import DecodeError
from chain.predict.io import invalid_blob
from chain.predict.model import InputSchema, OutputSchema
from chain.predict.params import MAX_CKKS_FEATURES
from sandbox.errors import SandboxError
from sandbox.model_accepts import MAX_CKKS_HIDDEN
from sandbox.model_format import Mlp, load_model_file

BATCH_FORMAT = "ckks-batch/v1"
SCORES_FORMAT = "ckks-scores/v1"
MAX_CKKS_ROWS = 4096
"""Slots of one ciphertext at poly modulus degree 8192."""
MAX_BATCH_BYTES = 64 * 1024 * 1024
MAX_SCORES_BYTES = 4 * 1024 * 1024


class CkksError(SandboxError):
    """An encrypted batch or model the executor refuses; ``detail`` shows the bad data."""

    def __init__(self, message: str, detail: object = None) -> None:
        self.detail = repr(detail)[:120]
        self.model = False
        """True when the *model* is what cannot be evaluated (answered ``schema``)."""
        super().__init__(f"{message} (got {self.detail})")


def public_context(data: bytes) -> ts.Context:
    """[PRED-CKKS.1] The requester's context, refused if it holds the secret key."""
    try:
        ctx = ts.context_from(data)
    except Exception as e:  # SEAL's parser raises assorted native errors on bad bytes
        raise CkksError("not a TenSEAL context", data[:16]) from e
    if ctx.is_private() or not ctx.is_public():
        raise CkksError("the context holds a secret key; an executor accepts only a public "
                        "context", "private context")
    return ctx


def parse_batch(blob: bytes) -> tuple[ts.Context, int, list[ts.CKKSVector]]:
    """An input blob → (public context, rows, one ciphertext per feature)."""
    try:
        wire = decode(blob, max_size=MAX_BATCH_BYTES)
    except DecodeError as e:
        raise CkksError(f"batch is not canonical msgpack: {e.code}", blob[:16]) from e
    if not isinstance(wire, list) or len(wire) != 4 or wire[0] != BATCH_FORMAT \
            or not isinstance(wire[1], bytes) or type(wire[2]) is not int \
            or not isinstance(wire[3], list) or not all(isinstance(c, bytes) for c in wire[3]):
        raise CkksError(f"expected [{BATCH_FORMAT!r}, context, rows, [ciphertexts]]",
                        wire[:1] if isinstance(wire, list) else type(wire).__name__)
    rows, cts = wire[2], wire[3]
    if not 1 <= rows <= MAX_CKKS_ROWS or not 1 <= len(cts) <= MAX_CKKS_FEATURES:
        raise CkksError(f"rows 1..{MAX_CKKS_ROWS}, features 1..{MAX_CKKS_FEATURES}",
                        [rows, len(cts)])
    ctx = public_context(wire[1])
    vectors = []
    for i, c in enumerate(cts):
        try:
            v = ts.ckks_vector_from(ctx, c)
        except Exception as e:
            raise CkksError(f"ciphertext {i} does not load under the context", c[:16]) from e
        if v.size() < rows:
            raise CkksError(f"ciphertext {i} holds {v.size()} slots, fewer than {rows} rows",
                            v.size())
        vectors.append(v)
    return ctx, rows, vectors




def square_weights(model: Mlp) -> tuple[list[list[float]], list[float], list[float], float]:
    """[PRED-CKKS.3] A two-layer x² MLP with one output as ``y = Σ_j s_j (a_j·x + d_j)² + c``:
    ``a_j = √|v_j| W0[j]``, ``d_j = √|v_j| b0[j]``, ``s_j`` the sign of ``v_j``; the output
    layer folded into the first, so the evaluation needs only two multiplicative levels."""
    if len(model.layers) != 2 or model.activation != "square" \
            or model.layers[1][0].shape[0] != 1 \
            or not 1 <= model.layers[0][0].shape[0] <= MAX_CKKS_HIDDEN:
        raise CkksError("encrypted evaluation needs a linear model or a two-layer square MLP "
                        f"with 1..{MAX_CKKS_HIDDEN} hidden units and one output",
                        [model.activation, *[w.shape for w, _ in model.layers]])
    (w0, b0), (w1, b1) = model.layers
    roots = [math.sqrt(abs(float(v))) for v in w1[0]]
    a = [[r * float(x) for x in w0[j]] for j, r in enumerate(roots)]
    d = [r * float(b0[j]) for j, r in enumerate(roots)]
    signs = [1.0 if float(v) >= 0 else -1.0 for v in w1[0]]
    return a, d, signs, float(b1[0])


def evaluate_square(blob: bytes, a: Sequence[Sequence[float]], d: Sequence[float],
                    signs: Sequence[float], c: float) -> bytes:
    """[PRED-CKKS.3] The scores blob of a square MLP: for j ascending,
    ``h_j = Σ_i a_j[i] · ct_i + d_j`` (left fold in i), ``acc ± h_j · h_j`` (relinearised,
    rescaled), then ``+ c``. Fixed order: every executor does the same operations."""
    _, _, cts = parse_batch(blob)
    if len(cts) != len(a[0]):
        raise CkksError(f"{len(cts)} ciphertexts for a model of {len(a[0])} features",
                        len(cts))
    acc = None
    for row, bias, sign in zip(a, d, signs, strict=True):
        h = cts[0] * row[0]
        for ct, w in zip(cts[1:], row[1:], strict=True):
            h = h + ct * w
        h = h + bias
        square = h * h
        if sign < 0:
            square = square.neg()
        acc = square if acc is None else acc + square
    assert acc is not None
    acc = acc + c
    return encode([SCORES_FORMAT, acc.serialize()])


def linear_weights(model: Mlp) -> tuple[list[float], float]:
    """A one-layer, one-output model's weights and bias; anything else is not linear."""
    if len(model.layers) != 1 or model.layers[0][0].shape[0] != 1:
        raise CkksError("encrypted evaluation needs a linear model with one output",
                        [w.shape for w, _ in model.layers])
    w, b = model.layers[0]
    return [float(x) for x in w[0]], float(b[0])


def evaluate(blob: bytes, weights: Sequence[float], bias: float) -> bytes:
    """[PRED-CKKS.1] The scores blob: ``Σ_j weights[j] · ct_j + bias``, serialized.

    Fixed order (j ascending, left fold) so that every executor does the same operations
    [PRED-CKKS.2]."""
    _, _, cts = parse_batch(blob)
    if len(cts) != len(weights):
        raise CkksError(f"{len(cts)} ciphertexts for a model of {len(weights)} features",
                        len(cts))
    acc = cts[0] * weights[0]
    for ct, w in zip(cts[1:], weights[1:], strict=True):
        acc = acc + ct * w
    acc = acc + bias
    return encode([SCORES_FORMAT, acc.serialize()])


def answer_ciphertext(blob: bytes, model: Mlp) -> bytes:
    """[PRED-IO.3] The executor's answer in ``ciphertext`` mode: the scores blob, or the
    invalid answer when the model is not linear (``schema``) or the batch does not load
    (``not_rows``), so honest executors agree on it either way."""
    try:
        return evaluate_model(blob, model)
    except CkksError as e:
        return invalid_blob("schema" if e.model else "not_rows")


def evaluate_model(blob: bytes, model: Mlp) -> bytes:
    """The scores blob for a linear model [PRED-CKKS.1] or a square MLP [PRED-CKKS.3]; a
    model that is neither raises ``CkksError`` with ``model`` set."""
    try:
        if len(model.layers) == 1:
            weights, bias = linear_weights(model)
        else:
            a, d, signs, c = square_weights(model)
    except CkksError as e:
        e.model = True
        raise
    if len(model.layers) == 1:
        return evaluate(blob, weights, bias)
    return evaluate_square(blob, a, d, signs, c)


def scores_ciphertext(blob: bytes) -> bytes:
    """The serialized result ciphertext inside a scores blob."""
    wire: Any = decode(blob, max_size=MAX_SCORES_BYTES)
    if not isinstance(wire, list) or len(wire) != 2 or wire[0] != SCORES_FORMAT \
            or not isinstance(wire[1], bytes):
        raise CkksError(f"expected [{SCORES_FORMAT!r}, ciphertext]", blob[:16])
    return bytes(wire[1])


def main(argv: list[str] | None = None) -> int:
    """Evaluate one batch: read the input blob and the exported model (linear or a square
    MLP), write the
    scores blob and a one-line log (sizes and hashes only) into ``--out``."""
    p = argparse.ArgumentParser(prog="python -m sandbox.ckks_eval")
    p.add_argument("--batch", type=Path, required=True)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--features", type=int, required=True)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    model = load_model_file(args.model, InputSchema("float64", args.features),
                            OutputSchema("regression", (), 1, 0))
    batch = args.batch.read_bytes()
    scores = evaluate_model(batch, model)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scores.bin").write_bytes(scores)
    line = (f"evaluated batch {hashlib.sha256(batch).hexdigest()} ({len(batch)} bytes) → "
            f"scores {hashlib.sha256(scores).hexdigest()} ({len(scores)} bytes)\n")
    (args.out / "executor.log").write_text(line)
    sys.stdout.write(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
