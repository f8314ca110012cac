"""The deployable model file (sandbox/model_format.py): safe to load, checked against its schema.

[JOB-EXPORT.1] [JOB-EXPORT.2] [JOB-EXPORT.3]
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.predict.model import InputSchema, OutputSchema
from sandbox.errors import SandboxError
from sandbox.model_format import ModelFormatError, export_mlp, load_model, load_model_file

DIGITS_IN = InputSchema("float32", 64)
DIGITS_OUT = OutputSchema("classes", tuple(str(d) for d in range(10)))


def mlp(seed: int = 0, dims: tuple[int, ...] = (64, 32, 10)) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(o, i)), rng.normal(size=o)) for i, o in pairwise(dims)]


class _Payload:
    """Unpickling this creates ``marker``: the classic code-on-load model file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.marker, "w"))


def _malicious_files(tmp_path: Path, marker: Path) -> dict[str, Path]:
    files = {"pickle": tmp_path / "model.pkl"}
    files["pickle"].write_bytes(pickle.dumps(_Payload(str(marker))))
    import torch
    files["torch_save"] = tmp_path / "model.pt"
    torch.save({"state": _Payload(str(marker))}, files["torch_save"])
    # A pickle renamed and padded to look like safetensors' 8-byte length prefix.
    disguised = tmp_path / "model.safetensors"
    disguised.write_bytes(struct.pack("<Q", 40) + pickle.dumps(_Payload(str(marker))))
    files["disguised"] = disguised
    return files


def test_export_round_trips_and_predicts() -> None:
    """[JOB-EXPORT.1] An exported MLP loads back with the same weights and its forward pass is
    the plain numpy computation."""
    layers = mlp()
    model = load_model(export_mlp(layers), DIGITS_IN, DIGITS_OUT)
    rows = np.random.default_rng(1).normal(size=(5, 64))
    h = np.maximum(rows @ layers[0][0].astype(np.float32).T + layers[0][1].astype(np.float32), 0)
    want = h @ layers[1][0].astype(np.float32).T + layers[1][1].astype(np.float32)
    assert np.allclose(model.forward(rows), want, atol=1e-3)
    assert model.features == 64 and len(model.layers) == 2


def test_malicious_pickle_never_runs(tmp_path: Path) -> None:
    """[JOB-EXPORT.2] A pickle, a torch.save file and a pickle disguised behind a safetensors
    length prefix, each of which creates a marker file when unpickled, are refused as model
    files and the marker never appears. Control: unpickling the same bytes in another
    process does create its marker, so the payload is live."""
    marker = tmp_path / "pwned"
    for name, path in _malicious_files(tmp_path, marker).items():
        with pytest.raises(ModelFormatError) as e:
            load_model_file(path, DIGITS_IN, DIGITS_OUT)
        assert isinstance(e.value, SandboxError) and e.value.rule == "header", name
        assert not marker.exists(), f"{name} ran code on load"
    control = tmp_path / "control"
    code = ("import pickle, sys; sys.path.insert(0, sys.argv[2]); "
            "import tests.predict.test_model_format as m; "
            "pickle.loads(pickle.dumps(m._Payload(sys.argv[1])))")
    root = str(Path(__file__).resolve().parents[2])
    subprocess.run([sys.executable, "-c", code, str(control), root], check=True,
                   env={**os.environ, "PYTHONPATH": root})
    assert control.exists()


def test_schema_mismatch_is_refused() -> None:
    """[JOB-EXPORT.3] Wrong input width, wrong number of classes, wrong dtype: refused with the
    shape or dtype in the error."""
    data = export_mlp(mlp())
    with pytest.raises(ModelFormatError) as e:
        load_model(data, InputSchema("float32", 65), DIGITS_OUT)
    assert e.value.rule == "shape" and "64" in e.value.detail
    with pytest.raises(ModelFormatError) as e:
        load_model(data, DIGITS_IN, OutputSchema("classes", ("a", "b")))
    assert e.value.rule == "shape"
    with pytest.raises(ModelFormatError) as e:
        load_model(data, InputSchema("float64", 64), DIGITS_OUT)
    assert e.value.rule == "tensors" and "F32" in e.value.detail


