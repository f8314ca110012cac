"""What both federated demos do alike (``make demo-federated``, ``demo-federated-private``).

The digits template built, the job owner's key and the graph's names, the ``federated/v1``
job posted with its initial model and committed hidden test set, the six data owners'
nodes started with ``learningchain federated join``, the holdout parts published, and the
per-node views, balances and accuracy rows the demos print. Each demo keeps only what
differs: its spec's terms, its round loop and its report.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from chain.crypto import PrivateKey, address_from_text
from chain.federated.blobs import ModelBlob
from chain.federated.rounds import Aggregation
from chain.federated.spec import FEDERATED_V1, FederatedSpec
from chain.jobspec import Holdout, JobSpec, ParamSpec, ResourceLimits, VotingParams
from chain.keyfile import read_key_file
from chain.train.bodies import PostJob
from chain.types import Address, Amount, Hash32, TimeMs
from client.api.http_client import ApiClient, ApiError
from client.cli.common import send
from client.cli.job.holdout_duties import commit_pool, keep_secret
from client.devnet.federated import setup as fed_setup
from client.devnet.federated.round_window import RoundWindows, measure_round, round_windows
from client.devnet.federated.setup import OwnerNode, Shard
from client.devnet.network import NetworkLayout
from client.devnet.processes import REPO_ROOT, check_ports, down, load_pids, up
from client.federated.member.evaluate import accuracy_ppm, loss_micro, template_layers

OWNERS = ("alice", "bob", "carol", "dave", "erin", "frank")
VERIFIERS = 3
BOUNTY = 600
HIDDEN = 16
SCALE_BITS = 16
WINDOWS_MS = {"commit": 30_000, "reveal": 4_000, "aggregate": 8_000, "vote_commit": 4_000,
              "vote_reveal": 4_000}
"""Every phase lasts its whole window (federated.md §9), so these set the pace: about 45 s a
round. The commit window holds six sandboxed local trainings on a 2-core machine (15 s
was too short: most rounds went void with fewer than 4 updates committed in time)."""
OWNER_CREDITS = 100
"""Each data owner's genesis balance: every commitment locks a reveal deposit of
``BOUNTY // (ROUNDS × 6)`` = 10 credits until its reveal [FED-DEPOSIT.1]."""
FIRST_COMMIT_MS = 60_000
"""Round 1's commit window runs from the post to the expiry [TX-FED.1]: the owners' nodes
start, sync, and train once. The demos size both from a measured local round
(``round_window``); these are the sizes on a quiet 2-core machine."""
JOB_LIMITS = ResourceLimits(memory_mb=1024, cpu_millis=1000, time_s=180, disk_mb=64)
"""Each local round's container: one core, and time for six of them side by side on two
cores under gVisor (each took up to 56 s of the 60 s this was before)."""


def say(text: str = "") -> None:
    print(text, flush=True)


def build_template(job_dir: Path) -> str:
    """The digits template job in ``job_dir``, built on this machine's engine: its image id."""
    from sandbox.base_image import ensure_base_image
    from sandbox.engine import connect
    from sandbox.job_template import build_job, init_job

    client = connect()
    try:
        ensure_base_image(client, log=lambda m: say(f"   {m}"))
        init_job(job_dir, name="digits-federated")
        return build_job(client, job_dir, log=lambda _m: None).image_id
    finally:
        client.close()


def template_and_shards(root: Path) -> tuple[Path, str, list[Shard]]:
    """``root`` emptied (a graph left there stopped first); the template built in
    ``root/fed-job`` and its training rows dealt to ``OWNERS``: the job folder, the image id,
    the shards."""
    if root.exists():
        down(root)
        shutil.rmtree(root)
    root.mkdir(parents=True)
    job_dir = root / "fed-job"
    say("== 1. the job: the digits template (its image has the federate entry)")
    image_id = build_template(job_dir)
    shards = fed_setup.deal_shards(job_dir / "data" / "train.csv", OWNERS, root / "owners")
    return job_dir, image_id, shards


def measured_windows(image_id: str, shards: list[Shard]) -> RoundWindows:
    """The commit windows for ``OWNERS`` training at once, from one local round of the
    first shard timed here now, under the runtime the owners' nodes resolve (``auto``)."""
    from sandbox.engine import connect
    from sandbox.runtime import resolve

    runtime = resolve(connect(), None).name
    round_s = measure_round(image_id, shards[0].folder, JOB_LIMITS, HIDDEN, SCALE_BITS, runtime)
    return round_windows(round_s, len(OWNERS), JOB_LIMITS)


def grown_budget_s(timeout_s: float, windows: RoundWindows, rounds: int) -> float:
    """A demo's wait for its rounds, ``timeout_s`` on a quiet machine, grown by what the
    measured windows add to the quiet-machine ones (``WINDOWS_MS``, ``FIRST_COMMIT_MS``)."""
    return timeout_s + (rounds * (windows.commit_ms - WINDOWS_MS["commit"])
                        + windows.first_commit_ms - FIRST_COMMIT_MS) / 1000


