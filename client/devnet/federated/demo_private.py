"""``make demo-federated-private``: a *private* federated job on a real multi-process graph.

The same graph as ``make demo-federated`` (client/devnet/federated/demo.py: 4 validators,
node0-2 bonded verifiers that aggregate and vote, six data owners' nodes started with
``learningchain federated join``, each training in its own sandbox on its own non-IID
shard), but the job is posted with ``privacy = "private"`` (federated.md §6-7):

1. Each round an owner trains, clips and noises its update [FED-PRIV.3], commits to fresh
   round keys, publishes them, sends its encrypted seed shares, reveals only its *masked*
   update, and after the reveals names its unmask blob [FED-PRIV.6-10].
2. The drawn verifier rebuilds the survivors' sum from the public blobs alone, posts
   ``rdiv(sum, |U|)`` with weight 1 per survivor [FED-PRIV.9] [FED-REWARD.6]; the others
   recompute it bit for bit and vote.
3. ``frank`` drops out in round ``DROP_ROUND``: its node process is killed (SIGKILL) as soon
   as its share blob is in a block, so it is in the round's mask set but never reveals;
   the survivors reveal shares of its mask secret and the round still closes with the
   five others' mean. Later rounds run without it.
4. Private mode has no leave-one-out (``loo_permille`` 0): the payout follows the last round
   at once, by round weights [FED-END.1] [FED-REWARD.6].

TEST ONLY (``keep_updates``): the product deletes a participant's noised update with its
round secrets once the round is over (client/federated/participant/private.py
``PrivateStore.forget``). To check that each aggregate equals the plain mean of the
survivors' updates, the demo, which runs every owner on this machine, copies each owner's
``update`` (not its secrets) out of ``node-data/federated/JOB/private-R.json`` while the
round runs, into a folder *outside* every node's directory. ``main`` does not keep them.

``run_private_demo`` returns every figure; tests/federated/test_federated_graph_private.py
asserts them. The run's report (``federated_graph_private.md``) goes to the output folder
(``--out``; the graph's root, ``.demo-federated-private/``, by default), never to the
checkout's tracked files.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from chain.federated.blobs import ModelBlob
from chain.federated.rounds import Aggregation
from chain.federated.spec import PRIVATE
from chain.jobspec import JobSpec
from client.api.http_client import ApiClient, ApiError
from client.devnet.federated.demo import FedDemoResult
from client.devnet.federated.posting import (
    BOUNTY,
    SCALE_BITS,
    VERIFIERS,
    WINDOWS_MS,
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
from client.devnet.processes import REPO_ROOT, down

__all__ = [
    "BOUNTY",
    "DROPPER",
    "DROP_ROUND",
    "ROUNDS",
    "VERIFIERS",
    "PrivateDemoResult",
    "run_private_demo",
]

REPO = REPO_ROOT
ROUNDS = 3
DROP_ROUND = 2
DROPPER = "frank"
DP_CLIP = 4 << SCALE_BITS
"""L2 clip 4.0 (quantised units): the digits owners' updates have norms of about 1-3, so the
clip binds only on outliers."""
DP_NOISE_PERMILLE = 10
"""Noise std per participant ``4.0 · 0.01 / √4 = 0.02`` per coordinate [FED-PRIV.3]: small
enough that three rounds still learn, the point here being the masking, not a DP budget."""


@dataclass
class PrivateDemoResult(FedDemoResult):
    dropper: str = DROPPER
    dropped_at: tuple[int, str] | None = None
    """(round, phase) when the dropper's node was killed."""
    kept: dict[str, dict[int, list[int]]] = field(default_factory=dict)
    """TEST ONLY: owner -> round -> its clipped and noised update (what it masked)."""
    kept_dir: Path | None = None
    txs: list[dict[str, Any]] = field(default_factory=list)
    """Every federated transaction of the job, from node0's blocks: ``height`` added."""
    models: dict[int, ModelBlob] = field(default_factory=dict)
    """Round -> the model recorded for it (0: the initial model), fetched by blob id."""
    spec: JobSpec | None = None
    report: Path | None = None
    """The Markdown report the run wrote (in the output folder)."""


