"""``learningchain job watch``: follow a job live until it settles; the exit code says how.

Claims, turns, reveals, votes and verdicts come from the chain; a worker's
failed attempts from the node's own worker, when it runs one
[API-JOBLOG.1]. A settled job says how it ended and why (``job_describe``).
Exit 0 when the job was paid, 1 when it ended refunded or broken (or the
watch gave up), so ``job watch ID && job fetch-model ID`` works in a script.
A node that stops answering is asked again every ``RETRY_S`` for up to
``OUTAGE_LIMIT_S`` (a note on stderr says so), so one slow answer on a
loaded machine does not end a watch that a script waits on.

A train/v3 job's hidden test set is followed too: the split, both parts, the
holdout status and each finalist's hidden loss (``holdout_events``). With
``--key`` and the pool secret under ``--job-dir``, the submitter's watch also
does its duties: it publishes the public part once the split is drawn and
reveals the hidden part once the job enters status holdout
(``holdout_duties.WatchDuties``); without the secret it only watches.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from client.api.http_client import ApiClient, ApiError
from client.cli.common import (
    DURATION,
    HASH32,
    UserError,
    client_for,
    json_option,
    key_option,
    load_key,
    node_option,
    note,
    one_line,
    out,
    passphrase_option,
    short,
    user_errors,
    when,
)
from client.cli.job.describe import (
    attempt_line,
    claims_window,
    last_log_line,
    outcome_text,
    refund_reason,
)
from client.cli.job.holdout_duties import WatchDuties
from client.cli.job.queue_text import job_queue, queue_lines
from client.cli.job.run_progress import RunProgress
from client.cli.job.view import get_job
from sandbox.cli import job

PROGRESS_POLL_S = 2.0
"""While this node's worker trains the job, ask again this often [API-PROGRESS.1]."""
OUTAGE_LIMIT_S = 120.0
"""How long a watch rides out a node that does not answer before it exits 1."""
RETRY_S = 2.0
"""While the node does not answer, ask again this often."""
WATCH_TAIL_BYTES = 4096
"""Output of each failed attempt ``job watch`` asks for (it shows the last line)."""


def job_events(old: dict[str, Any] | None, new: dict[str, Any]) -> list[dict[str, Any]]:
    """What changed between two snapshots of a job, as events (claims, turns, votes, verdicts)."""
    if old is None:
        return [{"event": "job", "status": new["status"], "claims": len(new["claims"]),
                 "expiry_ms": new["spec"]["expiry_ms"], "settled": new["settled"],
                 "outcome": outcome_text(new)}]
    events: list[dict[str, Any]] = []
    before = {c["claimer"]: c["loss"] for c in old["claims"]}
    for c in new["claims"]:
        if before.get(c["claimer"]) != c["loss"]:
            events.append({"event": "claim", "claimer": c["claimer"], "loss": c["loss"],
                           "height": c["height"]})
    for v in new["verdicts"][len(old["verdicts"]):]:
        events.append({"event": "verdict", **v})
    t_old, t_new = old["turn"], new["turn"]
    if t_new and (not t_old or t_old["number"] != t_new["number"]):
        events.append({"event": "turn", "number": t_new["number"], "claimer": t_new["claimer"],
                       "deadline_ms": t_new["deadline_ms"]})
    if t_new and t_new["model_hash"] and (not t_old or t_old["model_hash"] != t_new["model_hash"]
                                          or t_old["number"] != t_new["number"]):
        events.append({"event": "reveal", "claimer": t_new["claimer"],
                       "model_hash": t_new["model_hash"],
                       "eligible_voters": len(t_new["eligible_voters"])})
    if t_new:
        same_turn = t_old is not None and t_old["number"] == t_new["number"]
        for name in ("votes_committed", "votes_revealed"):
            if t_new[name] and not (same_turn and t_old and t_old[name] == t_new[name]):
                events.append({"event": name, "count": t_new[name],
                               "eligible": len(t_new["eligible_voters"])})
    events.extend(holdout_events(old.get("holdout"), new.get("holdout")))
    if new["status"] != old["status"]:
        events.append({"event": "status", "from": old["status"], "to": new["status"]})
    if new["settled"] and not old["settled"]:
        events.append({"event": "settled", "status": new["status"], "winner": new["winner"],
                       "paid": new["paid"], "model_hash": new["winner_model_hash"],
                       "reason": refund_reason(new) if new["status"] == "refunded" else ""})
    return events


def holdout_events(old: dict[str, Any] | None, new: dict[str, Any] | None
                   ) -> list[dict[str, Any]]:
    """What changed in a train/v3 job's hidden test set [API-HOLDOUT.1]: the split, the
    parts named, its status, new finalists with their hidden losses."""
    if not old or not new:
        return []
    events: list[dict[str, Any]] = []
    if new["seed"] and not old["seed"]:
        events.append({"event": "split", "height": new["split_height"],
                       "public_count": new["public_count"], "hidden_count": new["hidden_count"]})
    for part in ("public", "hidden"):
        if new[part] and not old[part]:
            events.append({"event": f"holdout_{part}", **new[part]})
    if new["status"] != old["status"]:
        events.append({"event": "holdout_status", "from": old["status"], "to": new["status"]})
    for f in new["finalists"][len(old["finalists"]):]:
        events.append({"event": "finalist", **f})
    return events


