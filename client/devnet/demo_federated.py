"""``make demo-federated``: a federated job on a real multi-process graph, start to finish.

1. Build the digits template job (its image has the ``federate`` entry, job_contract.md
   §4b) and deal its training rows to six data owners, non-IID (two dominant classes
   each), one folder per owner.
2. Start 4 validators on 127.0.0.1; node0-2 are the bonded verifiers that aggregate and
   vote (client/federated/member_node.py). Each runs with ``cheat_federated_first_draw``:
   the verifier the chain draws first posts a wrong aggregate, so exactly one cheats,
   whichever the draw picks (a fixed cheater was missed when never drawn in 10 rounds).
3. The job's owner posts a ``federated/v1`` job: the initial model blob, a bounty,
   ``rounds`` rounds of the trimmed mean (k = 1), 4..6 participants, the hidden test set
   committed (the template's holdout pool, a Merkle root [HOLDOUT-POOL.1]).
4. Each data owner starts its own node with ``learningchain federated join JOB --data
   DIR --config NODE.toml``: it trains in its sandbox on its folder (read-only, network
   off), commits and reveals only its update. The owner publishes the public part once
   the split is drawn [TX-FED.7].
5. Rounds run: a verifier is drawn, aggregates, the others recompute bit for bit and
   vote. The first drawn aggregator's wrong aggregate is voted down: it is banned and
   slashed, another aggregator is drawn for the same round [FED-ROUND.5].
6. At the end the owner reveals the hidden part; the members vote the final and
   leave-one-out losses; the end ballot pays the bounty [FED-END.1-4].
7. Printed: accuracy per round on the hidden set (measured here from each round's model
   blob, fetched by its hash) beside the accuracy the members voted on the public part,
   the PNG (docs/ and the run folder), the payout per owner, every node's global-model
   hashes per round (read from each node's API, the data owners' nodes too), and a scan
   of every node's blob store for an owner's rows (none: the data never left).

Every node shares this machine's Docker engine, so the job's image is not uploaded as
blobs (``make demo`` shows that path); participants find it in the engine [JOB-IMAGE.3].
``run_federated_demo`` returns every figure, so tests/federated/test_federated_graph.py
asserts them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from chain.content import blob_id_of_file
from chain.federated.blobs import ModelBlob, model_hash
from chain.federated.rounds import Aggregation
from chain.federated.spec import FEDERATED_V1, FederatedSpec
from chain.jobspec import JobSpec, ParamSpec, ResourceLimits, VotingParams
from chain.keyfile import read_key_file
from chain.transactions import PostJob
from chain.types import Amount, Hash32, TimeMs
from client.api.http_client import ApiClient, ApiError
from client.cli.common import send
from client.cli.holdout_duties import commit_pool, keep_secret
from client.devnet import fed_setup
from client.devnet.fed_setup import OwnerNode, Shard
from client.devnet.network import NetworkLayout
from client.devnet.processes import REPO_ROOT, check_ports, down, load_pids, up
from client.federated.member_eval import accuracy_ppm, loss_micro, template_layers

REPO = REPO_ROOT
OWNERS = ("alice", "bob", "carol", "dave", "erin", "frank")
VERIFIERS = 3
"""node0-2 are the bonded verifiers (candidates for the aggregator draw and voters); node3
is a validator only. Every verifier runs with ``cheat_federated_first_draw``: the one the
chain draws first [FED-ROUND.3] cheats (client.federated.member_compute.first_draw), the
two others vote it down; the cheater is known only once drawn (``FedDemoResult.cheater``)."""
ROUNDS = 10
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
start, sync, and train once."""


