"""What happened to each of this worker's runs of a job, kept so its submitter can be told.

Before this, a failed run's reason and traceback reached only the worker's own
log, so a submitter whose ``train`` crashed saw nothing but a refund. Each
training attempt now leaves one ``AttemptRecord``: which stage ended it
(``train``, ``self-check``), the sandbox's ``FailureReason`` and whose fault it
is [JOB-EXIT.5], the exit code, one line of detail, and for a failed run a short
excerpt of what the job printed (the end of its traceback). The node's API
serves them (``GET /jobs/{job_id}/logs`` [API-JOBLOG.1]).

[API-JOBLOG.3] A failed run's output is not a channel for what the protocol sells
(issue 30 §3: a ``train`` that printed its weights and exited 1 gave every trained
model to the submitter through this record, byte for byte). What is kept, and so
served, is :func:`excerpt`: at most ``EXCERPT_LINES`` lines of ``EXCERPT_LINE_CHARS``
characters from the end (from the last ``Traceback`` on, when there is one), where
every run of ``MAX_DIGIT_RUN`` or more digits and every token of ``MAX_TOKEN_CHARS``
or more letters, digits and ``+/=_-`` (hex, base64, packed numbers) is replaced by
``…``, and a line holding more than ``MAX_NUMBERS_PER_LINE`` numbers is dropped. At
most ``EXCERPT_BYTES`` bytes per failed attempt, whatever the job printed; the full
output never leaves the run (the worker's own log gets 500 characters of it, for
its operator only). The detail line, which can quote job-chosen text (file names,
metrics), gets the same token rule and ``MAX_DETAIL_CHARS``.

[API-JOBLOG.4] (issue 47 §2) Characters are not information: the same weights printed as
CJK characters kept about 435 bytes of data per failed attempt in the 720-byte excerpt. The
token and digit rules now apply to every script (``client.worker.text_bound.redact``), the
text is made plain first (Unicode spaces, invisible and private-use characters), and what is
kept is *measured*: the excerpt keeps the last lines that measure at most
``EXCERPT_INFO_BYTES`` by ``text_bound.information_bytes`` (DEFLATE with a fixed
dictionary, one-to-one), so it carries at most ``8 * EXCERPT_INFO_BYTES + 1`` bits of
anything; the detail line at most ``8 * DETAIL_INFO_BYTES + 1``.

Bounded and sanitised [API-JOBLOG.2]:

- per attempt, at most the ``EXCERPT_BYTES`` excerpt and a detail line of
  ``MAX_DETAIL_CHARS``; per job the last ``MAX_ATTEMPTS_KEPT`` attempts; per
  worker identity the files of the last ``MAX_JOBS_KEPT`` jobs (oldest removed);
- output is decoded as UTF-8 with replacement characters, so a record is always
  valid JSON text; control characters stay in the text and are escaped where it
  is shown (``client.cli.inert``, the JSON encoder);
- this worker's own folder is replaced by ``<worker>`` in details (its host paths
  are nobody else's business);
- a successful run keeps no output: until its claim is revealed, what a training
  run printed may describe the model (its loss is what the claim announces).

Layout: ``<data_dir>/worker/<lc1 address>/attempts/<job hex>.json``, each a JSON
list of records, replaced atomically. Records survive a restart and a
settlement: a refunded submitter asks afterwards.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from client.worker.text_bound import (
    keep_end,
    keep_start,
    numbers_in,
    plain,
    redact,
    redact_tokens,
)
from sandbox.results import WORKER_FAULTS, FailureReason

log = logging.getLogger("learningchain.worker")

ATTEMPTS_DIR = "attempts"
LOG_TAIL_BYTES = 64 * 1024
"""Bytes of a failed run's output kept: the end, where a traceback is."""
MAX_ATTEMPTS_KEPT = 8
"""Attempts kept per job (the latest)."""
MAX_JOBS_KEPT = 64
"""Job files kept per worker identity (the most recently written)."""
MAX_DETAIL_CHARS = 300
EXCERPT_LINES = 6
"""[API-JOBLOG.3] Lines of a failed run's output kept (the last ones)."""
EXCERPT_LINE_CHARS = 120
"""[API-JOBLOG.3] Characters kept of each line."""
EXCERPT_BYTES = 720
"""[API-JOBLOG.3] The excerpt's bound in UTF-8 bytes."""
MAX_NUMBERS_PER_LINE = 4
"""[API-JOBLOG.3] A line with more numbers than this (a tensor, a list of weights) is
dropped."""
EXCERPT_INFO_BYTES = 64
"""[API-JOBLOG.4] The excerpt's measure (``text_bound.information_bytes``) at most: it
carries at most 8 * 64 + 1 = 513 bits, whatever script the job prints in."""
DETAIL_INFO_BYTES = 48
"""[API-JOBLOG.4] The detail line's measure at most: at most 8 * 48 + 1 = 385 bits."""

