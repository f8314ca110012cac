"""The submitter's side of a hidden test set (train/v3): the pool and its secret [HOLDOUT-BLOB.1-2].

A pool is a folder of sample files. ``make_pool`` gives each a fresh 32-byte
salt (from ``secrets``) and commits to them all with ``chain.train.holdout.split``'s
salted leaves and Merkle root: the root is what the job posts. The
``PoolSecret`` (names in index order, salts, file digests, root) never leaves
the submitter as a whole: ``save_pool_secret`` writes it mode 0600 and never
over another one (a lost secret is a forfeited deposit), ``load_pool_secret``
refuses a file others can read or whose root does not follow from its salts
and digests. The parts are packed and checked in ``sandbox.holdout_blob``.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chain.train.holdout.split import MAX_POOL, MIN_POOL, SALT_LEN, leaf, merkle_root
from chain.types import Hash32
from sandbox.errors import SandboxError
from sandbox.job_json import JobJsonError, JsonBounds, parse_json

SECRET_FORMAT = "holdout-pool-secret/v1"
MAX_NAME_BYTES = 200
"""[HOLDOUT-BLOB.1] A sample's file name: 1..200 bytes of UTF-8, so ``data/samples/<name>``
stays inside the tar limits of [JOB-DATA.2] (255 bytes a name, 1,024 a path)."""
MAX_SECRET_BYTES = 4 << 20
"""A pool secret of 4,000 samples is about 1.3 MB; anything larger is not one."""
_READ = 1 << 20


class HoldoutError(SandboxError):
    """Base of the hidden-test-set errors of the sandbox."""


class HoldoutPoolError(HoldoutError):
    """A pool folder (or a sample in it) cannot be committed or no longer matches its secret.

    ``path`` is the offending file or folder, ``problem`` says what is wrong with it."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class PoolSecretError(HoldoutError):
    """A pool secret file that cannot be trusted: unreadable, readable by others, malformed,
    or tampered (its root does not follow from its salts and digests)."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"pool secret {path}: {problem}")
        self.path = path
        self.problem = problem


@dataclass(frozen=True, slots=True)
class PoolSecret:
    """What the submitter keeps private until the hidden part is revealed [HOLDOUT-BLOB.2]."""

    names: tuple[str, ...]
    """Sample file names in index order (sample ``i`` is ``names[i]``)."""
    salts: tuple[bytes, ...]
    """32 random bytes per sample: without them a small pool's root could be guessed."""
    digests: tuple[Hash32, ...]
    """SHA-256 of each sample file as committed: a later edit of a sample is caught."""
    root: Hash32
    """``chain.train.holdout.split.merkle_root`` of the leaves: what the job posts."""

    @property
    def pool(self) -> int:
        return len(self.names)

    def leaves(self) -> tuple[Hash32, ...]:
        """[HOLDOUT-POOL.1] Every sample's salted leaf, in index order."""
        return tuple(leaf(i, s, d) for i, (s, d) in enumerate(zip(self.salts, self.digests,
                                                                  strict=True)))

    @classmethod
    def of(cls, names: tuple[str, ...], salts: tuple[bytes, ...],
           digests: tuple[Hash32, ...]) -> PoolSecret:
        """The secret of these samples, its root computed; checks the form [HOLDOUT-BLOB.1]."""
        if not len(names) == len(salts) == len(digests):
            raise ValueError(f"{len(names)} names, {len(salts)} salts, {len(digests)} digests")
        if not MIN_POOL <= len(names) <= MAX_POOL:
            raise ValueError(f"a pool holds {MIN_POOL}..{MAX_POOL} samples, not {len(names)}")
        for name in names:
            problem = name_problem(name)
            if problem:
                raise ValueError(f"sample name {name!r}: {problem}")
        if len(set(names)) != len(names):
            raise ValueError("two samples have the same name")
        if any(len(d) != 32 for d in digests):
            raise ValueError("a sample digest is 32 bytes")
        leaves = [leaf(i, s, d) for i, (s, d) in enumerate(zip(salts, digests, strict=True))]
        return cls(names, salts, digests, merkle_root(leaves))


def name_problem(name: str) -> str:
    """Why ``name`` cannot be a sample's file name, or ``""`` [HOLDOUT-BLOB.1]: one path
    component of 1..200 UTF-8 bytes, no control character, not starting with a dot."""
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "not UTF-8"
    if not 1 <= size <= MAX_NAME_BYTES:
        return f"{size} bytes, a sample name has 1..{MAX_NAME_BYTES}"
    if "/" in name or "\\" in name:
        return "a sample name is one file name, without / or \\"
    if name.startswith("."):
        return "a sample name may not start with '.' (hidden files are not samples)"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return "a sample name holds no control character"
    return ""


