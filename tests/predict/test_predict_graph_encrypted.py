"""Issue 19, "What must be shown", encrypted mode, on a graph of node processes.

Four validator processes on 127.0.0.1 (``client.devnet.processes``, as
``test_predict_graph.py``): node0 trains, node1..3 only verify and serve predictions
(``[worker] predict = true``). The submitter posts ``bench/support/predict_jobs.py``'s ``zero``
job (train/v2: a *linear* "is this digit a 0" score, logistic-regression logits) with the
real CLI; once it is paid, ``learningchain model deploy`` makes its winner a one-output
regression model and ``learningchain predict --encrypted`` sends ``ROWS`` rows
CKKS-encrypted to k = 3 executors [PRED-CKKS.1], then decrypts the agreed scores.

Shown: the decrypted scores equal the plaintext scores of the same model within the stated
tolerance (1e-3, [PRED-CKKS.2]); then, with every node stopped, every file under the graph
(each node's ``node.log``, its data directory with the SQLite files, WAL included, read as
bytes, and its blob store) and the executors' sandbox container logs hold none of the
request's feature values (``tests/predict/plaintext_scan.py``: float64 and float32 bytes in
both byte orders, decimal text with 6+ significant digits in several formats). The scan is
shown to fail where it should: the same scan over a directory of files written here, each
holding the rows in one of those forms (SQLite included), finds every one of them.

The rows are held-out digits (``holdout/test.csv``, never trained on) plus noise of at most
0.01 drawn from fresh OS entropy once the job is paid: digit pixels are multiples of 1/16
("0.5", "0.0625") that any log holds for other reasons, where a real requester's
measurements are full-precision numbers. With the noise every feature value is distinct at
full precision, so a hit could only be a leak; and a file last written before the rows were
drawn cannot hold them: the job image's layer tars in node0's blob store (~1.1 GB, whose
libraries' decimals match short forms by chance) are the files skipped on that ground, and
the test checks that is all it skips.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.support.predict_jobs import zero_job
from chain.content import blob_id_of_bytes
from chain.crypto import address_from_text
from chain.predict.io import encode_rows
from chain.predict.model import InputSchema, OutputSchema
from client.api.http_client import ApiClient
from client.devnet.processes import down
from sandbox.engine import connect
from sandbox.model_format import load_model
from sandbox.policy import LABEL_NODE
from tests.framework.devnet_up import up_on_free_ports
from tests.framework.job_windows import JobWindows, job_log_lines, measure_attempt, windows
from tests.predict.images import predict_image_for_test
from tests.predict.plaintext_scan import Forms, found_in, plaintext_forms, scan_files
from tests.predict.test_ckks import TOLERANCE
from tests.predict.test_predict_graph import executor_status, until

# slow (about 60 s of node processes): `make test-slow`; CI keeps the fast scan checks in
# tests/predict/test_plaintext_scan.py and the executor-level scan in test_ckks.py
pytestmark = [pytest.mark.docker, pytest.mark.slow]

CLI = str(Path(sys.executable).parent / "learningchain")
TRAINER, EXECUTORS = 0, (1, 2, 3)
ROWS, K, FEATURES = 20, 3, 64
ZERO_OUT = OutputSchema("regression", (), 1, 6)
NOISE = 0.01


def lc(*args: str, cwd: Path, env: dict[str, str]) -> str:
    """The real ``learningchain`` console script, run in the requester's directory."""
    proc = subprocess.run([CLI, *args], cwd=cwd, text=True, capture_output=True,
                          env={**os.environ, **env}, timeout=600)
    assert proc.returncode == 0, f"learningchain {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def requester_rows(test_csv: Path) -> np.ndarray:
    """``ROWS`` held-out digits scaled as the template scales them (pixel / 16), plus noise
    in (-NOISE, NOISE) from fresh OS entropy: every value non-zero, distinct, and unknown
    before this call."""
    lines = [ln.split(",") for ln in test_csv.read_text().splitlines()[1:ROWS + 1]]
    digits = np.array([[float(v) / 16.0 for v in ln[1:]] for ln in lines], dtype=np.float64)
    seed = secrets.randbits(64)
    print(f"noise seed {seed}")
    rows = digits + np.random.default_rng(seed).uniform(-NOISE, NOISE, size=digits.shape)
    assert len(np.unique(rows)) == rows.size and np.all(rows != 0.0)
    return rows