def run_private_demo(root: Path, *, base_port: int = 27100, rounds: int = ROUNDS,
                     out: Path | None = None, keep_updates: bool = False,
                     timeout_s: float = 900.0) -> PrivateDemoResult:
    """The private demo in ``root`` (emptied first); the graph is stopped at the end whatever
    happens. ``out``: the folder the report goes to (None: ``root``); the demo writes
    nothing else outside ``root``. ``keep_updates``: TEST ONLY, see the module docstring."""
    started = time.monotonic()
    job_dir, image_id, shards = template_and_shards(root)
    say(f"== 2. a graph: 4 validators, node0-{VERIFIERS - 1} bonded verifiers")
    layout = start_graph(root, base_port)
    result = PrivateDemoResult(layout, shards=shards)
    if keep_updates:
        result.kept_dir = root / "TEST-ONLY-kept-updates"  # outside every node's directory
        result.kept_dir.mkdir()
    try:
        _run(root, job_dir, image_id, result, rounds, timeout_s)
    finally:
        say("== stopping the graph")
        for name, outcome in down(root).items():
            say(f"   {name}: {outcome}")
    if result.job_id and result.fed:
        _owner_ledgers(result)
        reference = {int(r["round"]): r["model_hash"] for r in result.fed["rounds"]}
        say("== 8. every node's global-model hashes per round (validators: their API; owners: "
            "their own ledger, read once stopped)")
        for name, seen in result.hashes_by_node.items():
            say(f"   {name:6s} {len(seen)} rounds, identical to the chain's: "
                f"{seen == {r: h for r, h in reference.items() if r in seen}}")
    result.seconds = time.monotonic() - started
    result.report = write_report(result, out or root, rounds)
    return result


def write_report(result: PrivateDemoResult, out: Path, rounds: int) -> Path:
    """The run's Markdown report, in ``out`` only: its path."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "federated_graph_private.md"
    path.write_text(report_md(result, rounds))
    say(f"   report: {path}")
    return path


PRIVATE_COMMIT_MS = 45_000
"""The commit window of rounds 2 and 3. Six sandboxed trainings on 2 cores took 26 s in a
quiet round and over 30 s in a round where the verifiers were still evaluating the last
model: two ``make test-slow`` runs saw round 2 go void with every owner still training
at the open demo's 30 s."""


def _private_terms(spec: JobSpec) -> JobSpec:
    """The open demo's spec made private: the plain mean [FED-PRIV.9], clip and noise,
    no leave-one-out, 4..6 participants, a longer commit window: the measured one
    (``round_window``) and the 15 s more that ``PRIVATE_COMMIT_MS`` has over the open
    demo's quiet-machine 30 s, at least ``PRIVATE_COMMIT_MS``."""
    assert spec.federated is not None
    commit = max(PRIVATE_COMMIT_MS, spec.federated.commit_window_ms
                 + PRIVATE_COMMIT_MS - WINDOWS_MS["commit"])
    fed = replace(spec.federated, privacy=PRIVATE, aggregation=Aggregation("trimmed_mean", 0),
                  dp_clip=DP_CLIP, dp_noise_permille=DP_NOISE_PERMILLE, loo_permille=0,
                  commit_window_ms=commit)
    return replace(spec, federated=fed,
                   description="federated digits, private: masked updates, one dropout")


