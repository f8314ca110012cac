"""The plaintext scan of the encrypted-mode tests (``tests/predict/plaintext_scan.py``) can
fail: it finds rows written in each form it claims to look for, and finds nothing in a CKKS
batch of the same rows or in random bytes [PRED-CKKS.1]."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from chain.predict.io import encode_rows
from client.predict.ckks import CkksKeys
from tests.predict.plaintext_scan import found_in, plaintext_forms, scan_files

ROWS, FEATURES = 20, 64


def _rows() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(0, 17, size=(ROWS, FEATURES)) / 16.0 + rng.uniform(
        -0.01, 0.01, size=(ROWS, FEATURES))


def test_each_form_is_found_in_a_file_and_in_sqlite(tmp_path: Path) -> None:
    """[PRED-CKKS.1] The scan's controls: every planted form is reported, by file."""
    rows = _rows()
    forms = plaintext_forms(rows)
    one = rows[4]
    planted = {
        "repr.csv": ",".join(repr(float(v)) for v in one).encode(),
        "g.log": " ".join(f"x={v:g}" for v in one).encode(),
        "f8.log": " ".join(f"{v:.8f}" for v in one).encode(),
        "e6.txt": "; ".join(f"{v:.6e}" for v in one).encode(),
        "f32repr.txt": str([np.float32(v) for v in one]).encode(),
        "le64.bin": b"\x01\x02\x03" + one.astype("<f8").tobytes(),
        "be64.bin": b"\x05" + one.astype(">f8").tobytes(),
        "rows32.bin": encode_rows("float32", FEATURES, [float(v) for v in rows.ravel()]),
        "cols32be.bin": b"\x09\x09" + rows.T.astype(">f4").tobytes(),
    }
    for name, data in planted.items():
        (tmp_path / name).write_bytes(data)
    with sqlite3.connect(tmp_path / "db.sqlite3") as conn:
        conn.execute("CREATE TABLE t (v REAL)")
        conn.executemany("INSERT INTO t VALUES (?)", [(float(v),) for v in one])
    clean = tmp_path / "clean.bin"
    clean.write_bytes(np.random.default_rng(1).bytes(4_000_000))
    scan = scan_files([tmp_path], forms)
    assert set(scan.leaks) == {tmp_path / n for n in (*planted, "db.sqlite3")}, scan.leaks
    for name in ("repr.csv", "e6.txt", "le64.bin", "be64.bin"):  # every value
        assert scan.leaks[tmp_path / name] == FEATURES, name


def test_short_forms_are_not_looked_for() -> None:
    """[PRED-CKKS.1] Decimal forms with fewer than 6 significant digits match unrelated
    numbers (a library's "0.00053", "1.0000e+00") and are not among the forms."""
    from tests.predict.plaintext_scan import significant

    forms = plaintext_forms(np.array([[0.000539294705561, 1.0000061248135]]))
    assert b"0.000539" not in forms.texts and b"0.000539295" in forms.texts
    assert b"1.0000e+00" not in forms.texts and b"1.000006" in forms.texts
    assert [significant(t) for t in ("0.000539", "5.3929e-04", "-12.5", "1.000006")] == \
        [3, 5, 3, 7]


def test_a_ckks_batch_of_the_rows_holds_none_of_them() -> None:
    """[PRED-CKKS.1] What the executors receive: the column-packed CKKS batch (public context
    and ciphertexts) holds no form of any feature; the float64 rows themselves hold them all."""
    rows = _rows()
    forms = plaintext_forms(rows)
    batch = CkksKeys.generate().encrypt_batch(rows)
    assert found_in(forms, batch) == set()
    assert len(found_in(forms, rows.tobytes())) == ROWS * FEATURES