def start_graph(root: Path, base_port: int,
                worker_settings: dict[int, dict[str, Any]] | None = None) -> NetworkLayout:
    """4 validators, node0-2 bonded verifiers (``worker_settings`` theirs), the job owner and
    the data owners funded; the owners' node ports (started later) checked free first."""
    check_ports({base_port + 4 + i + d: f"{o} node" for i, o in enumerate(OWNERS)
                 for d in (0, 100)}, "choose another base port")
    return up(root, validators=4, workers=VERIFIERS, base_port=base_port,
              worker_settings=worker_settings,
              users={"owner": 5_000, **dict.fromkeys(OWNERS, OWNER_CREDITS)},
              consensus={"commit_ms": 200}, timeout=90)


def federated_spec(image_id: str, initial_blob: bytes, initial: ModelBlob, holdout: Holdout,
                   rounds: int, expiry_ms: int, cohort: tuple[Address, ...] = (),
                   commit_window_ms: int = WINDOWS_MS["commit"]) -> JobSpec:
    """[FED-SPEC.1] The open demo's federated/v1 spec: train/v1's common fields, then the
    terms (the default rule, centered clipping [FED-AGG.10], 4..6 participants,
    leave-one-out at 50 %, and ``cohort``, the data owners' addresses [FED-SPEC.4])."""
    digest = Hash32(bytes.fromhex(image_id.removeprefix("sha256:")))
    fed = FederatedSpec(
        initial_model=Hash32(initial_blob), dims=initial.dims, scale_bits=SCALE_BITS,
        rounds=rounds, min_participants=4, max_participants=len(OWNERS),
        aggregation=Aggregation("centered_clip", 0), target_accuracy_ppm=None,
        holdout=replace(holdout, finalists=1, tie_tolerance=0.0), privacy="open",
        dp_clip=0, dp_noise_permille=0, commit_window_ms=commit_window_ms,
        reveal_window_ms=WINDOWS_MS["reveal"], aggregate_window_ms=WINDOWS_MS["aggregate"],
        loo_permille=500, cohort=tuple(sorted(cohort)))
    return JobSpec(
        kind=FEDERATED_V1, image_digest=digest, image_blob=digest,
        image_ref="learningchain/job-digits-federated",
        entry_points=(("evaluate", ("/job/evaluate",)), ("train", ("/job/train",))),
        limits=JOB_LIMITS,
        search_space=(ParamSpec("hidden_size", "choice", (HIDDEN,)),),
        bounty=Amount(BOUNTY), expiry_ms=TimeMs(expiry_ms), loss_tolerance=0.0,
        voting=VotingParams(WINDOWS_MS["vote_commit"], WINDOWS_MS["vote_commit"],
                            WINDOWS_MS["vote_reveal"], 667, 667, Amount(5), 3),
        description="federated digits: six non-IID owners, trimmed mean", federated=fed)


@dataclass(frozen=True)
class Owner:
    """The job owner's session on node0: its API, its key, and every address's name."""

    api: ApiClient
    key: PrivateKey
    names: dict[str, str]


def job_owner(layout: NetworkLayout) -> Owner:
    owner = next(u for u in layout.users if u.name == "owner")
    key = read_key_file(owner.key_file, owner.passphrase_file.read_text().strip())
    names = {n.address: n.name for n in layout.nodes}
    names.update({u.address: u.name for u in layout.users})
    return Owner(ApiClient(layout.nodes[0].api_url), key, names)


@dataclass(frozen=True)
class PostedJob:
    """A posted federated job and what its owner keeps to publish the holdout parts."""

    job_id: str
    height: int | None
    spec: JobSpec
    initial: ModelBlob
    secret: Any
    """The pool secret (sandbox.holdout_pool.PoolSecret), kept in the job folder too."""
    holdout: Holdout
    pool_dir: Path
    balances_before: dict[str, int]


def post_federated_job(owner: Owner, root: Path, job_dir: Path, image_id: str, rounds: int,
                       terms: Callable[[JobSpec], JobSpec] = lambda spec: spec,
                       windows: RoundWindows | None = None) -> PostedJob:
    """Upload the initial model (kept as ``root/initial-model.blob``), commit the template's
    holdout pool [HOLDOUT-POOL.1] and keep its secret, read every balance, then post
    ``terms(federated_spec(...))`` with the cohort of the owners [FED-SPEC.4] and
    ``windows``' commit windows (None: ``WINDOWS_MS`` and ``FIRST_COMMIT_MS``), and wait
    for its block."""
    from sandbox.job_file import load_job_file

    api = owner.api
    initial = fed_setup.initial_model(HIDDEN, SCALE_BITS)
    model_file = root / "initial-model.blob"
    model_file.write_bytes(initial.to_bytes())
    blob = bytes.fromhex(api.upload_blob(model_file)["blob"])
    job_file = load_job_file(job_dir)
    assert job_file.holdout is not None
    secret, holdout = commit_pool(job_dir, job_file.holdout)
    keep_secret(job_dir, secret)
    before = balances(api, owner.names)
    cohort = tuple(address_from_text(a) for a, name in owner.names.items() if name in OWNERS)
    first_ms = FIRST_COMMIT_MS if windows is None else windows.first_commit_ms
    commit_ms = WINDOWS_MS["commit"] if windows is None else windows.commit_ms
    spec = terms(federated_spec(image_id, blob, initial, holdout, rounds,
                                int(api.status()["time_ms"]) + first_ms, cohort, commit_ms))
    tx, info = send(api, owner.key, PostJob(spec), wait=True, what="post_job")
    return PostedJob(tx.hash.hex(), info["height"] if info else None, spec, initial, secret,
                     holdout, job_file.holdout.pool_path(job_dir), before)


