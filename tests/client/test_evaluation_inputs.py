"""The claimer's evaluations and a voter's are built alike, field by field (issue 30 §1).

[EVAL-SAME.1] the self-check [WORK-SELFCHECK.1], the claimer's own vote [VOTE-SELF.1]
and every voter's vote build their run with ``client.worker.evaluation``; these tests
build the claimer's and a voter's evaluation of one model and compare every field, and
what a runner receives from each. [EVAL-SAME.2] The only value that may differ is the
self-check's challenge seed (the turn's seed does not exist before the reveal): same
form, same length, drawn fresh each time.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chain.train.challenge import challenge_seed
from client.worker.evaluation import (
    EvaluationInputs,
    challenge_form,
    evaluation_inputs,
    fresh_challenge_seed,
    run_evaluation,
)
from sandbox.eval_env import CHALLENGE_FILE
from sandbox.results import EvalResult
from tests.ledger.harness import job_spec

JOB = b"\x21" * 32
CLAIMER, VOTER = b"\xc1" * 20, b"\xd2" * 20
MODEL_HASH = b"\x33" * 32
REVEAL_BLOCK = b"\x44" * 32
HOST_ONLY = {"label"}
"""Fields the job never sees: the container label names the worker on the host side."""


def _data(root: Path, who: str) -> dict[str, Path]:
    """A worker's data cache: its own host folders, mounted under the same names."""
    out = {}
    for name in ("valid", "train"):  # not sorted: the builder must order them
        folder = root / who / name
        folder.mkdir(parents=True)
        out[name] = folder
    return out


def _builds(tmp_path: Path) -> dict[str, EvaluationInputs]:
    spec = job_spec()
    turn = bytes(challenge_seed(REVEAL_BLOCK, JOB, CLAIMER, MODEL_HASH))
    claimer_data, voter_data = _data(tmp_path, "claimer"), _data(tmp_path, "voter")
    return {
        "self-check": evaluation_inputs(JOB, spec, CLAIMER, claimer_data,
                                        fresh_challenge_seed()),
        "own vote": evaluation_inputs(JOB, spec, CLAIMER, claimer_data, turn),
        "vote": evaluation_inputs(JOB, spec, VOTER, voter_data, turn),
    }


def _job_view(inputs: EvaluationInputs) -> dict[str, Any]:
    """What the job can see of a build: every field but the host-only ones, data as mount
    names in order (the host folders are the worker's own caches), plus the environment
    and the input folder's files with the challenge's form."""
    view: dict[str, Any] = {}
    for field in dataclasses.fields(inputs):
        if field.name in HOST_ONLY:
            continue
        value = getattr(inputs, field.name)
        view[field.name] = [name for name, _ in value] if field.name == "data" else value
    view["environment"] = list(inputs.environment().items())
    files = inputs.input_files()
    view["input_files"] = sorted(files)
    view["challenge_form"] = challenge_form(files[CHALLENGE_FILE])
    return view


def test_eval_same_1_claimer_and_voter_runs_are_built_alike_field_by_field(
        tmp_path: Path) -> None:
    """[EVAL-SAME.1] [EVAL-SAME.2] [VOTE-SELF.1] [WORK-SELFCHECK.1] Every field the job sees
    is equal between the claimer's own vote and a voter's vote; the self-check differs from
    them in the challenge seed's value only."""
    builds = _builds(tmp_path)
    own, vote, check = (_job_view(builds[k]) for k in ("own vote", "vote", "self-check"))
    assert set(own) == set(vote) == set(check)
    for key in own:
        assert own[key] == vote[key], key
        if key != "challenge_seed":
            assert check[key] == vote[key], key
    # the only difference the self-check has: the seed's value, in the same form
    assert check["challenge_seed"] != vote["challenge_seed"]
    assert len(check["challenge_seed"]) == len(vote["challenge_seed"]) == 32
    assert own["input_files"] == [CHALLENGE_FILE]  # the own vote has the file, as voters do
    assert own["data"] == ["train", "valid"]  # mount names, sorted
    # the host-only label differs by worker, as the container's name on the host does
    assert builds["own vote"].label != builds["vote"].label
    # a fresh seed each time: a job cannot learn "the self-check seed" by seeing it twice
    assert fresh_challenge_seed() != fresh_challenge_seed()


class RecordingRunner:
    """Records what ``SandboxRunner.evaluate`` receives, input folder contents included."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def evaluate(self, image_id: str, model_path: Path, limits: object, *,
                 input_dir: Path | None = None, job_id: str = "",
                 argv: tuple[str, ...] = (), seed: int | None = None, variant: int = 0,
                 data: Mapping[str, Path] | None = None) -> EvalResult:
        files = {} if input_dir is None else {
            p.name: json.loads(p.read_bytes()) for p in sorted(input_dir.iterdir())}
        self.calls.append({"image": image_id, "model": model_path, "limits": limits,
                           "argv": argv, "seed": seed, "variant": variant,
                           "data": list((data or {}).keys()), "files": files,
                           "label": job_id})
        return EvalResult(True, None, 0.5, {"loss": 0.5}, 0, 0.1, b"", "loss 0.5")


def test_eval_same_1_runner_receives_the_same_call_for_claimer_and_voter(
        tmp_path: Path) -> None:
    """[EVAL-SAME.1] What the runner is handed (and so what it mounts and sets) is the same
    for the own vote and a voter's vote; for the self-check it differs in the challenge
    seed only (and its variant run in ``variant``, the incidental variation of
    [EVAL-ENV.8])."""
    builds = _builds(tmp_path)
    model = tmp_path / "model.pt"
    model.write_bytes(b"m")
    runner = RecordingRunner()
    for name in ("self-check", "own vote", "vote"):
        run_evaluation(runner, "sha256:img", model, builds[name])  # type: ignore[arg-type]
    check, own, vote = runner.calls
    for call in (check, own, vote):
        call.pop("label")  # host side only
    assert own == vote
    check_seed = check["files"][CHALLENGE_FILE].pop("seed")
    vote_seed = vote["files"][CHALLENGE_FILE].pop("seed")
    assert check == vote
    assert check_seed != vote_seed and len(check_seed) == len(vote_seed) == 64
