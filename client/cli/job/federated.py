"""``learningchain job submit DIR --federated …``: a job folder posted as a ``federated/v1``
job (protocol_spec/federated.md §5), and the owner's holdout parts named with ``fed_part``.

The job folder is a train/v3 one (job.toml with ``[holdout]``: the evaluation data
commitment [FED-SPEC.1] #8); its image must have the ``federate`` entry (job_contract.md
§4b). ``--federated`` turns the post into federated/v1: no training race, no ``[data]``
upload (the data stays with its owners), the initial model blob uploaded first, and the
terms from these options. The options are collected in the click context (``fed_terms``)
so ``job submit``'s signature stays the train one's.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from chain.crypto import PrivateKey, address_from_text
from chain.errors import DecodeError, InvalidAddress
from chain.federated.blobs import MODEL_HEADER, ModelBlob
from chain.federated.fixed import MAX_DIMS
from chain.federated.open.reads import part_body
from chain.federated.open.steps import reveal_deposit
from chain.federated.rounds import CENTERED_CLIP, FLTRUST, RULES, TRIMMED_MEAN, Aggregation
from chain.federated.spec import FEDERATED_V1, OPEN, PRIVATE, FederatedSpec
from chain.jobspec import DataRef, JobSpec
from chain.local_file import LocalFileError, read_local_file
from chain.types import Address, Hash32
from chain.versions import CENTERED_CLIP_VERSION, COHORT_VERSION
from client.api.http_client import ApiClient, ApiError
from client.cli.common import DURATION, UserError, send, user_errors
from sandbox.errors import SandboxError

Json = dict[str, Any]
TEMPLATE_PREFIX = "digits:"
"""``--initial-model digits:H``: the digits template's MLP (64-H-10), seeded, quantised."""
MAX_MODEL_BLOB_BYTES = MODEL_HEADER.size + 4 * MAX_DIMS
"""[NODE-READ.1] The largest model blob [FED-MODEL.1]: a header and 4 bytes a coordinate."""


