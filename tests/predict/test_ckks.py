"""Encrypted predictions for a linear model (CKKS, TenSEAL): correctness, agreement, secrecy.

A logistic regression trained on scikit-learn's breast-cancer data is exported as a safe
model file; the requester encrypts held-out rows; three executor *processes* evaluate the
linear score on the ciphertexts; the requester decrypts. Measured here: the error against the
plaintext scores, and whether separate executors' outputs agree bit for bit.
"""

from __future__ import annotations

import re
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tenseal as ts
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from chain.encoding import encode
from client.predict.ckks import CkksKeys
from sandbox.ckks_eval import BATCH_FORMAT, CkksError, evaluate, linear_weights, public_context
from sandbox.errors import SandboxError
from sandbox.model_format import export_mlp, load_model

ROOT = Path(__file__).resolve().parents[2]
EXECUTORS = 3
ROWS = 40
TOLERANCE = 1e-3
"""[PRED-CKKS.2] The stated bound on |decrypted − plaintext| score (measured ≈ 1e-6)."""


@dataclass
class Run:
    keys: CkksKeys
    rows: np.ndarray
    plain_scores: np.ndarray
    plain_labels: np.ndarray
    weights: np.ndarray
    bias: float
    batch: Path
    model: Path
    outs: list[Path]
    logs: list[bytes]
    requester_file: Path


def _train() -> tuple[np.ndarray, float, np.ndarray, np.ndarray, np.ndarray]:
    """Logistic regression on standardised features, folded back into raw-feature weights."""
    x, y = load_breast_cancer(return_X_y=True)
    train, test = slice(0, 500), slice(500, 500 + ROWS)
    scaler = StandardScaler().fit(x[train])
    clf = LogisticRegression(max_iter=2000).fit(scaler.transform(x[train]), y[train])
    w = clf.coef_[0] / scaler.scale_
    b = float(clf.intercept_[0] - np.sum(clf.coef_[0] * scaler.mean_ / scaler.scale_))
    rows = x[test]
    return w, b, rows, clf.decision_function(scaler.transform(rows)), clf.predict(
        scaler.transform(rows))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    w, b, rows, scores, labels = _train()
    keys = CkksKeys.generate()
    executor_in = tmp_path_factory.mktemp("executor_in")
    batch = executor_in / "batch.bin"
    batch.write_bytes(keys.encrypt_batch(rows))
    model = executor_in / "model.safetensors"
    model.write_bytes(export_mlp([(w[None, :], np.array([b]))], "float64"))
    requester = tmp_path_factory.mktemp("requester") / "rows.txt"
    requester.write_text("\n".join(",".join(repr(float(v)) for v in r) for r in rows))
    outs, logs = [], []
    for i in range(EXECUTORS):
        out = tmp_path_factory.mktemp(f"executor{i}")
        proc = subprocess.run(
            [sys.executable, "-m", "sandbox.ckks_eval", "--batch", str(batch), "--model",
             str(model), "--features", str(rows.shape[1]), "--out", str(out)],
            cwd=ROOT, capture_output=True, check=True, timeout=120)
        outs.append(out)
        logs.append(proc.stdout + proc.stderr)
    return Run(keys, rows, scores, labels, w, b, batch, model, outs, logs, requester)


def test_decrypted_scores_match_plaintext(run: Run) -> None:
    """[PRED-CKKS.1] The requester decrypts the executors' scores: within 1e-3 of the
    plaintext logistic-regression scores, and the same predicted classes."""
    got = run.keys.decrypt_scores((run.outs[0] / "scores.bin").read_bytes(), ROWS)
    err = float(np.max(np.abs(got - run.plain_scores)))
    print(f"max |decrypted - plaintext| over {ROWS} rows: {err:.3e}")
    assert got.shape == (ROWS,) and err <= TOLERANCE
    assert np.array_equal((got > 0).astype(int), run.plain_labels)


def test_separate_executors_agree_bit_for_bit(run: Run) -> None:
    """[PRED-CKKS.2] Measured: three executor processes evaluating the same ciphertexts under
    the same public context write byte-identical scores blobs, so `ciphertext` mode agrees on
    the output hash; an in-process evaluation gives the same bytes again."""
    blobs = [(out / "scores.bin").read_bytes() for out in run.outs]
    assert len(set(blobs)) == 1
    again = evaluate(run.batch.read_bytes(), [float(v) for v in run.weights], run.bias)
    assert again == blobs[0]
    # A different encryption of the same rows is a different ciphertext: agreement comes from
    # deterministic evaluation, not from the inputs being equal by accident.
    other = evaluate(run.keys.encrypt_batch(run.rows), [float(v) for v in run.weights], run.bias)
    assert other != blobs[0]


def _plaintext_forms(rows: np.ndarray) -> tuple[set[bytes], set[int]]:
    """The text forms (6+ characters) and float64 bit patterns (both byte orders, as
    little-endian u64) of every non-zero feature value."""
    texts: set[bytes] = set()
    bits: set[int] = set()
    for v in rows.ravel():
        f = float(v)
        if f == 0.0:
            continue  # zero bytes fill any binary file; a zero feature tells nothing
        for text in (repr(f), f"{f:g}", f"{f:.6f}", f"{f:.4e}"):
            if len(text) >= 6:
                texts.add(text.encode())
        for packed in (struct.pack("<d", f), struct.pack(">d", f)):
            bits.add(int.from_bytes(packed, "little"))
    return texts, bits


