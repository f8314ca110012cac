"""What a worker must not forget across a crash: its claims' secrets and its votes' salts.

A claim commits to ``(model_hash, salt)``; without the model file and the
salt the claimer cannot reveal, and forfeits. A committed vote without its
salt cannot be opened. So both are written here **before** the transaction
that depends on them is sent (write-ahead), and the worker resumes from this
file after a restart.

Layout under ``<data_dir>/worker/<lc1 address>/``::

    state.json              this file's records (atomic: temp, fsync, rename, fsync dir)
    models/<job>-<n>.pt     the model of each claim (fsynced before its claim is sent)
    checkpoints/<job>-<n>/  the kept checkpoint of attempt n [JOB-CHECKPOINT.2]
    runs/                   scratch output of training runs (wiped at start)

Floats are stored with JSON's shortest round-trip form, so a loss read back
is the same double and re-derived commitments match bit for bit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chain.crypto import address_to_text
from chain.types import Address

log = logging.getLogger("learningchain.worker")

STATE_FILE = "state.json"
STATE_VERSION = 1


class WorkerStateError(Exception):
    """The state file exists but cannot be used; the message says what to do."""


@dataclass(slots=True)
class ClaimSecret:
    """One claim this worker sent (or is about to send) and what opens it."""

    attempt: int
    measured_loss: float
    claimed_loss: float
    model_file: str
    """Relative to the worker folder."""
    model_hash: str
    """Hex blob id of the model file (``chain.content``)."""
    salt: str
    commitment: str


@dataclass(slots=True)
class JobProgress:
    """This worker's own progress on one job."""

    attempts: int = 0
    """Training runs started (a run cut short by a crash counts: its seed is used)."""
    best_measured: float | None = None
    claims: list[ClaimSecret] = field(default_factory=list)
    runs: int = 0
    """[WORK-ATTEMPTS.1] Every training run started on this job, given-back ones included;
    never decreases, so the absolute bound holds across restarts."""
    inconsistent: str = ""
    """[WORK-SELFCHECK.1] Why the job's evaluation was found not to reproduce (never
    retried); empty while it has not been."""
    running: int = 0
    """[WORK-RESUME.1] The attempt whose run is under way (0: none). Still set when the
    worker starts means the run was cut short by a crash, a kill or a stop."""


@dataclass(slots=True)
class OwnedItem:
    """[WORK-GC.1] An image this worker loaded or a blob it fetched: only these are removed."""

    kind: str
    """``image`` (an engine image id) or ``blob`` (a blob id, hex)."""
    size_bytes: int
    jobs: list[str] = field(default_factory=list)
    """Job ids (hex) that used it; removable once all of them are settled."""
    added_ms: int = 0


@dataclass(slots=True)
class VoteSecret:
    """A vote this worker committed (or is about to) on one turn of one job."""

    job_id: str
    claimer: str
    valid: bool
    measured_loss: float | None
    salt: str
    commitment: str
    holdout_ok: bool | None = None
    """A holdout vote [HOLDOUT-VOTE.1]: whether the hidden part opened its commitment;
    None for a plain vote."""
    hidden_loss: float | None = None
    """A holdout vote's loss on the hidden part."""
    challenge_loss: float | None = None
    """[VOTE-CHALLENGE.1] The vote's answer to the turn's challenge (None: none); on a
    holdout vote, the public run's [HOLDOUT-CHALLENGE.1]."""
    hidden_challenge_loss: float | None = None
    """[HOLDOUT-CHALLENGE.1] A holdout vote's answer to the challenge on the hidden part."""


@dataclass(slots=True)
class WorkerState:
    address: str
    jobs: dict[str, JobProgress] = field(default_factory=dict)
    """By job id (hex)."""
    votes: dict[str, VoteSecret] = field(default_factory=dict)
    """By ``<job hex>:<claimer hex>``."""
    owned: dict[str, OwnedItem] = field(default_factory=dict)
    """[WORK-GC.1] By image id or blob id (hex): what this worker put on this machine."""
    settled: list[str] = field(default_factory=list)
    """[WORK-GC.1] Job ids (hex) seen settled whose images or blobs are still owned."""

    def job(self, job_id: bytes) -> JobProgress:
        return self.jobs.setdefault(job_id.hex(), JobProgress())

    def find_job(self, job_id: bytes) -> JobProgress | None:
        return self.jobs.get(job_id.hex())

    def secret_for(self, job_id: bytes, commitment: bytes) -> ClaimSecret | None:
        progress = self.jobs.get(job_id.hex())
        if progress is None:
            return None
        for claim in progress.claims:
            if claim.commitment == commitment.hex():
                return claim
        return None

    def best_claim(self, job_id: bytes) -> ClaimSecret | None:
        progress = self.jobs.get(job_id.hex())
        if progress is None or not progress.claims:
            return None
        return min(progress.claims, key=lambda c: c.claimed_loss)

    @staticmethod
    def vote_key(job_id: bytes, claimer: bytes) -> str:
        return f"{job_id.hex()}:{claimer.hex()}"

    def vote(self, job_id: bytes, claimer: bytes) -> VoteSecret | None:
        return self.votes.get(self.vote_key(job_id, claimer))

    def to_json(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, doc: Any) -> WorkerState:
        if not isinstance(doc, dict) or doc.get("version") != STATE_VERSION:
            raise ValueError(f"not a version {STATE_VERSION} worker state")
        jobs = {
            key: JobProgress(value["attempts"], value["best_measured"],
                             [ClaimSecret(**c) for c in value["claims"]],
                             int(value.get("runs", value["attempts"])),
                             str(value.get("inconsistent", "")),
                             int(value.get("running", 0)))
            for key, value in doc["jobs"].items()
        }
        votes = {key: VoteSecret(**value) for key, value in doc["votes"].items()}
        owned = {key: OwnedItem(**value) for key, value in doc.get("owned", {}).items()}
        return cls(doc["address"], jobs, votes, owned, list(doc.get("settled", [])))


