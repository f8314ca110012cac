"""The worker's persisted state survives a crash, and a rejected transaction is only logged."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from chain.crypto import address_to_text
from chain.train.bodies import ClaimLoss, model_commitment
from chain.types import Address, Hash32
from client.node.config import WorkerPolicy
from client.worker.state import (
    ClaimSecret,
    VoteSecret,
    WorkerState,
    WorkerStateError,
    WorkerStore,
)
from client.worker.worker import Worker
from tests.framework.solo import SoloNode
from tests.ledger.harness import make_genesis

ME = Address(b"\x05" * 20)
JOB = b"\x0b" * 32


def secret(attempt: int, loss: float, model_file: str = "models/m.pt") -> ClaimSecret:
    salt = bytes([attempt]) * 32
    commitment = model_commitment(JOB, ME, b"\x0c" * 32, salt)
    return ClaimSecret(attempt, loss, loss, model_file, (b"\x0c" * 32).hex(), salt.hex(),
                       commitment.hex())


def test_state_round_trips_with_exact_floats(tmp_path: Path) -> None:
    store = WorkerStore(tmp_path, ME)
    state = store.open()
    progress = state.job(JOB)
    progress.attempts = 2
    progress.best_measured = 0.1 + 0.2  # not a short decimal: must come back bit for bit
    progress.claims.append(secret(1, 0.1 + 0.2))
    state.votes[state.vote_key(JOB, b"\x06" * 20)] = VoteSecret(
        JOB.hex(), (b"\x06" * 20).hex(), False, 1 / 3, "aa" * 32, "bb" * 32)
    store.save()
    again = WorkerStore(tmp_path, ME).open()
    assert again == state
    assert again.jobs[JOB.hex()].best_measured == 0.1 + 0.2
    vote = again.vote(JOB, b"\x06" * 20)
    assert vote is not None and vote.measured_loss == 1 / 3
    found = again.secret_for(JOB, bytes.fromhex(secret(1, 0.3).commitment))
    assert found is not None and found.attempt == 1


def test_an_interrupted_write_leaves_the_last_saved_state(tmp_path: Path) -> None:
    store = WorkerStore(tmp_path, ME)
    store.open().job(JOB).attempts = 1
    store.save()
    # A crash between writing the temp file and the rename: the temp file is all that differs.
    (store.dir / ".state.json.999.tmp").write_text('{"version": 1, "half')
    (store.runs / "leftover-run").mkdir()
    again = WorkerStore(tmp_path, ME)
    assert again.open().jobs[JOB.hex()].attempts == 1
    assert not list(again.dir.glob(".state.json.*.tmp"))
    assert not any(again.runs.iterdir())


def test_a_corrupt_or_foreign_state_file_is_refused_clearly(tmp_path: Path) -> None:
    store = WorkerStore(tmp_path, ME)
    store.open()
    store.path.write_text("{not json")
    with pytest.raises(WorkerStateError, match=r"unreadable.*move it away"):
        WorkerStore(tmp_path, ME).open()
    other = WorkerState(address_to_text(Address(b"\x07" * 20)))
    store.path.write_text(json.dumps(other.to_json()))
    with pytest.raises(WorkerStateError, match="belongs to"):
        WorkerStore(tmp_path, ME).open()


def test_kept_models_are_durable_copies_and_forgotten_with_their_job(tmp_path: Path) -> None:
    store = WorkerStore(tmp_path, ME)
    state = store.open()
    source = tmp_path / "model.pt"
    source.write_bytes(b"weights")
    kept = store.keep_model(source, "job-1.pt")
    assert kept.read_bytes() == b"weights" and kept.parent == store.models
    state.job(JOB).claims.append(secret(1, 0.5, str(kept.relative_to(store.dir))))
    state.votes[state.vote_key(JOB, b"\x06" * 20)] = VoteSecret(
        JOB.hex(), (b"\x06" * 20).hex(), True, 0.5, "aa" * 32, "bb" * 32)
    state.votes[state.vote_key(b"\x0d" * 32, b"\x06" * 20)] = VoteSecret(
        (b"\x0d" * 32).hex(), (b"\x06" * 20).hex(), True, 0.5, "aa" * 32, "bb" * 32)
    store.forget_job(JOB)
    assert not kept.exists() and JOB.hex() not in state.jobs
    assert list(state.votes) == [state.vote_key(b"\x0d" * 32, b"\x06" * 20)]


async def test_a_rejected_transaction_is_logged_with_its_code_not_raised(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    genesis, keys = make_genesis()
    caplog.set_level(logging.INFO, logger="learningchain.worker")
    async with SoloNode(genesis, keys["v0"], tmp_path, block_interval=60) as node:
        worker = Worker(node, WorkerPolicy(), key=keys["alice"])
        body = ClaimLoss(Hash32(JOB), 0.5, Hash32(b"\x01" * 32))
        assert worker.outbox.send(body, "claim", JOB) is False
    assert worker.summary()["sent"] == {"rejected": 1}
    assert f"job {JOB.hex()[:12]}: claim rejected: unknown_job: no job {JOB.hex()}" in caplog.text