def attempt_events(seen: set[tuple[Any, ...]], attempts: list[dict[str, Any]]
                   ) -> list[dict[str, Any]]:
    """Attempts of this node's worker not reported yet (``seen`` is updated)."""
    events = []
    for a in attempts:
        key = (a.get("worker"), a.get("run"), a.get("attempt"), a.get("started_ms"))
        if key in seen:
            continue
        seen.add(key)
        events.append({"event": "attempt", **{k: v for k, v in a.items() if k != "log"},
                       "last_line": last_log_line(a)})
    return events


def event_text(e: dict[str, Any], now: int) -> str:
    kind = e["event"]
    if kind == "job":
        text = f"job {e['status']}, {e['claims']} claim(s), {claims_window(e['expiry_ms'], now)}"
        return text + (f"; settled: {e['outcome']}" if e.get("outcome") else "")
    if kind == "attempt":
        line = attempt_line(e)
        return line + (f" | {e['last_line']}" if e.get("last_line") else "")
    if kind == "waiting":
        return "waiting " + "\n        ".join(queue_lines(e))
    if kind == "claim":
        return f"claim   {short(e['claimer'])} loss {e['loss']:.6g} (block {e['height']})"
    if kind == "status":
        return f"status  {e['from']} -> {e['to']}"
    if kind == "split":
        return (f"split   drawn in block {e['height']}: {e['public_count']} public, "
                f"{e['hidden_count']} hidden samples")
    if kind in ("holdout_public", "holdout_hidden"):
        return (f"holdout {kind.split('_')[1]} part named: blob {e['blob'][:16]}… "
                f"({e['size']} bytes)")
    if kind == "holdout_status":
        return f"holdout {e['from']} -> {e['to']}"
    if kind == "finalist":
        loss = "-" if e["hidden_loss"] is None else f"{e['hidden_loss']:.6g}"
        return f"finalist {short(e['claimer'])} hidden loss {loss}"
    if kind == "duty":
        verb = "published" if e["part"] == "public" else "revealed"
        return (f"you     {verb} the {e['part']} part: blob {e['blob'][:16]}… "
                f"({'uploaded' if e['uploaded'] else 'already on the node'}), block {e['height']}")
    if kind == "duty_failed":
        return f"you     could not name the {e['part']} part: {e['reason']}"
    if kind == "duties":
        return f"duties  {e['reason']}"
    if kind == "turn":
        return (f"turn #{e['number']} {short(e['claimer'])} must reveal "
                f"{when(e['deadline_ms'], now)}")
    if kind == "reveal":
        return (f"reveal  {short(e['claimer'])} model {e['model_hash'][:16]}…, "
                f"{e['eligible_voters']} eligible voter(s)")
    if kind in ("votes_committed", "votes_revealed"):
        return f"votes   {e['count']}/{e['eligible']} {kind.split('_')[1]}"
    if kind == "verdict":
        return (f"verdict {short(e['claimer'])}: {e['outcome']} ({e['valid_votes']} valid, "
                f"{e['invalid_votes']} invalid of {e['eligible']})")
    if kind == "settled":
        if e["status"] == "paid":
            return f"settled: paid {e['paid']} to {e['winner']}; model {e['model_hash']}"
        if e["status"] == "broken":
            return ("settled: broken, the job's evaluation does not reproduce (nobody banned, "
                    f"claimer {e['winner']} paid, nothing refunded)")
        return ("settled: refunded to the submitter: "
                + (e.get("reason") or "no verified winner"))
    return json.dumps(e)


@job.command("watch")
@click.argument("job_id", type=HASH32)
@click.option("--timeout", type=DURATION, default=None,
              help="Give up after this long (exit 1)  [default: until settled]")
@node_option
@key_option(required=False, help="train/v3: the submitter's key; the watch then publishes and "
                                 "reveals the pool's parts itself.")
@passphrase_option
@click.option("--job-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=".", show_default=True,
              help="train/v3 with --key: the submitted job folder (holds the pool secret).")
@json_option
def job_watch(job_id: bytes, timeout: int | None, node_url: str, key_path: Path | None,
              passphrase_file: Path | None, job_dir: Path, as_json: bool) -> None:
    """Follow a job live (claims, turns, reveals, votes, verdicts, this node's worker's
    attempts, a train/v3 job's hidden test set) until it settles.

    With --key, a train/v3 job's submitter also publishes the public part after the
    split and reveals the hidden part after expiry. Exit 0 when it was paid; 1 when it
    ended refunded or broken, or on --timeout. A node that stops answering is asked
    again for up to 2 minutes. With --json, one JSON event per line.
    """
    client = client_for(node_url)
    duties = None if key_path is None else WatchDuties(load_key(key_path, passphrase_file),
                                                       job_dir)
    deadline = None if timeout is None else time.monotonic() + timeout / 1000
    with RunProgress(as_json) as bars:
        _watch(client, job_id, deadline, duties, as_json, bars)


