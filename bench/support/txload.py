"""Transfer load and finality timing, shared by bench/devnet.py and bench/hosts.py.

Why one place: the two benches compare finalized transfers per second of graphs that
differ only in where their nodes run (127.0.0.1 ports, or emulated hosts across a WAN);
the figures compare only if the load and the clock that times it are the same code.

- ``LOADER``: a load process that pre-signs transfers from funded accounts, prints
  ``{"ready": n}``, waits for a line on stdin, then posts them in batches
  (``POST /api/v1/txs/batch``) to its nodes as fast as they accept them, for
  ``seconds``; last it prints what it sent and when (its wall clock).
- ``follow``: this process follows one node's chain (``/api/v1/wait`` then each
  block's raw form) and notes when each transaction is committed, while the loaders
  run and until every transaction they sent is committed (``drain_s`` at most);
  ``LoadRun`` then has finalized tx/s and submit-to-final latencies.

Loader and follower read the same wall clock (``time.time``): run both on the same
machine, and not under a faked clock.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chain.encoding import decode

REPO = Path(__file__).resolve().parents[2]
MAX_BLOCK = 64 * 1024 * 1024

LOADER = r'''
import json, sys, threading, time, urllib.request
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from chain.encoding import encode
from chain.keyfile import read_key_file
from chain.transactions import Transfer, sign_transaction
from chain.types import Amount
cfg = json.loads(sys.argv[2])
keys = [read_key_file(Path(u["key_file"]), Path(u["passphrase_file"]).read_text().strip())
        for u in cfg["users"]]
per_sender = cfg["per_sender"]
urls = [f"{u}/api/v1/txs/batch" for u in cfg["apis"]]
# Each sender talks to one node (as a wallet does): its nonces arrive in order there.
queues = [[] for _ in urls]
for nonce in range(per_sender):
    for i, key in enumerate(keys):
        to = keys[(i + 1) % len(keys)].address
        queues[i % len(urls)].append(
            sign_transaction(key, cfg["chain_id"], nonce, Transfer(to, Amount(1))))
print(json.dumps({"ready": sum(len(q) for q in queues)}), flush=True)
sys.stdin.readline()  # go
batch = cfg["batch"]
deadline = time.monotonic() + cfg["seconds"]
sent = {}
rejected = [0]
lock = threading.Lock()


def feed(url, txs):
    """One wallet-like feeder per node: batches in nonce order, backing off when full."""
    pos = 0
    while pos < len(txs) and time.monotonic() < deadline:
        chunk = txs[pos:pos + batch]
        req = urllib.request.Request(url, data=encode([tx.wire for tx in chunk]), method="POST",
                                     headers={"Content-Type": "application/octet-stream"})
        t = time.time()
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                result = json.loads(r.read())
        except Exception:
            time.sleep(0.05)
            continue
        full = [x["index"] for x in result.get("rejected", []) if x.get("status") == "full"]
        take = min(full) if full else len(chunk)
        with lock:
            for tx in chunk[:take]:
                sent[tx.hash.hex()] = t
            if not full:
                rejected[0] += len(result.get("rejected", []))
        pos += take
        if full:
            time.sleep(0.02)


threads = [threading.Thread(target=feed, args=(u, q)) for u, q in zip(urls, queues)]
for th in threads:
    th.start()
for th in threads:
    th.join()
print(json.dumps({"sent": sent, "rejected": rejected[0]}), flush=True)
'''


def get_json(url: str, timeout: float = 30.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def block_tx_ids(api: str, height: int) -> list[str]:
    """Transaction ids of a committed block: SHA-256 of each raw transaction [BLOCK-*], read
    from the block's wire form here (the node serves bytes; the bench machine's CPU is shared
    with the nodes, so it does not parse every transaction again)."""
    with urllib.request.urlopen(f"{api}/api/v1/blocks/{height}/raw", timeout=30) as r:
        data, _certificate = decode(r.read(), max_size=MAX_BLOCK)
    _header, wires = decode(data, max_size=MAX_BLOCK)
    return [hashlib.sha256(w).hexdigest() for w in wires]


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """The process's user plus system CPU time so far (``/proc/<pid>/stat``), or one of its
    threads' (``/proc/<pid>/task/<thread>/stat``; the main thread's id is the pid); NaN
    when gone."""
    stat = Path(f"/proc/{pid}/stat") if thread is None else Path(f"/proc/{pid}/task/{thread}/stat")
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set (``VmHWM``) in MiB; NaN when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def loader_config(chain_id: str, users: Sequence[Any], apis: Sequence[str], *, seconds: float,
                  per_sender: int, batch: int) -> dict[str, Any]:
    """A loader's configuration: each of ``users`` (``UserLayout`` records) sends 1 credit at a
    time to the next one, through one of ``apis``."""
    return {"chain_id": chain_id, "per_sender": per_sender, "batch": batch,
            "seconds": seconds, "apis": list(apis),
            "users": [{"key_file": str(u.key_file), "passphrase_file": str(u.passphrase_file)}
                      for u in users]}


def start_loader(cfg: dict[str, Any], prefix: Sequence[str] = ()) -> subprocess.Popen[str]:
    """A loader process (``prefix``: e.g. ``nsenter --net=...`` to run it on a host)."""
    return subprocess.Popen([*prefix, sys.executable, "-c", LOADER, str(REPO), json.dumps(cfg)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)


@dataclass
class LoadRun:
    """What the loaders sent and when the followed node committed it."""

    start: float
    ready: int = 0
    sent: dict[str, float] = field(default_factory=dict)
    committed: dict[str, float] = field(default_factory=dict)
    commit_times: list[float] = field(default_factory=list)
    """When each block of the run (empty or not) was seen committed."""
    rejected: int = 0
    block_sizes: list[int] = field(default_factory=list)

    def latencies(self) -> list[float]:
        return sorted(self.committed[h] - t for h, t in self.sent.items() if h in self.committed)

    def finalized(self) -> int:
        return sum(1 for h in self.sent if h in self.committed)

    def window_s(self) -> float:
        final = [self.committed[h] for h in self.sent if h in self.committed]
        return max(final) - self.start if final else float("nan")

    def tx_per_s(self) -> float:
        done = self.finalized()
        return done / self.window_s() if done else 0.0

    def latency_s(self, q: float) -> float:
        return quantile(self.latencies(), q)

    def block_intervals(self) -> list[float]:
        return sorted(b - a for a, b in zip(self.commit_times, self.commit_times[1:],
                                                   strict=False))

    def describe(self) -> str:
        return (f"sent {len(self.sent)} of {self.ready} signed, finalized {self.finalized()} "
                f"(rejected {self.rejected}): {self.tx_per_s():.0f} tx/s over "
                f"{self.window_s():.1f} s; submit->final p50 {self.latency_s(0.5):.3f} s, "
                f"p99 {self.latency_s(0.99):.3f} s; {len(self.block_sizes)} non-empty blocks"
                f"{self.sizes_by_quarter()}")

    def sizes_by_quarter(self) -> str:
        """The median block of each quarter of the run: whether blocks kept their size
        from the start of the load to its end."""
        sizes = self.block_sizes
        if len(sizes) < 4:
            return ""
        quarters = [sizes[len(sizes) * q // 4:len(sizes) * (q + 1) // 4] for q in range(4)]
        return " (median txs per block by quarter " + " / ".join(
            str(int(statistics.median(part))) for part in quarters) + ")"


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of sorted ``values`` (nearest rank below), NaN when empty."""
    if not values:
        return float("nan")
    return statistics.median(values) if q == 0.5 else values[int(q * (len(values) - 1))]


