"""``make demo-federated``: a federated job on a real multi-process graph, start to finish.

1. Build the digits template job (its image has the ``federate`` entry, job_contract.md
   §4b) and deal its training rows to six data owners, non-IID (two dominant classes
   each), one folder per owner.
2. Start 4 validators on 127.0.0.1; node0-2 are the bonded verifiers that aggregate and
   vote (client/federated/member/node_loop.py). Each runs with ``cheat_federated_first_draw``:
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
   the PNG and a Markdown report (in the output folder), the payout per owner, every
   node's global-model
   hashes per round (read from each node's API, the data owners' nodes too), and a scan
   of every node's blob store for an owner's rows (none: the data never left).

Every node shares this machine's Docker engine, so the job's image is not uploaded as
blobs (``make demo`` shows that path); participants find it in the engine [JOB-IMAGE.3].
``run_federated_demo`` returns every figure, so tests/federated/test_federated_graph.py
asserts them.

A run writes only under its own folders: the graph's ``root`` (``.demo-federated/`` for
``make demo-federated``) and the output folder (``--out``, ``root`` by default), never the
checkout's tracked files. ``--publish-docs DOCS`` does not run the demo: it copies the
last run's report from the output folder into ``DOCS`` (``publish_docs``), which only an
explicit make target does for ``docs/``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chain.content import blob_id_of_file
from chain.federated.blobs import ModelBlob, model_hash
from client.api.http_client import ApiError
from client.devnet.federated import setup as fed_setup
from client.devnet.federated.posting import (
    BOUNTY,
    HIDDEN,
    OWNERS,
    VERIFIERS,
    Owner,
    balances,
    grown_budget_s,
    hidden_rows,
    job_owner,
    measured_windows,
    model_row,
    post_federated_job,
    publish_part,
    say,
    snapshot_hashes,
    start_graph,
    start_owners,
    template_and_shards,
    wait_for_fed,
)
from client.devnet.federated.setup import OwnerNode, Shard
from client.devnet.network import NetworkLayout
from client.devnet.processes import REPO_ROOT, down

__all__ = ["BOUNTY", "OWNERS", "ROUNDS", "VERIFIERS", "FedDemoResult", "run_federated_demo"]

REPO = REPO_ROOT
# node0-2 (VERIFIERS) are the bonded verifiers (candidates for the aggregator draw and
# voters); node3 is a validator only. Every verifier runs with ``cheat_federated_first_draw``:
# the one the chain draws first [FED-ROUND.3] cheats (client.federated.member.compute
# .first_draw), the two others vote it down; the cheater is known only once drawn
# (``FedDemoResult.cheater``).
ROUNDS = 10


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


REPORT = "federated_graph"
"""The report's file names in the output folder: ``federated_graph.png`` and ``.md``."""


def run_federated_demo(root: Path, *, base_port: int = 26900, rounds: int = ROUNDS,
                       out: Path | None = None, timeout_s: float = 1500.0
                       ) -> FedDemoResult:
    """The demo in ``root`` (emptied first); the graph is stopped at the end whatever
    happens. ``out``: the folder the report goes to (None: ``root``); the demo writes
    nothing else outside ``root``."""
    started = time.monotonic()
    job_dir, image_id, shards = template_and_shards(root)
    say(f"   image {image_id[:19]}…")
    for s in shards:
        top = sorted(range(10), key=lambda c: -s.classes[c])[:2]
        share = 100 * (s.classes[top[0]] + s.classes[top[1]]) // s.rows
        say(f"   {s.owner:6s} {s.rows:4d} rows in {s.file.relative_to(root)}; classes "
            f"{top[0]} and {top[1]} make {share}%")
    say(f"== 2. a graph: 4 validators, node0-{VERIFIERS - 1} bonded verifiers; the first "
        "one drawn to aggregate will cheat")
    layout = start_graph(root, base_port, {i: {"cheat_federated_first_draw": True}
                                           for i in range(VERIFIERS)})
    result = FedDemoResult(layout, shards=shards)
    try:
        _run(root, job_dir, image_id, result, rounds, timeout_s)
        result.seconds = time.monotonic() - started
        write_report(result, out or root, rounds)
    finally:
        say("== stopping the graph")
        for name, outcome in down(root).items():
            say(f"   {name}: {outcome}")
    result.seconds = time.monotonic() - started
    return result