def decoys(rows: np.ndarray, where: Path) -> dict[str, Path]:
    """Files that do hold the rows, one form each: what the scan must find."""
    where.mkdir()
    files = {
        "csv repr": ("rows.csv", "\n".join(",".join(repr(float(v)) for v in r) for r in rows)
                     .encode()),
        "log %.6f": ("node.log", "".join(f"INFO evaluating feature {v:.6f}\n"
                                         for v in rows[3]).encode()),
        "json %g": ("status.json", json.dumps({"x": [f"{v:g}" for v in rows[5]]}).encode()),
        "float64 LE, odd offset": ("a.bin", b"abc" + rows.astype("<f8").tobytes()),
        "float32 rows blob": ("b.bin", encode_rows("float32", FEATURES,
                                                   [float(v) for v in rows.ravel()])),
        "float32 BE columns": ("c.bin", b"z" + rows.T.astype(">f4").tobytes()),
    }
    out = {name: where / file for name, (file, data) in files.items()}
    for name, (_, data) in files.items():
        out[name].write_bytes(data)
    db = where / "ledger.sqlite"
    with sqlite3.connect(db) as conn:  # REAL columns: big-endian float64 in the file
        conn.execute("CREATE TABLE t (v REAL)")
        conn.executemany("INSERT INTO t VALUES (?)", [(float(v),) for v in rows[7]])
    out["sqlite REAL"] = db
    return out


def test_encrypted_request_on_a_graph_leaves_no_plaintext_feature(tmp_path: Path) -> None:
    """[PRED-CKKS.1] [PRED-CKKS.2] [PRED-DEPLOY.1] [PRED-EXEC.1] A linear model trained by a
    paid job answers an encrypted request on real node processes; decrypted scores within
    1e-3 of the plaintext scores; no node file, blob or sandbox log holds a feature value."""
    started = time.monotonic()
    with predict_image_for_test(connect()):
        test_csv = zero_job(tmp_path / "zero")
        quick = {"max_attempts": 1, "min_time_left_s": 5, "max_memory_mb": 1024,
                 "max_disk_mb": 64, "max_time_s": 120}
        serve = {"max_attempts": 0, "predict": True}
        root = tmp_path / "graph"
        layout = up_on_free_ports(root, validators=4, workers=4,
                                  worker_settings={TRAINER: quick, **{i: serve for i in EXECUTORS}},
                                  users={"submitter": 5_000}, consensus={"commit_ms": 100},
                                  timeout=90)
        try:
            job_id, job_windows = _paid_and_deployed(layout, tmp_path)
            drawn_at = time.time()
            rows = requester_rows(test_csv)
            forms = plaintext_forms(rows)
            planted = decoys(rows, tmp_path / "decoys")
            control = scan_files([tmp_path / "decoys"], forms)
            missed = [name for name, path in planted.items() if path not in control.leaks]
            assert not missed, f"the scan misses rows written as {missed}"
            result, sandbox_logs = _request(layout, tmp_path, job_id, rows,
                                            job_windows.commit_s)
        finally:
            down(root)
        _check_scores(layout, rows, result)
        _scan(layout, forms, sandbox_logs, bytes(result["input"]), drawn_at)
    print(f"encrypted graph test done in {time.monotonic() - started:.1f} s")


def _paid_and_deployed(layout: Any, tmp: Path) -> tuple[str, JobWindows]:
    """The zero job posted, trained, voted and paid; its winner deployed (the CLI); the
    windows it was posted with."""
    api = ApiClient(layout.nodes[0].api_url)
    submitter = next(u for u in layout.users if u.name == "submitter")
    env = {"LC_NODE": layout.nodes[0].api_url}
    key = ("--key", str(submitter.key_file), "--passphrase-file", str(submitter.passphrase_file))
    # The windows follow this machine's speed now, the graph running: the trainer's one
    # attempt must claim before expiry, or the job ends refunded [JOB-TURN.2].
    lc("job", "build", str(tmp / "zero"), cwd=tmp, env={})
    job_windows = windows(measure_attempt(tmp / "zero"))
    print(f"job windows: {job_windows}")
    posted = json.loads(lc(
        "job", "submit", str(tmp / "zero"), "--bounty", "100", *job_windows.args(),
        "--voter-reward", "5", "--quorum", "500", "--supermajority", "667", "--max-turns", "1",
        *key, "--json", cwd=tmp, env=env))
    job_id = str(posted["job_id"])
    job = until("job settled", lambda: (j := api.job(job_id))["settled"] and j,
                job_windows.settle_s())
    assert job["status"] == "paid", (job, job_log_lines(layout, job_id))
    lc("model", "deploy", job_id, "--features", str(FEATURES), "--outputs", "1",
       "--scale-exp", "6", *key, "--json", cwd=tmp, env=env)
    return job_id, job_windows


