"""What a deployed model accepts [PRED-ACCEPTS.1]: request modes, input files, and whether
it answers encrypted rows.

The ledger's record says a model's format and schemas, not its shape, and only a linear
model [PRED-CKKS.1] or a two-layer square MLP [PRED-CKKS.3] can be evaluated on CKKS
ciphertexts; any other model is answered ``schema`` in ``ciphertext`` mode, and the fee is
spent on an answer that says nothing. So the page of every model (API, ``model show``,
``model list``, the dashboard) and ``predict --encrypted`` read the shape from the public
model file with the host's own parse (nothing in the file runs, no TenSEAL) and say so
before any fee. Pure: bytes in, an ``Accepts`` out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chain.predict.model import InputSchema, OutputSchema
from chain.predict.params import MAX_CKKS_FEATURES
from sandbox.model_format import Mlp, ModelFormatError, load_model

INPUT_FILES = ("csv", "npy")
"""[PRED-CSV.1] The row files ``predict --input`` reads."""
MAX_CKKS_HIDDEN = 64
"""[PRED-CKKS.3] Hidden units of a square MLP evaluated under CKKS (each costs F scalar
products and one ciphertext square); sandbox/ckks_eval.py reads it from here."""


@dataclass(frozen=True, slots=True)
class Accepts:
    """[PRED-ACCEPTS.1] ``modes``: the request modes the ledger takes for this model;
    ``encrypted``: True / False, or None when the model file is not at hand to read;
    ``why``: one line saying which, for a person."""

    modes: tuple[str, ...]
    encrypted: bool | None
    why: str

    def to_json(self) -> dict[str, Any]:
        return {"modes": list(self.modes), "input_files": list(INPUT_FILES),
                "encrypted": self.encrypted, "encrypted_why": self.why}


def ckks_shape(model: Mlp) -> str | None:
    """[PRED-CKKS.1] [PRED-CKKS.3] ``"linear"`` (one layer, one output), ``"square-mlp"``
    (two layers, x², 1..64 hidden units, one output), or None: what ``ckks_eval`` evaluates."""
    if model.layers[-1][0].shape[0] != 1:
        return None
    if len(model.layers) == 1:
        return "linear"
    if len(model.layers) == 2 and model.activation == "square" \
            and 1 <= model.layers[0][0].shape[0] <= MAX_CKKS_HIDDEN:
        return "square-mlp"
    return None


def model_accepts(fmt: str, schema: InputSchema, output: OutputSchema,
                  model_file: bytes | None) -> Accepts:
    """[PRED-ACCEPTS.1] What the deployed model answers; ``model_file`` None when the file
    is not at hand (the answer on encryption is then None for a model it could fit)."""
    if output.kind == "classes":
        return Accepts(("labels",), False, f"a classifier ({len(output.labels)} labels) "
                       "answers labels; encrypted rows need a regression with one output")
    modes = ("values", "ciphertext")
    if output.outputs != 1:
        return Accepts(("values",), False, f"{output.outputs} outputs; encrypted rows need "
                       "one output")
    if schema.features > MAX_CKKS_FEATURES:
        return Accepts(("values",), False, f"{schema.features} features; encrypted rows "
                       f"take at most {MAX_CKKS_FEATURES}")
    if fmt != "safetensors-mlp":
        return Accepts(("values",), False, f"a {fmt} model: only a safetensors-mlp linear model or "
                       "two-layer square MLP answers encrypted rows")
    if model_file is None:
        return Accepts(modes, None, "the model file is not on this node to read its shape")
    try:
        shape = ckks_shape(load_model(model_file, schema, output))
    except ModelFormatError as e:
        return Accepts(("values",), False, f"the model file does not load: {e}")
    if shape is None:
        return Accepts(("values",), False, "not linear and not a two-layer square MLP with one "
                       f"output and 1..{MAX_CKKS_HIDDEN} hidden units")
    what = "a linear model" if shape == "linear" else "a two-layer square MLP"
    return Accepts(modes, True, f"{what}: encrypted rows are answered [PRED-CKKS.1]")
