"""``learningchain job submit``: a job folder becomes a posted job.

Build the image if its sources changed (``client.cli.job.image``), split it into
layer blobs (once per image), upload the blobs the node lacks (by layer, only the
job's own layers once the base's are there [JOB-IMAGE.6]), pack each data path of a
train/v2 job and upload the data blobs the node lacks [JOB-DATA.2-4], post the
``JobSpec`` (its escrow leaves the submitter's balance in the same block) and print
the job id. The escrow is
more than the bounty: one voter reward per possible turn is held too
[JOB-POST-ESCROW.1], and both the refusal for a short balance and the output
say so.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import click

from chain.content import blob_id_of_bytes
from chain.errors import DecodeError
from chain.jobspec import DataRef, Holdout, JobSpec, ParamSpec, VotingParams
from chain.train.bodies import PostJob
from chain.types import Amount, Hash32, TimeMs
from client.api.http_client import ApiClient
from client.cli.common import (
    DURATION,
    UserError,
    client_for,
    emit,
    json_option,
    key_option,
    load_key,
    node_option,
    note,
    out,
    passphrase_option,
    send,
    user_errors,
    when,
)
from client.cli.job import federated as job_federated
from client.cli.job import holdout_duties
from client.cli.job.describe import escrow_text
from client.cli.job.export import export_facts, export_note, export_warning
from client.cli.job.image import choose_image
from client.cli.job.transfer_progress import TransferProgress
from sandbox.blob_file import BlobFile
from sandbox.cli import job
from sandbox.errors import SandboxError
from sandbox.image_check import ImageSizes
from sandbox.job_file import JOB_FILE, JobFile, load_job_file

DEFAULT_PERMILLE = 667
DEFAULT_MAX_TURNS = 3


# --- submit ---------------------------------------------------------------------------------


def build_spec(job_dir: Path, job_file: JobFile, *, image_digest: bytes, image_blob: bytes,
               image_ref: str, bounty: int, expiry_ms: int, voting: VotingParams,
               loss_tolerance: float | None = None, description: str | None = None,
               image: ImageSizes | None = None,
               data: tuple[tuple[str, DataRef], ...] | None = None,
               holdout: Holdout | None = None) -> JobSpec:
    """The ``JobSpec`` of a job folder, checked exactly as the chain will decode it.

    Every limit of job.toml reaches the chain [JOB-LIMITS.1] (``model_mb`` included),
    with the image sizes measured from the saved image [JOB-IMAGE.5] (``image``;
    1 MiB each for a draft made before the image exists). ``data``: the packed data
    blobs of a train/v2 job [JOB-DATA.1] (a draft: placeholders of 1 byte per role).
    ``holdout``: a train/v3 job's committed pool and terms [HOLDOUT-SPEC.1].
    """
    if data is None:
        data = tuple((role, DataRef(Hash32(b"\0" * 32), 1)) for role, _ in job_file.data)
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
        data=data,
        holdout=holdout,
    )
    return JobSpec.from_wire(spec.to_wire())  # the chain's own checks, before any upload


def _preflight(client: ApiClient, address: bytes, spec: JobSpec) -> None:
    """Refuses early (before a long build and upload) what the chain would refuse."""
    with user_errors():
        account = client.account(address)
    problems = []
    if not account["member"]:
        problems.append(f"not_member: {account['address']} is not an admitted member; only "
                        "members may post jobs (a validator runs: learningchain member admit "
                        f"{account['address']})")
    if account["balance"] < spec.escrow:
        voting = spec.voting
        made_of = escrow_text(spec.bounty, voting.voter_reward, voting.max_turns, _deposit(spec))
        problems.append(f"insufficient_balance: posting this job escrows {spec.escrow} credits "
                        f"({made_of}; "
                        "the voter rewards not paid out go back to you); the balance of "
                        f"{account['address']} is {account['balance']}")
    if problems:
        raise UserError("cannot post the job: " + "; ".join(problems))


def _deposit(spec: JobSpec) -> int:
    """A train/v3 job's deposit, escrowed beside the bounty [HOLDOUT-DEPOSIT.1]; else 0."""
    return 0 if spec.holdout is None else int(spec.holdout.deposit)


