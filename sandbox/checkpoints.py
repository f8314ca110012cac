"""Watching a training run: its progress file and its checkpoints [JOB-PROGRESS.*],
[JOB-CHECKPOINT.*].

A train container gets a size-limited tmpfs volume at /checkpoint, carved out of the
job's disk limit. While the entry point runs, a thread of the node copies
``/checkpoint/progress.json`` out every ``poll_s`` seconds (through the engine's archive
API under a deadline and the same bounded, checked extraction as /output [JOB-OUT.*],
[JOB-OUT.6]: no program of the job's image runs for it), hands the parsed progress
to the caller, and when the job announces a newer complete checkpoint, copies the
whole folder to the worker's disk. A later run of the same attempt (the worker,
the engine or the machine restarted) gets that copy read-only at /resume, mounted
from a fresh neutral folder so the job learns no host path [JOB-CHECKPOINT.5].

The host never loads a checkpoint: it only copies bytes within caps. Everything
a job writes here is untrusted; a bad file is logged and ignored, never raised.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from docker.types import Mount

from sandbox import policy
from sandbox.container_ops import ArchiveMissing, read_archive
from sandbox.limits import MIB, ResourceLimits
from sandbox.output import (
    NO_ROOT,
    ArchiveSourceBroken,
    OutputHostError,
    OutputRejected,
    extract_output,
)
from sandbox.progress import MAX_PROGRESS_BYTES, PROGRESS_FILE, Progress, read_progress_file

log = logging.getLogger("learningchain.sandbox")

CHECKPOINT_DIR = "/checkpoint"
"""[JOB-CHECKPOINT.1] The job's checkpoint folder (``LC_CHECKPOINT``), a tmpfs."""
RESUME_DIR = "/resume"
"""[JOB-CHECKPOINT.3] The kept checkpoint of an interrupted run, read-only (``LC_RESUME``)."""
ARCHIVE_ROOT = CHECKPOINT_DIR.lstrip("/")
POLL_S = 2.0
"""[JOB-PROGRESS.4] Seconds between two reads of the progress file."""
META_FILE = "meta.json"
"""Written by the host beside a kept copy, last: its presence marks the copy complete."""
MIN_CHECKPOINT_DISK_MB = 4
COPY_DEADLINE_S = 30.0
"""[JOB-OUT.6] One read of the progress file, or one copy of /checkpoint, is given up
after this long (the run goes on; its time limit is the runner's)."""