STAGES = ("train", "self-check")
OUTCOMES = ("ok", "failed")
FAULTS = ("job", "worker", "")


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One training attempt of one job by one worker identity, as its submitter may see it."""

    job_id: str
    """Hex."""
    worker: str
    """The worker's address text."""
    attempt: int
    """The attempt number whose seed was used (a run given back repeats its number)."""
    run: int
    """Every run started on this job by this worker, counted from 1 [WORK-ATTEMPTS.1]."""
    started_ms: int
    seconds: float
    stage: str
    """Where the attempt ended: ``train``, ``self-check`` (the two evaluation runs)."""
    outcome: str
    """``ok`` (a measured loss) or ``failed``."""
    reason: str
    """A ``FailureReason`` value, ``inconsistent`` for a self-check that disagreed, or ''."""
    fault: str
    """``job`` (the attempt is used up), ``worker`` (given back) [JOB-EXIT.5], or ''."""
    exit_code: int | None
    detail: str
    loss: float | None
    """The measured loss of a successful attempt."""
    log: str
    """[API-JOBLOG.3] A redacted excerpt of the end of what the failed run printed (stdout
    and stderr, interleaved): at most ``EXCERPT_BYTES``."""
    log_bytes: int
    """How many bytes the run printed in all (``log`` may hold only the end of them)."""
    resumed_from: int | None = None
    """[WORK-RESUME.1] The checkpoint step this run resumed from; None: it started over."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: Any) -> AttemptRecord:
        if not isinstance(doc, dict):
            raise ValueError("an attempt record is an object")
        values: dict[str, Any] = {}
        for f in fields(cls):
            value = doc.get(f.name)
            kinds = _FIELD_TYPES[f.name]
            if isinstance(value, bool) or not isinstance(value, kinds):
                raise ValueError(f"attempt record field {f.name!r}: {value!r:.80}")
            values[f.name] = value
        return cls(**values)

    def bounded(self) -> AttemptRecord:
        """[API-JOBLOG.3] The record as it may be served: its log an excerpt, its detail
        redacted and cut (a record written by an older node may hold more)."""
        detail = bound_detail(self.detail)
        log_text = excerpt(self.log.encode("utf-8", "surrogatepass")) if self.log else ""
        return replace(self, log=log_text, detail=detail)

    def with_tail(self, max_bytes: int) -> AttemptRecord:
        """The same record with at most the last ``max_bytes`` (UTF-8) of its log."""
        data = self.log.encode("utf-8", "surrogatepass")
        if len(data) <= max_bytes:
            return self
        tail = data[len(data) - max_bytes:] if max_bytes else b""
        return replace(self, log=tail.decode("utf-8", "replace"))


_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "job_id": (str,), "worker": (str,), "attempt": (int,), "run": (int,),
    "started_ms": (int,), "seconds": (int, float), "stage": (str,), "outcome": (str,),
    "reason": (str,), "fault": (str,), "exit_code": (int, type(None)), "detail": (str,),
    "loss": (int, float, type(None)), "log": (str,), "log_bytes": (int,),
    "resumed_from": (int, type(None)),
}
"""What each field of a record read back from disk must be (a damaged file is ignored)."""


def fault_of(reason: FailureReason | None) -> str:
    """[JOB-EXIT.5] ``worker`` for a reason in ``WORKER_FAULTS``, else ``job``."""
    if reason is None:
        return ""
    return "worker" if reason in WORKER_FAULTS else "job"


def log_tail(output: bytes) -> str:
    """The last ``LOG_TAIL_BYTES`` of a run's output as text (invalid UTF-8 replaced)."""
    return output[-LOG_TAIL_BYTES:].decode("utf-8", "replace")


def bound_detail(text: str) -> str:
    """[API-JOBLOG.3] [API-JOBLOG.4] A detail line as it may be served: plain, long tokens
    of any script redacted (numbers stay: sizes, limits), at most ``MAX_DETAIL_CHARS``
    and a measure of ``DETAIL_INFO_BYTES`` (cut at the end, ``...`` added)."""
    detail = redact_tokens(plain(text.replace("\n", " ")))
    if len(detail) > MAX_DETAIL_CHARS:
        detail = detail[:MAX_DETAIL_CHARS] + "..."
    return keep_start(detail, DETAIL_INFO_BYTES)


