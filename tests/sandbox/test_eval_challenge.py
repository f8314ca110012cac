"""[VOTE-CHALLENGE.1] [JOB-EVAL.5] The evaluate side of the challenge: the template answers
it in the same run, and the node hands it the challenge as ``$LC_INPUT/challenge.json``.

A voter's evaluation gets the turn's seed and size; the template's evaluate reports
``challenge_loss``, the loss on the examples the seed picks (by the same algorithm as
``chain.train.challenge.challenge_subset``: checked here on the template's own source,
without Docker). The answer is bit-for-bit reproducible for one seed, differs between
seeds, and is absent when no challenge is given.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from chain.train.challenge import CHALLENGE_SIZE, challenge_subset
from sandbox.eval_env import CHALLENGE_FILE, write_challenge
from sandbox.job_file import load_job_file
from sandbox.job_template import BuiltJob
from sandbox.limits import TrainParams
from sandbox.results import RunResult
from sandbox.runner import SandboxRunner

TEMPLATE = Path(__file__).resolve().parents[2] / "sandbox" / "templates" / "digits" / \
    "evaluate.py.tmpl"


def _template_subset() -> object:
    """The template's own ``challenge_subset``, compiled from its source alone (it needs
    only hashlib, so no torch on the host)."""
    tree = ast.parse(TEMPLATE.read_text())
    [fn] = [n for n in tree.body if isinstance(n, ast.FunctionDef)
            and n.name == "challenge_subset"]
    namespace: dict[str, object] = {"hashlib": __import__("hashlib")}
    exec(compile(ast.Module([fn], []), str(TEMPLATE), "exec"), namespace)
    return namespace["challenge_subset"]


def test_vote_challenge_1_the_template_draws_the_ledgers_subset() -> None:
    """[VOTE-CHALLENGE.1] The template's subset is the spec's for every size and example
    count tried (what a second implementation must match: ledger.json's vectors)."""
    subset = _template_subset()
    vectors = json.loads((Path(__file__).resolve().parents[2] / "protocol_spec" / "vectors"
                          / "ledger.json").read_text())["challenge"]
    seed = bytes.fromhex(vectors["seed"]["seed"])
    for case in vectors["subsets"]:
        assert subset(seed, case["examples"], case["size"]) == case["indices"]  # type: ignore[operator]
    for n in (1, 2, 31, 32, 33, 360, 1797):
        for k in (1, CHALLENGE_SIZE, 100):
            assert subset(seed, n, k) == list(challenge_subset(seed, n, k))  # type: ignore[operator]


def test_vote_challenge_1_the_challenge_file_names_seed_and_size(tmp_path: Path) -> None:
    """[VOTE-CHALLENGE.1] ``challenge.json``: the seed as 64 hex digits and the size; a seed
    that is not 32 bytes is refused before any container runs."""
    folder = write_challenge(tmp_path / "in", b"\x07" * 32, CHALLENGE_SIZE)
    assert json.loads((folder / CHALLENGE_FILE).read_text()) == {"seed": "07" * 32,
                                                                 "size": CHALLENGE_SIZE}
    with pytest.raises(ValueError, match="32-byte seed"):
        write_challenge(tmp_path / "bad", b"\x07" * 31, CHALLENGE_SIZE)


@pytest.fixture(scope="module")
def trained(runner: SandboxRunner, template_job: BuiltJob, template_dir: Path,
            template_data_dirs: dict[str, Path],
            tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    job = load_job_file(template_dir)
    params = TrainParams(seed=7, hyperparameters={"learning_rate": 0.01, "hidden_size": 32,
                                                  "epochs": 10})
    out = tmp_path_factory.mktemp("trained") / "out"
    return runner.train(template_job.image_id, params, job.limits, None, out,
                        job_id="challenge", data=template_data_dirs)


@pytest.mark.docker
def test_vote_challenge_1_the_template_answers_the_challenge_in_the_same_run(
        runner: SandboxRunner, template_job: BuiltJob, template_dir: Path, trained: RunResult,
        template_data_dirs: dict[str, Path], tmp_path: Path) -> None:
    """[JOB-EVAL.5] [VOTE-CHALLENGE.1] With a challenge the template reports
    ``challenge_loss`` beside the same loss as without one; the same seed gives the same
    bits, another seed another subset loss; the subset's loss is not the full loss (what
    makes an echo miss)."""
    assert trained.ok and trained.model_path is not None, trained.detail
    limits = load_job_file(template_dir).limits

    def evaluate(seed: bytes | None, name: str) -> dict[str, float]:
        folder = None if seed is None else write_challenge(tmp_path / name, seed,
                                                           CHALLENGE_SIZE)
        result = runner.evaluate(template_job.image_id, trained.model_path, limits,  # type: ignore[arg-type]
                                 job_id=f"challenge-{name}", data=template_data_dirs,
                                 input_dir=folder)
        assert result.ok, (result.reason, result.detail)
        return dict(result.metrics)

    plain = evaluate(None, "plain")
    first, again = evaluate(b"\x01" * 32, "a"), evaluate(b"\x01" * 32, "b")
    other = evaluate(b"\x02" * 32, "c")
    assert "challenge_loss" not in plain
    assert first["loss"] == plain["loss"]  # the challenge changes nothing else
    assert first["challenge_loss"] == again["challenge_loss"]  # bit for bit
    assert other["challenge_loss"] != first["challenge_loss"]
    assert first["challenge_loss"] != first["loss"]
