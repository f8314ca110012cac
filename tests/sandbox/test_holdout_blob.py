"""Hidden test sets (train/v3): the pool, its secret and its parts as data blobs
[HOLDOUT-BLOB.1-5]. No Docker: the mount at /data/valid is tried in test_holdout_mount.py.

Every hostile part here is made the way a lying submitter would: pack an honest part,
unpack it as a node does, then change one thing in the folder (or in holdout.json)
and ask ``verify_part`` about it.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chain.train.holdout.split import hidden_indices, leaf, merkle_root, public_indices, split_seed
from sandbox.data_blob import unpack_data
from sandbox.errors import SandboxError
from sandbox.holdout_blob import (
    PART_FILE,
    HoldoutPartError,
    open_part,
    pack_part,
    part_json,
    verify_part,
)
from sandbox.holdout_pool import (
    HoldoutPoolError,
    PoolSecret,
    PoolSecretError,
    load_pool_secret,
    make_pool,
    save_pool_secret,
    secret_json,
)

POOL = 12
PERMILLE = 400
SEED = split_seed(b"\x01" * 32, b"\x02" * 32)


def _samples(folder: Path, n: int = POOL) -> Path:
    folder.mkdir(parents=True)
    for i in range(n):
        (folder / f"shard-{i:03d}.csv").write_text(f"label,x\n{i % 10},{i}\n")
    return folder


@pytest.fixture
def pool(tmp_path: Path) -> tuple[PoolSecret, Path]:
    samples = _samples(tmp_path / "pool")
    return make_pool(samples), samples


def _unpacked(pool: tuple[PoolSecret, Path], tmp_path: Path, part: str = "public",
              name: str = "u") -> Path:
    secret, samples = pool
    packed = pack_part(secret, samples, SEED, PERMILLE, part, tmp_path / f"{name}.tar")
    return unpack_data(packed.path, tmp_path / name, packed.size)


def _verify(folder: Path, secret: PoolSecret, part: str = "public") -> Any:
    return verify_part(folder, secret.root, secret.pool, PERMILLE, SEED, part)


def _edit_json(folder: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = folder / PART_FILE
    path.chmod(0o644)
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def _writable(folder: Path) -> None:
    for p in [folder, *folder.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)


# --- the pool and its root ------------------------------------------------------------------


def test_holdout_blob_1_pool_root_is_the_merkle_root_of_salted_leaves(
        pool: tuple[PoolSecret, Path]) -> None:
    """[HOLDOUT-BLOB.1] Samples in name order; leaf i =
    chain.train.holdout.split.leaf(i, salt, SHA-256)."""
    secret, samples = pool
    files = sorted(samples.iterdir())
    assert secret.names == tuple(p.name for p in files)
    leaves = [leaf(i, secret.salts[i], hashlib.sha256(p.read_bytes()).digest())
              for i, p in enumerate(files)]
    assert secret.root == merkle_root(leaves)
    assert secret.leaves() == tuple(leaves)


def test_holdout_blob_1_small_pools_cannot_be_guessed_the_root_changes_with_the_salts(
        tmp_path: Path) -> None:
    """[HOLDOUT-BLOB.1] Two commitments to the same two samples share no root and no salt:
    without the salts, guessing the samples and hashing them does not give the root."""
    samples = _samples(tmp_path / "pool", 2)
    first, second = make_pool(samples), make_pool(samples)
    assert first.digests == second.digests
    assert first.root != second.root
    assert not set(first.salts) & set(second.salts)
    # Guessing attack: the right samples, the unsalted or zero-salted tree, never the root.
    digests = [hashlib.sha256(p.read_bytes()).digest() for p in sorted(samples.iterdir())]
    guessed = merkle_root([leaf(i, b"\0" * 32, d) for i, d in enumerate(digests)])
    assert guessed != first.root


def test_holdout_blob_1_a_pool_folder_is_refused_with_the_file_to_blame(tmp_path: Path) -> None:
    """[HOLDOUT-BLOB.1] Folders, links, hidden files and too few samples are refused, never
    skipped: what the submitter sees is what is committed."""
    samples = _samples(tmp_path / "pool", 3)
    (samples / "sub").mkdir()
    with pytest.raises(HoldoutPoolError, match="only regular files") as caught:
        make_pool(samples)
    assert caught.value.path == samples / "sub"
    (samples / "sub").rmdir()
    (samples / ".DS_Store").write_text("x")
    with pytest.raises(HoldoutPoolError, match=r"may not start with '\.'"):
        make_pool(samples)
    (samples / ".DS_Store").unlink()
    (samples / "link.csv").symlink_to(samples / "shard-000.csv")
    with pytest.raises(HoldoutPoolError, match="only regular files"):
        make_pool(samples)
    one = _samples(tmp_path / "one", 1)
    with pytest.raises(HoldoutPoolError, match="1 sample files"):
        make_pool(one)


# --- the secret -----------------------------------------------------------------------------


def test_holdout_blob_2_pool_secret_round_trips_mode_0600(pool: tuple[PoolSecret, Path],
                                                          tmp_path: Path) -> None:
    """[HOLDOUT-BLOB.2] Saved mode 0600 and read back equal; never overwritten."""
    secret, _ = pool
    path = save_pool_secret(secret, tmp_path / "keys" / "pool-secret.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_pool_secret(path) == secret
    other = make_pool(pool[1])
    with pytest.raises(PoolSecretError, match="never overwritten"):
        save_pool_secret(other, path)
    assert load_pool_secret(path) == secret
    assert [p.name for p in path.parent.iterdir()] == ["pool-secret.json"]  # no temp left


def test_holdout_blob_2_a_tampered_or_exposed_secret_is_refused(
        pool: tuple[PoolSecret, Path], tmp_path: Path) -> None:
    """[HOLDOUT-BLOB.2] A secret others can read, a changed salt or digest (the root no longer
    follows), a bad hex, an extra key and non-JSON are each refused, naming the problem."""
    secret, _ = pool
    path = save_pool_secret(secret, tmp_path / "secret.json")
    path.chmod(0o644)
    with pytest.raises(PoolSecretError, match="mode 0644 lets others read"):
        load_pool_secret(path)
    path.chmod(0o600)
    doc = json.loads(path.read_text())

    def refused(change: Callable[[dict[str, Any]], None], match: str) -> None:
        edited = json.loads(json.dumps(doc))
        change(edited)
        path.write_text(json.dumps(edited))
        with pytest.raises(PoolSecretError, match=match) as caught:
            load_pool_secret(path)
        assert caught.value.path == path

    flipped = ("0" if doc["samples"][3]["salt"][0] != "0" else "1") + doc["samples"][3]["salt"][1:]
    refused(lambda d: d["samples"][3].update(salt=flipped), "tampered: its samples give root")
    refused(lambda d: d["samples"][0].update(sha256="ab" * 32), "tampered")
    refused(lambda d: d.update(root="00" * 32), "tampered")
    refused(lambda d: d["samples"][1].update(salt="AB" * 32), "sample 1 salt must be 64 lowercase")
    refused(lambda d: d.update(extra=1), "expected an object with format, root and samples")
    refused(lambda d: d["samples"].pop(), "tampered")
    refused(lambda d: d["samples"][2].update(name="../x"), "without /")
    path.write_text("{not json")
    with pytest.raises(PoolSecretError, match="not valid JSON"):
        load_pool_secret(path)
    path.write_bytes(secret_json(secret))
    assert load_pool_secret(path) == secret


# --- packing --------------------------------------------------------------------------------


def test_holdout_blob_3_same_pool_same_root_and_same_part_blob_id(
        pool: tuple[PoolSecret, Path], tmp_path: Path) -> None:
    """[HOLDOUT-BLOB.3] Deterministic: the same secret, files and seed give the same bytes,
    whatever the files' times and modes; a reloaded secret gives the same root."""
    secret, samples = pool
    first = pack_part(secret, samples, SEED, PERMILLE, "public", tmp_path / "a.tar")
    for p in samples.iterdir():
        os.utime(p, (1, 1))
        p.chmod(0o600)
    reloaded = load_pool_secret(save_pool_secret(secret, tmp_path / "s.json"))
    assert reloaded.root == secret.root
    second = pack_part(reloaded, samples, SEED, PERMILLE, "public", tmp_path / "b.tar")
    assert first.blob_id == second.blob_id
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.files == 1 + len(public_indices(SEED, POOL, PERMILLE))
    hidden = pack_part(secret, samples, SEED, PERMILLE, "hidden", tmp_path / "h.tar")
    assert hidden.blob_id != first.blob_id


