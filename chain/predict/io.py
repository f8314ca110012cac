"""The bytes of a plaintext request's input blob and of an answer [PRED-IO.1-3].

Exact agreement compares output hashes, so honest executors must write the same bytes for
the same answer: every blob here is one canonical encoding (chain.encoding), and the
answer to an input that does not fit the model is itself a fixed blob, so honest executors
agree on it too (and are paid for checking: the requester sent it).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from chain.content import blob_id_of_bytes
from chain.encoding import decode, encode
from chain.errors import DecodeError, FieldError
from chain.predict.model import InputSchema
from chain.predict.params import MAX_ROWS
from chain.types import Hash32

ROWS_FORMAT = "predict-rows/v1"
LABELS_FORMAT = "predict-labels/v1"
INVALID_FORMAT = "predict-invalid/v1"
DTYPE_SIZE = {"float32": 4, "float64": 8}
MAX_INPUT_BYTES = 64 * 1024 * 1024
INVALID_REASONS = ("not_rows", "schema", "row_count", "not_finite", "out_of_range")
"""[PRED-IO.3] Why an input got no prediction; nothing else may be said."""


@dataclass(frozen=True, slots=True)
class Rows:
    """A decoded input: ``rows`` × ``features`` numbers of ``dtype``, row-major little-endian
    in ``data`` (the executor reads them with numpy; the ledger never does)."""

    dtype: str
    features: int
    rows: int
    data: bytes


def encode_rows(dtype: str, features: int, values: Sequence[float]) -> bytes:
    """[PRED-IO.1] ``encode(["predict-rows/v1", dtype, features, rows, data])`` where ``data``
    is the row-major little-endian IEEE-754 bytes of the values (``<f`` or ``<d``)."""
    if dtype not in DTYPE_SIZE or features < 1 or len(values) % features:
        raise FieldError("rows", f"whole rows of {features} {dtype}", len(values))
    fmt = "<" + ("f" if dtype == "float32" else "d") * len(values)
    return encode([ROWS_FORMAT, dtype, features, len(values) // features,
                   struct.pack(fmt, *values)])


def decode_rows(blob: bytes, schema: InputSchema, rows: int) -> Rows | str:
    """[PRED-IO.1] The rows of an input blob checked against the model's input schema and
    the request's row count, or the [PRED-IO.3] reason it cannot be answered."""
    try:
        wire = decode(blob, max_size=MAX_INPUT_BYTES)
    except DecodeError:
        return "not_rows"
    if not isinstance(wire, list) or len(wire) != 5 or wire[0] != ROWS_FORMAT \
            or not isinstance(wire[4], bytes):
        return "not_rows"
    dtype, features, count, data = wire[1], wire[2], wire[3], wire[4]
    if dtype != schema.dtype or features != schema.features:
        return "schema"
    if count != rows or not 1 <= rows <= MAX_ROWS:
        return "row_count"
    if len(data) != rows * features * DTYPE_SIZE[dtype]:
        return "not_rows"
    if not all(math.isfinite(v) for (v,) in struct.iter_unpack(
            "<f" if dtype == "float32" else "<d", data)):
        return "not_finite"
    return Rows(dtype, features, rows, data)


def labels_blob(indices: Sequence[int], labels: int) -> bytes:
    """[PRED-IO.2] A labels answer: ``encode(["predict-labels/v1", [i_0, …, i_{rows-1}]])``,
    each the index of the row's label in the model's label list (the argmax of the scores,
    the lowest index on a tie)."""
    for i, v in enumerate(indices):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < labels:
            raise FieldError(f"labels[{i}]", f"int in [0, {labels})", v)
    return encode([LABELS_FORMAT, list(indices)])


def invalid_blob(reason: str) -> bytes:
    """[PRED-IO.3] The answer to an input that fits no prediction:
    ``encode(["predict-invalid/v1", reason])``, reason one of ``INVALID_REASONS``."""
    if reason not in INVALID_REASONS:
        raise FieldError("reason", f"one of {list(INVALID_REASONS)}", reason)
    return encode([INVALID_FORMAT, reason])


def output_hash(blob: bytes) -> Hash32:
    """[PRED-IO.2] The output hash of a ``labels`` or ``ciphertext`` answer, or of an invalid
    answer: the blob's id [WIRE-BLOB.0], so the agreed answer is fetched like any blob."""
    return Hash32(blob_id_of_bytes(blob))


UNLOADABLE_BLOB = encode([INVALID_FORMAT, "unloadable_model"])
"""[PRED-UNLOADABLE.1] The answer of an executor whose sandbox refuses the deployed model
file ([JOB-EXPORT.2-3]) or finds its layers do not fit the deployed schema: one fixed blob
for every request, committed and revealed like any answer (in ``values`` mode without
values, like an invalid answer). Not one of ``INVALID_REASONS``: it says nothing about the
input, and it marks the model unservable when agreed [PRED-UNLOADABLE.3]."""
UNLOADABLE_HASH = output_hash(UNLOADABLE_BLOB)
"""[PRED-UNLOADABLE.1] Its output hash (the blob id of ``UNLOADABLE_BLOB``)."""
