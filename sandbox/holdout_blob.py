"""A hidden test set's parts as data blobs (train/v3) [HOLDOUT-BLOB.3-6].

After the post a block hash fixes the split seed (``chain.train.holdout.split.split_seed``);
the submitter then publishes the public part and, after expiry, the hidden
part, each a data tar of [JOB-DATA.2] made by ``pack_part``::

    data/holdout.json      {"format": "holdout-part/v1", "root", "pool", "public_permille",
                            "seed", "part", "leaves": [every leaf of the pool],
                            "samples": [{"index", "salt", "file": "samples/<name>"}...]}
    data/samples/<name>    one file per sample of the part

Carrying every leaf lets anyone recompute the root from one part alone; a
hidden sample's leaf reveals nothing of it (it is salted). ``verify_part`` is
what a worker runs on the public part before training and a voter on the
hidden part before evaluating: every failure raises ``HoldoutPartError``
naming the bad sample or field.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chain.train.holdout.split import (
    MAX_POOL,
    MIN_POOL,
    hidden_indices,
    leaf,
    merkle_root,
    public_indices,
)
from chain.types import Hash32
from sandbox.data_blob import PackedData, pack_data, unpack_data
from sandbox.holdout_pool import (
    HoldoutError,
    HoldoutPoolError,
    PoolSecret,
    file_digest,
    hex32,
    name_problem,
)
from sandbox.job_json import JobJsonError, JsonBounds, parse_json

PART_FORMAT = "holdout-part/v1"
PART_FILE = "holdout.json"
SAMPLES_DIR = "samples"
PARTS = ("public", "hidden")
PART_KEYS = frozenset({"format", "root", "pool", "public_permille", "seed", "part", "leaves",
                       "samples"})
SAMPLE_KEYS = frozenset({"index", "salt", "file"})
MAX_PART_JSON = 2 << 20
"""[HOLDOUT-BLOB.3] holdout.json is at most 2 MiB (4,000 leaves and samples take about 0.8 MB)."""


class HoldoutPartError(HoldoutError):
    """[HOLDOUT-BLOB.5] A part that does not open the job's commitment: the submitter's fault.

    ``problem`` says what is wrong; ``index`` and ``file`` name the sample when one is to
    blame (``None`` otherwise)."""

    def __init__(self, problem: str, index: int | None = None, file: str | None = None) -> None:
        where = "" if index is None else f"sample {index}" + (f" ({file})" if file else "") + ": "
        super().__init__(f"holdout part refused [HOLDOUT-BLOB.5]: {where}{problem}")
        self.problem = problem
        self.index = index
        self.file = file


@dataclass(frozen=True, slots=True)
class VerifiedPart:
    """A part that opens the commitment: its samples' indices and files, in index order."""

    part: str
    indices: tuple[int, ...]
    files: tuple[Path, ...]


def part_indices(seed: bytes, pool: int, public_permille: int, part: str) -> tuple[int, ...]:
    """[HOLDOUT-BLOB.4] The samples a part holds: ``public_indices`` or their complement."""
    if part == "public":
        return public_indices(seed, pool, public_permille)
    if part == "hidden":
        return hidden_indices(seed, pool, public_permille)
    raise ValueError(f"part is one of {PARTS}, not {part!r}")


def part_json(secret: PoolSecret, seed: bytes, public_permille: int, part: str) -> bytes:
    """[HOLDOUT-BLOB.3] The canonical holdout.json of one part: sorted keys, no spaces, one
    line, samples in index order. Same secret and seed, same bytes."""
    samples = [{"index": i, "salt": secret.salts[i].hex(),
                "file": f"{SAMPLES_DIR}/{secret.names[i]}"}
               for i in part_indices(seed, secret.pool, public_permille, part)]
    doc = {"format": PART_FORMAT, "root": secret.root.hex(), "pool": secret.pool,
           "public_permille": public_permille, "seed": bytes(seed).hex(), "part": part,
           "leaves": [x.hex() for x in secret.leaves()], "samples": samples}
    return (json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            + "\n").encode("utf-8")


