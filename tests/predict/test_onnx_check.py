"""The host's ONNX check [JOB-EXPORT.4-7]: deployable models pass, hostile ones are refused
on a parse alone, every refusal names the rule, the bad data and the deployable formats.

``LC_WRITE_VECTORS=1`` rewrites ``protocol_spec/vectors/onnx_export.json`` after a deliberate
change; otherwise the committed vectors must be exactly what the builders and the checker
give now, so a second implementation can use them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from chain.predict.model import InputSchema, OutputSchema
from client.cli.main import cli
from sandbox.deployable import check_model, detect_format
from sandbox.model_format import DEPLOYABLE_FORMATS, ModelFormatError, export_mlp
from sandbox.onnx_check import check_onnx, parse_onnx
from tests.predict import onnx_models as om

SCHEMA = InputSchema("float32", om.IN)
LABELS = OutputSchema("classes", ("a", "b", "c"))
VECTORS = Path(__file__).resolve().parents[2] / "protocol_spec" / "vectors" / "onnx_export.json"


def verdict(data: bytes, schema: InputSchema = SCHEMA, output: OutputSchema = LABELS) -> str:
    try:
        return "ok:" + check_onnx(data, schema, output).scores_name
    except ModelFormatError as e:
        assert DEPLOYABLE_FORMATS in str(e) and "(got " in str(e)
        return e.rule


def vectors() -> dict[str, object]:
    cases = []
    for name, (build, _) in om.CASES.items():
        data = build().SerializeToString()
        cases.append({"name": name, "input": SCHEMA.to_wire(), "output": LABELS.to_wire(),
                      "model": data.hex(), "verdict": verdict(data)})
    return {"about": "job_contract.md [JOB-EXPORT.4-7]: ONNX models and the host check's "
                     "verdict (ok:<scores output> or the refusing rule)",
            "cases": cases}


def test_job_export_4_7_vectors_match_committed_file() -> None:
    """[JOB-EXPORT.4] [JOB-EXPORT.5] [JOB-EXPORT.6] [JOB-EXPORT.7] Each model's verdict is
    the expected one, and the committed vectors are exactly these bytes and verdicts."""
    got = vectors()
    for case in got["cases"]:  # type: ignore[attr-defined]
        assert case["verdict"] == om.CASES[case["name"]][1], case["name"]
    if os.environ.get("LC_WRITE_VECTORS"):
        VECTORS.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    assert json.loads(VECTORS.read_text()) == got


def test_job_export_4_refuses_what_is_not_onnx_and_oversized_files() -> None:
    """[JOB-EXPORT.4] Garbage is not a model (protobuf parse or no graph); an oversized file
    is refused on its length before parsing; the error carries the first bytes."""
    with pytest.raises(ModelFormatError) as e:
        parse_onnx(b"\xff\xff\xff\xff not protobuf")
    assert e.value.rule == "header" and "\\xff" in str(e.value)
    with pytest.raises(ModelFormatError) as e:
        check_onnx(om.mlp().SerializeToString(), SCHEMA, LABELS, max_bytes=100)
    assert e.value.rule == "size" and DEPLOYABLE_FORMATS in str(e.value)


def test_job_export_5_custom_domain_error_names_it() -> None:
    """[JOB-EXPORT.5] The refusal of a custom operator names its domain and the allowed ones;
    a Loop is named by its operator, never run."""
    with pytest.raises(ModelFormatError) as e:
        check_onnx(om.custom_op().SerializeToString(), SCHEMA, LABELS)
    assert "com.evil" in str(e.value) and "ai.onnx.ml" in str(e.value)
    with pytest.raises(ModelFormatError, match="'Loop' is not on the allow-list"):
        check_onnx(om.loop().SerializeToString(), SCHEMA, LABELS)


def test_job_export_6_external_data_error_shows_the_path() -> None:
    """[JOB-EXPORT.6] The external-data refusal shows where the file pointed; the huge
    initializer's shows its shape; neither reads anything outside the bytes given."""
    with pytest.raises(ModelFormatError) as e:
        check_onnx(om.external_data().SerializeToString(), SCHEMA, LABELS)
    assert "etc/shadow" in str(e.value) and e.value.rule == "external"
    with pytest.raises(ModelFormatError) as e:
        check_onnx(om.huge_initializer().SerializeToString(), SCHEMA, LABELS)
    assert "65536" in str(e.value) and "huge initializer" in str(e.value)


def test_job_export_7_schema_dtype_and_regression_width() -> None:
    """[JOB-EXPORT.7] The input's element type must be the deployed dtype; a regression's
    width is its outputs; a float64 model deploys as float64."""
    data = om.mlp().SerializeToString()
    assert verdict(data, InputSchema("float64", om.IN)) == "io"
    assert verdict(data, SCHEMA, OutputSchema("regression", (), 3, 4)) == "ok:scores"
    assert verdict(data, SCHEMA, OutputSchema("regression", (), 2, 4)) == "io"
    assert verdict(om.mlp64().SerializeToString(), InputSchema("float64", om.IN)) == \
        "ok:scores"


