"""The job author's guide shows a scikit-learn model and a CNN exported to ONNX; both
snippets, run as written (``/output/model.pt`` pointed at a temporary file), give files that
pass the host's deploy check [JOB-EXPORT.4-7] and ``learningchain model check``; the guide's
evaluate snippet reads each file from ``$LC_MODEL`` with ONNX Runtime (not ``torch.load``)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from unittest import mock

import numpy as np
from click.testing import CliRunner

from chain.predict.model import InputSchema, OutputSchema
from client.cli.main import cli
from sandbox.onnx_check import check_onnx

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guides" / "job-author.md"
DIGITS_IN = InputSchema("float32", 64)
DIGITS_OUT = OutputSchema("classes", tuple(str(d) for d in range(10)))


def snippets() -> list[str]:
    text = GUIDE.read_text()
    section = text[text.index("## A model that serves predictions (ONNX)"):]
    section = section[:section.index("\n## ", 5)]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_job_export_7_the_guides_sklearn_and_cnn_snippets_export_deployable_files(
        tmp_path: Path) -> None:
    """[JOB-EXPORT.7] Each snippet, run on a fitted model (a digits logistic regression; the
    tests' flat-row CNN), writes an ONNX file the host check accepts for 64 features and 10
    labels, and ``model check`` says it deploys as onnx."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    from tests.predict.onnx_exports import FlatCnn

    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    sklearn, cnn, evaluate = snippets()
    namespaces = ({"clf": LogisticRegression(max_iter=200).fit(x[:500], y[:500]), "X": x},
                  {"net": FlatCnn()})
    for code, names in zip((sklearn, cnn), namespaces, strict=True):
        target = tmp_path / f"model-{len(names)}.pt"
        exec(code.replace("/output/model.pt", str(target)), dict(names))
        checked = check_onnx(target.read_bytes(), DIGITS_IN, DIGITS_OUT)
        assert checked.width == 10
        said = CliRunner().invoke(cli, ["model", "check", str(target), "--features", "64",
                                        "--labels", ",".join(DIGITS_OUT.labels)])
        assert said.exit_code == 0 and "deployable as onnx" in said.output, said.output
        # the guide's evaluate snippet reads that very file from $LC_MODEL and scores rows
        scope: dict[str, object] = {"x": x[:7]}
        with mock.patch.dict(os.environ, {"LC_MODEL": str(target)}):
            exec(evaluate, scope)
        scores = np.asarray(scope["scores"])
        assert scores.shape == (7, 10) and np.isfinite(scores).all()