def pack_part(secret: PoolSecret, samples_dir: Path, seed: bytes, public_permille: int,
              part: str, dest: Path) -> PackedData:
    """[HOLDOUT-BLOB.3] The data tar of one part at ``dest``: deterministic (same secret,
    files, seed and part, same blob id). Each sample file must still have the digest it was
    committed with (``HoldoutPoolError`` otherwise); the part is checked with
    ``verify_part`` before it is packed, so a submitter never publishes a part that
    every worker would refuse."""
    indices = part_indices(seed, secret.pool, public_permille, part)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        (staging / SAMPLES_DIR).mkdir()
        for i in indices:
            source = samples_dir / secret.names[i]
            if source.is_symlink() or not source.is_file():
                raise HoldoutPoolError(source, f"sample {i} is missing (not a regular file)")
            target = staging / SAMPLES_DIR / secret.names[i]
            shutil.copyfile(source, target)
            if file_digest(target) != secret.digests[i]:
                raise HoldoutPoolError(source, f"sample {i} changed since the pool was "
                                               "committed (its SHA-256 differs from the secret's)")
        (staging / PART_FILE).write_bytes(part_json(secret, seed, public_permille, part))
        verify_part(staging, secret.root, secret.pool, public_permille, seed, part)
        return pack_data(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def open_part(blob: Path, size: int, dest: Path, root: bytes, pool: int, public_permille: int,
              seed: bytes, part: str) -> VerifiedPart:
    """Unpack a fetched part blob ([JOB-DATA.2]) into ``dest`` and verify it; a refused part
    leaves no folder behind. What a worker (public) or voter (hidden) does before mounting."""
    unpack_data(blob, dest, size)
    try:
        return verify_part(dest, root, pool, public_permille, seed, part)
    except HoldoutPartError:
        shutil.rmtree(dest, ignore_errors=True)
        raise


def verify_part(unpacked_dir: Path, root: bytes, pool: int, public_permille: int, seed: bytes,
                part: str) -> VerifiedPart:
    """[HOLDOUT-BLOB.5] Check an unpacked part against the job's commitment and the chain's seed.

    In order: holdout.json (bounded, strict JSON) names this job's root, pool, permille,
    seed and part; its leaves give ``root``; its samples are listed once each, ascending,
    and are exactly the part's indices for ``seed``; each file is ``samples/<name>``; the
    folder holds nothing but holdout.json and those files; every file's bytes and salt
    give its leaf. Raises ``HoldoutPartError`` at the first failure."""
    if not MIN_POOL <= pool <= MAX_POOL:
        raise ValueError(f"a pool holds {MIN_POOL}..{MAX_POOL} samples, not {pool}")
    expected = part_indices(seed, pool, public_permille, part)
    doc = _read_part_json(unpacked_dir / PART_FILE)
    _check_header(doc, root, pool, public_permille, seed, part)
    leaves = _leaves(doc["leaves"], pool)
    if merkle_root(leaves) != root:
        raise HoldoutPartError(f"the leaves give root {merkle_root(leaves).hex()}, the job "
                               f"commits to {bytes(root).hex()}")
    samples = _samples(doc["samples"], pool)
    listed = tuple(i for i, _, _ in samples)
    if listed != expected:
        missing = sorted(set(expected) - set(listed))
        extra = sorted(set(listed) - set(expected))
        raise HoldoutPartError(f"the samples are not the {part} part of seed "
                               f"{bytes(seed).hex()[:16]}…: missing {missing[:20]}, "
                               f"not in it {extra[:20]}")
    _check_tree(unpacked_dir, {file for _, _, file in samples})
    files = []
    for i, salt, file in samples:
        path = unpacked_dir / file
        if leaf(i, salt, file_digest(path)) != leaves[i]:
            raise HoldoutPartError("leaf mismatch: its bytes and salt do not give leaf "
                                   f"{leaves[i].hex()[:16]}…", i, file)
        files.append(path)
    return VerifiedPart(part, listed, tuple(files))


def _read_part_json(path: Path) -> dict[str, Any]:
    if path.is_symlink() or not path.is_file():
        raise HoldoutPartError(f"no {PART_FILE} file in the part")
    size = path.stat().st_size
    if size > MAX_PART_JSON:
        raise HoldoutPartError(f"{PART_FILE} is {size} bytes, at most {MAX_PART_JSON}")
    try:
        doc = parse_json(path.read_bytes(), JsonBounds(max_bytes=MAX_PART_JSON, max_depth=4))
    except JobJsonError as e:
        raise HoldoutPartError(f"{PART_FILE} is not valid JSON: {e}") from None
    if not isinstance(doc, dict) or set(doc) != PART_KEYS:
        keys = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
        raise HoldoutPartError(f"{PART_FILE} must hold exactly {sorted(PART_KEYS)}, got {keys}")
    return doc


def _check_header(doc: dict[str, Any], root: bytes, pool: int, public_permille: int,
                  seed: bytes, part: str) -> None:
    wanted: dict[str, Any] = {"format": PART_FORMAT, "root": bytes(root).hex(), "pool": pool,
                              "public_permille": public_permille, "seed": bytes(seed).hex(),
                              "part": part}
    for key, value in wanted.items():
        got = doc[key]
        if type(got) is not type(value) or got != value:
            raise HoldoutPartError(f"{PART_FILE} {key} is {str(got)[:80]!r}, this job's is "
                                   f"{value!r}")


def _leaves(raw: Any, pool: int) -> tuple[Hash32, ...]:
    if not isinstance(raw, list) or len(raw) != pool:
        count = len(raw) if isinstance(raw, list) else type(raw).__name__
        raise HoldoutPartError(f"leaves must list the pool's {pool} leaves, got {count}")
    try:
        return tuple(Hash32(hex32(x, f"leaf {i}")) for i, x in enumerate(raw))
    except ValueError as e:
        raise HoldoutPartError(str(e)) from None


def _samples(raw: Any, pool: int) -> list[tuple[int, bytes, str]]:
    """Each listed sample's (index, salt, file), checked for form; ascending, none twice."""
    if not isinstance(raw, list) or len(raw) > pool:
        raise HoldoutPartError(f"samples must be a list of at most {pool} entries")
    out: list[tuple[int, bytes, str]] = []
    names: set[str] = set()
    for n, entry in enumerate(raw):
        if not isinstance(entry, dict) or set(entry) != SAMPLE_KEYS:
            raise HoldoutPartError(f"samples entry {n} must hold exactly {sorted(SAMPLE_KEYS)}")
        index, file = entry["index"], entry["file"]
        if type(index) is not int or not 0 <= index < pool:
            raise HoldoutPartError(f"samples entry {n}: index {index!r} is not in 0..{pool - 1}")
        shown = file if isinstance(file, str) else repr(file)
        if out and index == out[-1][0]:
            raise HoldoutPartError("listed twice", index, shown)
        if out and index < out[-1][0]:
            raise HoldoutPartError(f"listed after sample {out[-1][0]}: samples are in "
                                   "ascending index order", index, shown)
        try:
            salt = hex32(entry["salt"], "salt")
        except ValueError as e:
            raise HoldoutPartError(str(e), index, shown) from None
        if not isinstance(file, str) or not file.startswith(f"{SAMPLES_DIR}/") or \
                name_problem(file[len(SAMPLES_DIR) + 1:]):
            raise HoldoutPartError(f"file must be {SAMPLES_DIR}/<one file name> (a path "
                                   f"outside {SAMPLES_DIR}/ or a bad name)", index, shown)
        if file in names:
            raise HoldoutPartError("a second sample with the same file", index, file)
        names.add(file)
        out.append((index, salt, file))
    return out


def _check_tree(unpacked_dir: Path, files: set[str]) -> None:
    """[HOLDOUT-BLOB.5] The part holds holdout.json, samples/ and the listed files: nothing
    else (an extra file would be evaluated by a job reading samples/*)."""
    top = {p.name for p in unpacked_dir.iterdir()}
    if top - {PART_FILE, SAMPLES_DIR}:
        raise HoldoutPartError(f"unexpected entries beside {PART_FILE} and {SAMPLES_DIR}/: "
                               f"{sorted(top - {PART_FILE, SAMPLES_DIR})[:10]}")
    folder = unpacked_dir / SAMPLES_DIR
    if folder.is_symlink() or not folder.is_dir():
        raise HoldoutPartError(f"no {SAMPLES_DIR}/ folder in the part")
    present = {f"{SAMPLES_DIR}/{p.name}" for p in folder.iterdir()}
    if present - files:
        raise HoldoutPartError(f"files in {SAMPLES_DIR}/ that no sample lists: "
                               f"{sorted(present - files)[:10]}")
    if files - present:
        raise HoldoutPartError(f"listed files missing from {SAMPLES_DIR}/: "
                               f"{sorted(files - present)[:10]}")
    for file in sorted(files):
        path = unpacked_dir / file
        if path.is_symlink() or not path.is_file():
            raise HoldoutPartError(f"{file} is not a regular file")