def _request(layout: Any, tmp: Path, job_id: str, rows: np.ndarray, window_s: int
             ) -> tuple[dict[str, Any], list[bytes]]:
    """The encrypted request through the CLI, run in the requester's own directory (its
    rows file and secret key stay there); the executors' sandbox logs. ``window_s``: the
    request's windows (they end once all k have acted [PRED-COMMIT.1])."""
    api = ApiClient(layout.nodes[0].api_url)
    submitter = next(u for u in layout.users if u.name == "submitter")
    env = {"LC_NODE": layout.nodes[0].api_url}
    key = ("--key", str(submitter.key_file), "--passphrase-file", str(submitter.passphrase_file))
    requester = tmp / "requester"
    requester.mkdir()
    (requester / "rows.csv").write_text("\n".join(",".join(repr(float(v)) for v in r)
                                                 for r in rows) + "\n")
    clients = {i: ApiClient(layout.nodes[i].api_url) for i in EXECUTORS}
    for i in EXECUTORS:
        until(f"node{i} offers", lambda i=i: executor_status(clients[i]).get("offering"), 60)
    sent = time.monotonic()
    result = json.loads(lc("predict", job_id, "--input", "rows.csv", "--encrypted", "--k",
                           str(K), "--window", f"{window_s}s", "--timeout",
                           f"{3 * window_s + 60}s", *key, "--json", cwd=requester, env=env))
    print(f"encrypted request agreed {time.monotonic() - sent:.1f} s after it was sent")
    assert result["status"] == "agreed" and result["mode"] == "ciphertext", result
    rec = api.prediction(result["request_id"])
    assert set(rec["outcome"]["agreeing"]) == {layout.nodes[i].address for i in EXECUTORS}
    secret = requester / result["secret_key_file"]
    assert secret.is_file() and not secret.resolve().is_relative_to(layout.root)
    result["input"] = bytes.fromhex(rec["input_blob"])
    result["model_hash"] = api.job(job_id)["winner_model_hash"]
    engine = connect()
    logs = []
    for i in EXECUTORS:  # the warm sandboxes that evaluated the ciphertexts, before down
        label = f"{LABEL_NODE}=predict-{address_from_text(layout.nodes[i].address).hex()[:12]}"
        for c in engine.containers.list(ignore_removed=True, all=True, filters={"label": label}):
            logs.append(bytes(c.logs(stdout=True, stderr=True)))
    return result, logs


def _check_scores(layout: Any, rows: np.ndarray, result: dict[str, Any]) -> None:
    """[PRED-CKKS.2] decrypted (by the CLI) vs plaintext scores of the deployed model file
    (read from node1's blob store, the graph being down)."""
    model_hash = result["model_hash"]
    model_file = layout.nodes[1].directory / "data" / "blobs"
    stored = [p for p in model_file.rglob("*") if p.is_file() and
              blob_id_of_bytes(p.read_bytes()).hex() == model_hash]
    assert stored, "the executors' blob store lacks the deployed model"
    model = load_model(stored[0].read_bytes(), InputSchema("float32", FEATURES), ZERO_OUT)
    plain = model.forward(rows)[:, 0]
    got = np.array(result["scores"], dtype=np.float64)
    error = float(np.max(np.abs(got - plain)))
    print(f"max |decrypted - plaintext| over {ROWS} rows: {error:.3e}")
    assert got.shape == (ROWS,) and error <= TOLERANCE
    assert np.ptp(plain) > 1.0  # a trained score, not a constant


def _scan(layout: Any, forms: Forms, sandbox_logs: list[bytes], input_blob: bytes,
          drawn_at: float) -> None:
    """Every file under the graph (nodes stopped: SQLite files flushed), then the sandbox
    logs; the scan covered the stores that hold the encrypted batch.

    Not read: files last written before the rows were drawn (from fresh entropy), which
    cannot hold them. These are the job image's layer tars in node0's blob store (1.1 GB of
    libraries whose many 5-6 digit decimals would match some of the rows' short text forms
    by chance); the test checks that is all they are."""
    everything = [p for p in sorted(layout.root.rglob("*")) if p.is_file()]
    early = drawn_at - 0.05  # a coarse filesystem clock lags by a few ms at most
    skipped = [p for p in everything if p.stat().st_mtime < early
               and p.parent.name == "blobs" and p.stat().st_size > 1_000_000]
    assert all(p.is_relative_to(layout.nodes[TRAINER].directory) for p in skipped), skipped
    scan = scan_files([p for p in everything if p not in skipped], forms)
    names = {p.name for p in scan.files}
    assert "node.log" in names and "chain.sqlite3" in names, names
    for i in EXECUTORS:
        held = [p for p in scan.files if p.is_relative_to(layout.nodes[i].directory)
                and p.stat().st_size > 1_000_000
                and blob_id_of_bytes(p.read_bytes()) == input_blob]
        assert held, f"node{i}'s files do not include the encrypted batch it evaluated"
    print(f"scanned {len(scan.files)} files, {scan.bytes_read / 1e6:.1f} MB, and "
          f"{len(sandbox_logs)} sandbox logs for {len(forms)} forms of the features; not "
          f"read: {len(skipped)} blobs written before the rows were drawn "
          f"({sum(p.stat().st_size for p in skipped) / 1e6:.0f} MB)")
    assert scan.leaks == {}, scan.leaks
    assert len(sandbox_logs) >= len(EXECUTORS)  # each executor's warm sandbox
    leaked = {i: len(hits) for i, log in enumerate(sandbox_logs)
              if (hits := found_in(forms, log))}
    assert not leaked, leaked
