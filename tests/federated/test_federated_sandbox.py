"""The participant's side of a federated round, on the host without Docker [JOB-FED.*].

The flat file format both ways, the host's strict reader against hostile files
(wrong shapes and dtypes, lying offsets, NaN and infinities, oversized files, a
pickle and a torch zip that must never be loaded), quantisation equal to the
chain's exact rule, the update blob, the template's DP switch, and the vectors.
The same checks against real containers are in test_federated_sandbox_docker.py.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.federated.blobs import ModelBlob, UpdateBlob
from chain.federated.fixed import Q_MAX, quantise
from sandbox.errors import SandboxError
from sandbox.federated import (
    GLOBAL_TENSOR,
    MAX_HEADER_BYTES,
    UPDATE_TENSOR,
    FederatedUpdateError,
    flat_bytes,
    global_input,
    max_file_bytes,
    quantise_update,
    read_flat,
    update_blob,
)
from tests.federated import template_code
from tests.ledger.vector_files import check_vector_file

DIMS = 6
JOB = bytes(range(32))
WHO = bytes([7]) * 20


def _file(header: dict[str, object], body: bytes, pad: bool = True) -> bytes:
    head = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + body


def _entry(dims: int = DIMS, dtype: str = "F32", shape: object = None,
           offsets: object = None) -> dict[str, object]:
    return {"dtype": dtype, "shape": [dims] if shape is None else shape,
            "data_offsets": [0, 4 * dims] if offsets is None else offsets}


def _refused(data: bytes, dims: int = DIMS) -> FederatedUpdateError:
    with pytest.raises(FederatedUpdateError) as e:
        read_flat(data, UPDATE_TENSOR, dims)
    assert isinstance(e.value, SandboxError)
    return e.value


class _Exploit:
    """Unpickling this would create the marker file: proof the host never unpickles."""

    marker = ""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_flat_file_round_trips_and_the_template_writes_the_same_bytes(tmp_path: Path) -> None:
    """[JOB-FED.2] flat_bytes and the template's write_flat agree byte for byte; read_flat
    returns the values; the header is padded to 8 bytes and within its bound."""
    values = np.array([0.5, -1.25, 3e-5, 0.0, -0.0, 1e30], dtype=np.float32)
    data = flat_bytes(UPDATE_TENSOR, values)
    fed = template_code.federate()
    fed.write_flat(tmp_path / "u.safetensors", UPDATE_TENSOR, values)
    assert (tmp_path / "u.safetensors").read_bytes() == data
    (n,) = struct.unpack("<Q", data[:8])
    assert n % 8 == 0 and n <= MAX_HEADER_BYTES and len(data) == 8 + n + 4 * DIMS
    assert read_flat(data, UPDATE_TENSOR, DIMS).tolist() == values.astype(np.float64).tolist()
    assert fed.read_flat(tmp_path / "u.safetensors", UPDATE_TENSOR).tolist() == values.tolist()
    with_meta = _file({UPDATE_TENSOR: _entry(), "__metadata__": {"by": "x"}},
                      values.astype("<f4").tobytes())
    assert read_flat(with_meta, UPDATE_TENSOR, DIMS).tolist() == values.tolist()


@pytest.mark.parametrize(("name", "data", "rule"), [
    ("more_dims", _file({UPDATE_TENSOR: _entry(DIMS + 1)}, bytes(4 * DIMS + 4)), "shape"),
    ("fewer_dims", _file({UPDATE_TENSOR: _entry(DIMS - 1)}, bytes(4 * DIMS - 4)), "shape"),
    ("two_d", _file({UPDATE_TENSOR: _entry(shape=[2, 3])}, bytes(4 * DIMS)), "shape"),
    ("float64", _file({UPDATE_TENSOR: {"dtype": "F64", "shape": [DIMS],
                                       "data_offsets": [0, 8 * DIMS]}}, bytes(8 * DIMS)),
     "dtype"),
    ("float16", _file({UPDATE_TENSOR: _entry(dtype="F16")}, bytes(4 * DIMS)), "dtype"),
    ("wrong_name", _file({"weights": _entry()}, bytes(4 * DIMS)), "tensors"),
    ("extra_tensor", _file({UPDATE_TENSOR: _entry(), "x": _entry()}, bytes(8 * DIMS)),
     "tensors"),
    ("lying_offsets", _file({UPDATE_TENSOR: _entry(offsets=[4, 4 * DIMS + 4])},
                            bytes(4 * DIMS + 4)), "offsets"),
    ("trailing_byte", _file({UPDATE_TENSOR: _entry()}, bytes(4 * DIMS + 1)), "offsets"),
    ("short_body", _file({UPDATE_TENSOR: _entry()}, bytes(4 * DIMS - 4)), "offsets"),
    ("header_list", _file([UPDATE_TENSOR], bytes(4 * DIMS)), "header"),  # type: ignore[arg-type]
    ("bad_metadata", _file({UPDATE_TENSOR: _entry(), "__metadata__": {"a": 1}},
                           bytes(4 * DIMS)), "header"),
    ("header_too_long", struct.pack("<Q", MAX_HEADER_BYTES + 8) + b"{" + b" " * 4100,
     "header"),
    ("empty", b"", "header"),
])
def test_hostile_update_files_are_refused_by_rule(name: str, data: bytes, rule: str) -> None:
    """[JOB-FED.2] [JOB-FED.4] Wrong shapes, dtypes, names, offsets, headers: refused with the
    rule named and the bad data carried, before any value is read."""
    error = _refused(data)
    assert error.rule == rule, (name, str(error))
    assert error.detail


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_infinities_are_refused_with_their_index(bad: float) -> None:
    """[JOB-FED.4] A NaN or infinite coordinate is a broken update, not a large one."""
    values = np.zeros(DIMS, dtype=np.float32)
    values[4] = bad
    error = _refused(flat_bytes(UPDATE_TENSOR, values))
    assert error.rule == "values" and "(4," in error.detail


def test_an_oversized_file_is_refused_before_parsing() -> None:
    """[JOB-FED.3] [JOB-FED.4] A file over 8 + 4096 + 4·dims bytes is refused by size."""
    data = flat_bytes(UPDATE_TENSOR, np.zeros(DIMS, np.float32)) + bytes(MAX_HEADER_BYTES)
    assert len(data) > max_file_bytes(DIMS)
    assert _refused(data).rule == "size"


def test_a_pickle_in_place_of_safetensors_is_never_loaded(tmp_path: Path) -> None:
    """[JOB-FED.4] A pickle whose loading would create a file, and a torch.save zip, are
    refused by the header check; the marker file never appears."""
    marker = tmp_path / "pwned"
    _Exploit.marker = str(marker)
    payloads = [pickle.dumps(_Exploit(), protocol=p) for p in (2, 4, 5)]
    buffer = io.BytesIO()
    torch.save({"update": torch.zeros(DIMS)}, buffer)
    payloads.append(buffer.getvalue())
    for data in payloads:
        assert _refused(data, dims=len(data)).rule == "header"
    assert not marker.exists()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), min_size=1,
                max_size=20), st.integers(8, 24))
def test_quantisation_is_the_chains_exact_rule(xs: list[float], scale_bits: int) -> None:
    """[JOB-FED.5] [FED-QUANT.2] numpy's clip(rint(x·2^s)) equals chain.federated.fixed's
    exact quantise for every finite float32 (ties to even, saturation at Q_MAX)."""
    got = quantise_update(np.array(xs, dtype=np.float32), scale_bits)
    assert got == tuple(quantise(float(np.float32(x)), scale_bits) for x in xs)


def test_quantisation_saturates_and_refuses_non_finite() -> None:
    """[JOB-FED.5] A ×100 update saturates at ±Q_MAX (the rules judge it); NaN is refused."""
    assert quantise_update(np.array([1e9, -1e9, 0.5 / 65536, 1.5 / 65536]), 16) == (
        Q_MAX, -Q_MAX, 0, 2)
    with pytest.raises(FederatedUpdateError):
        quantise_update(np.array([0.0, float("nan")]), 16)


def test_the_update_blob_names_its_slot_and_the_global_input_is_the_model() -> None:
    """[JOB-FED.1] [JOB-FED.5] [FED-QUANT.5] The global model at /input is q / 2^s as float32;
    the update becomes the blob of this job, round and participant, at the model's scale and
    dims; a file of another shape is refused against the model's dims."""
    model = ModelBlob(16, (65536, -32768, 3, 0, Q_MAX, -1))
    given_in = read_flat(global_input(model), GLOBAL_TENSOR, model.dims)
    assert given_in.tolist() == [1.0, -0.5, 3 / 65536, 0.0,
                                 float(np.float32(Q_MAX / 65536)), -1 / 65536]
    update = np.array([0.25, -0.25, 1e-6, 0.0, 2.0, -3.0], dtype=np.float32)
    blob = update_blob(flat_bytes(UPDATE_TENSOR, update), model, JOB, 3, WHO)
    assert blob.values == (16384, -16384, 0, 0, 131072, -196608)
    assert blob.check_for(JOB, 3, WHO, model.dims, 16) is blob
    assert UpdateBlob.from_bytes(blob.to_bytes()) == blob
    with pytest.raises(FederatedUpdateError) as e:
        update_blob(flat_bytes(UPDATE_TENSOR, update[:5]), model, JOB, 3, WHO)
    assert e.value.rule == "shape"