@dataclass
class FedDemoResult:
    layout: NetworkLayout
    owners: list[OwnerNode] = field(default_factory=list)
    shards: list[Shard] = field(default_factory=list)
    job_id: str = ""
    fed: dict[str, Any] = field(default_factory=dict)
    table: list[dict[str, Any]] = field(default_factory=list)
    """Per round (0 = the initial model): verdict, aggregator, voted and hidden accuracy."""
    hashes_by_node: dict[str, dict[int, str | None]] = field(default_factory=dict)
    """Every node's view (its own API) of each recorded round's global-model hash."""
    payouts: dict[str, int] = field(default_factory=dict)
    refund: int = 0
    balances_before: dict[str, int] = field(default_factory=dict)
    balances_after: dict[str, int] = field(default_factory=dict)
    cheater_drawn: bool = False
    cheater: str = ""
    """The node that cheated: the first drawn aggregator, read from the chain."""
    cheater_account: dict[str, Any] = field(default_factory=dict)
    slashed: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)
    stores_scanned: int = 0
    plots: list[Path] = field(default_factory=list)
    seconds: float = 0.0


def say(text: str = "") -> None:
    print(text, flush=True)


def run_federated_demo(root: Path, *, base_port: int = 26900, rounds: int = ROUNDS,
                       docs: Path | None = REPO / "docs", timeout_s: float = 1500.0
                       ) -> FedDemoResult:
    """The demo in ``root`` (emptied first); the graph is stopped at the end whatever
    happens. ``docs``: where the PNG goes besides ``root`` (None: only ``root``)."""
    started = time.monotonic()
    if root.exists():
        down(root)
        shutil.rmtree(root)
    root.mkdir(parents=True)
    job_dir = root / "fed-job"
    say("== 1. the job: the digits template (its image has the federate entry)")
    image_id = _build(job_dir)
    say(f"   image {image_id[:19]}…")
    shards = fed_setup.deal_shards(job_dir / "data" / "train.csv", OWNERS, root / "owners")
    for s in shards:
        top = sorted(range(10), key=lambda c: -s.classes[c])[:2]
        share = 100 * (s.classes[top[0]] + s.classes[top[1]]) // s.rows
        say(f"   {s.owner:6s} {s.rows:4d} rows in {s.file.relative_to(root)}; classes "
            f"{top[0]} and {top[1]} make {share}%")
    say(f"== 2. a graph: 4 validators, node0-{VERIFIERS - 1} bonded verifiers; the first "
        "one drawn to aggregate will cheat")
    check_ports({base_port + 4 + i + d: f"{o} node" for i, o in enumerate(OWNERS)
                 for d in (0, 100)}, "choose another base port")
    layout = up(root, validators=4, workers=VERIFIERS, base_port=base_port,
                worker_settings={i: {"cheat_federated_first_draw": True}
                                 for i in range(VERIFIERS)},
                users={"owner": 5_000, **dict.fromkeys(OWNERS, OWNER_CREDITS)},
                consensus={"commit_ms": 200}, timeout=90)
    result = FedDemoResult(layout, shards=shards)
    try:
        _run(root, job_dir, image_id, result, rounds, timeout_s)
        result.seconds = time.monotonic() - started
        _figures(result, root, docs, rounds)
    finally:
        say("== stopping the graph")
        for name, outcome in down(root).items():
            say(f"   {name}: {outcome}")
    result.seconds = time.monotonic() - started
    return result


def _build(job_dir: Path) -> str:
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


def _job_spec(image_id: str, initial_blob: bytes, initial: ModelBlob, holdout: Any,
              rounds: int, expiry_ms: int) -> JobSpec:
    """[FED-SPEC.1] The federated/v1 spec: train/v1's common fields, then the terms."""
    digest = Hash32(bytes.fromhex(image_id.removeprefix("sha256:")))
    fed = FederatedSpec(
        initial_model=Hash32(initial_blob), dims=initial.dims, scale_bits=SCALE_BITS,
        rounds=rounds, min_participants=4, max_participants=len(OWNERS),
        aggregation=Aggregation("trimmed_mean", 1), target_accuracy_ppm=None,
        holdout=replace(holdout, finalists=1, tie_tolerance=0.0), privacy="open",
        dp_clip=0, dp_noise_permille=0, commit_window_ms=WINDOWS_MS["commit"],
        reveal_window_ms=WINDOWS_MS["reveal"], aggregate_window_ms=WINDOWS_MS["aggregate"],
        loo_permille=500)
    return JobSpec(
        kind=FEDERATED_V1, image_digest=digest, image_blob=digest,
        image_ref="learningchain/job-digits-federated",
        entry_points=(("evaluate", ("/job/evaluate",)), ("train", ("/job/train",))),
        limits=ResourceLimits(memory_mb=1024, cpu_millis=1000, time_s=60, disk_mb=64),
        search_space=(ParamSpec("hidden_size", "choice", (HIDDEN,)),),
        bounty=Amount(BOUNTY), expiry_ms=TimeMs(expiry_ms), loss_tolerance=0.0,
        voting=VotingParams(WINDOWS_MS["vote_commit"], WINDOWS_MS["vote_commit"],
                            WINDOWS_MS["vote_reveal"], 667, 667, Amount(5), 3),
        description="federated digits: six non-IID owners, trimmed mean", federated=fed)