def _run(root: Path, job_dir: Path, image_id: str, result: FedDemoResult, rounds: int,
         timeout_s: float) -> None:
    layout = result.layout
    owner = job_owner(layout)
    api, names = owner.api, owner.names
    for i, n in enumerate(layout.nodes):
        role = "verifier" if i < VERIFIERS else "validator"
        say(f"   {n.name} {role:17s} {n.api_url}  {n.address}")

    windows = measured_windows(image_id, result.shards)
    say(f"   one local round took {windows.round_s:.1f} s here alone: commit windows of "
        f"{windows.commit_ms / 1000:.0f} s ({windows.first_commit_ms / 1000:.0f} s in round "
        f"1) for {len(OWNERS)} owners training at once")
    say("== 3. the owner posts the federated job")
    posted = post_federated_job(owner, root, job_dir, image_id, rounds, windows=windows)
    result.balances_before = posted.balances_before
    job_id = result.job_id = posted.job_id
    initial, secret = posted.initial, posted.secret
    say(f"   job {job_id} in block {posted.height or '?'}: bounty {BOUNTY}, "
        f"{rounds} rounds, centered clipping, {initial.dims} coordinates (MLP 64-{HIDDEN}-10), "
        f"hidden test set committed (pool of {secret.pool} shards, root "
        f"{bytes(secret.root).hex()[:16]}…)")

    say("== 4. six data owners join, each from its own node with its own data folder")
    result.owners, _pids = start_owners(root, layout, result.shards, job_id)
    for node in result.owners:
        shard = next(s for s in result.shards if s.owner == node.name)
        say(f"   learningchain federated join {job_id[:12]}… --data "
            f"{shard.folder.relative_to(root)} --config {node.config.relative_to(root)}")

    fed = wait_for_fed(api, job_id, lambda f: f["seed"] is not None, 60, "the split seed")
    blob = publish_part(owner, posted, fed, "public", root)
    say(f"   the owner published the public part (blob {blob[:16]}…)")

    say("== 5. rounds: train locally, commit, reveal; a verifier aggregates, the rest vote")
    timeout_s = grown_budget_s(timeout_s, windows, rounds)
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
        snapshot_hashes(result.hashes_by_node, layout, result.owners, job_id)
        if fed["phase"] == "hidden" and not revealed:
            blob = publish_part(owner, posted, fed, "hidden", root)
            revealed = True
            say(f"== 6. the owner reveals the hidden part (blob {blob[:16]}…); "
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
    x, y = hidden_rows(posted, fed)
    _outcome(result, owner, root, x, y, len(y))


def _outcome(result: FedDemoResult, owner: Owner, root: Path, x: Any, y: Any,
             hidden_n: int) -> None:
    api, names = owner.api, owner.names
    fed = result.fed
    layout = result.layout
    first = next((r for r in fed["rounds"] if r["slashed"] or r["aggregator"]), None)
    cheater = "" if first is None else (first["slashed"] or [first["aggregator"]])[0]
    result.cheater = names.get(cheater, cheater)
    models = root / "models"
    models.mkdir(exist_ok=True)
    initial = ModelBlob.from_bytes((root / "initial-model.blob").read_bytes())
    table = [model_row(0, "initial", None, None, initial, x, y,
                       model_hash(initial.to_bytes()).hex())]
    for rnd in fed["rounds"]:
        path = models / f"round-{rnd['round']}.blob"
        api.download_blob(rnd["model_blob"], path)
        if blob_id_of_file(path).hex() != rnd["model_blob"]:
            raise RuntimeError(f"round {rnd['round']}: the model blob does not match its id")
        model = ModelBlob.from_bytes(path.read_bytes())
        if rnd["model_hash"] and model_hash(path.read_bytes()).hex() != rnd["model_hash"]:
            raise RuntimeError(f"round {rnd['round']}: model hash differs from the chain's")
        table.append(model_row(rnd["round"], rnd["verdict"],
                               names.get(rnd["aggregator"] or "", "-"), rnd["accuracy_ppm"],
                               model, x, y, rnd["model_hash"]))
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
    result.balances_after = balances(api, names)
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


def write_report(result: FedDemoResult, out: Path, rounds: int) -> list[Path]:
    """The run's plot and Markdown report, in ``out`` only: their paths."""
    rows = result.table
    title = (f"demo-federated: 6 non-IID owners, centered clipping, {rounds} rounds, "
             f"{len(result.layout.nodes)} validators + 6 owner nodes, {result.seconds:.0f} s")
    png, md = out / f"{REPORT}.png", out / f"{REPORT}.md"
    out.mkdir(parents=True, exist_ok=True)
    fed_setup.plot(png, [r["round"] for r in rows], [r["hidden_acc"] for r in rows],
                   [None if r["voted_ppm"] is None else r["voted_ppm"] / 1e6 for r in rows],
                   title)
    result.plots.append(png)
    md.write_text(report_md(result, rounds))
    say(f"   plot and table: {png} and {md}")
    return [png, md]


def publish_docs(out: Path, docs: Path) -> list[Path]:
    """Copies the report a run wrote to ``out`` into ``docs`` (``make docs-federated``):
    the PNG replaced; the Markdown's generated part (up to its first ``## `` heading)
    replaced, every ``## `` section of ``docs``' copy after it (the private run's, written
    by hand) kept. The paths written."""
    png, md = out / f"{REPORT}.png", out / f"{REPORT}.md"
    for path in (png, md):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no report there; run the demo first "
                                    "(make demo-federated)")
    docs_png, docs_md = docs / png.name, docs / md.name
    shutil.copyfile(png, docs_png)
    kept = ""
    if docs_md.is_file():
        old = docs_md.read_text()
        at = old.find("\n## ")
        kept = "" if at < 0 else old[at + 1:]
    report = md.read_text().rstrip("\n") + "\n"
    docs_md.write_text(report + ("\n" + kept if kept else ""))
    return [docs_png, docs_md]