def train_split(limits: ResourceLimits, disk_mb: int) -> tuple[ResourceLimits, int]:
    """[JOB-CHECKPOINT.1] A train run's limits and its checkpoint tmpfs size in bytes.

    The checkpoint folder gets ``disk_mb // 4`` MiB, taken out of /output's share, so
    scratch + checkpoint + output never exceed the job's declared disk; under
    ``MIN_CHECKPOINT_DISK_MB`` a job has no checkpoint folder (and no progress file).
    """
    if disk_mb < MIN_CHECKPOINT_DISK_MB:
        return limits, 0
    size = (disk_mb // 4) * MIB
    output = limits.output_bytes - size
    if output < MIB:
        return limits, 0
    return replace(limits, output_bytes=output,
                   model_bytes=min(limits.model_bytes, output)), size


MIN_RESUME_S = 1.0
"""[JOB-CHECKPOINT.4] A resumed run with less wall time left than this is not started."""


def resumed_wall_time(limit_s: float, kept: KeptCheckpoint | None) -> float | None:
    """[JOB-CHECKPOINT.4] The wall-time limit of a run: the job's ``time_s`` minus what the
    attempt had spent up to the checkpoint it resumes from; None when too little is left."""
    left = limit_s - (kept.seconds if kept is not None else 0.0)
    return left if left >= MIN_RESUME_S else None


@dataclass(frozen=True, slots=True)
class KeptCheckpoint:
    """A complete copy of a run's /checkpoint on the worker's disk [JOB-CHECKPOINT.2]."""

    folder: Path
    """The copied files, to mount at /resume."""
    step: int
    """The ``checkpoint_step`` the job's progress file named in that copy."""
    seconds: float
    """Wall time the attempt had spent when the copy was taken (all its runs)."""


def kept_checkpoint(keep_dir: Path) -> KeptCheckpoint | None:
    """The newest complete copy under ``keep_dir``; None when there is none.

    Each copy is ``v<step>/`` with ``meta.json`` written last (by the host), so a crash
    mid-copy leaves an incomplete folder that is passed over.
    """
    best: KeptCheckpoint | None = None
    with contextlib.suppress(OSError):
        for child in keep_dir.iterdir():
            meta = child / META_FILE
            if not child.name.startswith("v") or child.is_symlink() or not meta.is_file():
                continue
            try:
                doc = json.loads(meta.read_text())
                kept = KeptCheckpoint(child / "files", int(doc["step"]),
                                      float(doc["seconds"]))
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if best is None or kept.step > best.step:
                best = kept
    return best


class RunWatch:
    """One train run's progress reader and checkpoint keeper (see the module docstring).

    ``keep_dir`` is where copies go (the worker's data dir, one folder per attempt);
    ``resume`` is the copy to offer back at /resume, if any; ``spent_s`` the wall time
    earlier runs of the attempt had spent up to that copy. ``on_progress`` is called from
    the watching thread with each new valid progress.
    """

    def __init__(self, keep_dir: Path, checkpoint_bytes: int,
                 on_progress: Callable[[Progress], None], *,
                 resume: KeptCheckpoint | None = None, poll_s: float = POLL_S,
                 label: str = "") -> None:
        self.keep_dir = keep_dir
        self.checkpoint_bytes = checkpoint_bytes
        self.on_progress = on_progress
        self.resume = resume
        self.poll_s = poll_s
        self.label = label or keep_dir.name
        self.kept_step = resume.step if resume is not None else -1
        self.spent_s = resume.seconds if resume is not None else 0.0
        self.last: Progress | None = None
        self.problem = ""
        """The last reason a progress file or checkpoint was ignored (logged once)."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0

    # -- what the container gets ---------------------------------------------------------

    def mounts(self) -> list[Mount]:
        """[JOB-CHECKPOINT.1] The checkpoint tmpfs, a volume the engine's archive API reads
        [JOB-OUT.6]."""
        return [policy.tmpfs_volume(CHECKPOINT_DIR, self.checkpoint_bytes,
                                    policy.OWNED_BY_JOB)]

    def binds(self, staging: Path) -> dict[str, Path]:
        """[JOB-CHECKPOINT.3] The kept copy, read-only: the job reads it, never writes it.

        [JOB-CHECKPOINT.5] Mounted from a copy in ``staging`` (the run's fresh temporary
        folder), never from the worker's data folder: the source path of a bind shows in
        the job's /proc/self/mountinfo, and the kept copy's path names the worker's data
        folder, the job and the attempt.
        """
        resume = self.resume
        if resume is None or not resume.folder.is_dir():
            return {}
        neutral = staging / "resume"
        shutil.copytree(resume.folder, neutral, symlinks=True)
        return {RESUME_DIR: neutral}

    def has_resume(self) -> bool:
        return self.resume is not None and self.resume.folder.is_dir()

    def env(self) -> dict[str, str]:
        env = {"LC_CHECKPOINT": CHECKPOINT_DIR}
        if self.has_resume():
            env["LC_RESUME"] = RESUME_DIR
        return env

    # -- the watching thread -------------------------------------------------------------

    def start(self, client: Any, container: Any) -> None:
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._loop, args=(client, container),
                                        name=f"lc-progress-{self.label}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30.0)

    def _loop(self, client: Any, container: Any) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.poll(client, container)
            except Exception as e:  # never let a watcher take the worker down
                self._ignore(f"watching failed: {type(e).__name__}: {e}")

    def poll(self, client: Any, container: Any) -> Progress | None:
        """One read of the progress file; a copy of /checkpoint when it names a newer one."""
        with tempfile.TemporaryDirectory(prefix="lc-progress-") as tmp:
            problem = _copy_out(client, container, f"{ARCHIVE_ROOT}/{PROGRESS_FILE}",
                                Path(tmp), MAX_PROGRESS_BYTES, "JOB-PROGRESS.4")
            if problem:
                self._ignore(problem)
                return None
            progress, problem = read_progress_file(Path(tmp) / PROGRESS_FILE)
        if progress is None:
            self._ignore(problem)
            return None
        self.last = progress
        self.on_progress(progress)
        if progress.checkpoint_step is not None and progress.checkpoint_step > self.kept_step:
            self._keep(client, container)
        return progress

    def _keep(self, client: Any, container: Any) -> None:
        """[JOB-CHECKPOINT.2] Copy the whole folder, bounded; keep it when it is complete."""
        seconds = self.spent_s + (time.monotonic() - self._started)
        self.keep_dir.mkdir(parents=True, exist_ok=True)
        staging = self.keep_dir / f".new-{secrets.token_hex(6)}"
        files = staging / "files"
        files.mkdir(parents=True)
        try:
            problem = _copy_out(client, container, ARCHIVE_ROOT, files, self.checkpoint_bytes,
                                "JOB-CHECKPOINT.2")
            progress, why = read_progress_file(files / PROGRESS_FILE)
            if not problem and (progress is None or progress.checkpoint_step is None):
                problem = f"the copied checkpoint names no checkpoint_step ({why or 'none'})"
            if problem or progress is None or progress.checkpoint_step is None:
                self._ignore(f"checkpoint not kept: {problem}")
                return
            step = progress.checkpoint_step
            newest = kept_checkpoint(self.keep_dir)  # another run of the attempt may be ahead
            if step <= max(self.kept_step, newest.step if newest is not None else -1):
                return
            final = self.keep_dir / f"v{step}"
            shutil.rmtree(final, ignore_errors=True)
            (staging / META_FILE).write_text(json.dumps(
                {"step": step, "seconds": seconds, "saved_ms": int(time.time() * 1000)}))
            _fsync_tree(staging)
            os.rename(staging, final)
            _fsync(self.keep_dir)
            for old in self.keep_dir.iterdir():  # only the newest copy is kept
                if old.name.startswith("v") and old.name[1:].isdigit() and int(old.name[1:]) < step:
                    shutil.rmtree(old, ignore_errors=True)
            self.kept_step = step
            log.info("run %s: checkpoint of step %d kept (%d bytes)", self.label, step,
                     _size(final))
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _ignore(self, problem: str) -> None:
        if problem.startswith("no ") and problem.endswith(" yet"):
            return  # nothing written yet is not a problem
        if problem and problem != self.problem:
            log.warning("run %s: ignored: %s", self.label, problem)
        self.problem = problem


def _copy_out(client: Any, container: Any, path: str, dest: Path, cap: int, rule: str) -> str:
    """Copy ``path`` (below /) out of the running container within ``cap`` [JOB-OUT.*],
    through the engine's archive API within ``COPY_DEADLINE_S`` [JOB-OUT.6]; '' or why not.
    The progress file is archived as its bare name, the folder as ``checkpoint/...``."""
    root = NO_ROOT if path.endswith(PROGRESS_FILE) else ARCHIVE_ROOT
    chunks = read_archive(client.api, container.id, f"/{path}",
                          time.monotonic() + COPY_DEADLINE_S)
    try:
        with contextlib.closing(chunks):
            extract_output(chunks, dest, cap, root=root)
    except ArchiveMissing:
        return f"no {PROGRESS_FILE} yet" if root == NO_ROOT else "nothing to copy"
    except OutputRejected as e:
        return f"[{rule}] {e}"
    except (OutputHostError, ArchiveSourceBroken) as e:
        return f"host could not copy {path}: {e}"
    return ""


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _fsync(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_tree(root: Path) -> None:
    for folder, _dirs, names in os.walk(root):
        for name in names:
            _fsync(Path(folder) / name)
        _fsync(Path(folder))