def _rewrite_header(data: bytes, edit: object) -> bytes:
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    edit(header)  # type: ignore[operator]
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data[8 + n:]


def test_lying_headers_are_refused() -> None:
    """[JOB-EXPORT.2] [JOB-EXPORT.3] An extra tensor, a missing bias, overlapping byte ranges,
    a range past the end, missing or foreign metadata, a header length beyond the file and
    an oversized file are each refused by our own checks before safetensors reads the body."""
    data = export_mlp(mlp())

    def extra(h: dict) -> None:
        h["evil"] = dict(h["layer0.bias"])

    def missing(h: dict) -> None:
        del h["layer1.bias"]

    def overlap(h: dict) -> None:
        h["layer1.bias"]["data_offsets"] = h["layer0.bias"]["data_offsets"][:]
        h["layer1.bias"]["shape"] = h["layer0.bias"]["shape"]

    def past_end(h: dict) -> None:
        a, b = h["layer1.bias"]["data_offsets"]
        h["layer1.bias"]["data_offsets"] = [a + 8, b + 8]

    def no_meta(h: dict) -> None:
        del h["__metadata__"]

    def foreign(h: dict) -> None:
        h["__metadata__"]["lc-model"] = json.dumps({"format": "torch-pickle", "layers": 2})

    expected = [(extra, "tensors"), (missing, "tensors"), (overlap, "shape"),
                (past_end, "offsets"), (no_meta, "meta"), (foreign, "meta")]
    for edit, rule in expected:
        with pytest.raises(ModelFormatError) as e:
            load_model(_rewrite_header(data, edit), DIGITS_IN, DIGITS_OUT)
        assert e.value.rule == rule, edit.__name__
    with pytest.raises(ModelFormatError) as e:
        load_model(struct.pack("<Q", len(data)) + data[8:], DIGITS_IN, DIGITS_OUT)
    assert e.value.rule == "header"
    with pytest.raises(ModelFormatError) as e:
        load_model(data, DIGITS_IN, DIGITS_OUT, max_bytes=len(data) - 1)
    assert e.value.rule == "size" and e.value.detail == str(len(data))


def test_non_finite_weights_are_refused() -> None:
    """[JOB-EXPORT.3] A NaN weight would make honest executors disagree; it is refused."""
    layers = mlp()
    layers[1][0][0, 0] = np.nan
    with pytest.raises(ModelFormatError) as e:
        load_model(export_mlp(layers), DIGITS_IN, DIGITS_OUT)
    assert e.value.rule == "values"


def test_linear_regression_model() -> None:
    """[JOB-EXPORT.1] A linear model (one layer) with one regression output, in float64."""
    layers = mlp(dims=(30, 1))
    model = load_model(export_mlp(layers, "float64"), InputSchema("float64", 30),
                       OutputSchema("regression", (), 1, 6))
    x = np.ones((2, 30))
    assert np.allclose(model.forward(x)[:, 0], x @ layers[0][0][0] + layers[0][1][0])


_VALID = export_mlp(mlp(dims=(64, 4, 10)))


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.binary(max_size=512),
    st.tuples(st.integers(0, len(_VALID) - 1), st.integers(0, 255)).map(
        lambda e: _VALID[:e[0]] + bytes([e[1]]) + _VALID[e[0] + 1:]),
    st.integers(0, len(_VALID)).map(lambda n: _VALID[:n]),
))
def test_loader_is_total(data: bytes) -> None:
    """[JOB-EXPORT.2] [JOB-EXPORT.3] Arbitrary bytes, a valid file with one byte changed, and
    every truncation: the loader returns a model of the declared shape or raises
    ModelFormatError, never anything else."""
    try:
        model = load_model(data, DIGITS_IN, DIGITS_OUT)
    except ModelFormatError:
        return
    assert model.features == 64 and model.layers[-1][0].shape[0] == 10