def follow(api: str, loaders: Sequence[subprocess.Popen[str]], seconds: float,
           drain_s: float = 15.0, on_go: Callable[[], None] | None = None) -> LoadRun:
    """Starts the (ready) loaders and follows ``api``'s chain until they are done and every
    transaction they sent is committed, or ``drain_s`` after the load's ``seconds`` at the
    latest; the loaders' results merged.

    Each loader's last line (every sent transaction: hundreds of kilobytes) is read while
    the chain is followed: unread, it filled the pipe, the loader never exited, and every
    run followed the chain for the whole ``drain_s`` after its load.

    ``on_go`` is called once every loader is ready, just before they are told to go (the
    devnet bench reads the nodes' CPU clocks there, so the loaders' signing is not
    counted)."""
    ready = 0
    for loader in loaders:
        assert loader.stdout is not None
        line = loader.stdout.readline()
        if not line:
            raise RuntimeError(f"a loader exited before it was ready ({loader.wait()})")
        ready += int(json.loads(line)["ready"])
    height = int(get_json(f"{api}/api/v1/status")["height"])
    outputs: list[str | None] = [None] * len(loaders)

    def read_rest(index: int, loader: subprocess.Popen[str]) -> None:
        assert loader.stdout is not None
        outputs[index] = loader.stdout.read()
        loader.wait()

    readers = [threading.Thread(target=read_rest, args=(i, loader), daemon=True)
               for i, loader in enumerate(loaders)]
    for reader in readers:
        reader.start()
    if on_go is not None:
        on_go()
    for loader in loaders:
        assert loader.stdin is not None
        loader.stdin.write("go\n")
        loader.stdin.flush()
    run = LoadRun(start=time.time(), ready=ready)
    end = run.start + seconds + drain_s
    merged = False
    while time.time() < end:
        try:
            get_json(f"{api}/api/v1/wait?height={height + 1}&timeout=2", timeout=5)
            tip = int(get_json(f"{api}/api/v1/status")["height"])
        except OSError:
            continue
        now = time.time()
        for h in range(height + 1, tip + 1):
            txs = block_tx_ids(api, h)
            for tx_id in txs:
                run.committed[tx_id] = now
            run.commit_times.append(now)
            if txs:
                run.block_sizes.append(len(txs))
        height = tip
        if not merged and not any(reader.is_alive() for reader in readers):
            _merge(run, loaders, outputs)
            merged = True
        if merged and all(tx_id in run.committed for tx_id in run.sent):
            break
    for reader in readers:
        reader.join(timeout=60)
    if not merged:
        _merge(run, loaders, outputs)
    return run


def _merge(run: LoadRun, loaders: Sequence[subprocess.Popen[str]],
           outputs: Sequence[str | None]) -> None:
    """The finished loaders' last lines (what each sent and when) into ``run``."""
    for loader, out in zip(loaders, outputs, strict=True):
        lines = (out or "").strip().splitlines()
        if loader.returncode != 0 or not lines:
            raise RuntimeError(f"a loader failed ({loader.returncode}): {(out or '')[-500:]}")
        result = json.loads(lines[-1])
        run.sent.update(result["sent"])
        run.rejected += int(result["rejected"])
