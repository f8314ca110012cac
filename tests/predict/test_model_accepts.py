"""[PRED-ACCEPTS.1] What a deployed model accepts, read from its public file by the host's
own parse: only a linear model [PRED-CKKS.1] or a two-layer square MLP [PRED-CKKS.3] with
one output answers encrypted rows, and the predicate agrees with what the executor's CKKS
evaluation takes (sandbox/ckks_eval.py) on every shape tried."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from chain.predict.model import InputSchema, OutputSchema
from sandbox import ckks_eval
from sandbox.model_accepts import ckks_shape, model_accepts
from sandbox.model_format import export_mlp, load_model

RNG = np.random.default_rng(7)
ONE = OutputSchema("regression", (), 1, 3)


def layers(*sizes: int) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(RNG.normal(size=(o, i)), RNG.normal(size=o)) for i, o in pairwise(sizes)]


SHAPES = {  # name: (layer sizes, activation, encrypted?)
    "linear": ((5, 1), "relu", True),
    "square_mlp": ((5, 4, 1), "square", True),
    "square_mlp_64": ((5, 64, 1), "square", True),
    "square_mlp_65": ((5, 65, 1), "square", False),
    "relu_mlp": ((5, 4, 1), "relu", False),
    "three_layers": ((5, 4, 3, 1), "square", False),
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_pred_accepts_1_encrypted_follows_the_model_shape(name: str) -> None:
    sizes, activation, expected = SHAPES[name]
    data = export_mlp(layers(*sizes), activation=activation)
    accepts = model_accepts("safetensors-mlp", InputSchema("float32", 5), ONE, data)
    assert accepts.encrypted is expected, accepts
    assert ("ciphertext" in accepts.modes) is expected and "values" in accepts.modes
    # the same verdict as the executor's evaluation: it raises for the shapes it refuses
    model = load_model(data, InputSchema("float32", 5), ONE)
    try:
        ckks_eval.linear_weights(model) if len(model.layers) == 1 \
            else ckks_eval.square_weights(model)
        takes = True
    except ckks_eval.CkksError:
        takes = False
    assert takes is expected and (ckks_shape(model) is not None) is expected


def test_pred_accepts_1_what_the_record_alone_decides() -> None:
    schema = InputSchema("float32", 5)
    classes = model_accepts("safetensors-mlp", schema, OutputSchema("classes", ("a", "b")), None)
    assert classes.modes == ("labels",) and classes.encrypted is False
    assert "classifier" in classes.why
    two = model_accepts("safetensors-mlp", schema, OutputSchema("regression", (), 2, 0), None)
    assert two.encrypted is False and "2 outputs" in two.why
    onnx = model_accepts("onnx", schema, ONE, None)
    assert onnx.encrypted is False and onnx.modes == ("values",) and "onnx" in onnx.why
    wide = model_accepts("safetensors-mlp", InputSchema("float32", 129), ONE, None)
    assert wide.encrypted is False and "129 features" in wide.why
    unknown = model_accepts("safetensors-mlp", schema, ONE, None)
    assert unknown.encrypted is None and "ciphertext" in unknown.modes
    assert unknown.to_json()["input_files"] == ["csv", "npy"]


def test_pred_accepts_1_a_file_that_does_not_load_is_not_encryptable() -> None:
    bad = model_accepts("safetensors-mlp", InputSchema("float32", 5), ONE, b"\x80\x04pickle")
    assert bad.encrypted is False and "does not load" in bad.why
    wrong_width = export_mlp(layers(6, 1))  # 6 features, the schema says 5
    assert model_accepts("safetensors-mlp", InputSchema("float32", 5), ONE,
                         wrong_width).encrypted is False
