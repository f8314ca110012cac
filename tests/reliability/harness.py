"""Fault injection on a real multi-process graph, with a bank workload and invariant checks.

A scenario is chosen by seed and re-runnable by seed (``LC_FAULT_SEEDS``):
4 validator processes on loopback, every p2p link through its own proxy
(``netproxy.py``); bank clients move credits between funded accounts through
randomly chosen nodes while the fault thread kills nodes with SIGKILL and
restarts them, pauses them (SIGSTOP/SIGCONT), cuts links, partitions the
graph (1|3, and 2|2 which leaves no quorum) and slows links, one fault at a
time. Afterwards every invariant is checked
against what the nodes store.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chain.blocks import Block
from chain.consensus.wal import parse as parse_wal
from chain.crypto import PrivateKey, address_from_text
from chain.encoding import decode
from chain.genesis import Genesis, genesis_state
from chain.governance.bodies import Evidence
from chain.keyfile import read_key_file
from chain.storage import Storage, sqlite_url
from chain.transactions import SignedTransaction, Transfer, sign_transaction
from chain.transition import advance, apply_block
from chain.types import Amount, Hash32
from client.api.http_client import ApiClient, ApiError
from client.devnet.network import NetworkLayout
from client.devnet.processes import down, load_pids, start_node_process, up
from tests.framework.ports import free_base_port
from tests.framework.wait import wait_until
from tests.reliability.netproxy import ProxyMesh

RECOVERY_BOUND_S = 30.0
"""Once faults stop, every node must commit new blocks within this many seconds."""


@dataclass
class FaultLog:
    events: list[tuple[float, str, str]] = field(default_factory=list)

    def add(self, what: str, node: str) -> None:
        self.events.append((time.time(), what, node))

    def counts(self) -> Counter[str]:
        return Counter(what for _, what, _ in self.events)


@dataclass
class BankResult:
    acknowledged: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    """tx hash -> (from, to, amount) of every transfer a node reported committed."""
    submit_errors: int = 0
    resent: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    """Set to end the clients before their deadline (the crash loop has no fixed length)."""


@dataclass
class ScenarioReport:
    seed: int
    duration_s: float
    faults: dict[str, int]
    acknowledged: int
    committed_transfers: int
    heights: dict[str, int]
    recovery_s: float
    checked_heights: int

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


class Graph:
    """The devnet under test: layout, pids, clients."""

    def __init__(self, root: Path, *, accounts: int, nodes: int = 4) -> None:
        users = {f"acct{i}": 1_000 for i in range(accounts)}
        base_port = free_base_port(nodes)
        self.root = root
        self.size = nodes
        # every p2p link goes through its own proxy, so links can be cut and slowed
        self.mesh = ProxyMesh()
        bootstrap = {i: [f"127.0.0.1:{self.mesh.add(i, j, base_port + j)}"
                         for j in range(nodes) if j != i] for i in range(nodes)}
        self.mesh.start()
        self.layout: NetworkLayout = up(root, validators=nodes, workers=0, base_port=base_port,
                                        users=users, consensus={"commit_ms": 150}, timeout=90,
                                        bootstrap=bootstrap, peer_exchange=False)
        self.pids = load_pids(root)
        self.apis = {n.name: ApiClient(n.api_url, timeout=5) for n in self.layout.nodes}
        self.keys: dict[str, PrivateKey] = {
            u.name: read_key_file(u.key_file, u.passphrase_file.read_text().strip())
            for u in self.layout.users
        }
        self.lock = threading.Lock()
        self.down: set[str] = set()
        """Nodes currently killed or paused (clients avoid them; a stuck call times out)."""

    def save_pids(self) -> None:
        (self.root / "devnet.json").write_text(json.dumps({"pids": self.pids}, indent=2))

    def live_apis(self) -> list[ApiClient]:
        with self.lock:
            return [api for name, api in self.apis.items() if name not in self.down]

    def stop(self) -> dict[str, str]:
        for name in list(self.down):
            self.cont(name)
        try:
            return down(self.root)
        finally:
            self.mesh.stop()

    # -- faults ------------------------------------------------------------------------

    def kill(self, name: str) -> None:
        with self.lock:
            self.down.add(name)
        os.kill(self.pids[name], signal.SIGKILL)
        with_reap(self.pids[name])

    def restart(self, name: str) -> None:
        node = next(n for n in self.layout.nodes if n.name == name)
        self.pids[name] = start_node_process(node, log_level="warning")
        self.save_pids()
        with self.lock:
            self.down.discard(name)

    def pause(self, name: str) -> None:
        with self.lock:
            self.down.add(name)
        os.kill(self.pids[name], signal.SIGSTOP)

    def cont(self, name: str) -> None:
        os.kill(self.pids[name], signal.SIGCONT)
        with self.lock:
            self.down.discard(name)


def with_reap(pid: int) -> None:
    for _ in range(50):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done:
            return
        time.sleep(0.02)


def run_faults(graph: Graph, rng: random.Random, until: float, log: FaultLog) -> None:
    """One fault at a time, at random moments: SIGKILL + restart, SIGSTOP + SIGCONT, a cut
    link, a node partitioned from the rest, a 2|2 split (no quorum: the chain must stop and
    resume), or a slow link."""
    names = [n.name for n in graph.layout.nodes]
    n = graph.size
    while time.monotonic() < until:
        time.sleep(rng.uniform(1.0, 3.0))
        if time.monotonic() >= until:
            break
        name = rng.choice(names)
        roll = rng.random()
        if roll < 0.15:
            a, b = rng.sample(range(n), 2)
            graph.mesh.cut(a, b)
            log.add("cut_link", f"node{a}-node{b}")
            time.sleep(rng.uniform(1.0, 4.0))
            graph.mesh.heal(a, b)
            log.add("heal", f"node{a}-node{b}")
        elif roll < 0.3:
            side = {rng.randrange(n)} if rng.random() < 0.5 else set(rng.sample(range(n), 2))
            graph.mesh.partition(side, n)
            log.add("partition_1_3" if len(side) == 1 else "partition_2_2",
                    ",".join(f"node{i}" for i in sorted(side)))
            time.sleep(rng.uniform(1.0, 4.0))
            graph.mesh.heal_all()
            log.add("heal", "all")
        elif roll < 0.4:
            a, b = rng.sample(range(n), 2)
            graph.mesh.slow(a, b, rng.uniform(0.05, 0.3))
            log.add("slow_link", f"node{a}-node{b}")
            time.sleep(rng.uniform(2.0, 5.0))
            graph.mesh.heal_all()
            log.add("heal", "all")
        elif roll < 0.7:
            graph.kill(name)
            log.add("kill9", name)
            time.sleep(rng.uniform(0.5, 3.0))
            graph.restart(name)
            log.add("restart", name)
        else:
            graph.pause(name)
            log.add("sigstop", name)
            time.sleep(rng.uniform(0.5, 3.0))
            graph.cont(name)
            log.add("sigcont", name)
        time.sleep(rng.uniform(2.0, 4.0))  # let it rejoin before the next fault


def bank_client(graph: Graph, senders: list[str], rng: random.Random, until: float,
                result: BankResult, chain_id: str) -> None:
    """Moves credits from its own accounts to random accounts through random live nodes."""
    everyone = list(graph.keys)
    nonces: dict[str, int] = {}
    for name in senders:
        nonces[name] = _account(graph, graph.keys[name].address)["nonce"]
    while time.monotonic() < until and not result.stop.is_set():
        name = rng.choice(senders)
        to = rng.choice([n for n in everyone if n != name])
        amount = rng.randint(1, 20)
        tx = sign_transaction(graph.keys[name], chain_id, nonces[name],
                              Transfer(graph.keys[to].address, Amount(amount)))
        if _deliver(graph, tx, rng, result, until + 20):
            result.acknowledged[tx.hash.hex()] = (name, to, amount)
            nonces[name] += 1
        else:
            # Not acknowledged: learn the committed nonce; the tx may still have landed.
            nonces[name] = _account(graph, graph.keys[name].address)["nonce"]


def _deliver(graph: Graph, tx: SignedTransaction, rng: random.Random, result: BankResult,
             give_up: float) -> bool:
    """Submits until a node says committed; False if the nonce moved on without this tx."""
    while time.monotonic() < give_up and not result.stop.is_set():
        apis = graph.live_apis()
        if not apis:
            time.sleep(0.2)
            continue
        api = rng.choice(apis)
        try:
            api.submit(tx)
            info = api.wait_for_tx(tx.hash, timeout=8)
            return info.get("status") == "committed"
        except ApiError as e:
            result.submit_errors += 1
            if e.code == "bad_nonce":
                return _committed_anywhere(graph, tx)
            result.resent += 1
        except OSError:
            result.submit_errors += 1
            result.resent += 1
        time.sleep(0.1)
    return False


def _committed_anywhere(graph: Graph, tx: SignedTransaction) -> bool:
    for api in graph.live_apis():
        try:
            if api.tx(tx.hash).get("status") == "committed":
                return True
        except (ApiError, OSError):
            continue
    return False


def _account(graph: Graph, address: bytes) -> dict[str, Any]:
    while True:
        for api in graph.live_apis():
            try:
                return api.account(address)
            except (ApiError, OSError):
                continue
        time.sleep(0.2)


# -- invariants ----------------------------------------------------------------------------


def run_crash_loop(graph: Graph, rng: random.Random, kills: int, log: FaultLog) -> None:
    """[issue 8, crash safety] SIGKILL nodes while they commit, ``kills`` times, at random
    moments; each restarts at once from its data dir and must commit again before the next."""
    names = [n.name for n in graph.layout.nodes]
    for _ in range(kills):
        name = rng.choice(names)
        api = graph.apis[name]
        time.sleep(rng.uniform(0.2, 1.5))  # somewhere in the middle of a commit, or not
        graph.kill(name)
        log.add("kill9", name)
        others = max(_height(a) for n, a in graph.apis.items() if n != name)
        graph.restart(name)
        log.add("restart", name)
        _wait_rejoined(api, name, others)


def _wait_rejoined(api: ApiClient, name: str, above: int) -> None:
    wait_until(lambda: _height(api) > above, timeout=RECOVERY_BOUND_S, step=0.1,
               what=f"{name} to rejoin after kill -9 (commit above height {above})")


def check_storage(graph: Graph) -> int:
    """After a graceful stop: each node's database equals a replay of its own blocks from
    genesis (state digest and root), and every node stores the same blocks. Returns the
    number of heights compared."""
    genesis = Genesis.from_json(json.loads(graph.layout.genesis.read_text()))
    tips: dict[str, list[Hash32]] = {}
    for node in graph.layout.nodes:
        storage = Storage(sqlite_url(node.directory / "data"))
        try:
            recovered = storage.load_state()
            replay = genesis_state(genesis)
            hashes = []
            for h in range(1, storage.height() + 1):
                block = storage.block(h)
                assert block is not None, f"{node.name}: block {h} missing"
                advance(replay, block, apply_block(replay, block))
                hashes.append(block.hash)
            assert recovered.state_root == replay.state_root, f"{node.name}: state root"
            assert recovered.digest() == replay.digest(), f"{node.name}: state differs"
            assert recovered.total_credits() == recovered.supply, f"{node.name}: credits"
            tips[node.name] = hashes
        finally:
            storage.close()
    common = min(len(h) for h in tips.values())
    reference = next(iter(tips.values()))[:common]
    for name, hashes in tips.items():
        assert hashes[:common] == reference, f"{name} stores different blocks"
    return common


def wait_recovered(graph: Graph, bound: float = RECOVERY_BOUND_S) -> tuple[float, dict[str, int]]:
    """Seconds until every node has committed a block above the highest height seen at the
    moment faults stopped; fails beyond ``bound``."""
    start = time.monotonic()
    target = max(_height(api) for api in graph.apis.values()) + 2

    def all_past_target() -> dict[str, int] | None:
        heights = {name: _height(api) for name, api in graph.apis.items()}
        return heights if min(heights.values()) >= target else None

    heights = wait_until(all_past_target, timeout=bound, step=0.25,
                         what=f"every node to commit past height {target}",
                         detail=lambda: {n: _height(a) for n, a in graph.apis.items()})
    return time.monotonic() - start, heights


def _height(api: ApiClient) -> int:
    try:
        return int(api.status()["height"])
    except (ApiError, OSError):
        return -1


def check_invariants(graph: Graph, bank: BankResult) -> tuple[int, int]:
    """Every invariant of the issue; returns (heights compared, committed transfers)."""
    apis = graph.apis
    common = min(int(api.status()["height"]) for api in apis.values())
    chains = {name: raw_blocks_range(api, 1, common) for name, api in apis.items()}
    reference = next(iter(chains.values()))
    # 1. identical blocks (hence identical state roots, which headers carry) at every height
    for name, blocks in chains.items():
        for a, b in zip(reference, blocks, strict=True):
            assert a.hash == b.hash, f"{name} differs at height {a.header.height}"
    # 2. no validator signed two conflicting votes: no evidence on chain, and no WAL of an
    #    honest node holds two different messages for one (height, round, kind)
    for block in reference:
        assert not any(isinstance(tx.body, Evidence) for tx in block.txs), "equivocation"
    for node in graph.layout.nodes:
        records, _ = parse_wal((node.directory / "data" / "consensus.wal").read_bytes())
        slots: dict[tuple[int, int, str], bytes] = {}
        for r in records:
            kind = getattr(r.message, "kind", "proposal")
            slot = (r.message.height, r.message.round, kind)
            value = r.message.block_hash or b""
            assert slots.setdefault(slot, value) == value, f"{node.name} signed twice at {slot}"
    # 3. every acknowledged transaction is on every node
    committed = {tx.hash.hex(): tx for block in reference for tx in block.txs}
    missing = set(bank.acknowledged) - set(committed)
    assert not missing, f"{len(missing)} acknowledged transactions are not committed"
    # 4. credits conserved, and 5. each account's balance explained by committed transfers
    genesis = json.loads(graph.layout.genesis.read_text())
    expected = {address_from_text(a): b for a, b in genesis["balances"].items()}
    transfers = 0
    for tx in committed.values():
        if isinstance(tx.body, Transfer):
            expected[tx.sender] = expected.get(tx.sender, 0) - tx.body.amount
            expected[tx.body.to] = expected.get(tx.body.to, 0) + tx.body.amount
            transfers += 1
    for api in apis.values():
        # the node may have committed more since ``common``: compare against its own blocks
        tip = int(api.status()["height"])
        extra = raw_blocks_range(api, common + 1, tip)
        balances = dict(expected)
        for block in extra:
            for tx in block.txs:
                if isinstance(tx.body, Transfer):
                    balances[tx.sender] -= tx.body.amount
                    balances[tx.body.to] = balances.get(tx.body.to, 0) + tx.body.amount
        observed = {a: api.account(a)["balance"] for a in balances}
        if int(api.status()["height"]) == tip:
            assert observed == balances, "balances not explained by committed transfers"
        assert sum(observed.values()) == sum(genesis["balances"].values()), "credits changed"
    return common, transfers


def raw_blocks_range(api: ApiClient, start: int, end: int) -> list[Block]:
    out = []
    for h in range(start, end + 1):
        data, _cert = decode(api.block_raw(h), max_size=64 * 1024 * 1024)
        out.append(Block.decode(data))
    return out


def run_scenario(root: Path, seed: int, *, seconds: float = 40.0, clients: int = 3,
                 accounts: int = 12, crash_kills: int | None = None) -> ScenarioReport:
    """Faults for ``seconds`` (or, with ``crash_kills``, that many kill -9 during commits)
    under the bank workload; then every invariant, and after a graceful stop the storage
    check of every node."""
    rng = random.Random(seed)
    started = time.monotonic()
    graph = Graph(root, accounts=accounts)
    log = FaultLog()
    bank = BankResult()
    threads: list[threading.Thread] = []
    try:
        chain_id = graph.layout.chain_id
        until = time.monotonic() + (seconds if crash_kills is None else 3600)
        names = sorted(graph.keys)
        threads = [threading.Thread(
            target=bank_client,
            args=(graph, names[i::clients], random.Random(rng.random()), until, bank, chain_id),
            name=f"bank-{i}", daemon=True) for i in range(clients)]
        for t in threads:
            t.start()
        if crash_kills is None:
            run_faults(graph, random.Random(rng.random()), until, log)
        else:
            run_crash_loop(graph, random.Random(rng.random()), crash_kills, log)
            bank.stop.set()
        for t in threads:
            t.join(timeout=60)
        recovery, heights = wait_recovered(graph)
        checked, transfers = check_invariants(graph, bank)
    finally:
        # A failing scenario must not leave the bank clients running (a crash loop gives
        # them an hour): they would keep the test process alive after pytest reports.
        bank.stop.set()
        for t in threads:
            t.join(timeout=30)
        outcome = graph.stop()
    assert set(outcome.values()) <= {"stopped"}, outcome
    stored = check_storage(graph)
    assert stored >= checked
    return ScenarioReport(seed, round(time.monotonic() - started, 1), dict(log.counts()),
                          len(bank.acknowledged), transfers, heights, round(recovery, 2),
                          checked)
