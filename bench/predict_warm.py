"""Warm vs cold prediction sandboxes: what keeping a container per model saves [PRED-EXEC.5].

    flock /tmp/lc-heavy.lock .venv/bin/python bench/predict_warm.py [--requests 200]
        [--cold 20] [--rows 100] [--ckks 5] [--quick]

The digits MLP (scikit-learn, hidden layer 32, exported as safetensors) answers a batch of
``--rows`` held-out digits per request, in ``labels`` mode, through
``sandbox.predict_sandbox.WarmPredictor``:

- cold: ``--cold`` requests, each starting a fresh hardened container (create, attach,
  start, the server's imports, model load), sending the request and reading the answer;
  timed up to the answer (the container's removal afterwards is not counted);
- warm: one container, one untimed first request, then ``--requests`` requests one after
  the other.

Every answer is checked against the host's reference evaluation (``predict_eval``), byte
for byte. Reports p50/p99 of each, warm requests per second (sequential, one client), and
``warm_speedup`` = cold p50 / warm p50 (issue 19's target: at least 10). ``--ckks N`` adds
the same comparison for encrypted requests (a breast-cancer logistic regression, ``--rows``
rows encrypted once, N cold and 4N warm requests; keys ``ckks_*``; the default is 5). Last
line: one JSON object (keys ``JSON_KEYS``; ``--ckks 0`` leaves out the ``ckks_*`` ones).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sklearn.datasets import load_digits  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402

from bench.support.cli import emit, parse_args  # noqa: E402
from chain.predict.io import encode_rows  # noqa: E402
from chain.predict.model import DeployedModel, InputSchema, OutputSchema  # noqa: E402
from chain.types import Address, Hash32  # noqa: E402
from sandbox.engine import connect  # noqa: E402
from sandbox.model_format import export_mlp, load_model  # noqa: E402
from sandbox.predict_eval import answer_labels  # noqa: E402
from sandbox.predict_image import ensure_predict_image  # noqa: E402
from sandbox.predict_sandbox import WarmPredictor  # noqa: E402

NODE_ID = "bench-predict-warm"
CKKS_KEYS = ("ckks_batch_bytes", "ckks_cold_p50_s", "ckks_warm_p50_s", "ckks_warm_p99_s",
             "ckks_warm_speedup")
JSON_KEYS = ("rows_per_request", "cold_requests", "warm_requests", "warm_container_start_s",
             "cold_p50_s", "cold_p99_s", "warm_p50_s", "warm_p99_s", "requests_per_s",
             "warm_speedup", "answers_equal_reference", "warm_restarts", *CKKS_KEYS)
"""Keys of the last line (tests/test_bench_quick.py)."""
NEEDS_DOCKER = True
"""Runs prediction containers on the host engine: CI runs it serially."""
QUICK = {"requests": 10, "cold": 2, "rows": 10, "ckks": 1}


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_ckks(client, image: str, rows: int, cold_n: int) -> dict:  # type: ignore[no-untyped-def,type-arg]
    """Cold vs warm for ``ciphertext`` requests; every answer equal to the host's."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    from client.predict.ckks import CkksKeys
    from sandbox.ckks_eval import answer_ciphertext

    x, y = load_breast_cancer(return_X_y=True)
    clf = LogisticRegression(max_iter=5000).fit(x, y)
    data = export_mlp([(clf.coef_, clf.intercept_)], "float64")
    record = DeployedModel(Hash32(b"\x04" * 32), Hash32(b"\x05" * 32), "safetensors-mlp",
                           InputSchema("float64", 30), OutputSchema("regression", (), 1, 6),
                           Address(b"\x03" * 20), 0)
    batch = CkksKeys.generate().encrypt_batch(x[np.arange(rows) % len(x)])
    reference = answer_ciphertext(batch, load_model(data, record.input, record.output))
    cold: list[float] = []
    warm: list[float] = []
    with tempfile.TemporaryDirectory(prefix="lc-bench-ckks-") as tmp:
        model = Path(tmp) / "model.safetensors"
        model.write_bytes(data)
        pred = WarmPredictor(client, image, model, record, "ciphertext", warm=False,
                             node_id=NODE_ID)
        try:
            for _ in range(cold_n):
                answer = pred.predict(batch, rows)
                assert answer.blob == reference, "cold CKKS answer differs"
                cold.append(answer.seconds)
        finally:
            pred.close()
        with WarmPredictor(client, image, model, record, "ciphertext", node_id=NODE_ID) as pred:
            assert pred.predict(batch, rows).blob == reference
            for _ in range(4 * cold_n):
                answer = pred.predict(batch, rows)
                assert answer.blob == reference, "warm CKKS answer differs"
                warm.append(answer.seconds)
    return {"ckks_batch_bytes": len(batch),
            "ckks_cold_p50_s": round(statistics.median(cold), 4),
            "ckks_warm_p50_s": round(statistics.median(warm), 4),
            "ckks_warm_p99_s": round(quantile(warm, 0.99), 4),
            "ckks_warm_speedup": round(statistics.median(cold) / statistics.median(warm), 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--requests", type=int, default=200, help="timed warm requests")
    p.add_argument("--cold", type=int, default=20, help="cold requests (one container each)")
    p.add_argument("--rows", type=int, default=100, help="digits rows per request")
    p.add_argument("--ckks", type=int, default=5, help="cold encrypted requests (0: none)")
    args = parse_args(p, QUICK)

    x, y = load_digits(return_X_y=True)
    clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=300, random_state=0)
    clf.fit(x[:1500], y[:1500])
    data = export_mlp([(w.T, b) for w, b in zip(clf.coefs_, clf.intercepts_, strict=True)],
                      "float32")
    record = DeployedModel(Hash32(b"\x01" * 32), Hash32(b"\x02" * 32), "safetensors-mlp",
                           InputSchema("float32", 64),
                           OutputSchema("classes", tuple(str(d) for d in range(10))),
                           Address(b"\x03" * 20), 0)
    rows = x[1500:][np.arange(args.rows) % (len(x) - 1500)]
    blob = encode_rows("float32", 64, [float(v) for v in rows.ravel()])
    reference = answer_labels(load_model(data, record.input, record.output), record, blob,
                              args.rows)

    client = connect()
    t = time.perf_counter()
    image = ensure_predict_image(client)
    print(f"executor image {image[:19]} ready in {time.perf_counter() - t:.2f} s")
    with tempfile.TemporaryDirectory(prefix="lc-bench-predict-") as tmp:
        model = Path(tmp) / "model.safetensors"
        model.write_bytes(data)
        cold: list[float] = []
        cold_pred = WarmPredictor(client, image, model, record, "labels", warm=False,
                                  node_id=NODE_ID)
        try:
            for _ in range(args.cold):
                answer = cold_pred.predict(blob, args.rows)
                assert answer.blob == reference, "cold answer differs from the reference"
                cold.append(answer.seconds)
        finally:
            cold_pred.close()
        warm: list[float] = []
        t = time.perf_counter()
        with WarmPredictor(client, image, model, record, "labels", node_id=NODE_ID) as pred:
            started = time.perf_counter() - t
            assert pred.predict(blob, args.rows).blob == reference
            t = time.perf_counter()
            for _ in range(args.requests):
                answer = pred.predict(blob, args.rows)
                assert answer.blob == reference, "warm answer differs from the reference"
                warm.append(answer.seconds)
            total = time.perf_counter() - t
            restarts = pred.restarts

    if args.ckks:
        ckks = bench_ckks(client, image, args.rows, args.ckks)
    result = {
        "rows_per_request": args.rows,
        "cold_requests": args.cold,
        "warm_requests": args.requests,
        "warm_container_start_s": round(started, 4),
        "cold_p50_s": round(statistics.median(cold), 4),
        "cold_p99_s": round(quantile(cold, 0.99), 4),
        "warm_p50_s": round(statistics.median(warm), 6),
        "warm_p99_s": round(quantile(warm, 0.99), 6),
        "requests_per_s": round(args.requests / total, 1),
        "warm_speedup": round(statistics.median(cold) / statistics.median(warm), 1),
        "answers_equal_reference": True,
        "warm_restarts": restarts,
    }
    print(f"cold (start + execute): p50 {result['cold_p50_s']} s, p99 {result['cold_p99_s']} s"
          f" over {args.cold}")
    print(f"warm (execute):         p50 {result['warm_p50_s']} s, p99 {result['warm_p99_s']} s"
          f" over {args.requests}; {result['requests_per_s']} requests/s")
    print(f"warm_speedup {result['warm_speedup']}x (target >= 10)")
    if args.ckks:
        result.update(ckks)
        print(f"encrypted: cold p50 {ckks['ckks_cold_p50_s']} s, warm p50 "
              f"{ckks['ckks_warm_p50_s']} s, speedup {ckks['ckks_warm_speedup']}x "
              f"(batch {ckks['ckks_batch_bytes']} bytes)")
    emit(result, JSON_KEYS if args.ckks else JSON_KEYS[:-len(CKKS_KEYS)], sort_keys=True)


if __name__ == "__main__":
    main()
