"""What ``learningchain predict`` reads and writes besides the chain: the rows of a CSV or
NPY file, the input blob made of them [PRED-IO.1] (or a CKKS batch [PRED-CKKS.1]), and the
agreed answer turned back into labels, numbers or decrypted scores.

Kept free of click so the checks are plain functions: each bad file is a
``BadInputFile`` that names the file, the row or column and the bad value.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from chain.encoding import decode
from chain.errors import DecodeError
from chain.local_file import LocalFileError, read_local_file
from chain.predict.io import INVALID_FORMAT, LABELS_FORMAT, encode_rows
from chain.predict.params import MAX_CKKS_FEATURES, MAX_ROWS

MAX_FILE_BYTES = 256 * 1024 * 1024
"""[NODE-READ.1] A rows file larger than this is refused: read to this bound + 1 byte at
most, whatever its size says."""


class BadInputFile(ValueError):
    """An input file that cannot become the rows of a request; ``str`` says where and why."""


HEADER_CHOICES = (True, False, None)
"""``--header``, ``--no-header``, neither (the rule of [PRED-CSV.1] decides)."""


def _number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _floats(cells: list[str], path: Path, line: int) -> list[float]:
    out = []
    for col, cell in enumerate(cells, start=1):
        try:
            out.append(float(cell))
        except ValueError:
            raise BadInputFile(f"{path}: line {line}, column {col}: {cell.strip()[:40]!r} is "
                               f"not a number") from None
    return out


def first_line_is_header(cells: list[str], path: Path, line: int,
                         header: bool | None) -> bool:
    """[PRED-CSV.1] Is the first non-blank line a header? ``--header``/``--no-header`` say so;
    without either, a line of no number is a header, a line of numbers is data, and every
    other line is refused rather than guessed: some numbers and some words (a typo in the
    first data row, or a header with numeric names), or exactly ``0,1,…,n-1`` (the header
    pandas writes for an unnamed array, which is also a possible data row)."""
    if header is not None:
        return header
    numeric = [_number(c) for c in cells]
    if not any(numeric):
        return True
    if not all(numeric):
        col = numeric.index(False) + 1
        raise BadInputFile(
            f"{path}: line {line}, column {col}: {cells[col - 1].strip()[:40]!r} is not a "
            f"number, but other cells of the line are: a typo in the first row, or a header? "
            f"Say which: --header (skip line {line}) or --no-header (every line is a row)")
    if len(cells) >= 2 and all(float(c) == i for i, c in enumerate(cells)):
        raise BadInputFile(
            f"{path}: line {line} is 0,1,…,{len(cells) - 1}: the header pandas writes for an "
            f"unnamed array, or a row of data? Say which: --header (skip line {line}) or "
            f"--no-header (every line is a row)")
    return False


def read_csv(path: Path, header: bool | None = None) -> np.ndarray:
    """Rows of numbers, comma-separated; the first non-blank line is a header by the rule of
    [PRED-CSV.1] (``header``: ``--header`` True, ``--no-header`` False, else None); every
    other line must be numbers, an error naming its line otherwise."""
    return _parse_csv(_read_input(path).decode("utf-8", errors="replace"), path, header)


def _read_input(path: Path) -> bytes:
    """[NODE-READ.1] The rows file's bytes: a regular file only (a FIFO or a device is
    refused, never read), at most ``MAX_FILE_BYTES``."""
    try:
        return read_local_file(path, MAX_FILE_BYTES, what="rows file")
    except LocalFileError as e:
        raise BadInputFile(str(e)) from None


def _parse_csv(text: str, path: Path, header: bool | None) -> np.ndarray:
    rows: list[list[float]] = []
    first = True
    with io.StringIO(text, newline="") as f:
        for line, cells in enumerate(csv.reader(f), start=1):
            if not cells or all(not c.strip() for c in cells):
                continue
            if first:
                first = False
                if first_line_is_header(cells, path, line, header):
                    continue
            row = _floats(cells, path, line)
            if rows and len(row) != len(rows[0]):
                raise BadInputFile(f"{path}: line {line} has {len(row)} columns, the first row "
                                   f"{len(rows[0])}")
            rows.append(row)
    if not rows:
        raise BadInputFile(f"{path}: no rows of numbers")
    return np.asarray(rows, dtype=np.float64)


def read_rows(path: Path, header: bool | None = None) -> np.ndarray:
    """A 2-d float64 array from ``.csv`` (``header`` as in ``read_csv``) or ``.npy`` (never a
    pickle: ``allow_pickle=False``)."""
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".csv"):
        raise BadInputFile(f"{path}: expected a .csv or .npy file, got "
                           f"{path.suffix or 'no suffix'!r}")
    if suffix == ".npy" and header is not None:
        raise BadInputFile(f"{path}: --header/--no-header are for .csv files; a .npy "
                           f"array has no header")
    data = _read_input(path)
    if suffix == ".npy":
        try:
            array = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise BadInputFile(f"{path}: not a numeric .npy array ({str(e)[:120]})") from None
        if array.dtype.kind not in "fiu":
            raise BadInputFile(f"{path}: array of dtype {array.dtype}, not numbers")
        if array.ndim == 1:
            array = array.reshape(1, -1)
        if array.ndim != 2:
            raise BadInputFile(f"{path}: array of shape {array.shape}; rows × features wanted")
        return np.asarray(array, dtype=np.float64)
    return _parse_csv(data.decode("utf-8", errors="replace"), path, header)


def check_rows(rows: np.ndarray, path: Path, features: int, max_rows: int = MAX_ROWS) -> None:
    """[PRED-IO.1] [PRED-REQ.3] The shape the model takes and finite numbers only."""
    if rows.shape[1] != features:
        raise BadInputFile(f"{path}: {rows.shape[1]} columns; the model takes {features} "
                           f"features per row")
    if not 1 <= rows.shape[0] <= max_rows:
        raise BadInputFile(f"{path}: {rows.shape[0]} rows; a request holds 1..{max_rows}")
    bad = np.argwhere(~np.isfinite(rows))
    if len(bad):
        r, c = (int(x) for x in bad[0])
        raise BadInputFile(f"{path}: row {r + 1}, column {c + 1} is {float(rows[r, c])}; every "
                           f"value must be a finite number")


def plaintext_blob(rows: np.ndarray, dtype: str) -> bytes:
    """[PRED-IO.1] The canonical input blob; float32 rounds each value as the model would."""
    flat = [float(v) for v in rows.astype(np.float32 if dtype == "float32" else np.float64)
            .reshape(-1)]
    if not all(math.isfinite(v) for v in flat):
        raise BadInputFile(f"a value overflows {dtype}")
    return encode_rows(dtype, rows.shape[1], flat)


def check_encryptable(rows: np.ndarray, path: Path) -> None:
    if rows.shape[1] > MAX_CKKS_FEATURES:
        raise BadInputFile(f"{path}: {rows.shape[1]} features; encrypted requests take at most "
                           f"{MAX_CKKS_FEATURES}")


def decode_answer(blob: bytes) -> tuple[str, Any]:
    """An agreed answer blob: (``labels``, indices) or (``invalid``, reason) [PRED-IO.2-3]."""
    try:
        wire = decode(blob)
    except DecodeError as e:
        raise BadInputFile(f"the agreed answer is not a canonical blob: {e}") from None
    if isinstance(wire, list) and len(wire) == 2 and wire[0] == LABELS_FORMAT:
        return "labels", list(wire[1])
    if isinstance(wire, list) and len(wire) == 2 and wire[0] == INVALID_FORMAT:
        return "invalid", str(wire[1])
    return "other", None