def _run(root: Path, job_dir: Path, image_id: str, result: FedDemoResult, rounds: int,
         timeout_s: float) -> None:
    from sandbox.holdout_blob import pack_part, part_indices
    from sandbox.job_file import load_job_file

    layout = result.layout
    api = ApiClient(layout.nodes[0].api_url)
    owner = next(u for u in layout.users if u.name == "owner")
    key = read_key_file(owner.key_file, owner.passphrase_file.read_text().strip())
    names = {n.address: n.name for n in layout.nodes}
    names.update({u.address: u.name for u in layout.users})
    for i, n in enumerate(layout.nodes):
        role = "verifier" if i < VERIFIERS else "validator"
        say(f"   {n.name} {role:17s} {n.api_url}  {n.address}")

    say("== 3. the owner posts the federated job")
    initial = fed_setup.initial_model(HIDDEN, SCALE_BITS)
    model_file = root / "initial-model.blob"
    model_file.write_bytes(initial.to_bytes())
    blob = bytes.fromhex(api.upload_blob(model_file)["blob"])
    job_file = load_job_file(job_dir)
    assert job_file.holdout is not None
    secret, holdout = commit_pool(job_dir, job_file.holdout)
    keep_secret(job_dir, secret)
    pool_dir = job_file.holdout.pool_path(job_dir)
    result.balances_before = _balances(api, names)
    spec = _job_spec(image_id, blob, initial, holdout, rounds,
                     int(api.status()["time_ms"]) + FIRST_COMMIT_MS)
    tx, info = send(api, key, PostJob(spec), wait=True, what="post_job")
    job_id = result.job_id = tx.hash.hex()
    say(f"   job {job_id} in block {info['height'] if info else '?'}: bounty {BOUNTY}, "
        f"{rounds} rounds, trimmed mean k=1, {initial.dims} coordinates (MLP 64-{HIDDEN}-10), "
        f"hidden test set committed (pool of {secret.pool} shards, root "
        f"{bytes(secret.root).hex()[:16]}…)")

    say("== 4. six data owners join, each from its own node with its own data folder")
    pids = load_pids(root)
    for i, user in enumerate(u for u in layout.users if u.name in OWNERS):
        node = fed_setup.owner_node(layout, user, i, layout.nodes[0].p2p_port)
        shard = next(s for s in result.shards if s.owner == user.name)
        pids[node.name] = _start_join(node, job_id, shard.folder)
        result.owners.append(node)
        say(f"   learningchain federated join {job_id[:12]}… --data "
            f"{shard.folder.relative_to(root)} --config {node.config.relative_to(root)}")
    (root / "devnet.json").write_text(json.dumps({"pids": pids}, indent=2) + "\n")

    fed = _wait_for(api, job_id, lambda f: f["seed"] is not None, 60, "the split seed")
    public = _pack(pack_part, secret, pool_dir, fed, holdout, "public", root)
    ref = api.upload_blob(public[0])
    send(api, key, _part(job_id, "public", ref["blob"], public[1]), wait=True, what="fed_part")
    say(f"   the owner published the public part (blob {ref['blob'][:16]}…)")

    say("== 5. rounds: train locally, commit, reveal; a verifier aggregates, the rest vote")
    deadline = time.monotonic() + timeout_s
    shown = 0
    revealed = False
    height = int(api.status()["height"])
    while True:
        fed = api.federated_job(job_id)
        for rnd in fed["rounds"][shown:]:
            if rnd["verdict"] is None:
                break
            shown += 1
            agg = names.get(rnd["aggregator"] or "", rnd["aggregator"])
            acc = rnd["accuracy_ppm"]
            slashed = ", ".join(names.get(a, a) for a in rnd["slashed"])
            say(f"   round {rnd['round']:2d}: {rnd['verdict']:8s} aggregator {agg}, "
                f"{sum(1 for p in rnd['participants'] if p['revealed'])} updates, "
                f"voted accuracy {'-' if acc is None else f'{acc / 1e4:.1f}%'}, model "
                f"{(rnd['model_hash'] or '-')[:12]}"
                + (f"  !! {slashed} voted down, banned and slashed" if slashed else ""))
        _snapshot(result, layout, job_id)
        if fed["phase"] == "hidden" and not revealed:
            hidden = _pack(pack_part, secret, pool_dir, fed, holdout, "hidden", root)
            ref = api.upload_blob(hidden[0])
            send(api, key, _part(job_id, "hidden", ref["blob"], hidden[1]), wait=True,
                 what="fed_part")
            revealed = True
            say(f"== 6. the owner reveals the hidden part (blob {ref['blob'][:16]}…); "
                "the members vote the final and leave-one-out losses")
        if fed["phase"] == "done":
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"federated job not done after {timeout_s:.0f}s: phase "
                               f"{fed['phase']}, round {fed['round']}")
        try:
            height = int(api.wait(height + 1, timeout=5)["height"])
        except ApiError:
            time.sleep(0.5)
    result.fed = fed
    seed = bytes.fromhex(fed["seed"])
    hidden_idx = part_indices(seed, secret.pool, holdout.public_permille, "hidden")
    x, y = fed_setup.hidden_rows(pool_dir, secret.names, hidden_idx)
    _outcome(result, api, names, root, x, y, len(y))


