"""The digits template's model file is a safetensors-mlp export [JOB-EXPORT.1].

The template's ``train`` writes ``model.pt`` with ``lcjob.export_bytes`` (the job image has no
``safetensors`` package), so the model blob voters verify is the file a settled job deploys
[PRED-DEPLOY.1]. These tests import the template's own ``lcjob.py`` on the host (torch is
installed in the dev venv) and check its bytes against the host's loader and ``export_mlp``.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from chain.predict.model import InputSchema, OutputSchema
from sandbox.job_template import init_job
from sandbox.model_format import ModelFormatError, export_mlp, load_model
from tests.framework.job_code import import_job_file

DIGITS_IN = InputSchema("float32", 64)
DIGITS_OUT = OutputSchema("classes", tuple(str(i) for i in range(10)))


@pytest.fixture(scope="module")
def lcjob(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    folder = tmp_path_factory.mktemp("job")
    init_job(folder)
    return import_job_file(folder / "lcjob.py", "lcjob_export_test")


def test_job_export_1_the_template_writes_what_export_mlp_writes(lcjob: ModuleType) -> None:
    """[JOB-EXPORT.1] The template's export of a trained-shape network loads with the host's
    checked loader [JOB-EXPORT.3], gives the network's own logits, is byte-identical to
    ``export_mlp`` of the same weights, and the template reads it back to the same network."""
    import torch

    torch.manual_seed(7)
    net = lcjob.make_model(32)
    data = lcjob.export_bytes(net)
    assert not data.startswith(b"PK")  # no torch zip, no pickle
    layers = [(net[0].weight.detach().numpy(), net[0].bias.detach().numpy()),
              (net[2].weight.detach().numpy(), net[2].bias.detach().numpy())]
    assert data == export_mlp(layers)
    mlp = load_model(data, DIGITS_IN, DIGITS_OUT)
    rows = np.random.default_rng(1).random((20, 64), dtype=np.float64).astype(np.float32)
    with torch.no_grad():
        torch_logits = net(torch.from_numpy(rows)).double().numpy()
    np.testing.assert_allclose(mlp.forward(rows), torch_logits, rtol=1e-5, atol=1e-5)
    assert (mlp.forward(rows).argmax(axis=1) == torch_logits.argmax(axis=1)).all()
    back = lcjob.import_bytes(data)
    for a, b in zip(back.state_dict().values(), net.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_job_export_3_the_export_refuses_a_schema_it_does_not_fit(lcjob: ModuleType) -> None:
    """[JOB-EXPORT.3] The same file declared with 10 features instead of 64 is refused with
    the shape rule; the template's reader refuses a pickle's bytes."""
    data = lcjob.export_bytes(lcjob.make_model(8))
    with pytest.raises(ModelFormatError) as caught:
        load_model(data, InputSchema("float32", 10), DIGITS_OUT)
    assert caught.value.rule == "shape"
    import pickle

    with pytest.raises(ValueError):
        lcjob.import_bytes(pickle.dumps({"x": 1}))


def test_job_export_1_one_rule_for_where_the_deployable_file_lives(tmp_path: Path) -> None:
    """[JOB-EXPORT.1] The deployable file is the model file, ``/output/model.pt``, in the
    spec, the runner and the template alike; the spec no longer offers a second file
    (``model.safetensors``) that nothing reads (issue 33)."""
    from sandbox.runner import MODEL_FILE

    assert MODEL_FILE == "model.pt"
    root = Path(__file__).resolve().parents[2]
    contract = (root / "protocol_spec" / "job_contract.md").read_text()
    rule = contract[contract.index("**[JOB-EXPORT.1]"):contract.index("**[JOB-EXPORT.2]")]
    assert "is `/output/model.pt` itself" in rule
    assert rule.count("model.safetensors") == 1 and "Until issue 33" in rule  # history only
    init_job(tmp_path / "job")
    train = (tmp_path / "job" / "train").read_text()
    assert 'OUTPUT_DIR / "model.pt").write_bytes(lcjob.model_bytes(model))' in train
    assert "model.safetensors" not in train


def test_job_export_4_the_template_can_export_onnx(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """[JOB-EXPORT.1] [JOB-EXPORT.4] [JOB-EXPORT.7] ``job init --export onnx``: job.toml lists
    the packages the image needs, train's ``model_bytes`` is an ONNX file (the same bytes
    twice) that passes the host's check for the digits schema, and the template's
    evaluate reads it with ONNX Runtime to the torch network's own logits and labels."""
    import torch

    from sandbox.job_file import load_job_file
    from sandbox.onnx_check import check_onnx

    folder = tmp_path / "job"
    init_job(folder, export="onnx")
    assert load_job_file(folder).packages == ("onnx", "protobuf", "ml_dtypes", "onnxruntime")
    lcjob_onnx = import_job_file(folder / "lcjob.py", "lcjob", monkeypatch)  # evaluate imports it
    assert lcjob_onnx.EXPORT_FORMAT == "onnx"
    torch.manual_seed(3)
    net = lcjob_onnx.make_model(32)
    data = lcjob_onnx.model_bytes(net)
    assert data == lcjob_onnx.model_bytes(net)
    checked = check_onnx(data, DIGITS_IN, DIGITS_OUT)
    assert (checked.input_name, checked.scores_name, checked.width) == ("x", "scores", 10)
    evaluate = import_job_file(folder / "evaluate", "evaluate_onnx_test", monkeypatch)
    (tmp_path / "model.pt").write_bytes(data)
    served = evaluate.load_model(tmp_path / "model.pt")
    rows = torch.from_numpy(np.random.default_rng(2).uniform(0, 16, (50, 64)).astype(np.float32))
    with torch.no_grad():
        want = net(rows)
    got = torch.from_numpy(served(rows.numpy()))
    assert torch.allclose(got, want, atol=1e-4) and torch.equal(got.argmax(1), want.argmax(1))
    plain = tmp_path / "plain"
    init_job(plain)
    assert load_job_file(plain).packages == ()
    assert 'EXPORT_FORMAT = "safetensors-mlp"' in (plain / "lcjob.py").read_text()