def _run(root: Path, job_dir: Path, image_id: str, result: PrivateDemoResult, rounds: int,
         timeout_s: float) -> None:
    layout = result.layout
    owner = job_owner(layout)
    api, names = owner.api, owner.names
    windows = measured_windows(image_id, result.shards)
    say(f"   one local round took {windows.round_s:.1f} s here alone: commit windows of "
        f"{windows.commit_ms / 1000:.0f} s (and the private rounds' 15 s more)")
    say("== 3. the owner posts the private federated job")
    posted = post_federated_job(owner, root, job_dir, image_id, rounds, _private_terms,
                                windows=windows)
    result.balances_before = posted.balances_before
    result.spec = posted.spec
    job_id = result.job_id = posted.job_id
    say(f"   job {job_id}: private, {rounds} rounds, clip {DP_CLIP / (1 << SCALE_BITS)}, "
        f"noise {DP_NOISE_PERMILLE}‰; {DROPPER} will drop out in round {DROP_ROUND}")

    say("== 4. six data owners join, each from its own node with its own data folder")
    result.owners, pids = start_owners(root, layout, result.shards, job_id)
    dropper = next(o for o in result.owners if o.name == DROPPER)

    fed = wait_for_fed(api, job_id, lambda f: f["seed"] is not None, 60, "the split seed")
    publish_part(owner, posted, fed, "public", root)

    say("== 5. rounds: keys, shares, masked reveals, unmask blobs; a verifier unmasks the sum")
    timeout_s = grown_budget_s(timeout_s, windows, rounds)
    deadline = time.monotonic() + timeout_s
    shown = seen_height = 0
    share_blob = ""
    height = int(api.status()["height"])
    while True:
        fed = api.federated_job(job_id)
        _keep(result, job_id)
        for block_no in range(seen_height + 1, height + 1):
            for t in api.block(block_no)["txs"]:
                if t["type"].startswith("fed_") and t["body"].get("job_id") == job_id:
                    result.txs.append({**t, "height": block_no})
                    if t["type"] == "fed_shares" and t["sender"] == dropper.address \
                            and t["body"]["round"] == DROP_ROUND:
                        share_blob = t["body"]["blob"]
        seen_height = height
        if share_blob and result.dropped_at is None and (fed["phase"] != "shares" or all(
                ApiClient(n.api_url, timeout=3).has_blob(share_blob)
                for n in layout.nodes[:VERIFIERS])):
            _keep(result, job_id)
            os.kill(pids[DROPPER], signal.SIGKILL)  # gone before its reveal
            result.dropped_at = (DROP_ROUND, fed["phase"])
            say(f"   !! {DROPPER} shared its seeds in round {DROP_ROUND}; once the "
                f"verifiers hold its share blob (phase {fed['phase']}) it drops out: its "
                "node is killed")
        for rnd in fed["rounds"][shown:]:
            if rnd["verdict"] is None:
                break
            shown += 1
            say(f"   round {rnd['round']}: {rnd['verdict']}, aggregator "
                f"{names.get(rnd['aggregator'] or '', '-')}, weights "
                f"{ {names.get(w['address']): w['weight'] for w in rnd['weights']} }")
        snapshot_hashes(result.hashes_by_node, layout, result.owners, job_id)
        if fed["phase"] == "done":
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"private job not done after {timeout_s:.0f}s: phase "
                               f"{fed['phase']}, round {fed['round']}")
        try:
            height = int(api.wait(height + 1, timeout=5)["height"])
        except ApiError:
            time.sleep(0.5)
    result.fed = fed
    x, y = hidden_rows(posted, fed)
    _outcome(result, owner, root, posted.initial, x, y)


def _owner_ledgers(result: PrivateDemoResult) -> None:
    """Each owner's node stops as soon as the job is done (``federated join``), often before
    its API answered with the last round: its view is read from its own ledger database,
    once the graph is down (its final committed state)."""
    from chain.federated.open.reads import fed_rounds
    from chain.genesis import Genesis
    from chain.ledger import Ledger
    from chain.storage import sqlite_url

    genesis = Genesis.load(result.layout.genesis)
    for o in result.owners:
        ledger = Ledger.open(sqlite_url(o.directory / "node-data"), genesis)
        try:
            result.hashes_by_node[o.name] = {
                r.round: None if r.model_hash is None else bytes(r.model_hash).hex()
                for r in fed_rounds(ledger.state, bytes.fromhex(result.job_id))}
        finally:
            ledger.close()