def _start_join(node: OwnerNode, job_id: str, data: Path) -> int:
    """``learningchain federated join`` as the data owner runs it, detached, logged."""
    log = open(node.directory / "node.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [sys.executable, "-m", "client", "federated", "join", job_id, "--data", str(data),
         "--config", str(node.config)], stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, cwd=REPO, start_new_session=True, env=dict(os.environ))
    log.close()
    return proc.pid


def _part(job_id: str, which: str, blob: str, size: int) -> Any:
    from chain.federated.api import part_body

    return part_body(bytes.fromhex(job_id), which, bytes.fromhex(blob), size)


def _pack(pack_part: Any, secret: Any, pool_dir: Path, fed: dict[str, Any], holdout: Any,
          which: str, root: Path) -> tuple[Path, int]:
    dest = root / f"holdout-{which}.tar"
    packed = pack_part(secret, pool_dir, bytes.fromhex(fed["seed"]), holdout.public_permille,
                       which, dest)
    return dest, int(packed.size)


def _wait_for(api: ApiClient, job_id: str, ok: Any, timeout: float, what: str
              ) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        fed: dict[str, Any] = api.federated_job(job_id)
        if ok(fed):
            return fed
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not there after {timeout:.0f}s")
        time.sleep(0.5)


def _snapshot(result: FedDemoResult, layout: NetworkLayout, job_id: str) -> None:
    """Each node's recorded rounds -> model hash, from its own API (owners' nodes stop when
    the job is done, so their last answer is kept)."""
    nodes = [(n.name, n.api_url) for n in layout.nodes] + \
        [(o.name, o.api_url) for o in result.owners]
    for name, url in nodes:
        try:
            fed = ApiClient(url, timeout=3).federated_job(job_id)
        except (ApiError, OSError):
            continue
        seen = {int(r["round"]): r["model_hash"] for r in fed["rounds"]
                if r["verdict"] is not None}
        if len(seen) >= len(result.hashes_by_node.get(name, {})):
            result.hashes_by_node[name] = seen