def file_digest(path: Path) -> Hash32:
    """SHA-256 of a file's bytes, read in 1 MiB pieces (samples may be large shards)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while data := f.read(_READ):
            h.update(data)
    return Hash32(h.digest())


def pool_files(samples_dir: Path) -> tuple[Path, ...]:
    """[HOLDOUT-BLOB.1] The pool's samples: every regular file directly in ``samples_dir``,
    sorted by name (UTF-8 bytes). A folder, link, special file or bad name is refused,
    never skipped: what the submitter sees in the folder is what is committed."""
    if samples_dir.is_symlink() or not samples_dir.is_dir():
        raise HoldoutPoolError(samples_dir, "a pool is a folder of sample files")
    files = []
    for path in sorted(samples_dir.iterdir(), key=lambda p: p.name.encode("utf-8",
                                                                          "surrogateescape")):
        problem = name_problem(path.name)
        if problem:
            raise HoldoutPoolError(path, problem)
        if path.is_symlink() or not path.is_file():
            raise HoldoutPoolError(path, "a pool holds only regular files (no folder, no link)")
        files.append(path)
    if not MIN_POOL <= len(files) <= MAX_POOL:
        raise HoldoutPoolError(samples_dir, f"{len(files)} sample files; a pool holds "
                                            f"{MIN_POOL}..{MAX_POOL} [HOLDOUT-POOL.1]")
    return tuple(files)


def make_pool(samples_dir: Path) -> PoolSecret:
    """[HOLDOUT-BLOB.1] Commit to the samples of ``samples_dir`` with fresh random salts."""
    files = pool_files(samples_dir)
    return PoolSecret.of(tuple(p.name for p in files),
                         tuple(secrets.token_bytes(SALT_LEN) for _ in files),
                         tuple(file_digest(p) for p in files))


def secret_json(secret: PoolSecret) -> bytes:
    """The secret's file content: canonical JSON, one line."""
    import json

    doc = {"format": SECRET_FORMAT, "root": secret.root.hex(),
           "samples": [{"name": n, "salt": s.hex(), "sha256": d.hex()}
                       for n, s, d in zip(secret.names, secret.salts, secret.digests,
                                          strict=True)]}
    return (json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            + "\n").encode("utf-8")


def save_pool_secret(secret: PoolSecret, path: Path) -> Path:
    """[HOLDOUT-BLOB.2] Write ``secret`` to ``path``, mode 0600, whole or not at all. Never
    replaces an existing file: losing a posted job's secret forfeits its deposit."""
    if path.exists() or path.is_symlink():
        raise PoolSecretError(path, "exists; a pool secret is never overwritten (move it away "
                                    "first if its job is settled)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secret_json(secret))
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)  # fails if the file appeared meanwhile: never replaced
    except FileExistsError:
        raise PoolSecretError(path, "exists; a pool secret is never overwritten") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_pool_secret(path: Path) -> PoolSecret:
    """[HOLDOUT-BLOB.2] Read a pool secret, refusing one that others may read (mode beyond
    0600), one that is malformed, and one whose root does not follow from its content."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        raise PoolSecretError(path, "no such file") from None
    if not stat.S_ISREG(st.st_mode):
        raise PoolSecretError(path, "not a regular file")
    if st.st_mode & 0o077:
        raise PoolSecretError(path, f"mode {stat.S_IMODE(st.st_mode):04o} lets others read "
                                    f"it; run chmod 600 {path}")
    if st.st_size > MAX_SECRET_BYTES:
        raise PoolSecretError(path, f"{st.st_size} bytes, a pool secret is at most "
                                    f"{MAX_SECRET_BYTES}")
    try:
        doc = parse_json(path.read_bytes(), JsonBounds(max_bytes=MAX_SECRET_BYTES, max_depth=4))
    except JobJsonError as e:
        raise PoolSecretError(path, f"not valid JSON: {e}") from None
    try:
        secret = _secret_of(doc)
    except ValueError as e:
        raise PoolSecretError(path, str(e)) from None
    return secret


def _secret_of(doc: Any) -> PoolSecret:
    if not isinstance(doc, dict) or set(doc) != {"format", "root", "samples"}:
        raise ValueError("expected an object with format, root and samples")
    if doc["format"] != SECRET_FORMAT:
        raise ValueError(f"format {doc['format']!r}, expected {SECRET_FORMAT!r}")
    samples = doc["samples"]
    if not isinstance(samples, list):
        raise ValueError("samples must be a list")
    names, salts, digests = [], [], []
    for i, entry in enumerate(samples):
        if not isinstance(entry, dict) or set(entry) != {"name", "salt", "sha256"}:
            raise ValueError(f"sample {i}: expected an object with name, salt and sha256")
        if not isinstance(entry["name"], str):
            raise ValueError(f"sample {i}: name must be a string")
        names.append(entry["name"])
        salts.append(hex32(entry["salt"], f"sample {i} salt"))
        digests.append(Hash32(hex32(entry["sha256"], f"sample {i} sha256")))
    root = hex32(doc["root"], "root")
    secret = PoolSecret.of(tuple(names), tuple(salts), tuple(digests))
    if secret.root != root:
        raise ValueError(f"tampered: its samples give root {secret.root.hex()}, the file says "
                         f"{root.hex()}")
    return secret


def hex32(value: Any, what: str) -> bytes:
    """32 bytes written as 64 lowercase hex digits (the one spelling, so equal bytes are
    equal text); anything else is a ``ValueError`` naming ``what`` and the value."""
    if (not isinstance(value, str) or len(value) != 64
            or any(c not in "0123456789abcdef" for c in value)):
        shown = repr(value)[:80]
        raise ValueError(f"{what} must be 64 lowercase hex digits, got {shown}")
    return bytes.fromhex(value)
