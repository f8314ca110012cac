"""The template's ``evaluate`` runs on numpy alone (``lcdata``), and measures what the torch
network it replaced measured [JOB-EVAL.1] [JOB-EXPORT.1] [VOTE-CHALLENGE.1].

An evaluation runs in every vote and both self-checks of every attempt; importing torch
cost each of them seconds (tests/sandbox/test_template.py runs the real containers). Here
the template's own files are imported on the host: the numpy forward pass and loss against
torch's, the files evaluate must refuse, and that torch stays unloaded.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from importlib import resources
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from sandbox.job_template import init_job
from tests.framework.job_code import import_job_file


@pytest.fixture()
def job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, ModuleType]:
    folder = tmp_path / "job"
    init_job(folder)
    return {"lcjob": import_job_file(folder / "lcjob.py", "lcjob", monkeypatch),
            "evaluate": import_job_file(folder / "evaluate", "evaluate_numpy_test",
                                        monkeypatch),
            "lcdata": sys.modules["lcdata"]}


def _rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 17, (n, 64)).astype(np.float32) / np.float32(16),
            rng.integers(0, 10, n).astype(np.int64))


def test_job_eval_1_numpy_logits_and_loss_match_the_torch_network(
        job: dict[str, ModuleType], tmp_path: Path) -> None:
    """The safetensors-mlp file the template's train writes: evaluate's numpy logits equal
    the torch network's within float32 rounding, and its loss torch's cross-entropy to
    1e-6 relative; an older template's torch zip reads to the same network."""
    import torch

    torch.manual_seed(11)
    net = job["lcjob"].make_model(48)
    x, y = _rows(300, 1)
    with torch.no_grad():
        want = net(torch.from_numpy(x))
        want_loss = torch.nn.functional.cross_entropy(want, torch.from_numpy(y)).item()
    model = tmp_path / "model.pt"
    model.write_bytes(job["lcjob"].export_bytes(net))
    zipped = tmp_path / "old.pt"
    torch.save({"state_dict": net.state_dict()}, zipped)
    for path in (model, zipped):
        logits = job["evaluate"].load_model(path)(x)
        assert logits.dtype == np.float32 and logits.shape == (300, 10)
        np.testing.assert_allclose(logits, want.numpy(), rtol=1e-5, atol=1e-5)
        loss = job["lcdata"].cross_entropy(logits, y)
        assert math.isclose(loss, want_loss, rel_tol=1e-6), (path.name, loss, want_loss)
    assert math.isnan(job["lcdata"].cross_entropy(np.zeros((0, 10), np.float32),
                                                  np.zeros(0, np.int64)))


def test_job_eval_1_the_same_file_gives_the_same_bits(job: dict[str, ModuleType],
                                                      tmp_path: Path) -> None:
    """[JOB-DET.1] Two loads of one file, the same rows: the same loss, bit for bit."""
    import torch

    torch.manual_seed(5)
    data = job["lcjob"].export_bytes(job["lcjob"].make_model(64))
    x, y = _rows(200, 2)
    losses = {job["lcdata"].cross_entropy(job["lcdata"].MlpNet(job["lcdata"].read_mlp(data))(x),
                                          y).hex() for _ in range(3)}
    assert len(losses) == 1


@pytest.mark.parametrize("damage", ["hidden_zero", "wrong_input", "wrong_output", "f16",
                                    "extra_layer", "short_body"])