def _watch(client: ApiClient, job_id: bytes, deadline: float | None,
           duties: WatchDuties | None, as_json: bool, bars: RunProgress) -> None:
    follow = _Follow(client, job_id, duties, as_json, bars)
    outage_since: float | None = None
    while True:
        try:
            if follow.step():
                return
            left = 30.0 if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise UserError(f"gave up watching; the job is still {follow.status}")
            follow.wait(left)
        except UserError as e:
            if e.code != "unreachable":
                raise
            outage_since = _ride_out(e, outage_since, deadline)
            continue
        if outage_since is not None:
            note(f"the node answers again (after {time.monotonic() - outage_since:.0f} s)")
            outage_since = None


def _ride_out(error: UserError, since: float | None, deadline: float | None) -> float:
    """A node that does not answer (restarting, or a machine short of CPU) is asked again
    every ``RETRY_S`` for up to ``OUTAGE_LIMIT_S`` (or to ``--timeout``); then the watch
    gives up with the error. Returns when the outage began."""
    now = time.monotonic()
    if since is None:
        note(f"{error.raw_message}; asking again for up to {OUTAGE_LIMIT_S:.0f} s")
        since = now
    limit = since + OUTAGE_LIMIT_S if deadline is None else min(since + OUTAGE_LIMIT_S,
                                                                deadline)
    if now >= limit:
        raise UserError(f"{error.raw_message} (no answer for {now - since:.0f} s)",
                        code=error.code) from None
    time.sleep(min(RETRY_S, max(0.0, limit - now)))
    return since


class _Follow:
    """One watch's view: what it has shown so far, and one poll of the node at a time.
    A poll that fails part-way shows nothing and changes nothing, so the next one
    repeats it whole."""

    def __init__(self, client: ApiClient, job_id: bytes, duties: WatchDuties | None,
                 as_json: bool, bars: RunProgress) -> None:
        self.client = client
        self.job_id = job_id
        self.duties = duties
        self.as_json = as_json
        self.bars = bars
        self.old: dict[str, Any] | None = None
        self.seen: set[tuple[Any, ...]] = set()
        self.waited: tuple[Any, ...] | None = None
        self.height: int | None = None
        self.progress: Any = None

    @property
    def status(self) -> str:
        return str(self.old["status"]) if self.old is not None else "unknown"

    def step(self) -> bool:
        """Shows what changed; True once the job was paid (raises when it ended unpaid)."""
        client = self.client
        with user_errors():
            if self.height is None:
                self.height = int(client.status()["height"])
            new = get_job(client, self.job_id)
            now = int(client.status()["time_ms"])
        changes = job_events(self.old, new)
        head = changes[:1] if self.old is None else []  # the "job" line first, then workers
        attempts, self.progress = _attempts(client, self.job_id)
        self.bars.show(self.progress)
        events = [*head, *attempt_events(self.seen, attempts), *changes[len(head):]]
        queue = job_queue(client, new)  # [API-QUEUE.1] said again when where it stands moves
        if queue is not None and _standing(queue) != self.waited:
            self.waited = _standing(queue)
            events.append({"event": "waiting", **queue})
        if self.duties is not None and not new["settled"]:
            events.extend(self.duties.step(client, new, now))
        for event in events:
            out(json.dumps(event) if self.as_json else event_text(event, now))
        if new["settled"]:
            if new["status"] != "paid":
                raise UserError(f"the job was not paid: {outcome_text(new)}")
            return True
        self.old = new
        return False

    def wait(self, left: float) -> None:
        """Until the next block, or a short poll while this node's worker trains the job."""
        assert self.height is not None
        poll = PROGRESS_POLL_S if self.progress is not None else 30.0
        try:
            answer = self.client.wait(self.height + 1, timeout=min(left, poll))
        except ApiError as e:
            if e.code != "busy":
                raise UserError(one_line(e), code=e.code) from None
            time.sleep(1.0)
            return
        self.height = max(self.height, int(answer["height"]))


def _standing(queue: dict[str, Any]) -> tuple[Any, ...]:
    """What a ``waiting`` event reports: said once, then when any of it changes."""
    return (queue["position"], queue["ahead_count"], queue["default_skip"])


def _attempts(client: ApiClient, job_id: bytes) -> tuple[list[dict[str, Any]], Any]:
    """This node's worker attempts (none when the node keeps none or cannot say) and the
    live progress of its run on the job, if any [API-PROGRESS.1]."""
    try:
        answer = client.job_logs(job_id, tail=WATCH_TAIL_BYTES)
    except ApiError:
        return [], None
    attempts = answer.get("attempts")
    return attempts if isinstance(attempts, list) else [], answer.get("progress")
