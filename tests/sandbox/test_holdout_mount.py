"""A hidden test set's parts seen by a real job in the sandbox [HOLDOUT-BLOB.6].

The template's validation digits are sharded into a pool of CSV files, committed,
split by a seed and packed into a public and a hidden part exactly as a submitter
would; each part is fetched-and-verified as a node does (``open_part``) and mounted at
``/data/valid``. The template's evaluate scores the shards of whichever part it is
given, and a probe run shows that nothing but the sample files differs between the two.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from chain.train.holdout.split import split_seed
from sandbox.holdout_blob import VerifiedPart, open_part, pack_part
from sandbox.holdout_pool import make_pool
from sandbox.job_file import load_job_file
from sandbox.job_template import BuiltJob
from sandbox.runner import SandboxRunner
from tests.framework.job_code import import_job_file
from tests.framework.template_v2 import valid_rows

pytestmark = pytest.mark.docker

SHARDS = 24
PERMILLE = 400


def _lcjob(template_dir: Path) -> ModuleType:
    """The job folder's own lcjob.py, imported on the host to score the same rows."""
    return import_job_file(template_dir / "lcjob.py", "lcjob_holdout_test")


@pytest.fixture(scope="module")
def parts(template_dir: Path, tmp_path_factory: pytest.TempPathFactory
          ) -> dict[str, VerifiedPart]:
    """The template's 360 validation rows as 24 shards; both parts packed and opened."""
    work = tmp_path_factory.mktemp("holdout")
    pool = work / "pool"
    pool.mkdir()
    rows = valid_rows(template_dir)  # the template's own pool, resharded 24 ways
    header, body = rows[0], rows[1:]
    for k in range(SHARDS):
        (pool / f"valid-{k:02d}.csv").write_text("\n".join([header, *body[k::SHARDS]]) + "\n")
    secret = make_pool(pool)
    seed = split_seed(b"\x0a" * 32, b"\x0b" * 32)
    out = {}
    for part in ("public", "hidden"):
        packed = pack_part(secret, pool, seed, PERMILLE, part, work / f"{part}.tar")
        out[part] = open_part(packed.path, packed.size, work / part, secret.root, secret.pool,
                              PERMILLE, seed, part)
    return out


@pytest.fixture(scope="module")
def model(template_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained model of the template's shape, saved as train would save it."""
    import torch

    lcjob = _lcjob(template_dir)
    torch.manual_seed(3)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    torch.save({"state_dict": lcjob.make_model(32).state_dict()}, path)
    return path


def _host_loss(template_dir: Path, model: Path, files: tuple[Path, ...]) -> tuple[float, int]:
    import torch

    lcjob = _lcjob(template_dir)
    net = lcjob.make_model(32)
    net.load_state_dict(torch.load(model, weights_only=True)["state_dict"])
    x, y = lcjob.load_csv(*files)
    with torch.no_grad():
        return torch.nn.functional.cross_entropy(net(x), y).item(), len(y)


def _data(template_data_dirs: dict[str, Path], part: VerifiedPart) -> dict[str, Path]:
    return {"train": template_data_dirs["train"],
            "valid": part.files[0].parent.parent}  # the part's unpacked folder


def test_holdout_blob_6_evaluate_scores_whichever_part_is_mounted_at_data_valid(
        runner: SandboxRunner, template_job: BuiltJob, template_dir: Path,
        template_data_dirs: dict[str, Path], parts: dict[str, VerifiedPart],
        model: Path) -> None:
    """[HOLDOUT-BLOB.6] The public part at /data/valid: evaluate scores exactly its shards'
    rows; the hidden part at the same place: exactly the hidden rows. The same image and
    command, the loss the host computes on the same rows."""
    limits = load_job_file(template_dir).limits
    results: dict[str, Any] = {}
    for name, part in parts.items():
        result = runner.evaluate(template_job.image_id, model, limits, job_id=f"holdout-{name}",
                                 data=_data(template_data_dirs, part))
        assert result.ok, (name, result.reason, result.detail, result.logs[-2000:])
        expected_loss, rows = _host_loss(template_dir, model, part.files)
        assert result.metrics["examples"] == rows
        assert result.loss is not None and math.isclose(result.loss, expected_loss,
                                                         rel_tol=1e-5)
        results[name] = result
    assert len(parts["public"].indices) == SHARDS * PERMILLE // 1000
    assert results["public"].metrics["examples"] + results["hidden"].metrics["examples"] == 360
    assert results["public"].loss != results["hidden"].loss


def test_holdout_blob_6_nothing_tells_a_job_which_part_it_sees(
        runner: SandboxRunner, template_job: BuiltJob, template_dir: Path,
        template_data_dirs: dict[str, Path], parts: dict[str, VerifiedPart],
        tmp_path: Path) -> None:
    """[HOLDOUT-BLOB.6] Environment, mount point and options, the folder's layout and
    holdout.json's keys are the same for both runs; only the sample files differ. The
    mount is read-only."""
    limits = load_job_file(template_dir).limits
    script = ("env | sort; grep ' /data/valid ' /proc/self/mountinfo | cut -d' ' -f5,6; "
              "ls /data/valid; touch /data/valid/x 2>/dev/null && echo WROTE; "
              "ls /data/valid/samples")
    seen = {}
    for name, part in parts.items():
        result = runner.run_entry(template_job.image_id, "evaluate", ["sh", "-c", script], {},
                                  limits, tmp_path / name, data=_data(template_data_dirs, part))
        assert result.ok, (name, result)
        text = result.logs.decode()
        assert "WROTE" not in text
        listed = text.split("holdout.json\nsamples\n", 1)
        assert len(listed) == 2, text
        assert listed[1].split() == [p.name for p in part.files]
        seen[name] = listed[0]
    assert seen["public"] == seen["hidden"], seen
    assert "/data/valid ro" in seen["public"]