def _send(client: ApiClient, bars: TransferProgress, file: BlobFile) -> None:
    """Upload one blob with its progress; the node must store it under its own id."""
    progress = bars.blob(file.what, file.size)
    with user_errors("upload failed: "):
        info = client.upload_blob(file.path, progress)
    progress(file.size, file.size)
    if info["blob"] != file.blob.hex():
        raise UserError(f"the node stored blob {info['blob']} for the {file.what}, "
                        f"expected {file.blob.hex()} (corrupted upload?)")


def _upload_image(client: ApiClient, files: tuple[BlobFile, ...], quiet: bool) -> int:
    """Upload the image blobs the node lacks, the named one last [JOB-IMAGE.6]; bytes sent.

    Each blob is asked for first (``HEAD /blobs``): by layer, the base image's layers
    are on the node after a first job and only the job's own layers (a few KB) go up;
    each blob held is one line, each sent has its own bar (plain lines off a terminal).
    """
    missing = []
    with TransferProgress(quiet) as bars:
        for file in files:
            with user_errors():
                held = client.has_blob(file.blob)
            what = file.what if file.what.startswith("image") else f"image {file.what}"
            file = BlobFile(file.path, file.blob, file.size, what)
            if held:
                bars.held(what, file.blob, file.size)
            else:
                missing.append(file)
        total = sum(file.size for file in missing)
        if len(files) > 1:
            bars.line(f"image: the node lacks {len(missing)} of {len(files)} blobs "
                      f"({total:,} bytes to send)")
        for file in missing:
            _send(client, bars, file)
    return total


def _pack_data(job_dir: Path, job_file: JobFile, work: Path
               ) -> tuple[tuple[str, DataRef], ...] | None:
    """[JOB-DATA.2] Each ``[data]`` path packed into ``work/data-<role>.tar``; None for v1."""
    if not job_file.data:
        return None
    from sandbox.data_blob import pack_data

    out = []
    try:
        paths = job_file.data_paths(job_dir)
        for role, path in paths.items():
            packed = pack_data(path, work / f"data-{role}.tar")
            note(f"data {role}: {path.relative_to(job_dir)} packed, {packed.files} file(s), "
                 f"{packed.size} bytes, blob {packed.blob_id.hex()[:16]}")
            out.append((role, DataRef(Hash32(packed.blob_id), packed.size)))
    except (SandboxError, ValueError, OSError) as e:
        raise UserError(f"{job_dir / JOB_FILE}: {e}") from e
    return tuple(out)


def _upload_data(client: ApiClient, data: tuple[tuple[str, DataRef], ...] | None, work: Path,
                 quiet: bool) -> set[str]:
    """Upload the data blobs the node lacks [JOB-DATA.4]; the roles uploaded."""
    uploaded = set()
    with TransferProgress(quiet) as bars:
        for role, ref in data or ():
            with user_errors():
                present = client.has_blob(ref.blob)
            if present:
                bars.held(f"data {role}", ref.blob, ref.size)
                continue
            _send(client, bars, BlobFile(work / f"data-{role}.tar", ref.blob, ref.size,
                                         f"data {role}"))
            uploaded.add(role)
    return uploaded


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
@click.option("--whole-image", is_flag=True,
              help="Post the image as one saved-image tar instead of by layer.")
@click.option("--reveal-window", type=DURATION, default="2m",
              show_default=True, help="Time the winner has to reveal its model.")
@click.option("--commit-window", type=DURATION, default="5m",
              show_default=True,
              help="Time voters have to evaluate and commit a vote (the longest window).")
@click.option("--vote-reveal-window", type=DURATION, default="2m",
              show_default=True, help="Time voters have to open their votes.")