def _keep(result: PrivateDemoResult, job_id: str) -> None:
    """TEST ONLY: copy each owner's noised update of the running round out of its private
    store before the product deletes it (module docstring)."""
    if result.kept_dir is None:
        return
    for o in result.owners:
        for path in (o.directory / "node-data" / "federated" / job_id).glob("private-*.json"):
            r = int(path.stem.split("-", 1)[1])
            if r in result.kept.get(o.name, {}):
                continue
            try:
                update = [int(v) for v in json.loads(path.read_text())["update"]]
            except (OSError, ValueError, KeyError):
                continue  # deleted or replaced under us: the next block tries again
            result.kept.setdefault(o.name, {})[r] = update
            (result.kept_dir / f"{o.name}-{r}.json").write_text(json.dumps(update))


def _outcome(result: PrivateDemoResult, owner: Owner, root: Path, initial: ModelBlob,
             x: Any, y: Any) -> None:
    api, names = owner.api, owner.names
    fed = result.fed
    models = root / "models"
    models.mkdir(exist_ok=True)
    result.models[0] = initial
    table = [model_row(0, "initial", None, None, initial, x, y, None)]
    for rnd in fed["rounds"]:
        path = models / f"round-{rnd['round']}.blob"
        api.download_blob(rnd["model_blob"], path)
        model = result.models[rnd["round"]] = ModelBlob.from_bytes(path.read_bytes())
        table.append(model_row(rnd["round"], rnd["verdict"],
                               names.get(rnd["aggregator"] or "", "-"), rnd["accuracy_ppm"],
                               model, x, y, rnd["model_hash"]))
        result.slashed += [names.get(a, a) for a in rnd["slashed"]]
    result.table = table
    say(f"== 6. accuracy per round on the hidden test set ({len(y)} rows)")
    for r in table:
        voted = "-" if r["voted_ppm"] is None else f"{r['voted_ppm'] / 1e4:.1f}%"
        say(f"   round {r['round']}: {r['verdict']:8s} voted {voted:>6s}  hidden "
            f"{100 * r['hidden_acc']:.1f}%  model {(r['model_hash'] or '-')[:16]}")
    payout = fed["payout"] or {"paid": [], "refund": 0}
    result.payouts = {names.get(p["address"], p["address"]): int(p["amount"])
                      for p in payout["paid"]}
    result.refund = int(payout["refund"])
    result.balances_after = balances(api, names)
    say(f"== 7. paid per round weights: {result.payouts}, refund {result.refund}")


def report_md(result: PrivateDemoResult, rounds: int) -> str:
    """The private run's figures as Markdown."""
    lines = [f"6 data owners, private mode (pairwise masking, clip {DP_CLIP >> SCALE_BITS}.0, "
             f"noise {DP_NOISE_PERMILLE}‰), {rounds} rounds, {DROPPER} killed after sharing "
             f"in round {DROP_ROUND}; {result.seconds:.0f} s.", "",
             "| round | verdict | survivors | voted accuracy (public) | hidden accuracy |",
             "|---|---|---|---|---|"]
    weights = {int(r["round"]): len(r["weights"]) for r in result.fed.get("rounds", [])}
    for r in result.table:
        voted = "-" if r["voted_ppm"] is None else f"{r['voted_ppm'] / 1e4:.1f} %"
        lines.append(f"| {r['round']} | {r['verdict']} | {weights.get(r['round'], '-')} "
                     f"| {voted} | {100 * r['hidden_acc']:.1f} % |")
    lines += ["", f"Paid: {result.payouts}, refund {result.refund}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m client.devnet.federated.demo_private",
        description="A private federated job on a real multi-process graph "
                    "(make demo-federated-private).")
    parser.add_argument("--root", type=Path, default=REPO / ".demo-federated-private",
                        help="the graph's folder, emptied first (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where the report goes (default: the root)")
    args = parser.parse_args(argv)
    result = run_private_demo(args.root, out=args.out)
    say(f"== done in {result.seconds:.0f}s (graph files and logs in {args.root}; report: "
        f"{result.report})")
    sys.exit(0 if result.fed.get("phase") == "done" else 1)


if __name__ == "__main__":
    main()
