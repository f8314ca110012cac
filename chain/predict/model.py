"""The deployable model record [PRED-MODEL.1].

A settled job's winning model, named by its hash, with the schema an executor needs to
run it and a requester needs to form inputs and read outputs. Wire: a fixed array.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chain import fields
from chain.errors import FieldError
from chain.predict.params import (
    MAX_FEATURES,
    MAX_LABEL_LEN,
    MAX_LABELS,
    MAX_OUTPUTS,
    MAX_ROYALTY_PERMILLE,
    MAX_SCALE_EXP,
)
from chain.types import Address, Hash32

FORMATS = ("safetensors-mlp", "onnx")
"""[PRED-MODEL.1] Model formats the protocol accepts: each has a host check that runs nothing
of the file (sandbox/model_format.py, sandbox/onnx_check.py [JOB-EXPORT.1-7]); an ONNX model
runs only inside the executors' sandboxes [PRED-EXEC.6]."""
DTYPES = ("float32", "float64")
OUTPUT_KINDS = ("classes", "regression")


@dataclass(frozen=True, slots=True)
class InputSchema:
    """One row: ``features`` numbers of ``dtype``."""

    dtype: str
    features: int

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise FieldError("input.dtype", f"one of {list(DTYPES)}", self.dtype)
        if not 1 <= self.features <= MAX_FEATURES:
            raise FieldError("input.features", f"int in [1, {MAX_FEATURES}]", self.features)

    def to_wire(self) -> list[Any]:
        return [self.dtype, self.features]

    @classmethod
    def from_wire(cls, wire: Any) -> InputSchema:
        w = fields.array(wire, "input", 2)
        return cls(fields.one_of(w[0], "input.dtype", DTYPES),
                   fields.uint(w[1], "input.features", 1, MAX_FEATURES))


@dataclass(frozen=True, slots=True)
class OutputSchema:
    """``classes``: one label per row, from ``labels`` (2..1024 distinct names).
    ``regression``: ``outputs`` numbers per row, answered as integers ``round(y × 10^scale_exp)``
    so that agreement is integer arithmetic [PRED-AGREE.2]."""

    kind: str
    labels: tuple[str, ...] = ()
    outputs: int = 0
    scale_exp: int = 0

    def __post_init__(self) -> None:
        if self.kind == "classes":
            if not 2 <= len(self.labels) <= MAX_LABELS or self.outputs or self.scale_exp:
                raise FieldError("output", "2..1024 labels, outputs 0, scale 0", self.labels)
            if len(set(self.labels)) != len(self.labels):
                raise FieldError("output.labels", "distinct labels", self.labels)
        elif self.kind == "regression":
            if self.labels or not 1 <= self.outputs <= MAX_OUTPUTS \
                    or not 0 <= self.scale_exp <= MAX_SCALE_EXP:
                raise FieldError("output", "no labels, 1..256 outputs, scale 0..18",
                                 [self.outputs, self.scale_exp])
        else:
            raise FieldError("output.kind", f"one of {list(OUTPUT_KINDS)}", self.kind)

    @property
    def values_per_row(self) -> int:
        return 1 if self.kind == "classes" else self.outputs

    def to_wire(self) -> list[Any]:
        if self.kind == "classes":
            return [self.kind, list(self.labels)]
        return [self.kind, self.outputs, self.scale_exp]

    @classmethod
    def from_wire(cls, wire: Any) -> OutputSchema:
        w = fields.array(wire, "output", max_len=3)
        kind = fields.one_of(w[0] if w else None, "output.kind", OUTPUT_KINDS)
        if kind == "classes":
            fields.array(w, "output", 2)
            labels = fields.text_list(w[1], "output.labels", MAX_LABELS, MAX_LABEL_LEN)
            if any(not label for label in labels):
                raise FieldError("output.labels", "non-empty labels", labels)
            return cls(kind, labels)
        fields.array(w, "output", 3)
        return cls(kind, (), fields.uint(w[1], "output.outputs", 1, MAX_OUTPUTS),
                   fields.uint(w[2], "output.scale_exp", 0, MAX_SCALE_EXP))


@dataclass(frozen=True, slots=True)
class DeployedModel:
    """[PRED-MODEL.1] A model requests may name. ``model_id`` is ``job_id``: one deployment per
    settled job (its winner's model, ``model_hash``); ``owner`` is the job's submitter, who paid
    for it, and takes ``royalty_permille`` of every fee."""

    job_id: Hash32
    model_hash: Hash32
    format: str
    input: InputSchema
    output: OutputSchema
    owner: Address
    royalty_permille: int
    unservable_by: Hash32 | None = None
    """[PRED-UNLOADABLE.3] The request whose agreed answer was "the model does not load":
    no request may name the model after it. Absent (None) on the wire of a servable model, so
    records written before the rule keep their 7 elements and their bytes."""

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise FieldError("format", f"one of {list(FORMATS)}", self.format)
        if not 0 <= self.royalty_permille <= MAX_ROYALTY_PERMILLE:
            raise FieldError("royalty_permille", f"int in [0, {MAX_ROYALTY_PERMILLE}]",
                             self.royalty_permille)

    def to_wire(self) -> list[Any]:
        wire: list[Any] = [self.job_id, self.model_hash, self.format, self.input.to_wire(),
                           self.output.to_wire(), self.owner, self.royalty_permille]
        if self.unservable_by is not None:
            wire.append(self.unservable_by)
        return wire

    @classmethod
    def from_wire(cls, wire: Any) -> DeployedModel:
        """7 elements, or 8 with ``unservable_by`` [PRED-UNLOADABLE.3]."""
        w = fields.array(wire, "model")
        if len(w) not in (7, 8):
            raise FieldError("model", "array of 7 or 8 items", f"{len(w)} items")
        return cls(fields.hash32(w[0], "job_id"), fields.hash32(w[1], "model_hash"),
                   fields.one_of(w[2], "format", FORMATS), InputSchema.from_wire(w[3]),
                   OutputSchema.from_wire(w[4]), fields.address(w[5], "owner"),
                   fields.uint(w[6], "royalty_permille", 0, MAX_ROYALTY_PERMILLE),
                   fields.hash32(w[7], "unservable_by") if len(w) == 8 else None)