def test_holdout_blob_3_a_sample_changed_after_the_commitment_is_not_packed(
        pool: tuple[PoolSecret, Path], tmp_path: Path) -> None:
    """[HOLDOUT-BLOB.3] The submitter learns before publishing, not from every worker."""
    secret, samples = pool
    victim = secret.names[public_indices(SEED, POOL, PERMILLE)[0]]
    (samples / victim).write_text("label,x\n9,9\n")
    with pytest.raises(HoldoutPoolError, match="changed since the pool was committed") as caught:
        pack_part(secret, samples, SEED, PERMILLE, "public", tmp_path / "p.tar")
    assert caught.value.path == samples / victim
    assert not (tmp_path / "p.tar").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# --- which samples --------------------------------------------------------------------------


def test_holdout_blob_4_parts_are_the_seeds_split(pool: tuple[PoolSecret, Path],
                                                 tmp_path: Path) -> None:
    """[HOLDOUT-BLOB.4] The public part holds public_indices(seed), the hidden part the rest;
    together the whole pool, each sample once."""
    secret, _ = pool
    public = _verify(_unpacked(pool, tmp_path, "public", "pub"), secret, "public")
    hidden = _verify(_unpacked(pool, tmp_path, "hidden", "hid"), secret, "hidden")
    assert public.indices == public_indices(SEED, POOL, PERMILLE)
    assert hidden.indices == hidden_indices(SEED, POOL, PERMILLE)
    assert sorted(public.indices + hidden.indices) == list(range(POOL))
    assert [p.name for p in public.files] == [secret.names[i] for i in public.indices]
    assert all(p.is_file() for p in public.files + hidden.files)


