"""``learningchain job status|list|leaderboard|logs|fetch-model`` (through a node's API).

``job logs`` and the attempt lines of ``job status`` come from the node's own
worker [API-JOBLOG.1]: a node knows only the attempts of the worker it runs.
The chain carries claims and verdicts, never a worker's failed runs, so a
submitter who wants to know why a worker's attempts failed asks that worker's
node (``--node``); the worker's operator decides whether its API is reachable.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import click

from chain.content import blob_id_of_file
from chain.crypto import address_to_text
from chain.local_file import MAX_SECRET_FILE_BYTES, LocalFileError, read_local_file
from client.api.http_client import ApiClient, ApiError
from client.cli.common import (
    ADDRESS,
    HASH32,
    UserError,
    client_for,
    emit,
    json_option,
    key_option,
    node_option,
    note,
    out,
    user_errors,
)
from client.cli.job.describe import (
    attempt_line,
    describe_job,
    hidden_loss_text,
    job_name,
    row_marks,
    time_left,
    winner_rule,
)
from client.cli.job.queue_text import job_queue, queue_lines
from sandbox.cli import job

STATUS_TAIL_BYTES = 2048
"""Output of each failed attempt that ``job status`` asks for (it shows the last line)."""


def get_job(client: ApiClient, job_id: bytes) -> dict[str, Any]:
    with user_errors():
        return client.job(job_id)


def node_attempts(client: ApiClient, job_id: bytes | str, tail: int) -> list[dict[str, Any]]:
    """This node's worker attempts on the job; [] when the node keeps none or cannot say
    (a node without the route answers 404 not_found): they are extra, never required."""
    try:
        doc = client.job_logs(job_id, tail=tail)
    except ApiError:
        return []
    attempts = doc.get("attempts")
    return attempts if isinstance(attempts, list) else []


@job.command("status")
@click.argument("job_id", type=HASH32)
@node_option
@json_option
def job_status(job_id: bytes, node_url: str, as_json: bool) -> None:
    """A posted job: status, escrow, claims, the current turn, votes, verdicts, how it ended,
    why this node's worker's attempts on it failed, and, while it has no claim, where it
    stands in the order workers take open jobs and what would change it."""
    client = client_for(node_url)
    j = get_job(client, job_id)
    with user_errors():
        now = int(client.status()["time_ms"])
    attempts = node_attempts(client, job_id, STATUS_TAIL_BYTES)
    queue = job_queue(client, j)  # [API-QUEUE.1] why no claim yet

    def text() -> None:
        for line in describe_job(j, now, attempts):
            out(line)
        for line in queue_lines(queue) if queue else []:
            out(line)

    emit({**j, "attempts": attempts, "queue": queue}, as_json, text)


LIST_FILTERS = ("all", "open", "active", "settled", "paid", "refunded", "broken")


@job.command("list")
@click.option("--mine", is_flag=True, help="Only jobs posted by --key's address.")
@key_option(required=False, help="With --mine: whose jobs (the address is read from the "
                                 "key file; no passphrase needed).")
@click.option("--open", "only_open", is_flag=True, help="Only jobs taking claims "
                                                        "(same as --status open).")
@click.option("--status", "wanted", type=click.Choice(LIST_FILTERS), default="all",
              show_default=True, help="Only jobs in this state (active: not settled).")
@click.option("--limit", type=click.IntRange(1, 500), default=100, show_default=True,
              help="Newest first, at most this many.")
@node_option
@json_option
def job_list(mine: bool, key_path: Path | None, only_open: bool, wanted: str, limit: int,
             node_url: str, as_json: bool) -> None:
    """Jobs on the chain, newest first: id, name, status, bounty, best loss, time left."""
    if only_open:
        if wanted not in ("all", "open"):
            raise click.UsageError("--open and --status disagree")
        wanted = "open"
    submitter = None
    if mine:
        if key_path is None:
            raise click.UsageError("--mine needs --key (or $LC_KEY)")
        submitter = key_address(key_path)
    client = client_for(node_url)
    with user_errors():
        listed = client.jobs(status=wanted, submitter=submitter, limit=limit)
        now = int(client.status()["time_ms"])

    def text() -> None:
        jobs = listed["jobs"]
        if not jobs:
            out("no jobs" + (f" ({wanted})" if wanted != "all" else "")
                + (f" posted by {submitter}" if submitter else ""))
            return
        out(f"{'JOB ID':64}  {'NAME':20}  {'STATUS':11}  {'BOUNTY':>7}  {'BEST LOSS':>10}  "
            f"{'TIME LEFT':>9}")
        for j in jobs:
            best = "-" if j["best_loss"] is None else f"{j['best_loss']:.6g}"
            out(f"{j['job_id']:64}  {job_name(j):20}  {j['status']:11}  {j['bounty']:>7}  "
                f"{best:>10}  {time_left(j, now):>9}")
        if listed["total"] > len(jobs):
            note(f"{len(jobs)} of {listed['total']} shown (--limit)")

    emit(listed, as_json, text)


def key_address(key_path: Path) -> str:
    """The address a key file names, read without its passphrase (it is stored in clear;
    here it only filters a listing, nothing is signed)."""
    try:  # [NODE-READ.1] a regular file of at most MAX_SECRET_FILE_BYTES
        doc = json.loads(read_local_file(key_path, MAX_SECRET_FILE_BYTES, what="key file"))
        return address_to_text(ADDRESS.convert(doc["address"], None, None))
    except (LocalFileError, ValueError, KeyError, TypeError, click.BadParameter) as e:
        raise UserError(f"cannot read the address of key file {key_path}: {e}") from None


@job.command("leaderboard")
@click.argument("job_id", type=HASH32)
@node_option
@json_option
def job_leaderboard(job_id: bytes, node_url: str, as_json: bool) -> None:
    """Claims ranked as the chain ranks them: lower loss, then the earlier claim."""
    client = client_for(node_url)
    with user_errors():
        board = client.leaderboard(job_id)
    holdout = get_job(client, job_id).get("holdout")  # train/v3 [API-HOLDOUT.2]
    if holdout:
        board = {**board, "winner_rule": holdout["winner_rule"],
                 "hidden_leaderboard": holdout["hidden_leaderboard"]}

    def text() -> None:
        if holdout:
            out("public leaderboard (claims, the race on the public part):")
        if not board["claims"]:
            out(f"no claims yet (job is {board['status']})")
        else:
            out(f"{'rank':>4}  {'loss':>12}  {'height':>7}  {'state':10}  claimer")
        for r in board["claims"]:
            state = "winner" if r["winner"] else r["state"]
            out(f"{r['rank']:>4}  {r['loss']:>12.6g}  {r['height']:>7}  {state:10}  "
                       f"{r['claimer']}")
        if holdout:
            out(f"hidden leaderboard (finalists; {winner_rule(holdout)}):")
            if not holdout["hidden_leaderboard"]:
                out(f"no finalists yet (holdout {holdout['status']})")
            for r in holdout["hidden_leaderboard"]:
                out(f"{r['rank']:>4}  {hidden_loss_text(r):>12}  {r['height']:>7}  "
                    f"{r['claimer']}{row_marks(r)}")

    emit(board, as_json, text)


@job.command("fetch-model")
@click.argument("job_id", type=HASH32)
@click.option("-o", "--output", "output", required=True,
              type=click.Path(dir_okay=False, path_type=Path), help="Where to write the model.")
@node_option
@json_option
def job_fetch_model(job_id: bytes, output: Path, node_url: str, as_json: bool) -> None:
    """Download the verified winner's model and check it is the committed one."""
    client = client_for(node_url)
    j = get_job(client, job_id)
    model = j["winner_model_hash"]
    if not model:
        raise UserError(f"job has no verified winner (status {j['status']}); "
                        "nothing to fetch")
    if not isinstance(model, str) or not re.fullmatch(r"[0-9a-f]{64}", model):
        raise UserError(f"the node's winner_model_hash is not a hash: {str(model)[:80]}")
    bar: Any = click.progressbar(length=1, label="downloading model", hidden=as_json,
                                 file=sys.stderr)
    last = [0]

    def progress(done: int, total: int) -> None:
        if total and bar.length != total:
            bar.length = total
        bar.update(done - last[0])
        last[0] = done

    with bar, user_errors("download failed: "):
        size = client.download_blob(model, output, progress)
    got = blob_id_of_file(output)
    if got.hex() != model:
        output.unlink(missing_ok=True)
        raise UserError(f"downloaded bytes hash to {got.hex()}, not the committed "
                        f"model {model}; file removed")
    result = {"job_id": job_id.hex(), "model_hash": model, "size": size, "file": str(output),
           "winner": j["winner"]}
    emit(result, as_json, lambda: out(f"wrote {output} ({size} bytes), model {model} "
                                          "verified"))


