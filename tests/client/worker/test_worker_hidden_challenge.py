"""The worker answers the challenge on the hidden part [HOLDOUT-CHALLENGE.1] (unit level).

The voter's hidden run gets the same ``$LC_INPUT/challenge.json`` as its public run
[JOB-EVAL.5]; the run's ``challenge_loss`` is committed with the holdout vote beside the
public answer and opened with it. The sandbox, node and outbox are stand-ins here (the
real hidden evaluation runs in ``tests/client/worker/test_worker_holdout.py``); what is tested
is the worker's own plumbing: which file each run gets and what the vote commits to.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from chain.crypto import PrivateKey
from chain.records import Job, JobStatus, VoteRecord
from chain.train.holdout.bodies import HoldoutVoteReveal, holdout_vote_commitment
from chain.types import Amount, Hash32, Height, TimeMs
from client.worker.state import WorkerState
from client.worker.votes import Verifier
from tests.ledger.harness import job_spec

ME = PrivateKey.from_seed(b"voter").address
CLAIMER = PrivateKey.from_seed(b"claimer").address
JOB_ID = Hash32(b"\x07" * 32)
SEED = b"\x5a" * 32


@dataclass
class FakeRunner:
    """Records each run's data and challenge file; answers 0.41 when given a challenge."""

    runs: list[tuple[dict[str, Path], dict[str, Any] | None]] = field(default_factory=list)

    def evaluate(self, image_id: str, model: Path, limits: object, *, job_id: str,
                 argv: tuple[str, ...], seed: int, data: dict[str, Path],
                 input_dir: Path | None = None, variant: int = 0) -> SimpleNamespace:
        challenge = None if input_dir is None else \
            json.loads((input_dir / "challenge.json").read_text())
        self.runs.append((data, challenge))
        metrics = {"loss": 0.3, **({"challenge_loss": 0.41} if challenge else {})}
        return SimpleNamespace(ok=True, loss=0.3, metrics=metrics, reason=None, detail="")


class Threads:
    async def run(self, fn: Any, *args: Any, **kw: Any) -> Any:
        return fn(*args, **kw)


@dataclass
class Sent:
    bodies: list[object] = field(default_factory=list)

    def send(self, body: object, *_: object) -> bool:
        self.bodies.append(body)
        return True

    def due(self, *_: object) -> bool:
        return True


def _verifier(tmp_path: Path, job: Job) -> tuple[Verifier, FakeRunner, Sent]:
    hidden_dir = tmp_path / "hidden"

    async def holdout_part(*_: object) -> Path:
        return hidden_dir

    runner, outbox = FakeRunner(), Sent()
    images = SimpleNamespace(data=SimpleNamespace(holdout_part=holdout_part),
                             forget=lambda _: None)
    node = SimpleNamespace(now_ms=lambda: 0, state=SimpleNamespace(job=lambda _: job))
    store = SimpleNamespace(state=WorkerState(ME.hex()), save=lambda: None)
    verifier = Verifier(cast(Any, node), cast(Any, None), ME, cast(Any, store),
                        cast(Any, outbox), cast(Any, Threads()), cast(Any, runner),
                        cast(Any, images), lambda: None)
    return verifier, runner, outbox


def _job(status: JobStatus) -> Job:
    return Job(JOB_ID, PrivateKey.from_seed(b"submitter").address, job_spec(), Height(1),
               TimeMs(0), status, Amount(0), current=CLAIMER, phase_deadline_ms=TimeMs(10_000),
               eligible_voters=(ME,))


def test_holdout_challenge_1_the_hidden_run_gets_the_turns_challenge(tmp_path: Path) -> None:
    """[HOLDOUT-CHALLENGE.1] [JOB-EVAL.5] With the turn's seed, the hidden run (the hidden
    part mounted as ``valid``) gets challenge.json with that seed and CHALLENGE_SIZE, and its
    challenge_loss is the answer. [EVAL-SAME.1] Without the turn's seed (its block not found)
    the run still gets a challenge.json of the same form (every evaluation has one), and
    no answer is committed."""
    job = _job(JobStatus.VOTE_COMMIT)
    verifier, runner, _ = _verifier(tmp_path, job)
    model, data = tmp_path / "model.pt", {"train": tmp_path / "train"}
    got = asyncio.run(verifier._hidden_loss(job, "img", model, data, SEED, answer=True))
    assert got == (True, 0.3, 0.41)
    mounted, challenge = runner.runs[-1]
    assert mounted["valid"] == tmp_path / "hidden"
    assert challenge == {"seed": SEED.hex(), "size": 32}
    assert asyncio.run(verifier._hidden_loss(job, "img", model, data, SEED,
                                             answer=False)) == (True, 0.3, None)
    assert runner.runs[-1][1] == {"seed": SEED.hex(), "size": 32}