# --- verifying: honest and hostile parts ----------------------------------------------------


def test_holdout_blob_5_an_honest_part_verifies_after_fetching(
        pool: tuple[PoolSecret, Path], tmp_path: Path) -> None:
    """[HOLDOUT-BLOB.5] Unpacked as a node does, each part opens the job's commitment."""
    secret, samples = pool
    for part in ("public", "hidden"):
        packed = pack_part(secret, samples, SEED, PERMILLE, part, tmp_path / f"{part}.tar")
        verified = open_part(packed.path, packed.size, tmp_path / part, secret.root, POOL,
                             PERMILLE, SEED, part)
        assert verified.part == part
        doc = json.loads((tmp_path / part / PART_FILE).read_text())
        assert merkle_root([bytes.fromhex(x) for x in doc["leaves"]]) == secret.root


def _flip_first_salt(d: dict[str, Any]) -> None:
    salt = d["samples"][0]["salt"]
    d["samples"][0]["salt"] = ("1" if salt[0] == "0" else "0") + salt[1:]


def _swap_two_samples(folder: Path) -> None:
    a, b = sorted((folder / "samples").iterdir())[:2]
    data = a.read_bytes()
    a.write_bytes(b.read_bytes())
    b.write_bytes(data)


def _drop_sample(d: dict[str, Any], folder: Path) -> None:
    gone = d["samples"].pop(1)
    (folder / gone["file"]).unlink()


def _add_hidden_sample(d: dict[str, Any], folder: Path, secret: PoolSecret,
                       samples: Path) -> None:
    i = hidden_indices(SEED, POOL, PERMILLE)[0]
    (folder / "samples" / secret.names[i]).write_bytes((samples / secret.names[i]).read_bytes())
    d["samples"].append({"index": i, "salt": secret.salts[i].hex(),
                         "file": f"samples/{secret.names[i]}"})
    d["samples"].sort(key=lambda s: s["index"])