def test_template_dp_switch_clips_and_adds_noise() -> None:
    """[JOB-FED.6] dp_clip bounds the update's L2 norm; dp_noise adds Gaussian noise of
    std dp_noise·dp_clip (measured on the coordinates); without them the update is the
    plain SGD step, the same for the same seed."""
    fed = template_code.federate()
    lcjob = template_code.lcjob()
    g = fed.initial_model(16, seed=1)
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.random((64, lcjob.FEATURES)), dtype=torch.float32)
    y = torch.tensor(rng.integers(0, 10, 64))
    plain = fed.local_update(g, x, y, hidden=16, seed=3)
    assert np.array_equal(plain, fed.local_update(g, x, y, hidden=16, seed=3))
    norm = float(np.linalg.norm(plain))
    clipped = fed.local_update(g, x, y, hidden=16, seed=3, dp_clip=norm / 4)
    assert np.linalg.norm(clipped) == pytest.approx(norm / 4, rel=1e-4)
    assert np.allclose(clipped, plain / 4, atol=1e-6)
    noisy = fed.local_update(g, x, y, hidden=16, seed=3, dp_clip=norm / 4, dp_noise=0.5)
    std = float(np.std(noisy - clipped))
    assert 0.8 * 0.5 * norm / 4 < std < 1.2 * 0.5 * norm / 4
    print(f"update norm {norm:.4f}; clipped {norm / 4:.4f}; noise std {std:.5f} "
          f"(target {0.5 * norm / 4:.5f}) over {len(g)} coordinates")


