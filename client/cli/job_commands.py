"""``learningchain job submit|status|watch|leaderboard|fetch-model`` (through a node's API).

These join ``init`` and ``build`` on the ``job`` group of ``sandbox.cli``.
``submit`` turns a job folder into a posted job: build the image if needed,
export it, upload the tar as a blob, post the ``JobSpec`` (its escrow leaves
the submitter's balance in the same block) and print the job id.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from chain.content import blob_id_of_file
from chain.errors import DecodeError
from chain.jobspec import JobSpec, ParamSpec, VotingParams
from chain.transactions import PostJob
from chain.types import Amount, Hash32, TimeMs
from client.api.http_client import ApiClient, ApiError
from client.cli.common import (
    DURATION,
    HASH32,
    UserError,
    client_for,
    emit,
    json_option,
    key_option,
    load_key,
    node_option,
    note,
    one_line,
    out,
    passphrase_option,
    send,
    short,
    user_errors,
    when,
)
from sandbox.cli import job
from sandbox.errors import SandboxError
from sandbox.image_check import ImageSizes, measure_image
from sandbox.job_file import JOB_FILE, JobFile, load_job_file

__all__ = ["job"]

DEFAULT_PERMILLE = 667
DEFAULT_MAX_TURNS = 3


# --- submit ---------------------------------------------------------------------------------


def build_spec(job_dir: Path, job_file: JobFile, *, image_digest: bytes, image_blob: bytes,
               image_ref: str, bounty: int, expiry_ms: int, voting: VotingParams,
               loss_tolerance: float | None = None, description: str | None = None,
               image: ImageSizes | None = None) -> JobSpec:
    """The ``JobSpec`` of a job folder, checked exactly as the chain will decode it.

    Every limit of job.toml reaches the chain [JOB-LIMITS.1] (``model_mb`` included),
    with the image sizes measured from the saved image [JOB-IMAGE.5] (``image``;
    1 MiB each for a draft made before the image exists).
    """
    sizes = image if image is not None else ImageSizes(0, 0)
    spec = JobSpec(
        kind=job_file.kind,
        image_digest=Hash32(image_digest),
        image_blob=Hash32(image_blob),
        image_ref=image_ref[:256],
        entry_points=job_file.entry_points,
        limits=job_file.spec_limits(sizes),
        search_space=tuple(ParamSpec(p.name, p.kind, tuple(p.values))
                           for p in job_file.search_space),
        bounty=Amount(bounty),
        expiry_ms=TimeMs(expiry_ms),
        loss_tolerance=job_file.loss_tolerance if loss_tolerance is None else loss_tolerance,
        voting=voting,
        description=(job_file.description if description is None else description)[:1024],
    )
    return JobSpec.from_wire(spec.to_wire())  # the chain's own checks, before any upload


def _preflight(client: ApiClient, address: bytes, escrow: int) -> None:
    """Refuses early (before a long build and upload) what the chain would refuse."""
    with user_errors():
        account = client.account(address)
    problems = []
    if not account["member"]:
        problems.append(f"not_member: {account['address']} is not an admitted member; only "
                        "members may post jobs (a validator runs: learningchain member admit "
                        f"{account['address']})")
    if account["balance"] < escrow:
        problems.append(f"insufficient_balance: posting this job escrows {escrow} credits; the "
                        f"balance of {account['address']} is {account['balance']}")
    if problems:
        raise UserError("cannot post the job: " + "; ".join(problems))


def _image(job_dir: Path, image_tar: Path | None, rebuild: bool,
           work: Path) -> tuple[Path, str, bytes, str]:
    """(saved-image tar, image id, blob id, image ref): given, or built and exported."""
    from sandbox.image_blob import blob_image_id

    if image_tar is not None:
        note(f"reading image {image_tar}")
        image_id = blob_image_id(image_tar)
        return image_tar, image_id, blob_id_of_file(image_tar), image_tar.name
    from sandbox.engine import connect
    from sandbox.image_blob import export_image
    from sandbox.job_template import IMAGE_FILE, build_job

    docker = connect()
    image_id, tag = "", ""
    recorded = job_dir / IMAGE_FILE
    if recorded.is_file() and not rebuild:
        try:
            doc = json.loads(recorded.read_text())
            docker.images.get(doc["image_id"])
            image_id, tag = str(doc["image_id"]), str(doc.get("tag", ""))
            note(f"using built image {image_id} ({tag})")
        except Exception:  # not built here, or removed since: build it again
            image_id = ""
    if not image_id:
        note(f"building {job_dir} (offline)…")
        built = build_job(docker, job_dir, log=note)
        image_id, tag = built.image_id, built.tag
    note("exporting the image…")
    blob = export_image(docker, image_id, work / "image.tar")
    return blob.path, blob.image_id, blob.blob_id, tag or image_id


def _upload(client: ApiClient, path: Path, blob_id: bytes, quiet: bool) -> None:
    size = path.stat().st_size
    bar: Any = click.progressbar(length=size, label="uploading image", hidden=quiet,
                                 file=sys.stderr)
    with bar:
        last = [0]

        def progress(done: int, _total: int) -> None:
            bar.update(done - last[0])
            last[0] = done

        with user_errors("upload failed: "):
            info = client.upload_blob(path, progress)
    if info["blob"] != blob_id.hex():
        raise UserError(f"the node stored blob {info['blob']}, expected "
                        f"{blob_id.hex()} (corrupted upload?)")


@job.command("submit")
@click.argument("job_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--bounty", type=click.IntRange(min=1), default=None,
              help="Credits paid to the verified winner  [default: job.toml's]")
@click.option("--expires-in", type=DURATION, default=None,
              help="Claims close after this long, e.g. 10m, 2h  [default: job.toml's]")
@key_option(help="The submitter's key file (pays the escrow).")
@passphrase_option
@node_option
@click.option("--image-tar", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Post this saved image (job build --blob) instead of "
                                 "building and exporting.")
@click.option("--rebuild", is_flag=True, help="Build the image even if one is recorded.")
@click.option("--reveal-window", type=DURATION, default="2m",
              show_default=True, help="Time the winner has to reveal its model.")
@click.option("--commit-window", type=DURATION, default="5m",
              show_default=True,
              help="Time voters have to evaluate and commit a vote (the longest window).")
@click.option("--vote-reveal-window", type=DURATION, default="2m",
              show_default=True, help="Time voters have to open their votes.")
@click.option("--quorum", type=click.IntRange(1, 1000), default=DEFAULT_PERMILLE,
              show_default=True, help="Revealed votes per eligible voter needed (permille).")
@click.option("--supermajority", type=click.IntRange(500, 1000), default=DEFAULT_PERMILLE,
              show_default=True, help="Share of votes that decides a verdict (permille).")
@click.option("--voter-reward", type=click.IntRange(min=0), default=None,
              help="Credits per turn shared by agreeing voters  [default: bounty/20]")
@click.option("--max-turns", type=click.IntRange(1, 16), default=DEFAULT_MAX_TURNS,
              show_default=True, help="Claims tried, best first, before a refund.")
@click.option("--loss-tolerance", type=click.FloatRange(min=0), default=None,
              help="Measured loss may exceed the claim by this much  [default: job.toml's]")
@click.option("--description", default=None, help="[default: job.toml's]")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Wait until the job is in a block.")
@json_option
def job_submit(job_dir: Path, bounty: int | None, expires_in: int | None, key_path: Path,
               passphrase_file: Path | None, node_url: str, image_tar: Path | None,
               rebuild: bool, reveal_window: int, commit_window: int, vote_reveal_window: int,
               quorum: int, supermajority: int, voter_reward: int | None, max_turns: int,
               loss_tolerance: float | None, description: str | None, wait: bool,
               as_json: bool) -> None:
    """Post JOB_DIR (job.toml + Dockerfile) as a job with a bounty; print its job id."""
    try:
        job_file = load_job_file(job_dir)
    except SandboxError as e:
        raise UserError(str(e)) from e
    bounty = job_file.bounty if bounty is None else bounty
    expires_ms = job_file.expiry_s * 1000 if expires_in is None else expires_in
    reward = max(1, bounty // 20) if voter_reward is None else voter_reward
    voting = VotingParams(reveal_window, commit_window, vote_reveal_window, quorum,
                          supermajority, Amount(reward), max_turns)
    key = load_key(key_path, passphrase_file)
    client = client_for(node_url)

    def spec_with(digest: bytes, blob: bytes, ref: str, expiry_ms: int,
                  image: ImageSizes | None = None) -> JobSpec:
        try:
            return build_spec(job_dir, job_file, image_digest=digest, image_blob=blob,
                              image_ref=ref, bounty=bounty, expiry_ms=expiry_ms, voting=voting,
                              loss_tolerance=loss_tolerance, description=description,
                              image=image)
        except (DecodeError, KeyError, TypeError, ValueError) as e:
            raise UserError(f"{job_dir / JOB_FILE}: {e}") from e

    draft = spec_with(b"\0" * 32, b"\0" * 32, "", 0)
    _preflight(client, key.address, draft.escrow)
    with tempfile.TemporaryDirectory(prefix="lc-submit-") as tmp:
        try:
            tar, image_id, blob_id, ref = _image(job_dir, image_tar, rebuild, Path(tmp))
            sizes = measure_image(tar)
        except SandboxError as e:
            raise UserError(str(e)) from e
        spec_with(b"\0" * 32, blob_id, ref, 0, sizes)  # a declared size too small: before upload
        _upload(client, tar, blob_id, as_json)
    with user_errors():
        now = int(client.status()["time_ms"])
    from sandbox.image_blob import digest_bytes

    spec = spec_with(digest_bytes(image_id), blob_id, ref, now + expires_ms, sizes)
    tx, info = send(client, key, PostJob(spec), wait=wait, what="job", timeout=120.0)
    result = {"job_id": tx.hash.hex(), "image_id": image_id, "image_blob": blob_id.hex(),
           "bounty": spec.bounty, "escrow": spec.escrow, "expiry_ms": spec.expiry_ms,
           "height": info["height"] if info else None}

    def text() -> None:
        state = f"in block {info['height']}" if info else "submitted (pending)"
        out(f"job {tx.hash.hex()} {state}")
        out(f"bounty {spec.bounty}, escrow {spec.escrow}, claims close "
                   f"{when(spec.expiry_ms, now)}")
        out(f"next: learningchain job watch {tx.hash.hex()}")

    emit(result, as_json, text)


# --- status, leaderboard --------------------------------------------------------------------


def _get_job(client: ApiClient, job_id: bytes) -> dict[str, Any]:
    with user_errors():
        return client.job(job_id)


@job.command("status")
@click.argument("job_id", type=HASH32)
@node_option
@json_option
def job_status(job_id: bytes, node_url: str, as_json: bool) -> None:
    """A posted job: status, escrow, claims, the current turn, votes, verdicts, winner."""
    client = client_for(node_url)
    j = _get_job(client, job_id)
    with user_errors():
        now = int(client.status()["time_ms"])

    def text() -> None:
        for line in describe_job(j, now):
            out(line)

    emit(j, as_json, text)


def describe_job(j: dict[str, Any], now: int) -> list[str]:
    spec = j["spec"]
    lines = [f"job        {j['job_id']}",
             f"status     {j['status']}" + ("" if j["settled"] else
                                            f" (claims close {when(spec['expiry_ms'], now)})"
                                            if j["status"] == "open" else ""),
             f"submitter  {j['submitter']}",
             f"bounty     {spec['bounty']} (escrow now {j['escrow']})",
             f"image      {spec['image_ref']} sha256:{spec['image_digest']}"]
    if j["description"]:
        lines.append(f"about      {j['description']}")
    best = j["claims"][0] if j["claims"] else None
    lines.append(f"claims     {len(j['claims'])}" + (
        f", best loss {best['loss']:.6g} by {best['claimer']}" if best else ""))
    turn = j["turn"]
    if turn:
        lines.append(f"turn       #{turn['number']} {turn['claimer']}: {turn['phase']} until "
                     f"{when(turn['deadline_ms'], now)}")
        if turn["phase"] != "reveal":
            lines.append(f"votes      {turn['votes_committed']} committed, "
                         f"{turn['votes_revealed']} revealed of "
                         f"{len(turn['eligible_voters'])} eligible")
    for i, v in enumerate(j["verdicts"], start=1):
        lines.append(f"verdict    #{i} {v['claimer']}: {v['outcome']} ({v['valid_votes']} valid, "
                     f"{v['invalid_votes']} invalid of {v['eligible']})")
    if j["winner"]:
        lines.append(f"winner     {j['winner']} paid {j['paid']}")
        lines.append(f"model      {j['winner_model_hash']}")
    elif j["status"] == "refunded":
        lines.append("refunded   no verified winner; the escrow went back to the submitter")
    if j["status"] == "broken":
        lines.append("broken     voters measured the same model differently: the job's evaluation "
                     "does not reproduce; nobody banned, nothing refunded")
    return lines


@job.command("leaderboard")
@click.argument("job_id", type=HASH32)
@node_option
@json_option
def job_leaderboard(job_id: bytes, node_url: str, as_json: bool) -> None:
    """Claims ranked as the chain ranks them: lower loss, then the earlier claim."""
    client = client_for(node_url)
    with user_errors():
        board = client.leaderboard(job_id)

    def text() -> None:
        if not board["claims"]:
            out(f"no claims yet (job is {board['status']})")
            return
        out(f"{'rank':>4}  {'loss':>12}  {'height':>7}  {'state':10}  claimer")
        for r in board["claims"]:
            state = "winner" if r["winner"] else r["state"]
            out(f"{r['rank']:>4}  {r['loss']:>12.6g}  {r['height']:>7}  {state:10}  "
                       f"{r['claimer']}")

    emit(board, as_json, text)


# --- watch ------------------------------------------------------------------------------------


def job_events(old: dict[str, Any] | None, new: dict[str, Any]) -> list[dict[str, Any]]:
    """What changed between two snapshots of a job, as events (claims, turns, votes, verdicts)."""
    if old is None:
        return [{"event": "job", "status": new["status"], "claims": len(new["claims"]),
                 "expiry_ms": new["spec"]["expiry_ms"]}]
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
    if new["status"] != old["status"]:
        events.append({"event": "status", "from": old["status"], "to": new["status"]})
    if new["settled"] and not old["settled"]:
        events.append({"event": "settled", "status": new["status"], "winner": new["winner"],
                       "paid": new["paid"], "model_hash": new["winner_model_hash"]})
    return events


def event_text(e: dict[str, Any], now: int) -> str:
    kind = e["event"]
    if kind == "job":
        closes = when(e["expiry_ms"], now)
        return f"job {e['status']}, {e['claims']} claim(s), claims close {closes}"
    if kind == "claim":
        return f"claim   {short(e['claimer'])} loss {e['loss']:.6g} (block {e['height']})"
    if kind == "status":
        return f"status  {e['from']} -> {e['to']}"
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
        return "settled: refunded to the submitter (no verified winner)"
    return json.dumps(e)


@job.command("watch")
@click.argument("job_id", type=HASH32)
@click.option("--timeout", type=DURATION, default=None,
              help="Give up after this long (exit 1)  [default: until settled]")
@node_option
@json_option
def job_watch(job_id: bytes, timeout: int | None, node_url: str, as_json: bool) -> None:
    """Follow a job live (claims, turns, reveals, votes, verdicts) until it settles.

    With --json, one JSON event per line.
    """
    client = client_for(node_url)
    deadline = None if timeout is None else time.monotonic() + timeout / 1000
    old: dict[str, Any] | None = None
    with user_errors():
        height = int(client.status()["height"])
    while True:
        new = _get_job(client, job_id)
        with user_errors():
            now = int(client.status()["time_ms"])
        for event in job_events(old, new):
            out(json.dumps(event) if as_json else event_text(event, now))
        if new["settled"]:
            return
        old = new
        left = 30.0 if deadline is None else deadline - time.monotonic()
        if left <= 0:
            raise UserError(f"gave up watching; the job is still {new['status']}")
        try:
            height = int(client.wait(height + 1, timeout=min(left, 30.0))["height"])
        except ApiError as e:
            if e.code != "busy":
                raise UserError(one_line(e)) from None
            time.sleep(1.0)


# --- fetch-model ----------------------------------------------------------------------------


@job.command("fetch-model")
@click.argument("job_id", type=HASH32)
@click.option("-o", "--output", "output", required=True,
              type=click.Path(dir_okay=False, path_type=Path), help="Where to write the model.")
@node_option
@json_option
def job_fetch_model(job_id: bytes, output: Path, node_url: str, as_json: bool) -> None:
    """Download the verified winner's model and check it is the committed one."""
    client = client_for(node_url)
    j = _get_job(client, job_id)
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