HOSTILE: list[tuple[str, Callable[..., None], str]] = [
    ("swapped_sample", lambda d, f, s, p: _swap_two_samples(f), "leaf mismatch"),
    ("wrong_salt", lambda d, f, s, p: _flip_first_salt(d), "leaf mismatch"),
    ("missing_sample", lambda d, f, s, p: _drop_sample(d, f), "missing \\["),
    ("extra_sample_from_the_hidden_part", _add_hidden_sample, "not in it \\["),
    ("extra_file_in_samples", lambda d, f, s, p: (f / "samples" / "zz.csv").write_text("1,1"),
     "files in samples/ that no sample lists: \\['samples/zz.csv'\\]"),
    ("extra_file_beside_holdout_json", lambda d, f, s, p: (f / "README").write_text("hi"),
     "unexpected entries beside"),
    ("leaves_that_do_not_give_the_root",
     lambda d, f, s, p: d["leaves"].__setitem__(5, "00" * 32), "the leaves give root"),
    ("one_leaf_short", lambda d, f, s, p: d["leaves"].pop(), "the pool's 12 leaves, got 11"),
    ("path_outside_samples",
     lambda d, f, s, p: d["samples"][0].update(file="../holdout.json"), "a path outside"),
    ("path_in_a_subfolder",
     lambda d, f, s, p: d["samples"][0].update(file="samples/a/b.csv"), "a path outside"),
    ("duplicate_index",
     lambda d, f, s, p: d["samples"].insert(1, dict(d["samples"][0])), "listed twice"),
    ("out_of_order", lambda d, f, s, p: d["samples"].reverse(), "ascending index order"),
    ("index_out_of_range", lambda d, f, s, p: d["samples"][0].update(index=POOL),
     "index 12 is not in 0..11"),
    ("bool_index", lambda d, f, s, p: d["samples"][0].update(index=True), "index True"),
    ("two_entries_one_file", lambda d, f, s, p: d["samples"][1].update(file=d["samples"][0]
                                                                      ["file"]),
     "a second sample with the same file"),
    ("another_root", lambda d, f, s, p: d.update(root="11" * 32), "root is"),
    ("another_seed", lambda d, f, s, p: d.update(seed="22" * 32), "seed is"),
    ("another_part_label", lambda d, f, s, p: d.update(part="hidden"), "part is"),
    ("another_permille", lambda d, f, s, p: d.update(public_permille=600), "public_permille is"),
    ("unknown_key", lambda d, f, s, p: d.update(note="x"), "must hold exactly"),
]


