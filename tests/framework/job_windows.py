"""A graph test's job windows sized from this machine's speed, measured just before posting.

Why: a job's claim window (``--expires-in``) must hold a worker's first attempt (one training
run and the two self-check evaluations [WORK-SELFCHECK.1], each a fresh container) and its
claim; the reveal, vote-commit and vote-reveal windows must hold a reveal transaction and the
voters' evaluations. Fixed seconds that suffice on a quiet machine do not on a loaded 2-core
one: test_predict_graph's training job (30 s claims, one attempt) ended ``refunded`` in a CI
run under load. Its one attempt takes 12 s from pickup to claim here (and the probe below 14-15
s) with one core burnt; a machine slower by 2.5x leaves no claim by expiry, and a job without a
claim ends refunded [JOB-TURN.2]; 10 s reveal and vote-reveal windows (one reveal, three
votes on 2 cores) were as tight.

So a test builds the job (``learningchain job build``), times one attempt of it here, on the
engine the workers use and under whatever load the machine has now (``measure_attempt``), and
sizes every window from that time, times ``LC_TIMEOUT_FACTOR`` (``windows``). A window that
ends early when everyone has acted (reveal, vote commit, vote reveal) costs nothing when it is
long; only the claim window is waited out, so only it is kept near what it needs.
"""

from __future__ import annotations

from dataclasses import dataclass

from client.devnet.network import NetworkLayout
from client.devnet.windows import claim_window_s, contention, measure_attempt, vote_window_s

__all__ = ["JobWindows", "job_log_lines", "measure_attempt", "windows"]
from tests.framework.wait import timeout_factor


@dataclass(frozen=True, slots=True)
class JobWindows:
    """The windows to post a job with, and the measurement they came from."""

    attempt_s: float
    """One measured attempt: a training run and two evaluations, in seconds."""
    expires_s: int
    reveal_s: int
    commit_s: int
    vote_reveal_s: int

    def args(self) -> list[str]:
        """``learningchain job submit`` options for these windows."""
        return ["--expires-in", f"{self.expires_s}s", "--reveal-window", f"{self.reveal_s}s",
                "--commit-window", f"{self.commit_s}s",
                "--vote-reveal-window", f"{self.vote_reveal_s}s"]

    def settle_s(self, turns: int = 1) -> float:
        """How long the job can take to settle: the claim window and every turn's windows
        run out, and 30 s of slack."""
        return self.expires_s + turns * (self.reveal_s + self.commit_s
                                         + self.vote_reveal_s) + 30

    def __str__(self) -> str:
        return (f"one attempt measured {self.attempt_s:.1f} s: expires in {self.expires_s} s, "
                f"reveal {self.reveal_s} s, commit {self.commit_s} s, "
                f"vote reveal {self.vote_reveal_s} s")


def windows(attempt_s: float, *, min_expires_s: float = 30.0,
            min_window_s: float = 20.0, voters: int = 0, nano_cpus: int = 0) -> JobWindows:
    """Windows for a job whose one attempt takes ``attempt_s`` here: the claim window holds
    the pickup and ``ATTEMPT_MARGIN`` attempts (at least ``min_expires_s``), every other
    window ``VOTE_MARGIN`` attempts, or more when ``voters`` members evaluate at once on
    this machine with containers of ``nano_cpus`` (``contention``), at least
    ``min_window_s``; all times the timeout factor."""
    factor = timeout_factor()
    expires = claim_window_s(attempt_s, minimum_s=min_expires_s, factor=factor)
    contended = contention(voters, nano_cpus) if voters else 1.0
    window = vote_window_s(attempt_s, minimum_s=min_window_s, factor=factor,
                           contended=contended)
    return JobWindows(attempt_s, expires, window, window, window)


def job_log_lines(layout: NetworkLayout, job_id: str) -> list[str]:
    """Every node's log lines about the job, for a failure message: which attempt, claim,
    reveal or vote came late."""
    label = job_id[:12]  # as the nodes log a job id (client.worker.outbox.short)
    return [f"{node.name}: {line}" for node in layout.nodes
            for line in (node.directory / "node.log").read_text(errors="replace").splitlines()
            if label in line]