def _keep(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    ctx.meta.setdefault("federated_terms", {})[param.name] = value
    return value


def _option(*decls: str, **kw: Any) -> Callable[[Any], Any]:
    return click.option(*decls, expose_value=False, callback=_keep, **kw)


FEDERATED_OPTIONS = [
    _option("--federated", is_flag=True,
            help="Post a federated/v1 job: data owners train where their data is "
                 "(learningchain federated join); needs [holdout] in job.toml."),
    _option("--initial-model", default=None,
            help="federated: the initial model blob file, or digits:H for the digits "
                 "template's MLP with H hidden units."),
    _option("--rounds", type=click.IntRange(1, 1000), default=10, show_default=True,
            help="federated: at most this many rounds."),
    _option("--min-participants", type=click.IntRange(1, 256), default=2, show_default=True,
            help="federated: fewer revealed updates make a round void."),
    _option("--max-participants", type=click.IntRange(1, 256), default=6, show_default=True,
            help="federated: the first commitments of a round, in block order."),
    _option("--rule", type=click.Choice(RULES), default=None,
            help="federated: the aggregation rule [FED-AGG.*]; default centered_clip "
                 "(trimmed_mean on a graph older than protocol version 4, and in private "
                 "mode, which only sums)."),
    _option("--trim", type=click.IntRange(0, 252), default=None,
            help="federated: the rule's parameter: trimmed mean's k (updates cut at each end "
                 "per coordinate), multi_krum's f (updates assumed Byzantine), fltrust 1 for "
                 "its trusted updates through centered clipping (its default from protocol "
                 "version 4) or 0 for FLTrust's weighted mean; 0 for the others."),
    _option("--target-accuracy", type=click.FloatRange(0, 1, min_open=True), default=None,
            help="federated: accuracy on the public part (0..1) that ends the job early."),
    _option("--scale-bits", type=click.IntRange(8, 24), default=16, show_default=True,
            help="federated: fixed-point scale of digits:H (a blob file carries its own)."),
    _option("--privacy", type=click.Choice((OPEN, PRIVATE)), default=OPEN, show_default=True,
            help="federated: open (updates visible) or private (masked, [FED-PRIV.*])."),
    _option("--dp-clip", type=click.IntRange(0, 2**43), default=0, show_default=True,
            help="federated, private: the L2 clip in quantised units."),
    _option("--dp-noise-permille", type=click.IntRange(0, 10_000), default=0,
            show_default=True, help="federated, private: noise sigma as a share of the clip."),
    _option("--round-commit-window", type=DURATION, default="1m", show_default=True,
            help="federated: time to train and commit in rounds after the first (the first "
                 "runs until --expires-in)."),
    _option("--round-reveal-window", type=DURATION, default="30s", show_default=True,
            help="federated: time to reveal the committed update."),
    _option("--aggregate-window", type=DURATION, default="1m", show_default=True,
            help="federated: time the drawn aggregator has to post."),
    _option("--loo-permille", type=click.IntRange(0, 1000), default=500, show_default=True,
            help="federated: the leave-one-out share of the bounty [FED-REWARD.5]."),
    _option("--cohort", multiple=True, metavar="ADDRESS[,ADDRESS...]",
            help="federated: take updates only from these addresses (repeat the option or "
                 "separate with commas), one per data owner you know, so that no owner can "
                 "join through several [FED-SPEC.4]; needs protocol version 6. A job "
                 "names a cohort or says --any-member."),
    _option("--any-member", is_flag=True,
            help="federated: take updates from any admitted member (no cohort). One member "
                 "may then join through several addresses and be paid for each, 1.6-2 "
                 "times one address's pay (docs/federated.md, \"Splitting\")."),
]


def federated_options(f: Any) -> Any:
    for option in reversed(FEDERATED_OPTIONS):
        f = option(f)
    return f


def chosen_aggregation(terms: Json, graph_version: int | None) -> Aggregation:
    """[FED-SPEC.2] The rule a job names: ``--rule``/``--trim`` as given (``--trim`` 0 when
    not); with no ``--rule``, centered clipping [FED-AGG.10], except in private mode (the
    plain mean: only the sum is seen [FED-SPEC.3]) and on a graph whose protocol version
    predates the rule [TX-FED.11] (the plain mean, as before version 4). ``--rule fltrust``
    without ``--trim`` is FLTrust through centered clipping [FED-AGG.12] where the graph
    has it: plain FLTrust lets a trigger backdoor through (success 1.00 against 0.00,
    docs/federated.md), at the same clean accuracy."""
    rule, trim = terms.get("rule"), terms.get("trim")
    old = graph_version is not None and graph_version < CENTERED_CLIP_VERSION
    if rule is None:
        rule = TRIMMED_MEAN if terms.get("privacy") == PRIVATE or old else CENTERED_CLIP
    if trim is None:
        trim = 1 if rule == FLTRUST and not old else 0
    return Aggregation(rule, trim)


COHORT_OR_ANY_MEMBER = (
    "a federated job names who may send updates: --cohort ADDRESS,... (one address per data "
    "owner you pay, so that nobody is paid twice) or --any-member (any admitted member; one "
    "member may then join through several addresses and be paid for each: "
    "docs/federated.md, \"Splitting\") [FED-SPEC.4]")


def chosen_cohort(terms: Json) -> tuple[Address, ...]:
    """[FED-SPEC.4] ``--cohort``'s addresses, ascending: each a checked text address, none
    twice, and only on a graph that knows cohorts [TX-FED.12] (refused here, before any
    upload, rather than by the chain after it). A job without a cohort must say
    ``--any-member``: such a job lets one owner be paid for each of several addresses,
    which no rule reading updates can stop, so the submitter chooses it knowingly."""
    texts = [t for value in terms.get("cohort") or () for t in value.split(",") if t.strip()]
    version = terms.get("graph_version")
    if terms.get("any_member"):
        if texts:
            raise UserError("--cohort and --any-member exclude each other: a cohort closes "
                            "the job to every other address", code="bad_cohort")
        return ()
    if not texts:
        if version is not None and version < COHORT_VERSION:
            raise UserError(f"this graph runs protocol version {version}, which has no "
                            f"cohorts (version {COHORT_VERSION} [TX-FED.12]): post the job "
                            "with --any-member (any admitted member may send updates)",
                            code="needs_cohort")
        raise UserError(COHORT_OR_ANY_MEMBER, code="needs_cohort")
    try:
        cohort = [address_from_text(t) for t in texts]
    except InvalidAddress as e:
        raise UserError(f"--cohort: {e}", code="bad_cohort") from None
    if len(set(cohort)) != len(cohort):
        twice = next(t for t, a in zip(texts, cohort, strict=True) if cohort.count(a) > 1)
        raise UserError(f"--cohort names {twice.strip()} twice", code="bad_cohort")
    if version is not None and version < COHORT_VERSION:
        raise UserError(f"--cohort needs protocol version {COHORT_VERSION}; this graph runs "
                        f"version {version} [TX-FED.12]", code="needs_protocol_version")
    return tuple(sorted(cohort))


def graph_version(client: ApiClient) -> int | None:
    """The protocol version in force on the node's graph; None when it does not say."""
    try:
        protocol = client.status().get("protocol") or {}
    except ApiError:
        return None
    version = protocol.get("version")
    return version if isinstance(version, int) else None


def fed_terms() -> Json | None:
    """The ``--federated`` terms of the running command; None without ``--federated``."""
    terms: Json = click.get_current_context().meta.get("federated_terms", {})
    return terms if terms.get("federated") else None


def initial_model(terms: Json, work: Path) -> tuple[Path, ModelBlob]:
    """The initial model blob [FED-MODEL.1]: a file (checked to decode) or ``digits:H``."""
    value = terms.get("initial_model")
    if not value:
        raise UserError("--federated needs --initial-model (a model blob file, or digits:H "
                        "for the digits template's MLP with H hidden units)", code="bad_model")
    if value.startswith(TEMPLATE_PREFIX):
        from client.devnet.federated.setup import initial_model as template_model

        try:
            hidden = int(value.removeprefix(TEMPLATE_PREFIX))
        except ValueError:
            hidden = 0
        if not 1 <= hidden <= 4096:
            raise UserError(f"--initial-model {value!r}: digits:H needs 1 <= H <= 4096",
                            code="bad_model")
        model = template_model(hidden, int(terms["scale_bits"]))
        path = work / "initial-model.blob"
        path.write_bytes(model.to_bytes())
        return path, model
    path = Path(value)
    try:  # [NODE-READ.1] a regular file, at most the largest model blob
        return path, ModelBlob.from_bytes(read_local_file(path, MAX_MODEL_BLOB_BYTES,
                                                          what="model blob"))
    except LocalFileError as e:
        raise UserError(f"--initial-model {e}", code="bad_model") from None
    except (DecodeError, ValueError) as e:
        raise UserError(f"--initial-model {value}: not a model blob [FED-MODEL.1]: {e}",
                        code="bad_model") from None


def to_federated(spec: JobSpec, terms: Json, model: ModelBlob, blob_id: bytes) -> JobSpec:
    """[FED-SPEC.1] The train/v3 spec of the folder made federated/v1: its holdout moves into
    ``FederatedSpec`` (finalists 1, tie tolerance 0), no ``data``; checked as the chain
    decodes it [FED-SPEC.2] [FED-SPEC.3]."""
    if spec.holdout is None:
        raise UserError("a federated job needs [holdout] in job.toml: the hidden test set "
                        "that scores each round and each participant [FED-SPEC.1]",
                        code="bad_job")
    target = terms.get("target_accuracy")
    try:
        return JobSpec.from_wire(_federated(spec, terms, model, blob_id, target).to_wire())
    except DecodeError as e:
        raise UserError(f"the federated terms are refused: {e}", code="bad_job") from None


def _federated(spec: JobSpec, terms: Json, model: ModelBlob, blob_id: bytes,
               target: float | None) -> JobSpec:
    assert spec.holdout is not None
    fed = FederatedSpec(
        initial_model=Hash32(blob_id), dims=model.dims, scale_bits=model.scale_bits,
        rounds=terms["rounds"], min_participants=terms["min_participants"],
        max_participants=terms["max_participants"],
        aggregation=chosen_aggregation(terms, terms.get("graph_version")),
        target_accuracy_ppm=None if target is None else max(1, round(target * 1_000_000)),
        holdout=replace(spec.holdout, finalists=1, tie_tolerance=0.0),
        privacy=terms["privacy"], dp_clip=terms["dp_clip"],
        dp_noise_permille=terms["dp_noise_permille"],
        commit_window_ms=terms["round_commit_window"],
        reveal_window_ms=terms["round_reveal_window"],
        aggregate_window_ms=terms["aggregate_window"], loo_permille=terms["loo_permille"],
        cohort=chosen_cohort(terms))
    return replace(spec, kind=FEDERATED_V1, federated=fed, holdout=None, data=())


def upload_model(client: ApiClient, path: Path, blob_id: bytes) -> bool:
    """Upload the initial model blob unless the node holds it; whether it was sent."""
    with user_errors():
        if client.has_blob(blob_id):
            return False
        info = client.upload_blob(path)
    if info["blob"] != blob_id.hex():
        raise UserError(f"the node stored blob {info['blob']} for the initial model, expected "
                        f"{blob_id.hex()}")
    return True


def wait_for_seed(client: ApiClient, job_id: str, timeout_s: float = 120.0) -> Json:
    """The federated job's JSON once its holdout split seed is drawn [HOLDOUT-SPLIT.1]."""
    deadline = time.monotonic() + timeout_s
    while True:
        with user_errors():
            fed: Json = client.federated_job(job_id)
        if fed["seed"] is not None:
            return fed
        if time.monotonic() > deadline:
            raise UserError(f"the split of job {job_id} was not drawn within {timeout_s:.0f} s; "
                            f"name the public part with: learningchain federated part "
                            f"{job_id} public", code="timeout")
        try:
            with user_errors():
                height = int(client.status()["height"])
            client.wait(height + 1, timeout=5.0)
        except ApiError:
            time.sleep(0.5)


def name_part(client: ApiClient, key: PrivateKey, fed: Json, job_dir: Path, which: str,
              *, wait: bool = True) -> Json:
    """[TX-FED.7] Pack the holdout's ``which`` part from the pool secret ``job submit`` kept
    under the job folder, upload it, and name it with ``fed_part``."""
    from client.cli.job.holdout_duties import secret_path
    from sandbox.holdout_blob import pack_part
    from sandbox.holdout_pool import load_pool_secret
    from sandbox.job_file import load_job_file

    terms = fed["spec"]["holdout"]
    try:
        job_file = load_job_file(job_dir)
        if job_file.holdout is None:
            raise ValueError("job.toml has no [holdout]")
        secret = load_pool_secret(secret_path(job_dir, bytes.fromhex(terms["root"])))
        pool_dir = job_file.holdout.pool_path(job_dir)
    except (SandboxError, OSError, ValueError) as e:
        raise UserError(f"cannot find the pool of job {fed['job_id']} under {job_dir}: {e}",
                        code="bad_pool") from None
    with tempfile.TemporaryDirectory(prefix="lc-fed-part-") as tmp:
        dest = Path(tmp) / f"{which}.tar"
        try:
            packed = pack_part(secret, pool_dir, bytes.fromhex(fed["seed"]),
                               int(terms["public_permille"]), which, dest)
        except (SandboxError, OSError, ValueError) as e:
            raise UserError(f"cannot pack the {which} part: {e}", code="bad_pool") from None
        with user_errors("upload failed: "):
            held = client.has_blob(packed.blob_id)
            if not held:
                client.upload_blob(dest)
    body = part_body(bytes.fromhex(fed["job_id"]), which, packed.blob_id, packed.size)
    tx, info = send(client, key, body, wait=wait, what="fed_part")
    return {"part": which, "blob": DataRef(Hash32(packed.blob_id), packed.size).blob.hex(),
            "size": packed.size, "uploaded": not held, "tx": tx.hash.hex(),
            "height": info["height"] if info else None}


OPEN_JOB_NOTE = ("open to every admitted member: one member may join through several "
                 "addresses and be paid for each (docs/federated.md, \"Splitting\"), as "
                 "--any-member accepted; --cohort naming each data owner once prevents it "
                 "[FED-SPEC.4]")
"""What the owner of a job without a cohort is told when it posts: the splitting gain that
no payout rule removes on open jobs is the submitter's to accept or to close."""


def next_steps(job_id: str, spec: JobSpec, published: Json) -> list[str]:
    """What the owner of a just-posted federated job does next, in order."""
    fed = spec.federated
    assert fed is not None
    opening = [f"public part: blob {published['blob']} ({published['size']} bytes) named "
               f"in block {published['height']}"]
    if not fed.cohort:
        opening.append(OPEN_JOB_NOTE)
    return [*opening,
            f"data owners join with: learningchain federated join {job_id} --data DIR "
            "--config NODE.toml (each commitment locks a reveal deposit of "
            f"{reveal_deposit(spec.bounty, fed)} credits "
            "[FED-DEPOSIT.1])",
            f"follow it: learningchain federated show {job_id}",
            f"after the last round name the hidden part within "
            f"{fed.holdout.reveal_window_ms // 1000} s or the deposit of {fed.holdout.deposit} "
            f"burns: learningchain federated part {job_id} hidden --job-dir DIR"]