def _balances(api: ApiClient, names: dict[str, str]) -> dict[str, int]:
    out = {}
    for address, name in names.items():
        a = api.account(address)
        out[name] = int(a["balance"]) + int(a.get("verifier_bond") or 0)
    return out


def _outcome(result: FedDemoResult, api: ApiClient, names: dict[str, str], root: Path,
             x: Any, y: Any, hidden_n: int) -> None:
    fed = result.fed
    layout = result.layout
    first = next((r for r in fed["rounds"] if r["slashed"] or r["aggregator"]), None)
    cheater = "" if first is None else (first["slashed"] or [first["aggregator"]])[0]
    result.cheater = names.get(cheater, cheater)
    models = root / "models"
    models.mkdir(exist_ok=True)
    initial = ModelBlob.from_bytes((root / "initial-model.blob").read_bytes())
    table = [_row(0, "initial", None, None, initial, x, y, model_hash(initial.to_bytes()).hex())]
    for rnd in fed["rounds"]:
        path = models / f"round-{rnd['round']}.blob"
        api.download_blob(rnd["model_blob"], path)
        if blob_id_of_file(path).hex() != rnd["model_blob"]:
            raise RuntimeError(f"round {rnd['round']}: the model blob does not match its id")
        model = ModelBlob.from_bytes(path.read_bytes())
        if rnd["model_hash"] and model_hash(path.read_bytes()).hex() != rnd["model_hash"]:
            raise RuntimeError(f"round {rnd['round']}: model hash differs from the chain's")
        table.append(_row(rnd["round"], rnd["verdict"], names.get(rnd["aggregator"] or "", "-"),
                          rnd["accuracy_ppm"], model, x, y, rnd["model_hash"]))
        result.slashed += [names.get(a, a) for a in rnd["slashed"]]
    result.table = table
    result.cheater_drawn = bool(cheater)
    say(f"== 7. accuracy per round on the hidden test set ({hidden_n} rows no participant "
        "saw) and as voted on the public part")
    say(f"   {'round':>5s}  {'verdict':8s}  {'aggregator':12s}  {'voted (public)':>14s}  "
        f"{'hidden acc':>10s}  {'hidden loss':>11s}  model hash")
    for r in table:
        voted = "-" if r["voted_ppm"] is None else f"{r['voted_ppm'] / 1e4:.1f}%"
        say(f"   {r['round']:5d}  {r['verdict']:8s}  {(r['aggregator'] or '-'):12s}  "
            f"{voted:>14s}  {100 * r['hidden_acc']:9.1f}%  {r['hidden_loss']:11.4f}  "
            f"{(r['model_hash'] or '-')[:16]}")

    say("== 8. every node's global-model hashes per round (each node's own API)")
    reference = result.hashes_by_node.get(layout.nodes[0].name, {})
    for name, seen in result.hashes_by_node.items():
        same = seen == reference
        say(f"   {name:8s} {len(seen):2d} rounds  identical to node0: {same}")

    payout = fed["payout"] or {"paid": [], "refund": 0}
    result.payouts = {names.get(p["address"], p["address"]): int(p["amount"])
                      for p in payout["paid"]}
    result.refund = int(payout["refund"])
    result.balances_after = _balances(api, names)
    result.cheater_account = api.account(cheater) if cheater else {}
    say("== 9. the end ballot pays the bounty by round weights and leave-one-out losses")
    for name, amount in sorted(result.payouts.items()):
        say(f"   {name:8s} {amount:5d}")
    say(f"   paid {sum(result.payouts.values())} + refund {result.refund} = bounty {BOUNTY}")
    say("   balances (+ verifier bond) before -> after:")
    for name, before in result.balances_before.items():
        after = result.balances_after[name]
        flag = "  BANNED (the first drawn aggregator: it cheated)" \
            if name == result.cheater and result.cheater_account.get("banned") else ""
        say(f"   {name:18s} {before:>6} -> {after:>6}{flag}")

    stores = [n.directory / "data" / "blobs" for n in layout.nodes] + \
        [o.directory / "node-data" / "blobs" for o in result.owners]
    result.stores_scanned = sum(1 for s in stores if s.is_dir())
    result.leaks = fed_setup.leaked_files(stores, result.shards)
    say(f"== 10. the data never left: {result.stores_scanned} blob stores scanned, "
        f"{len(result.leaks)} files holding an owner's rows")
    for leak in result.leaks:
        say(f"   !! {leak}")


