"""Looking for a request's plaintext features in bytes: the encrypted-mode tests scan what
executors wrote and stored with it [PRED-CKKS.1] (no tests here).

A feature value counts as found when it occurs

- as float64, little- or big-endian (numpy arrays; SQLite stores REAL big-endian), at any
  byte offset;
- as float32, little- or big-endian, two consecutive values of a row or of a column at any
  byte offset. One float32 alone is 4 bytes: a 12 MB ciphertext has ~3 chance matches per
  thousand values, so a single one proves nothing; any array or blob of the rows (row- or
  column-major) holds pairs;
- as decimal text, one of ``TEXT_FORMATS`` (repr, %g, %.6f, %.8f, %.6e, float32 repr),
  read as a whole number token out of the bytes, when it has at least
  ``MIN_SIGNIFICANT`` significant digits.

Shorter forms ("0.31", "0.00053", "1.0000e+00") match unrelated numbers: a library's
sources hold thousands of 5-digit decimals, and a 1 GB job image matched 7 of 20 rows'
5-digit forms by chance. Zero values are not looked for either (zero bytes fill every
binary file). Callers choose rows whose every value is distinct at full precision, so a
hit means a leak.

Each distinct file content is scanned once (the same blob sits in every node's store).
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TEXT_FORMATS = ("{!r}", "{:g}", "{:.6f}", "{:.7f}", "{:.8f}", "{:.6e}")
"""How a number is written in logs, CSV, JSON and reprs; the float32 repr is added."""
MIN_TEXT = 6
MIN_SIGNIFICANT = 6
"""Digits that pin a value to about 1e-6 of itself: a chance match of one such token is
about (values looked for) / 10^6."""

_RUN = re.compile(rb"[0-9.eE+-]{%d,}" % MIN_TEXT)
_TOKEN = re.compile(rb"[-+]?[0-9]*\.[0-9]+(?:[eE][-+]?[0-9]+)?")


@dataclass(frozen=True)
class Forms:
    """Every form looked for: decimal texts, and 8-byte patterns as little-endian words."""

    texts: frozenset[bytes]
    words: np.ndarray
    """Sorted uint64: float64 values and float32 pairs, both byte orders."""

    def __len__(self) -> int:
        return len(self.texts) + len(self.words)


def _texts(value: float) -> set[bytes]:
    single = np.float32(value)
    forms = {f.format(value) for f in TEXT_FORMATS} | {repr(float(single)), str(single)}
    return {t.encode() for t in forms if significant(t) >= MIN_SIGNIFICANT}


def significant(text: str) -> int:
    """Significant digits of a decimal text ("0.000539" -> 3, "5.3929e-04" -> 5)."""
    mantissa = re.split("[eE]", text)[0].lstrip("+-").replace(".", "")
    return len(mantissa.lstrip("0"))


def plaintext_forms(rows: np.ndarray) -> Forms:
    """The forms of every non-zero value of ``rows`` [n, features]."""
    x = np.asarray(rows, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"rows must be [n, features], got shape {x.shape}")
    texts: set[bytes] = set()
    words: set[int] = set()
    for v in x.ravel():
        f = float(v)
        if f == 0.0:
            continue
        texts |= _texts(f)
        for packed in (struct.pack("<d", f), struct.pack(">d", f)):
            words.add(int.from_bytes(packed, "little"))
    single = x.astype(np.float32)
    for a, b in (*zip(single[:, :-1].ravel(), single[:, 1:].ravel(), strict=True),
                 *zip(single[:-1, :].ravel(), single[1:, :].ravel(), strict=True)):
        if a == 0.0 and b == 0.0:
            continue
        for order in "<>":
            words.add(int.from_bytes(struct.pack(f"{order}ff", a, b), "little"))
    return Forms(frozenset(texts), np.array(sorted(words), dtype=np.uint64))


def found_in(forms: Forms, data: bytes) -> set[bytes]:
    """The forms that occur in ``data`` (texts as they are, patterns as 8 bytes)."""
    hits: set[bytes] = set()
    for run in _RUN.findall(data):
        for token in _TOKEN.findall(run):
            hits |= {t for t in (token, token.lstrip(b"+-")) if t in forms.texts}
    targets = forms.words
    for k in range(8):
        count = (len(data) - k) // 8
        if count <= 0:
            break
        words = np.frombuffer(data, dtype="<u8", count=count, offset=k)
        at = np.searchsorted(targets, words)
        at[at == len(targets)] = 0
        match = words[targets[at] == words]
        hits |= {int(w).to_bytes(8, "little") for w in match}
    return hits


@dataclass(frozen=True)
class Scan:
    files: tuple[Path, ...]
    """Every regular file read."""
    bytes_read: int
    leaks: dict[Path, int]
    """File -> how many forms it holds (only files holding some)."""


def scan_files(paths: Iterable[Path], forms: Forms) -> Scan:
    """Reads every regular file of ``paths`` (directories walked, symlinks not followed)."""
    files: list[Path] = []
    for p in paths:
        if p.is_symlink():
            continue
        if p.is_dir():
            files.extend(f for f in sorted(p.rglob("*")) if f.is_file() and not f.is_symlink())
        elif p.is_file():
            files.append(p)
    seen: dict[bytes, int] = {}
    leaks: dict[Path, int] = {}
    total = 0
    for f in files:
        data = f.read_bytes()
        total += len(data)
        digest = hashlib.sha256(data).digest()
        if digest not in seen:
            seen[digest] = len(found_in(forms, data))
        if seen[digest]:
            leaks[f] = seen[digest]
    return Scan(tuple(files), total, leaks)