@click.option("--quorum", type=click.IntRange(1, 667), default=DEFAULT_PERMILLE,
              show_default=True, help="Revealed votes per eligible voter needed (permille).")
@click.option("--supermajority", type=click.IntRange(500, 667), default=DEFAULT_PERMILLE,
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
@job_federated.federated_options
@json_option
def job_submit(job_dir: Path, bounty: int | None, expires_in: int | None, key_path: Path,
               passphrase_file: Path | None, node_url: str, image_tar: Path | None,
               rebuild: bool, whole_image: bool, reveal_window: int, commit_window: int,
               vote_reveal_window: int,
               quorum: int, supermajority: int, voter_reward: int | None, max_turns: int,
               loss_tolerance: float | None, description: str | None, wait: bool,
               as_json: bool) -> None:
    """Post JOB_DIR (job.toml + Dockerfile) as a job with a bounty; print its job id.
    With --federated: a federated/v1 job (job.toml's [holdout] scores it; no data uploaded)."""
    try:
        job_file = load_job_file(job_dir)
    except SandboxError as e:
        raise UserError(str(e)) from e
    fed = job_federated.fed_terms()
    fed_tmp = tempfile.TemporaryDirectory(prefix="lc-fed-")
    model_path, model = job_federated.initial_model(fed, Path(fed_tmp.name)) if fed \
        else (None, None)
    model_blob = b"" if model is None else blob_id_of_bytes(model.to_bytes())
    bounty = job_file.bounty if bounty is None else bounty
    expires_ms = job_file.expiry_s * 1000 if expires_in is None else expires_in
    reward = max(1, bounty // 20) if voter_reward is None else voter_reward
    voting = VotingParams(reveal_window, commit_window, vote_reveal_window, quorum,
                          supermajority, Amount(reward), max_turns)
    key = load_key(key_path, passphrase_file)
    client = client_for(node_url)
    if fed is not None:
        fed["graph_version"] = job_federated.graph_version(client)  # [TX-FED.11]

    data: tuple[tuple[str, DataRef], ...] | None = None
    pool, holdout = (holdout_duties.commit_pool(job_dir, job_file.holdout)
                     if job_file.holdout is not None else (None, None))

    def spec_with(digest: bytes, blob: bytes, ref: str, expiry_ms: int,
                  image: ImageSizes | None = None) -> JobSpec:
        try:
            built = build_spec(job_dir, job_file, image_digest=digest, image_blob=blob,
                               image_ref=ref, bounty=bounty, expiry_ms=expiry_ms, voting=voting,
                               loss_tolerance=loss_tolerance, description=description,
                               image=image, data=data, holdout=holdout)
        except (DecodeError, KeyError, TypeError, ValueError) as e:
            raise UserError(f"{job_dir / JOB_FILE}: {e}") from e
        if fed is None or model is None:
            return built
        return job_federated.to_federated(built, fed, model, model_blob)  # [FED-SPEC.1]

    draft = spec_with(b"\0" * 32, b"\0" * 32, "", 0)
    _preflight(client, key.address, draft)
    if fed is None and not as_json:
        note(export_note(job_dir))  # [JOB-EXPORT.1] before any escrow moves
        warning = export_warning(job_dir)
        if warning:
            note(f"warning: {warning}")
    with tempfile.TemporaryDirectory(prefix="lc-submit-") as tmp:
        data = None if fed else _pack_data(job_dir, job_file, Path(tmp))
        try:
            chosen = choose_image(job_dir, image_tar, rebuild, Path(tmp), note, whole=whole_image)
            image_id, blob_id, ref = chosen.image_id, chosen.blob_id, chosen.ref
            sizes = chosen.sizes
        except SandboxError as e:
            raise UserError(str(e)) from e
        spec_with(b"\0" * 32, blob_id, ref, 0, sizes)  # a declared size too small: before upload
        image_bytes = _upload_image(client, chosen.files, as_json)
        uploaded = _upload_data(client, data, Path(tmp), as_json)
    with user_errors():
        now = int(client.status()["time_ms"])
    from sandbox.image_blob import digest_bytes

    spec = spec_with(digest_bytes(image_id), blob_id, ref, now + expires_ms, sizes)
    model_sent = model_path is not None and job_federated.upload_model(client, model_path,
                                                                       model_blob)
    secret = None if pool is None else holdout_duties.keep_secret(job_dir, pool)
    tx, info = send(client, key, PostJob(spec), wait=wait, what="job", timeout=120.0)
    published: dict[str, Any] | None = None
    steps: list[str] = []
    if fed is not None and info:  # [TX-FED.7] the public part, after the split
        published = job_federated.name_part(
            client, key, job_federated.wait_for_seed(client, tx.hash.hex()), job_dir, "public")
        steps = job_federated.next_steps(tx.hash.hex(), spec, published)
    elif secret is not None and info:  # [HOLDOUT-PUBLISH.1] after the split
        published, steps = holdout_duties.publish_after_post(client, key, tx.hash.hex(),
                                                             job_dir, as_json)
    result = {"job_id": tx.hash.hex(), "image_id": image_id, "image_blob": blob_id.hex(),
              "image_built": chosen.built, "image_by_layer": chosen.by_layer,
              "image_uploaded_bytes": image_bytes, "bounty": spec.bounty, "escrow": spec.escrow,
              "data": {role: {"blob": d.blob.hex(), "size": d.size,
                              "uploaded": role in uploaded} for role, d in spec.data},
              "voter_reward": spec.voting.voter_reward, "max_turns": spec.voting.max_turns,
              "expiry_ms": spec.expiry_ms, "height": info["height"] if info else None,
              **export_facts(job_dir)}
    if spec.federated is not None:
        result["federated"] = {"initial_model": model_blob.hex(), "model_uploaded": model_sent,
                               "dims": spec.federated.dims, "rounds": spec.federated.rounds,
                               "rule": spec.federated.aggregation.rule,
                               "deposit": spec.federated.holdout.deposit,
                               "secret": str(secret), "public_part": published}
    if spec.holdout is not None:
        result["holdout"] = {"root": spec.holdout.root.hex(), "secret": str(secret),
                             "deposit": spec.holdout.deposit, "published": published}

    def text() -> None:
        state = f"in block {info['height']}" if info else "submitted (pending)"
        out(f"job {tx.hash.hex()} {state}")
        made_of = escrow_text(spec.bounty, spec.voting.voter_reward, spec.voting.max_turns,
                              _deposit(spec))
        out(f"bounty {spec.bounty}; {made_of}: "
            "voters are paid from it per turn, the rest comes back when the job settles")
        for role, d in spec.data:
            out(f"data {role}: blob {d.blob.hex()} ({d.size} bytes, "
                f"{'uploaded' if role in uploaded else 'already on the node'})")
        form = "by layer" if chosen.by_layer else "as one saved-image tar"
        out(f"image {image_id[:19]} posted {form}: {image_bytes} bytes uploaded")
        if spec.federated is not None:
            out(f"pool secret {secret}: {holdout_duties.KEEP_SECRET}")
            for line in steps:
                out(line)
            return
        if spec.holdout is not None:
            out(f"pool secret {secret}: {holdout_duties.KEEP_SECRET}")
            for line in steps or [f"the split is drawn in block {spec_height(info)}; then "
                                  f"publish: learningchain job holdout publish {tx.hash.hex()}"]:
                out(line)
            return
        out(f"claims close {when(spec.expiry_ms, now)}")
        out(f"next: learningchain job watch {tx.hash.hex()}")

    emit(result, as_json, text)


def spec_height(info: dict[str, Any] | None) -> str:
    """The block a just-posted train/v3 job's split is drawn in [HOLDOUT-SPLIT.1]."""
    return "posted_height + 2" if not info else str(int(info["height"]) + 2)