def test_job_eval_4_evaluate_refuses_a_network_that_is_not_the_templates(
        job: dict[str, ModuleType], tmp_path: Path, damage: str) -> None:
    """[JOB-EVAL.4] A file of the wrong shape, dtype or layers is an invalid model (a
    ValueError naming what is wrong), never an out-of-range read or a crash of numpy."""
    lcdata = job["lcdata"]
    shapes = {"layer0.weight": [16, 64], "layer0.bias": [16], "layer1.weight": [10, 16],
              "layer1.bias": [10]}
    dtype, layers, cut = "F32", 2, 0
    if damage == "hidden_zero":
        shapes = {"layer0.weight": [0, 64], "layer0.bias": [0], "layer1.weight": [10, 0],
                  "layer1.bias": [10]}
    elif damage == "wrong_input":
        shapes["layer0.weight"] = [16, 63]
    elif damage == "wrong_output":
        shapes["layer1.weight"], shapes["layer1.bias"] = [9, 16], [9]
    elif damage == "f16":
        dtype = "F16"
    elif damage == "extra_layer":
        layers = 3
    else:
        cut = 4
    header: dict[str, object] = {"__metadata__": {"lc-model": json.dumps({"layers": layers})}}
    body = b""
    for name in sorted(shapes):
        size = 4 * math.prod(shapes[name])
        header[name] = {"dtype": dtype, "shape": shapes[name],
                        "data_offsets": [len(body), len(body) + size]}
        body += bytes(size)
    text = json.dumps(header).encode()
    data = len(text).to_bytes(8, "little") + text + body[:len(body) - cut]
    assert lcdata.is_safetensors(data)
    (tmp_path / "bad.pt").write_bytes(data)
    with pytest.raises(ValueError) as refused:
        job["evaluate"].load_model(tmp_path / "bad.pt")
    assert str(refused.value)


def test_job_eval_1_evaluate_never_imports_torch_for_a_safetensors_model(
        job: dict[str, ModuleType], tmp_path: Path) -> None:
    """The point of ``lcdata``: a whole evaluate run of the template's model file, in a
    fresh interpreter, leaves torch unloaded, and writes its metrics."""
    import torch

    folder = tmp_path / "job"  # the fixture's job folder
    torch.manual_seed(1)
    (tmp_path / "model.pt").write_bytes(job["lcjob"].export_bytes(job["lcjob"].make_model(8)))
    valid = tmp_path / "data" / "valid"
    valid.mkdir(parents=True)
    (valid / "valid.csv").write_text(
        "label," + ",".join(f"p{i}" for i in range(64)) + "\n"
        + "\n".join(f"{d}," + ",".join(str((d * 7 + i) % 17) for i in range(64))
                    for d in range(10)) + "\n")
    out = tmp_path / "out"
    out.mkdir()
    script = (f"import runpy, sys; sys.path.insert(0, {str(folder)!r}); sys.argv = ['evaluate']\n"
              "try:\n"
              f"    runpy.run_path({str(folder / 'evaluate')!r}, run_name='__main__')\n"
              "except SystemExit as e:\n"
              "    assert e.code == 0, e.code\n"
              "print('torch loaded:', 'torch' in sys.modules)\n")
    env = {"LC_MODEL": str(tmp_path / "model.pt"), "LC_OUTPUT": str(out),
           "LC_DATA": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "torch loaded: False" in done.stdout, done.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["examples"] == 10 and math.isfinite(metrics["loss"])


def test_job_init_writes_the_job_code_as_the_template_has_it(tmp_path: Path) -> None:
    """``job init``'s name and base tag go into the Dockerfile, README and job.toml only: the
    Python files are the template's, but for ``EXPORT_FORMAT`` (the name once replaced an
    f-string's ``{name}``: every checkpoint and progress write shared one temporary file,
    ``.digits-mlp.tmp``, and lcdata's errors named the job instead of the tensor)."""
    from sandbox.job_template import TEMPLATE_FILES, TEMPLATE_PACKAGE

    template = resources.files(TEMPLATE_PACKAGE)
    folder = tmp_path / "job"
    init_job(folder, name="odd-{name}-job", export="onnx")
    python = [(s, t) for s, t, _ in TEMPLATE_FILES if s.endswith(".tmpl")]
    assert {t for _, t in python} >= {"lcdata.py", "lcjob.py", "train", "evaluate"}
    for source, target in python:
        want = template.joinpath(source).read_text(encoding="utf-8").replace(
            'EXPORT_FORMAT = "{export_format}"', 'EXPORT_FORMAT = "onnx"')
        assert (folder / target).read_text() == want, target
    assert "odd-{name}-job" in (folder / "README.md").read_text()
    assert 'name = "odd-{name}-job"' in (folder / "job.toml").read_text()