def test_federated_sandbox_vectors() -> None:
    """[JOB-FED.2] [JOB-FED.4] [JOB-FED.5] Vectors: a flat file's bytes, its values, their
    quantised update blob, and refused files with their rules."""
    values = np.array([0.25, -1.5, 1 / 131072, 3 / 131072, 40000.0, -7.0], dtype=np.float32)
    data = flat_bytes(UPDATE_TENSOR, values)
    model = ModelBlob(16, (0, 1, -1, 2, 3, 65536))
    blob = update_blob(data, model, JOB, 1, WHO)
    refused = {
        "wrong_shape": _file({UPDATE_TENSOR: _entry(DIMS + 1)}, bytes(4 * DIMS + 4)),
        "float64": _file({UPDATE_TENSOR: {"dtype": "F64", "shape": [DIMS],
                                          "data_offsets": [0, 8 * DIMS]}}, bytes(8 * DIMS)),
        "nan": flat_bytes(UPDATE_TENSOR, np.array([0, 0, float("nan"), 0, 0, 0], np.float32)),
        "pickle": pickle.dumps({"update": [0.0] * DIMS}, protocol=4),
        "trailing_byte": _file({UPDATE_TENSOR: _entry()}, bytes(4 * DIMS + 1)),
    }
    vectors = {
        "dims": DIMS, "scale_bits": 16,
        "flat_file": {"name": UPDATE_TENSOR, "values_float_hex": [float(v).hex() for v in values],
                      "bytes_hex": data.hex()},
        "global_model": {"values": list(model.values),
                         "global_safetensors_hex": global_input(model).hex()},
        "update_blob": {"job_id": JOB.hex(), "round": 1, "participant": WHO.hex(),
                        "values": list(blob.values), "bytes_hex": blob.to_bytes().hex()},
        "refused": [{"name": k, "bytes_hex": v.hex(), "rule": _refused(v).rule}
                    for k, v in refused.items()],
    }
    assert blob.values[:4] == (16384, -98304, 0, 2) and blob.values[4] == Q_MAX
    assert {r["name"]: r["rule"] for r in vectors["refused"]} == {  # type: ignore[union-attr]
        "wrong_shape": "shape", "float64": "dtype", "nan": "values", "pickle": "header",
        "trailing_byte": "offsets"}
    check_vector_file("federated_sandbox.json", vectors)