@job.command("logs")
@click.argument("job_id", type=HASH32)
@click.option("--worker", type=ADDRESS, default=None,
              help="Only this worker's attempts (a node may run several identities).")
@click.option("--tail", type=click.IntRange(0, 64 * 1024), default=64 * 1024,
              show_default=True, help="Bytes of each failed attempt's output to show (its end).")
@node_option
@json_option
def job_logs(job_id: bytes, worker: bytes | None, tail: int, node_url: str,
             as_json: bool) -> None:
    """Why a worker's attempts on JOB_ID failed: reason, exit code and the end of its output.

    A node knows only its own worker's attempts [API-JOBLOG.1]: point --node at
    the node of the worker you ask about (each keeps its last 8 attempts per job,
    a redacted excerpt of output each [API-JOBLOG.3]). The chain itself records claims,
    never failed runs.
    """
    client = client_for(node_url)
    with user_errors():
        doc = client.job_logs(job_id, tail=tail)
    if worker is not None:
        who = address_to_text(worker)
        doc = {**doc, "attempts": [a for a in doc["attempts"] if a["worker"] == who]}

    def text() -> None:
        attempts = doc["attempts"]
        if not attempts:
            role = "" if doc["worker_role"] else " (it runs no worker)"
            out(f"node {doc['node']}{role} has no attempts on job {doc['job_id']}"
                + (f" by {address_to_text(worker)}" if worker is not None else "")
                + "; each worker's node keeps its own: try --node <that node's API>")
            return
        for a in attempts:
            out(attempt_line(a))
            if a["log"]:
                shown = len(str(a["log"]).encode("utf-8", "replace"))
                out(f"  output (last {shown} of {a['log_bytes']} bytes):"
                    if a["log_bytes"] > shown else f"  output ({a['log_bytes']} bytes):")
                for line in a["log"].splitlines():
                    out(f"  | {line}")

    emit(doc, as_json, text)