_NUMERIC_RUN = re.compile(rb"[0-9.eE+-]{6,}")


def _found(forms: tuple[set[bytes], set[int]], blobs: list[bytes]) -> set[bytes]:
    """Which forms occur anywhere in ``blobs``: text forms inside runs of number characters,
    float64 patterns at every byte offset (numpy, so 15 MB scans in well under a second)."""
    texts, bits = forms
    targets = np.array(sorted(bits), dtype=np.uint64)
    hits: set[bytes] = set()
    for blob in blobs:
        runs = _NUMERIC_RUN.findall(blob)
        hits |= {t for t in texts if any(t in r for r in runs)}
        for k in range(8):
            usable = (len(blob) - k) // 8 * 8
            words = np.frombuffer(blob, dtype="<u8", count=usable // 8, offset=k)
            hits |= {int(w).to_bytes(8, "little") for w in words[np.isin(words, targets)]}
    return hits


def test_executor_never_sees_plaintext(run: Run) -> None:
    """[PRED-CKKS.1] Everything the executors received (batch) and wrote (scores, log, stdout,
    stderr) holds no non-zero feature value in text (repr, %g, %.6f, %.4e; 6+ characters) or
    float64 (either endianness) form; shorter forms would match random ciphertext bytes.
    Control: the same scan finds them in the requester's own text file and in the rows' raw
    float64 bytes at an unaligned offset."""
    forms = _plaintext_forms(run.rows)
    written = [p.read_bytes() for out in run.outs for p in sorted(out.iterdir())]
    assert {p.name for p in run.outs[0].iterdir()} == {"scores.bin", "executor.log"}
    assert _found(forms, [run.batch.read_bytes(), *written, *run.logs]) == set()
    assert len(_found(forms, [run.requester_file.read_bytes()])) > ROWS
    assert len(_found(forms, [b"pad" + run.rows.tobytes()])) > ROWS  # odd offset, float64


def test_executor_refuses_a_secret_context(run: Run) -> None:
    """[PRED-CKKS.1] The context that reaches executors is public; one holding the secret key
    is refused before any evaluation, in the context check and inside a batch."""
    public = ts.context_from(run.keys.public_bytes())
    assert public.is_public() and not public.is_private()
    secret = bytes(run.keys.context.serialize(save_secret_key=True))
    with pytest.raises(CkksError, match="secret key"):
        public_context(secret)
    forged = encode([BATCH_FORMAT, secret, 1, [b"x"]])
    with pytest.raises(CkksError, match="secret key") as e:
        evaluate(forged, [1.0], 0.0)
    assert isinstance(e.value, SandboxError)


def test_executor_refuses_bad_batches_and_models(run: Run) -> None:
    """[PRED-CKKS.1] A pickle as batch, a wrong feature count, garbage ciphertexts, and a
    model that is not linear with one output are refused with the bad data shown."""
    import pickle

    with pytest.raises(CkksError, match="canonical msgpack"):
        evaluate(pickle.dumps({"rows": [1.0]}), [1.0], 0.0)
    with pytest.raises(CkksError, match="ciphertexts for a model"):
        evaluate(run.batch.read_bytes(), [1.0] * 3, 0.0)
    garbage = encode([BATCH_FORMAT, run.keys.public_bytes(), 1, [b"\x00" * 64]])
    with pytest.raises(CkksError, match="does not load"):
        evaluate(garbage, [1.0], 0.0)
    too_many = encode([BATCH_FORMAT, run.keys.public_bytes(), 5000, [b"x"]])
    with pytest.raises(CkksError, match="rows 1"):
        evaluate(too_many, [1.0], 0.0)
    from chain.predict.model import InputSchema, OutputSchema
    rng = np.random.default_rng(0)
    two_layer = load_model(export_mlp([(rng.normal(size=(4, 30)), np.zeros(4)),
                                       (rng.normal(size=(1, 4)), np.zeros(1))], "float64"),
                           InputSchema("float64", 30), OutputSchema("regression", (), 1, 0))
    with pytest.raises(CkksError, match="linear model"):
        linear_weights(two_layer)


def test_executor_answers_bad_requests_with_the_invalid_answer(run: Run) -> None:
    """[PRED-IO.3] In ciphertext mode a batch that does not load, or a model that is not
    linear, is answered with the fixed invalid blob (``not_rows``, ``schema``); a good batch
    with the linear model gives the scores blob."""
    from chain.predict.io import invalid_blob
    from chain.predict.model import InputSchema, OutputSchema
    from sandbox.ckks_eval import answer_ciphertext

    schema_in, schema_out = InputSchema("float64", 30), OutputSchema("regression", (), 1, 0)
    linear = load_model(run.model.read_bytes(), schema_in, schema_out)
    assert answer_ciphertext(b"\x80\x04junk", linear) == invalid_blob("not_rows")
    rng = np.random.default_rng(0)
    deep = load_model(export_mlp([(rng.normal(size=(4, 30)), np.zeros(4)),
                                  (rng.normal(size=(1, 4)), np.zeros(1))], "float64"),
                      schema_in, schema_out)
    assert answer_ciphertext(run.batch.read_bytes(), deep) == invalid_blob("schema")
    assert answer_ciphertext(run.batch.read_bytes(), linear) == \
        (run.outs[0] / "scores.bin").read_bytes()