def _row(round_no: int, verdict: str, aggregator: str | None, voted: int | None,
         model: ModelBlob, x: Any, y: Any, hash_hex: str | None) -> dict[str, Any]:
    layers = template_layers(model.values, model.scale_bits)
    return {"round": round_no, "verdict": verdict, "aggregator": aggregator,
            "voted_ppm": voted, "hidden_acc": accuracy_ppm(layers, x, y) / 1e6,
            "hidden_loss": loss_micro(layers, x, y) / 1e6, "model_hash": hash_hex}


def _figures(result: FedDemoResult, root: Path, docs: Path | None, rounds: int) -> None:
    rows = result.table
    title = (f"demo-federated: 6 non-IID owners, trimmed mean k=1, {rounds} rounds, "
             f"{len(result.layout.nodes)} validators + 6 owner nodes, {result.seconds:.0f} s")
    targets = [root / "federated_graph.png"] + ([docs / "federated_graph.png"] if docs else [])
    for path in targets:
        fed_setup.plot(path, [r["round"] for r in rows], [r["hidden_acc"] for r in rows],
                       [None if r["voted_ppm"] is None else r["voted_ppm"] / 1e6
                        for r in rows], title)
        result.plots.append(path)
        path.with_suffix(".md").write_text(report_md(result, rounds))
    say(f"   plot and table: {', '.join(str(p) for p in targets)} (and .md)")


def report_md(result: FedDemoResult, rounds: int) -> str:
    """The run's figures as Markdown (docs/federated_graph.md is one run's)."""
    lines = ["# `make demo-federated`: one run's figures", "",
             f"6 data owners (non-IID digits shards), trimmed mean k = 1, {rounds} rounds, "
             f"4 validators (the first drawn aggregator cheats); {result.seconds:.0f} s on this "
             "machine. Regenerate with `make demo-federated`.", "",
             "![accuracy per round](federated_graph.png)", "",
             "| round | verdict | aggregator | voted accuracy (public part) | hidden accuracy "
             "| hidden loss | model hash |", "|---|---|---|---|---|---|---|"]
    for r in result.table:
        voted = "-" if r["voted_ppm"] is None else f"{r['voted_ppm'] / 1e4:.1f} %"
        lines.append(f"| {r['round']} | {r['verdict']} | {r['aggregator'] or '-'} | {voted} "
                     f"| {100 * r['hidden_acc']:.1f} % | {r['hidden_loss']:.4f} "
                     f"| `{(r['model_hash'] or '-')[:16]}` |")
    lines += ["", f"Slashed aggregators: {', '.join(result.slashed) or 'none'}.", "",
              "| owner | rows | paid |", "|---|---|---|"]
    for s in result.shards:
        lines.append(f"| {s.owner} | {s.rows} | {result.payouts.get(s.owner, 0)} |")
    lines += ["", f"Paid {sum(result.payouts.values())} + refund {result.refund} = bounty "
              f"{BOUNTY}. Nodes with identical model hashes for every round: "
              f"{sum(1 for v in result.hashes_by_node.values() if v == _reference(result))} of "
              f"{len(result.hashes_by_node)}. Blob stores holding an owner's rows: "
              f"{len(result.leaks)} of {result.stores_scanned}.", ""]
    return "\n".join(lines)


def _reference(result: FedDemoResult) -> dict[int, str | None]:
    return {int(r["round"]): r["model_hash"] for r in result.fed.get("rounds", [])}


def main() -> None:
    root = REPO / ".demo-federated"
    result = run_federated_demo(root)
    say(f"== done in {result.seconds:.0f}s (graph files and logs in {root})")
    ok = result.fed.get("phase") == "done" and not result.leaks
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