@pytest.mark.parametrize("name, attack, message", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_holdout_blob_5_hostile_part_is_refused(
        pool: tuple[PoolSecret, Path], tmp_path: Path, name: str,
        attack: Callable[..., None], message: str) -> None:
    """[HOLDOUT-BLOB.5] One lie per case; each is refused with a message naming it."""
    secret, samples = pool
    folder = _unpacked(pool, tmp_path)
    _writable(folder)
    _verify(folder, secret)  # honest before the attack
    _edit_json(folder, lambda d: attack(d, folder, secret, samples))
    with pytest.raises(HoldoutPartError, match=message) as caught:
        _verify(folder, secret)
    assert isinstance(caught.value, SandboxError)


def test_holdout_blob_5_the_error_names_the_sample_and_its_file(
        pool: tuple[PoolSecret, Path], tmp_path: Path) -> None:
    """[HOLDOUT-BLOB.5] A leaf mismatch carries the index and the file to blame."""
    secret, _ = pool
    folder = _unpacked(pool, tmp_path)
    _writable(folder)
    first = public_indices(SEED, POOL, PERMILLE)[0]
    victim = folder / "samples" / secret.names[first]
    victim.write_bytes(victim.read_bytes() + b"\n")
    with pytest.raises(HoldoutPartError) as caught:
        _verify(folder, secret)
    assert caught.value.index == first
    assert caught.value.file == f"samples/{secret.names[first]}"
    assert str(caught.value).startswith(
        f"holdout part refused [HOLDOUT-BLOB.5]: sample {first} "
        f"(samples/{secret.names[first]}): leaf mismatch")


def test_holdout_blob_5_a_public_part_is_not_a_hidden_part(
        pool: tuple[PoolSecret, Path], tmp_path: Path) -> None:
    """[HOLDOUT-BLOB.5] The public part offered as the hidden reveal is refused (its label,
    and, relabelled, its samples), and a part for another seed is refused: the submitter
    cannot choose the split after the block hash fixed it."""
    secret, samples = pool
    folder = _unpacked(pool, tmp_path)
    _writable(folder)
    with pytest.raises(HoldoutPartError, match="part is 'public'"):
        _verify(folder, secret, "hidden")
    _edit_json(folder, lambda d: d.update(part="hidden"))
    with pytest.raises(HoldoutPartError, match="the samples are not the hidden part"):
        _verify(folder, secret, "hidden")
    # A part packed for a seed the submitter liked better.
    other_seed = split_seed(b"\x01" * 32, b"\x03" * 32)
    assert public_indices(other_seed, POOL, PERMILLE) != public_indices(SEED, POOL, PERMILLE)
    packed = pack_part(secret, samples, other_seed, PERMILLE, "public", tmp_path / "o.tar")
    chosen = unpack_data(packed.path, tmp_path / "chosen", packed.size)
    _writable(chosen)
    with pytest.raises(HoldoutPartError, match="seed is"):
        _verify(chosen, secret)
    _edit_json(chosen, lambda d: d.update(seed=SEED.hex()))
    with pytest.raises(HoldoutPartError, match="the samples are not the public part"):
        _verify(chosen, secret)


def test_holdout_blob_5_a_refused_fetched_part_leaves_nothing(
        pool: tuple[PoolSecret, Path], tmp_path: Path) -> None:
    """[HOLDOUT-BLOB.5] ``open_part`` on a blob for another root: refused, no folder kept."""
    secret, samples = pool
    packed = pack_part(secret, samples, SEED, PERMILLE, "public", tmp_path / "p.tar")
    with pytest.raises(HoldoutPartError, match="root is"):
        open_part(packed.path, packed.size, tmp_path / "x", b"\x07" * 32, POOL, PERMILLE,
                  SEED, "public")
    assert not (tmp_path / "x").exists()


def test_holdout_blob_5_oversized_or_non_json_holdout_json_is_refused(
        pool: tuple[PoolSecret, Path], tmp_path: Path) -> None:
    """[HOLDOUT-BLOB.5] holdout.json is read bounded and strictly (no duplicate key)."""
    secret, _ = pool
    folder = _unpacked(pool, tmp_path)
    _writable(folder)
    path = folder / PART_FILE
    text = path.read_text()
    path.write_text(text[:-2] + ',"pool":3}')
    with pytest.raises(HoldoutPartError, match="duplicate key"):
        _verify(folder, secret)
    path.write_bytes(b" " * (2 << 20) + text.encode())
    with pytest.raises(HoldoutPartError, match="bytes, at most"):
        _verify(folder, secret)
    path.unlink()
    with pytest.raises(HoldoutPartError, match=r"no holdout\.json"):
        _verify(folder, secret)


def test_holdout_blob_3_part_json_is_canonical(pool: tuple[PoolSecret, Path]) -> None:
    """[HOLDOUT-BLOB.3] One line, sorted keys, no spaces, samples ascending by index."""
    secret, _ = pool
    text = part_json(secret, SEED, PERMILLE, "hidden")
    doc = json.loads(text)
    assert text == (json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n").encode()
    assert [s["index"] for s in doc["samples"]] == list(hidden_indices(SEED, POOL, PERMILLE))
    assert doc["format"] == "holdout-part/v1" and doc["pool"] == POOL