def report_md(result: FedDemoResult, rounds: int) -> str:
    """The run's figures as Markdown (docs/federated_graph.md is one run's, published)."""
    lines = ["# `make demo-federated`: one run's figures", "",
             f"6 data owners (non-IID digits shards), centered clipping, {rounds} rounds, "
             f"4 validators (the first drawn aggregator cheats); {result.seconds:.0f} s on this "
             "machine. `make demo-federated` writes this report to its output folder "
             "(`.demo-federated/`); `make docs-federated` runs it and copies it here.", "",
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m client.devnet.federated.demo",
        description="A federated job on a real multi-process graph (make demo-federated).")
    parser.add_argument("--root", type=Path, default=REPO / ".demo-federated",
                        help="the graph's folder, emptied first (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where the report (federated_graph.png and .md) goes "
                             "(default: the root)")
    parser.add_argument("--publish-docs", type=Path, default=None, metavar="DOCS",
                        help="do not run the demo: copy the last run's report from the "
                             "output folder into DOCS (make docs-federated)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    out = args.out or args.root
    if args.publish_docs is not None:
        for path in publish_docs(out, args.publish_docs):
            say(f"   {path}")
        return
    result = run_federated_demo(args.root, out=out)
    say(f"== done in {result.seconds:.0f}s (graph files and logs in {args.root}; report: "
        f"{', '.join(str(p) for p in result.plots)} and {out / (REPORT + '.md')})")
    ok = result.fed.get("phase") == "done" and not result.leaks
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