def excerpt(output: bytes) -> str:
    """[API-JOBLOG.3] [API-JOBLOG.4] What a failed run's record keeps of its output: the
    last lines (from the last traceback on), plain, redacted in every script, numeric lines
    dropped, at most ``EXCERPT_BYTES`` and a measure of ``EXCERPT_INFO_BYTES``."""
    lines = plain(log_tail(output)).splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent")]
    if starts:
        lines = lines[starts[-1]:]
    kept: list[str] = []
    for line in reversed(lines):
        if len(kept) == EXCERPT_LINES:
            break
        if not line.strip() or numbers_in(line) > MAX_NUMBERS_PER_LINE:
            continue
        kept.append(redact(line[:EXCERPT_LINE_CHARS * 4])[:EXCERPT_LINE_CHARS])
    text = "\n".join(keep_end(list(reversed(kept)), EXCERPT_INFO_BYTES))
    data = text.encode("utf-8", "surrogatepass")
    if len(data) > EXCERPT_BYTES:
        text = data[len(data) - EXCERPT_BYTES:].decode("utf-8", "replace")
    return text


class AttemptLog:
    """The attempt records of one worker identity (``<worker dir>/attempts``)."""

    def __init__(self, worker_dir: Path, worker: str) -> None:
        self.dir = worker_dir / ATTEMPTS_DIR
        self.worker = worker
        self._private = str(worker_dir.resolve())
        self._latest: dict[str, AttemptRecord | None] = {}

    def sanitise(self, text: str) -> str:
        """A detail line without this worker's host paths, bounded, its long tokens
        redacted [API-JOBLOG.3], its information bounded [API-JOBLOG.4]."""
        return bound_detail(text.replace(self._private, "<worker>"))

    def record(self, job_id: bytes, *, attempt: int, run: int, started_ms: int,
               seconds: float, stage: str, reason: FailureReason | str | None,
               fault: str, exit_code: int | None = None, detail: str = "",
               loss: float | None = None, output: bytes = b"",
               resumed_from: int | None = None) -> AttemptRecord:
        """Append one attempt to the job's file (the last ``MAX_ATTEMPTS_KEPT`` stay)."""
        failed = reason is not None
        rec = AttemptRecord(
            job_id=job_id.hex(), worker=self.worker, attempt=attempt, run=run,
            started_ms=started_ms, seconds=round(seconds, 3), stage=stage,
            outcome="failed" if failed else "ok", reason=str(reason or ""), fault=fault,
            exit_code=exit_code, detail=self.sanitise(detail), loss=loss,
            log=excerpt(output) if failed else "", log_bytes=len(output),
            resumed_from=resumed_from)
        try:
            self._write(job_id.hex(), [*read_records(self._file(job_id.hex())), rec])
        except OSError as e:  # the run's outcome is in the node's log either way
            log.warning("job %s: could not keep the attempt record: %s", job_id.hex()[:12], e)
        self._latest[job_id.hex()] = rec
        return rec

    def latest(self, job_hex: str) -> AttemptRecord | None:
        """The last attempt recorded for a job (read once from disk, then remembered)."""
        if job_hex not in self._latest:
            records = read_records(self._file(job_hex))
            self._latest[job_hex] = records[-1] if records else None
        return self._latest[job_hex]

    def last_failure(self, job_hex: str) -> str | None:
        """``reason: detail`` of the job's last attempt when it failed, for the summary."""
        rec = self.latest(job_hex)
        if rec is None or rec.outcome != "failed":
            return None
        return f"{rec.stage}: {rec.reason}: {rec.detail}"

    def _file(self, job_hex: str) -> Path:
        return self.dir / f"{job_hex}.json"

    def _write(self, job_hex: str, records: list[AttemptRecord]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self._file(job_hex)
        tmp = self.dir / f".{job_hex}.{os.getpid()}.tmp"
        data = json.dumps([r.to_json() for r in records[-MAX_ATTEMPTS_KEPT:]])
        tmp.write_text(data, encoding="utf-8")
        os.replace(tmp, path)
        self._prune()

    def _prune(self) -> None:
        """Keep the files of the ``MAX_JOBS_KEPT`` most recently written jobs."""
        files = sorted(self.dir.glob("*.json"), key=_mtime, reverse=True)
        for old in files[MAX_JOBS_KEPT:]:
            with contextlib.suppress(OSError):
                old.unlink()
            self._latest.pop(old.stem, None)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def read_records(path: Path) -> list[AttemptRecord]:
    """The records of one job file; a missing or damaged file reads as none."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return [AttemptRecord.from_json(d).bounded() for d in doc][-MAX_ATTEMPTS_KEPT:]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, TypeError) as e:
        log.warning("attempt records %s are unreadable (%s); ignored", path, e)
        return []


def job_attempts(worker_root: Path, job_id: bytes) -> list[AttemptRecord]:
    """Every worker identity's records of ``job_id`` under a node's ``worker`` folder,
    oldest first (a node usually runs one worker; tests run several on one node)."""
    if not worker_root.is_dir():
        return []
    records: list[AttemptRecord] = []
    for identity in sorted(worker_root.iterdir()):
        if identity.is_dir():
            records.extend(read_records(identity / ATTEMPTS_DIR / f"{job_id.hex()}.json"))
    return sorted(records, key=lambda r: (r.started_ms, r.worker, r.run))