def test_job_export_1_job_submit_says_whether_the_export_deploys(tmp_path: Path) -> None:
    """[JOB-EXPORT.1] Before the escrow moves, ``job submit`` names the format a template
    job's train writes (safetensors-mlp or onnx); of any other job it states the rule, the
    deployable formats and the command that checks a local run's model file."""
    from client.cli.job.export import export_note, template_export

    init_job(tmp_path / "mlp")
    init_job(tmp_path / "onnx", export="onnx")
    assert template_export(tmp_path / "mlp") == "safetensors-mlp"
    assert template_export(tmp_path / "onnx") == "onnx"
    assert "writes /output/model.pt as onnx" in export_note(tmp_path / "onnx")
    other = tmp_path / "other"
    other.mkdir()
    said = export_note(other)
    assert "safetensors-mlp/v1" in said and "ONNX" in said and "model check" in said
    assert "torch.save pickle is paid but never deployable" in said
    source = (Path(__file__).resolve().parents[2] / "client" / "cli" / "job"
              / "submit.py").read_text()
    assert source.index("note(export_note(job_dir))") < source.index("send(client, key, PostJob")


def test_job_export_1_json_carries_the_note_and_an_onnx_job_whose_evaluate_torch_loads(
        tmp_path: Path) -> None:
    """[JOB-EXPORT.1] ``job submit --json``'s deployability (``export_facts``): a template
    job's format; an own job that writes ONNX with skl2onnx is named ``onnx`` (it was null);
    such a job whose evaluate calls ``torch.load`` is warned that every claim would fail,
    and the warning is printed before the escrow moves; the template's own ONNX job (its
    evaluate runs the file with onnxruntime) is not."""
    from client.cli.job.export import export_facts

    init_job(tmp_path / "onnx", export="onnx")
    facts = export_facts(tmp_path / "onnx")
    assert facts["deployable_export"] == "onnx" and facts["deployable_warning"] is None
    assert "as onnx" in str(facts["deployable_note"])
    own = tmp_path / "own"
    own.mkdir()
    (own / "train.py").write_text("from skl2onnx import to_onnx\n"
                                  "onx = to_onnx(clf, X[:1])\n")
    (own / "evaluate.py").write_text("import onnxruntime\nimport torch\n"
                                     "# a checkpoint: torch.load(resume)\n")
    facts = export_facts(own)
    assert facts["deployable_export"] == "onnx" and facts["deployable_warning"] is None
    assert "ONNX file as /output/model.pt" in str(facts["deployable_note"])
    (own / "evaluate.py").write_text("import torch\nmodel = torch.load('/model/model.pt')\n")
    warning = str(export_facts(own)["deployable_warning"])
    assert "evaluate.py calls torch.load" in warning and "onnxruntime" in warning
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "evaluate.py").write_text("import torch\nmodel = torch.load('/model/model.pt')\n")
    assert export_facts(plain) == {**export_facts(plain), "deployable_export": None,
                                   "deployable_warning": None}
    source = (Path(__file__).resolve().parents[2] / "client" / "cli" / "job"
              / "submit.py").read_text()
    assert source.index("export_warning(job_dir)") < source.index("send(client, key, PostJob")
    assert "**export_facts(job_dir)" in source