def start_owners(root: Path, layout: NetworkLayout, shards: list[Shard], job_id: str
                 ) -> tuple[list[OwnerNode], dict[str, int]]:
    """Each data owner's own node, ``federated join``-ed on its own shard folder; the nodes
    and every process id, also written to ``root/devnet.json`` (``down`` stops them)."""
    pids = load_pids(root)
    owners = []
    for i, user in enumerate(u for u in layout.users if u.name in OWNERS):
        node = fed_setup.owner_node(layout, user, i, layout.nodes[0].p2p_port)
        shard = next(s for s in shards if s.owner == user.name)
        pids[node.name] = start_join(node, job_id, shard.folder)
        owners.append(node)
    (root / "devnet.json").write_text(json.dumps({"pids": pids}, indent=2) + "\n")
    return owners, pids


def start_join(node: OwnerNode, job_id: str, data: Path) -> int:
    """``learningchain federated join`` as the data owner runs it, detached, logged."""
    log = open(node.directory / "node.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [sys.executable, "-m", "client", "federated", "join", job_id, "--data", str(data),
         "--config", str(node.config)], stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, cwd=REPO_ROOT, start_new_session=True, env=dict(os.environ))
    log.close()
    return proc.pid


def publish_part(owner: Owner, posted: PostedJob, fed: dict[str, Any], which: str,
                 root: Path) -> str:
    """[TX-FED.7] Pack the holdout's ``which`` part for the drawn split (``fed["seed"]``),
    upload it, post its id and size and wait for the block: the blob id."""
    from chain.federated.open.reads import part_body
    from sandbox.holdout_blob import pack_part

    dest = root / f"holdout-{which}.tar"
    packed = pack_part(posted.secret, posted.pool_dir, bytes.fromhex(fed["seed"]),
                       posted.holdout.public_permille, which, dest)
    blob: str = owner.api.upload_blob(dest)["blob"]
    send(owner.api, owner.key, part_body(bytes.fromhex(posted.job_id), which,
                                         bytes.fromhex(blob), int(packed.size)),
         wait=True, what="fed_part")
    return blob


def hidden_rows(posted: PostedJob, fed: dict[str, Any]) -> tuple[Any, Any]:
    """The hidden part's rows (x, y) for the drawn split: what no participant saw."""
    from sandbox.holdout_blob import part_indices

    idx = part_indices(bytes.fromhex(fed["seed"]), posted.secret.pool,
                       posted.holdout.public_permille, "hidden")
    return fed_setup.hidden_rows(posted.pool_dir, posted.secret.names, idx)


def wait_for_fed(api: ApiClient, job_id: str, ok: Callable[[dict[str, Any]], Any],
                 timeout: float, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        fed: dict[str, Any] = api.federated_job(job_id)
        if ok(fed):
            return fed
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not there after {timeout:.0f}s")
        time.sleep(0.5)


def snapshot_hashes(seen_by_node: dict[str, dict[int, str | None]], layout: NetworkLayout,
                    owners: list[OwnerNode], job_id: str) -> None:
    """Each node's recorded rounds -> model hash, from its own API, into ``seen_by_node``
    (owners' nodes stop when the job is done, so their last answer is kept)."""
    nodes = [(n.name, n.api_url) for n in layout.nodes] + [(o.name, o.api_url) for o in owners]
    for name, url in nodes:
        try:
            fed = ApiClient(url, timeout=3).federated_job(job_id)
        except (ApiError, OSError):
            continue
        seen = {int(r["round"]): r["model_hash"] for r in fed["rounds"]
                if r["verdict"] is not None}
        if len(seen) >= len(seen_by_node.get(name, {})):
            seen_by_node[name] = seen


def balances(api: ApiClient, names: dict[str, str]) -> dict[str, int]:
    """Each named account's balance plus its verifier bond."""
    out = {}
    for address, name in names.items():
        a = api.account(address)
        out[name] = int(a["balance"]) + int(a.get("verifier_bond") or 0)
    return out


def model_row(round_no: int, verdict: str, aggregator: str | None, voted: int | None,
              model: ModelBlob, x: Any, y: Any, hash_hex: str | None) -> dict[str, Any]:
    """One row of a demo's accuracy table: the model measured on the hidden rows here."""
    layers = template_layers(model.values, model.scale_bits)
    return {"round": round_no, "verdict": verdict, "aggregator": aggregator,
            "voted_ppm": voted, "hidden_acc": accuracy_ppm(layers, x, y) / 1e6,
            "hidden_loss": loss_micro(layers, x, y) / 1e6, "model_hash": hash_hex}