class WorkerStore:
    """The worker's folder: its state file and its model files."""

    def __init__(self, root: Path, address: Address) -> None:
        self.address_text = address_to_text(address)
        self.dir = root / self.address_text
        self.models = self.dir / "models"
        self.runs = self.dir / "runs"
        self.checkpoints = self.dir / "checkpoints"
        self.path = self.dir / STATE_FILE
        self.state = WorkerState(self.address_text)

    def open(self) -> WorkerState:
        """Create the folders, load the state (or start empty), wipe stale run scratch."""
        for folder in (self.dir, self.models, self.runs):
            folder.mkdir(parents=True, exist_ok=True)
        for leftover in self.dir.glob(f".{STATE_FILE}.*.tmp"):
            with contextlib.suppress(OSError):
                leftover.unlink()  # a write a crash interrupted: the rename never happened
        _remove_tree_contents(self.runs)
        if self.path.exists():
            try:
                state = WorkerState.from_json(json.loads(self.path.read_text(encoding="utf-8")))
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise WorkerStateError(
                    f"worker state {self.path} is unreadable ({e}); move it away to start "
                    f"afresh (claims and votes in it can then no longer be revealed)") from e
            if state.address != self.address_text:
                raise WorkerStateError(f"worker state {self.path} belongs to {state.address}, "
                                       f"not {self.address_text}")
            self.state = state
        return self.state

    def save(self) -> None:
        """Atomically replace the state file: temp file, fsync, rename, fsync the folder."""
        data = json.dumps(self.state.to_json(), indent=1, sort_keys=True).encode()
        tmp = self.dir / f".{STATE_FILE}.{os.getpid()}.tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except OSError:  # a full disk: the old file stands, the partial copy goes
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, self.path)
        fsync_dir(self.dir)

    def keep_model(self, source: Path, name: str) -> Path:
        """Move a trained model into ``models/`` durably; returns its new path."""
        dest = self.models / name
        tmp = self.models / f".{name}.tmp"
        with open(source, "rb") as src, open(tmp, "wb") as out:
            while chunk := src.read(1024 * 1024):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
        fsync_dir(self.models)
        return dest

    def checkpoint_dir(self, job_id: bytes, attempt: int) -> Path:
        """[JOB-CHECKPOINT.2] Where attempt ``attempt``'s checkpoint copies are kept."""
        return self.checkpoints / f"{job_id.hex()[:16]}-{attempt}"

    def drop_checkpoints(self, job_id: bytes, attempt: int | None = None) -> None:
        """Remove one attempt's kept checkpoint, or every attempt's of the job."""
        if attempt is not None:
            shutil.rmtree(self.checkpoint_dir(job_id, attempt), ignore_errors=True)
            return
        with contextlib.suppress(OSError):
            for folder in self.checkpoints.glob(f"{job_id.hex()[:16]}-*"):
                shutil.rmtree(folder, ignore_errors=True)

    def give_back_interrupted(self, has_checkpoint: Callable[[bytes, int], bool]
                              ) -> list[tuple[str, int]]:
        """[WORK-RESUME.1] At start: a run cut short (``running`` still set) whose attempt
        kept a checkpoint is given back, so the same attempt (same seed) runs again and
        resumes; without a checkpoint its seed stays spent, as before. ``runs`` is never
        lowered [WORK-ATTEMPTS.1]. Returns (job hex, attempt) of each given back."""
        given = []
        for job_hex, progress in self.state.jobs.items():
            attempt, progress.running = progress.running, 0
            if attempt and attempt == progress.attempts \
                    and has_checkpoint(bytes.fromhex(job_hex), attempt):
                progress.attempts -= 1
                given.append((job_hex, attempt))
        self.save()
        return given

    def model_path(self, secret: ClaimSecret) -> Path:
        return self.dir / secret.model_file

    def forget_job(self, job_id: bytes) -> None:
        """Drop a settled job's records and model files (revealed models live in the blob store)."""
        progress = self.state.jobs.pop(job_id.hex(), None)
        if progress is not None:
            for claim in progress.claims:
                with contextlib.suppress(OSError):
                    self.model_path(claim).unlink()
        prefix = job_id.hex() + ":"
        for key in [k for k in self.state.votes if k.startswith(prefix)]:
            del self.state.votes[key]
        self.drop_checkpoints(job_id)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_tree_contents(folder: Path) -> None:
    import shutil

    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                child.unlink()
