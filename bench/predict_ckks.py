"""Encrypted-prediction bench: CKKS time per row and sizes, plaintext for comparison.

    .venv/bin/python bench/predict_ckks.py [--rows 1 64 512 4096] [--rounds 3] [--quick]

Requester encrypts a column-packed batch (one ciphertext per feature, rows in slots),
the executor evaluates Σ w_j·ct_j + b (sandbox/ckks_eval.py), the requester decrypts
(client/predict/ckks.py). Rows come from scikit-learn's breast-cancer data (repeated to
fill large batches), the model is a logistic regression fitted on it. Reports, per batch
size: encrypt / evaluate / decrypt seconds (median of --rounds) and per row, blob sizes,
the maximum error against the plaintext scores, and whether two evaluations gave the same
bytes. Beside it, a two-layer square-activation MLP (30-4-1, [PRED-CKKS.3]) on the same
batches: its evaluate time, its maximum error against ``Mlp.forward`` and its determinism.
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sklearn.datasets import load_breast_cancer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from bench.support.cli import emit, parse_args  # noqa: E402
from client.predict.ckks import CkksKeys  # noqa: E402
from sandbox.ckks_eval import evaluate, evaluate_model  # noqa: E402
from sandbox.model_format import Mlp  # noqa: E402

SQUARE_HIDDEN = 4

JSON_KEYS = ("bench", "features", "public_context_bytes", "plaintext_per_row_ms", "batches",
             "max_abs_error", "deterministic", "square_hidden", "square_max_abs_error",
             "square_deterministic")
"""Keys of the last line (tests/test_bench_quick.py)."""
NEEDS_DOCKER = False
"""One process (TenSEAL in it), no sockets, no files: CI may run it in parallel."""
QUICK = {"rows": [1, 64], "rounds": 1}


def timed(fn, *args):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rows", type=int, nargs="+", default=[1, 64, 512, 4096])
    p.add_argument("--rounds", type=int, default=3)
    args = parse_args(p, QUICK)

    x, y = load_breast_cancer(return_X_y=True)
    scaler = StandardScaler().fit(x)
    clf = LogisticRegression(max_iter=2000).fit(scaler.transform(x), y)
    w = clf.coef_[0] / scaler.scale_
    b = float(clf.intercept_[0] - np.sum(clf.coef_[0] * scaler.mean_ / scaler.scale_))
    weights = [float(v) for v in w]
    keys = CkksKeys.generate()
    context_bytes = len(keys.public_bytes())
    rng = np.random.default_rng(0)  # a square MLP on standardised features, folded to raw rows
    w0 = rng.normal(0, 0.3, (SQUARE_HIDDEN, x.shape[1])) / scaler.scale_
    square = Mlp("float64", ((w0, -w0 @ scaler.mean_),
                             (rng.normal(0, 0.5, (1, SQUARE_HIDDEN)), np.zeros(1))), "square")

    results = []
    for n in args.rows:
        rows = x[np.arange(n) % len(x)]
        plain = clf.decision_function(scaler.transform(rows))
        enc, ev, dec, errs, same = [], [], [], [], True
        for _ in range(args.rounds):
            batch, t_enc = timed(keys.encrypt_batch, rows)
            scores, t_ev = timed(evaluate, batch, weights, b)
            again = evaluate(batch, weights, b)
            same = same and hashlib.sha256(again).digest() == hashlib.sha256(scores).digest()
            got, t_dec = timed(keys.decrypt_scores, scores, n)
            enc.append(t_enc)
            ev.append(t_ev)
            dec.append(t_dec)
            errs.append(float(np.max(np.abs(got - plain))))
        sq_scores, t_sq = timed(evaluate_model, batch, square)
        sq_same = evaluate_model(batch, square) == sq_scores
        sq_err = float(np.max(np.abs(keys.decrypt_scores(sq_scores, n)
                                     - square.forward(rows)[:, 0])))
        row = {"rows": n, "encrypt_s": statistics.median(enc), "eval_s": statistics.median(ev),
               "square_eval_s": t_sq, "square_max_abs_error": sq_err,
               "square_deterministic": sq_same,
               "decrypt_s": statistics.median(dec), "batch_bytes": len(batch),
               "scores_bytes": len(scores), "max_abs_error": max(errs),
               "deterministic": same}
        row["eval_per_row_ms"] = row["eval_s"] / n * 1000
        row["encrypt_per_row_ms"] = row["encrypt_s"] / n * 1000
        results.append(row)
        print(f"{n:5d} rows: encrypt {row['encrypt_s']:.3f} s, evaluate {row['eval_s']:.3f} s "
              f"({row['eval_per_row_ms']:.3f} ms/row), decrypt {row['decrypt_s']:.4f} s; "
              f"batch {len(batch) / 1e6:.1f} MB, scores {len(scores) / 1e3:.0f} KB; "
              f"max error {row['max_abs_error']:.2e}; same bytes twice: {same}")
        print(f"{n:5d} rows, square MLP 30-{SQUARE_HIDDEN}-1: evaluate {t_sq:.3f} s, max error "
              f"{sq_err:.2e}, same bytes twice: {sq_same}")
    t = time.perf_counter()
    for _ in range(100):
        clf.decision_function(scaler.transform(x[:64]))
    plain_per_row_ms = (time.perf_counter() - t) / (100 * 64) * 1000
    print(f"plaintext (sklearn) for comparison: {plain_per_row_ms:.4f} ms/row")
    emit({"bench": "predict_ckks", "features": len(weights),
          "public_context_bytes": context_bytes,
          "plaintext_per_row_ms": plain_per_row_ms, "batches": results,
          "max_abs_error": max(r["max_abs_error"] for r in results),
          "deterministic": all(r["deterministic"] for r in results),
          "square_hidden": SQUARE_HIDDEN,
          "square_max_abs_error": max(r["square_max_abs_error"] for r in results),
          "square_deterministic": all(r["square_deterministic"] for r in results)}, JSON_KEYS)


if __name__ == "__main__":
    main()