def test_holdout_challenge_1_the_vote_commits_and_opens_both_answers(tmp_path: Path) -> None:
    """[HOLDOUT-CHALLENGE.1] [HOLDOUT-VOTE.1] The committed holdout vote covers the hidden and
    the public answers, and the opening sent later carries both, so it opens the
    commitment; a vote without a hidden loss commits no hidden answer."""
    job = _job(JobStatus.VOTE_COMMIT)
    verifier, _, outbox = _verifier(tmp_path, job)
    verifier._commit_vote(JOB_ID, CLAIMER, True, 0.3, (True, 0.35, 0.41), 0.28)
    secret = verifier.store.state.vote(JOB_ID, CLAIMER)
    assert secret is not None
    salt = bytes.fromhex(secret.salt)
    assert secret.commitment == holdout_vote_commitment(
        JOB_ID, CLAIMER, ME, True, 0.3, True, 0.35, salt, 0.41, 0.28).hex()
    opened = replace(_job(JobStatus.VOTE_REVEAL),
                     votes=(VoteRecord(ME, Hash32(bytes.fromhex(secret.commitment))),))
    verifier._reveal_vote(opened, 5)
    body = outbox.bodies[-1]
    assert isinstance(body, HoldoutVoteReveal)
    assert (body.hidden_challenge_loss, body.challenge_loss) == (0.41, 0.28)
    assert holdout_vote_commitment(JOB_ID, CLAIMER, ME, body.valid, body.measured_loss,
                                   body.holdout_ok, body.hidden_loss, body.salt,
                                   body.hidden_challenge_loss, body.challenge_loss).hex() \
        == secret.commitment
    verifier.store.state.votes.clear()
    verifier._commit_vote(JOB_ID, CLAIMER, True, 0.3, (True, None, 0.41), 0.28)
    secret = verifier.store.state.vote(JOB_ID, CLAIMER)
    assert secret is not None and secret.hidden_challenge_loss is None


def test_vote_failed_3_a_stalled_evaluation_gives_way_before_the_window_closes(
        tmp_path: Path) -> None:
    """[VOTE-FAILED.3] An evaluation that has not returned when the commit window is about to
    close (a job that stalls) is given up: ``_evaluate`` answers None, which the verifier
    votes as "evaluation failed" instead of missing its vote; the blocked thread is left
    to the runner's own limits (released here)."""
    import threading

    from client.worker.evaluation import evaluation_inputs
    from client.worker.sandboxing import Threads as RealThreads

    release = threading.Event()

    class StalledRunner:
        def evaluate(self, *_: object, **__: object) -> object:
            release.wait(30)
            return SimpleNamespace(ok=True, loss=0.3, metrics={"loss": 0.3})

    job = replace(_job(JobStatus.VOTE_COMMIT), phase_deadline_ms=TimeMs(0))
    verifier, _, _ = _verifier(tmp_path, job)
    verifier.threads = cast(Any, RealThreads())
    verifier.runner = cast(Any, StalledRunner())
    inputs = evaluation_inputs(JOB_ID, job.spec, ME, {}, SEED)

    async def evaluate_then_release() -> object:
        try:
            return await verifier._evaluate(job, "img", tmp_path / "model.pt", inputs)
        finally:
            release.set()  # before asyncio.run waits for its executor's threads

    assert asyncio.run(evaluate_then_release()) is None


def test_vote_failed_4_an_image_the_engine_lost_is_loaded_again_and_evaluated_once_more(
        tmp_path: Path) -> None:
    """[VOTE-FAILED.4] The engine answers ``image_missing`` (a prune removed the job's image
    after the check): the verifier forgets it, loads it again from its blob
    (``images.ensure``) and evaluates once more, so it votes with a measured loss instead
    of abstaining. If the image cannot be loaded again, the first failure stands (the
    verifier then abstains, as before); any other failure is not retried."""
    from client.worker.evaluation import evaluation_inputs
    from client.worker.sandboxing import ImageUnavailable
    from sandbox.results import FailureReason

    missing = SimpleNamespace(ok=False, loss=None, metrics={}, detail="not loaded",
                              reason=FailureReason.IMAGE_MISSING)
    measured = SimpleNamespace(ok=True, loss=0.3, metrics={"loss": 0.3}, reason=None,
                               detail="")

    class LosingRunner:
        def __init__(self, *answers: object) -> None:
            self.answers = list(answers)

        def evaluate(self, *_: object, **__: object) -> object:
            return self.answers.pop(0)

    calls: list[str] = []

    async def ensure(spec: object, label: str, job_id: bytes) -> str:
        calls.append("ensure")
        if fail_reload:
            raise ImageUnavailable("no peer serves blob", permanent=False)
        return "img"

    job = replace(_job(JobStatus.VOTE_COMMIT), phase_deadline_ms=TimeMs(60_000))
    verifier, _, _ = _verifier(tmp_path, job)
    verifier.images = cast(Any, SimpleNamespace(forget=lambda i: calls.append(f"forget {i}"),
                                                ensure=ensure))
    inputs = evaluation_inputs(JOB_ID, job.spec, ME, {}, SEED)

    def run(*answers: object) -> object:
        verifier.runner = cast(Any, LosingRunner(*answers))
        return asyncio.run(verifier._evaluate_reloading(job, "img", tmp_path / "m", inputs))

    fail_reload = False
    assert run(missing, measured) is measured
    assert calls == ["forget img", "ensure"]
    calls.clear()
    fail_reload = True
    assert run(missing, measured) is missing
    assert calls == ["forget img", "ensure"]
    calls.clear()
    timeout = SimpleNamespace(ok=False, loss=None, metrics={}, detail="",
                              reason=FailureReason.TIMEOUT)
    assert run(timeout, measured) is timeout and calls == []