def test_job_export_7_each_input_mismatch_names_its_own_fix() -> None:
    """[JOB-EXPORT.7] A float64 model (skl2onnx given float64 rows) checked as float32 is
    told about the dtype, not about dynamic_axes; a wrong feature count names the counts; a
    fixed batch names dynamic_axes; a symbolic feature dimension says it must be fixed."""
    from onnx import TensorProto, helper

    def refusal(model: object, schema: InputSchema = SCHEMA) -> str:
        with pytest.raises(ModelFormatError) as e:
            check_onnx(model.SerializeToString(), schema, LABELS)  # type: ignore[attr-defined]
        assert e.value.rule == "io"
        return str(e.value)

    dtype = refusal(om.mlp64())
    assert "is float64, the schema says float32" in dtype and "--dtype float64" in dtype
    assert "dynamic_axes" not in dtype
    width = refusal(om.mlp(), InputSchema("float32", om.IN + 1))
    assert f"shape [None, {om.IN}], the schema says [batch, {om.IN + 1}]" in width
    assert "dynamic_axes" not in width
    fixed = om._model(om.mlp_nodes(), om.weights(), inputs=[
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, om.IN])])
    assert "fixed batch of 2" in refusal(fixed) and "dynamic_axes" in refusal(fixed)
    free = om._model(om.mlp_nodes(), om.weights(), inputs=[
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", "f"])])
    assert "symbolic feature dimension" in refusal(free)


def test_job_export_1_detect_format_by_bytes_not_name() -> None:
    """[JOB-EXPORT.1] The file's bytes say its format: safetensors-mlp, ONNX; a torch zip and
    a pickle are refused naming what they are and the deployable formats."""
    assert detect_format(export_mlp([(np.ones((3, om.IN)), np.zeros(3))])) == "safetensors-mlp"
    assert detect_format(om.mlp().SerializeToString()) == "onnx"
    for data, what in ((b"PK\x03\x04rest", "torch.save zip"), (b"\x80\x04\x95", "pickle"),
                       (b"", "empty")):
        with pytest.raises(ModelFormatError) as e:
            detect_format(data)
        assert what in str(e.value) and DEPLOYABLE_FORMATS in str(e.value)
    safetensors = export_mlp([(np.ones((3, om.IN)), np.zeros(3))])
    with pytest.raises(ModelFormatError):
        check_model(safetensors, "onnx", SCHEMA, LABELS)


def test_job_export_5_real_exporters_pass(tmp_path: Path) -> None:
    """[JOB-EXPORT.5] [JOB-EXPORT.7] What real users bring passes: torch.onnx (legacy
    exporter) of an MLP and a small CNN over flat rows, and skl2onnx of a scaled logistic
    regression and a random forest (zipmap off); skl2onnx's default ZipMap output is
    refused with the option to use."""
    from skl2onnx import to_onnx
    from sklearn.datasets import load_wine
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from tests.predict.onnx_exports import cnn_bytes

    digits = OutputSchema("classes", tuple(str(i) for i in range(10)))
    assert check_onnx(cnn_bytes(), InputSchema("float32", 64), digits).width == 10
    x, y = load_wine(return_X_y=True)
    wine = OutputSchema("classes", ("0", "1", "2"))
    for clf in (make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
                RandomForestClassifier(n_estimators=5, random_state=0)):
        clf.fit(x, y)
        model = to_onnx(clf, x[:1].astype(np.float32), options={"zipmap": False},
                        target_opset={"": 17, "ai.onnx.ml": 3})
        assert check_onnx(model.SerializeToString(), InputSchema("float32", 13),
                          wine).scores_name == "probabilities"
    zipped = to_onnx(clf, x[:1].astype(np.float32), target_opset={"": 17, "ai.onnx.ml": 3})
    with pytest.raises(ModelFormatError, match="ZipMap"):
        check_onnx(zipped.SerializeToString(), InputSchema("float32", 13), wine)


def test_job_export_7_model_check_command(tmp_path: Path) -> None:
    """[JOB-EXPORT.7] ``learningchain model check FILE`` says before any job is posted
    whether a local run's model.pt deploys, and if not why, naming the deployable formats."""
    good, bad = tmp_path / "model.pt", tmp_path / "pickled.pt"
    good.write_bytes(om.mlp().SerializeToString())
    bad.write_bytes(b"PK\x03\x04 a torch.save zip")
    runner = CliRunner()
    ok = runner.invoke(cli, ["model", "check", str(good), "--features", "4", "--labels",
                             "a,b,c"])
    assert ok.exit_code == 0 and "deployable as onnx" in ok.output, ok.output
    no = runner.invoke(cli, ["model", "check", str(bad), "--features", "4", "--labels",
                             "a,b,c"])
    assert no.exit_code == 1 and "torch.save zip" in no.output
    assert "safetensors-mlp/v1" in no.output and "ONNX" in no.output
    wrong = runner.invoke(cli, ["model", "check", str(good), "--features", "5", "--labels",
                                "a,b,c"])
    assert wrong.exit_code == 1 and "io: ONNX: input 'x' has shape [None, 4], the schema " \
        "says [batch, 5]" in wrong.output
    assert "it deploys only as /output/model.pt" not in ok.output
    other = tmp_path / "model.onnx"  # a file by another name is never what a node deploys
    other.write_bytes(good.read_bytes())
    named = runner.invoke(cli, ["model", "check", str(other), "--features", "4", "--labels",
                                "a,b,c"])
    assert named.exit_code == 0 and "deployable as onnx" in named.output
    assert "it deploys only as /output/model.pt" in named.output, named.output
    as_json = runner.invoke(cli, ["model", "check", str(other), "--features", "4",
                                  "--labels", "a,b,c", "--json"])
    doc = json.loads(as_json.output)
    assert doc["deployable"] is True and doc["deployed_path"] == "/output/model.pt"
    assert doc["note"] and "model.onnx" in doc["note"]
