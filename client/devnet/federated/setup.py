"""The pieces of ``make demo-federated`` that are not the story: data, owner nodes, figures.

- ``deal_shards``: the template's training rows dealt to six data owners, non-IID (each
  owner has two dominant classes, as ``tests/federated/poisoning.py`` deals them), one
  CSV folder per owner, the only copy of its rows in the graph;
- ``owner_node``: a data owner's own node (role ``full``, its member key), the config
  ``learningchain federated join`` runs with;
- ``initial_model``: the job owner's initial MLP (the template's shape, 75 h + 10), quantised;
- ``hidden_rows``: the rows of the holdout's hidden part, which only the job owner holds
  before the end;
- ``leaked_files``: every file of every blob store that holds an owner's rows (the test's
  proof that the data never leaves);
- ``plot``: accuracy per round, PNG.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chain.federated.blobs import ModelBlob
from client.devnet.network import API_PORT_OFFSET, NetworkLayout, UserLayout
from client.federated.member.evaluate import CLASSES, FEATURES, Rows, read_rows
from client.node.config import render_config

DOMINANT = 0.6
"""Share of an owner's rows drawn from its two dominant classes (0.2 would be IID)."""


@dataclass(frozen=True, slots=True)
class Shard:
    owner: str
    folder: Path
    """The owner's data folder (``--data``): one CSV file, mounted read-only in its sandbox."""
    rows: int
    classes: tuple[int, ...]
    """Rows per class 0..9: the skew the plot's story depends on."""

    @property
    def file(self) -> Path:
        return self.folder / "shard.csv"


def deal_shards(train_csv: Path, owners: Sequence[str], out: Path, seed: int = 0
                ) -> list[Shard]:
    """Owner k is dominant in classes 2k and 2k+1 (mod 10); each row goes with probability
    0.6 to an owner dominant in its label, else to any owner. Header kept."""
    with train_csv.open(newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    rng = np.random.default_rng(seed)
    n = len(owners)
    homes = {c: [k for k in range(n) if c in (2 * k % 10, (2 * k + 1) % 10)]
             for c in range(CLASSES)}
    dealt: list[list[list[str]]] = [[] for _ in owners]
    for row in body:
        home = homes[int(row[0])]
        k = int(rng.choice(home)) if home and rng.random() < DOMINANT else int(rng.integers(n))
        dealt[k].append(row)
    shards = []
    for name, mine in zip(owners, dealt, strict=True):
        folder = out / name / "data"
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o755)  # the sandbox's unprivileged user reads it, read-only
        path = folder / "shard.csv"
        with path.open("w", newline="") as f:
            csv.writer(f, lineterminator="\n").writerows([header, *mine])
        path.chmod(0o644)
        counts = [0] * CLASSES
        for row in mine:
            counts[int(row[0])] += 1
        shards.append(Shard(name, folder, len(mine), tuple(counts)))
    return shards


@dataclass(frozen=True, slots=True)
class OwnerNode:
    name: str
    directory: Path
    config: Path
    address: str
    api_port: int

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"


def owner_node(layout: NetworkLayout, user: UserLayout, index: int, base_port: int
               ) -> OwnerNode:
    """A full node for ``user`` (a member key of the genesis), ports after the validators',
    bootstrapping to every validator. Its blob store is its own ``node-data/blobs``."""
    directory = layout.root / "owners" / user.name
    directory.mkdir(parents=True, exist_ok=True)
    p2p = base_port + len(layout.nodes) + index
    config = directory / "config.toml"
    config.write_text(render_config(
        key_file=str(user.key_file), passphrase_file=str(user.passphrase_file),
        genesis=str(layout.genesis), data_dir="node-data", roles=("full",), p2p_port=p2p,
        api_port=p2p + API_PORT_OFFSET,
        bootstrap=tuple(f"127.0.0.1:{n.p2p_port}" for n in layout.nodes)))
    return OwnerNode(user.name, directory, config, user.address, p2p + API_PORT_OFFSET)


def initial_model(hidden: int, scale_bits: int, seed: int = 0) -> ModelBlob:
    """The template MLP (64 -> hidden -> 10) with torch's default initialisation law
    (uniform in ±1/sqrt(fan_in)), flattened as ``parameters_to_vector`` orders it."""
    rng = np.random.default_rng(seed)
    parts = []
    for fan_in, fan_out in ((FEATURES, hidden), (hidden, CLASSES)):
        bound = 1.0 / np.sqrt(fan_in)
        parts.append(rng.uniform(-bound, bound, fan_out * fan_in))  # weight (out, in)
        parts.append(rng.uniform(-bound, bound, fan_out))  # bias
    flat = np.concatenate(parts)
    return ModelBlob(scale_bits, tuple(int(v) for v in np.rint(flat * (1 << scale_bits))))


def hidden_rows(pool_dir: Path, names: Sequence[str], indices: Iterable[int]) -> Rows:
    """The hidden part's rows, read as every member reads them (``member_eval``)."""
    return read_rows([pool_dir / names[i] for i in indices])


def _fingerprints(shard: Shard) -> tuple[str, bytes]:
    data = shard.file.read_bytes()
    lines = data.splitlines(keepends=True)
    return hashlib.sha256(data).hexdigest(), b"".join(lines[1:4])


def leaked_files(stores: Iterable[Path], shards: Sequence[Shard]) -> list[str]:
    """Files under ``stores`` that are an owner's CSV or hold three consecutive rows of it
    (plain, uncompressed: a blob of the shard or a tar holding it would show)."""
    prints = [(s.owner, *_fingerprints(s)) for s in shards]
    hits = []
    for store in stores:
        if not store.is_dir():
            continue
        for path in sorted(p for p in store.rglob("*") if p.is_file()):
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            for owner, whole, rows in prints:
                if digest == whole or rows in data:
                    hits.append(f"{path} holds {owner}'s rows")
    return hits


def plot(path: Path, rounds: Sequence[int], hidden_acc: Sequence[float],
         public_acc: Sequence[float | None], title: str) -> None:
    """Accuracy per round: on the hidden set (measured here) and as voted on the public part."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(rounds, hidden_acc, marker="o", label="hidden test set (owner's, after reveal)")
    voted = [(r, a) for r, a in zip(rounds, public_acc, strict=True) if a is not None]
    if voted:
        ax.plot([r for r, _ in voted], [a for _, a in voted], marker="s", linestyle="--",
                label="public part, voted by the members (lower median)")
    ax.set_xlabel("round (0 = initial model)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
