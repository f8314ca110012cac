"""Issue 19, "What must be shown": a paid job's winning model answers predictions on a graph.

Four validator processes on 127.0.0.1 (``client.devnet.processes``, as ``make demo``):
node0 trains the template digits job (train/v2, a short search space); node1..node3 only
verify and offer prediction service (``[worker] predict = true``, the executor of
``client.predict.executor.loop``); node3 is the demo/test cheater
(``cheat_predictions = true``: every label shifted by one). The submitter posts the job;
once it is paid, the submitter downloads the winning model (the template's ``model.pt`` is a
safetensors-mlp file [JOB-EXPORT.1]), deploys it (``deploy_model``), computes the labels of
50 held-out digits locally with the host's checked loader, uploads those rows as an input
blob and requests them with k = 3 (the three executors are the only candidates).

Shown: the agreed answer is the submitter's own labels, byte for byte, and the agreed blob
is fetched by its hash; the two honest executors are paid ``(fee - royalty) // 2`` each,
the owner the royalty, the requester the dust; the cheater is outvoted, unpaid, and loses
``PREDICT_PENALTY`` of its bond; every node's ledger holds the same record, bonds and
balances; credits add up. The executor image is removed at the end if this test built it.

The job's windows (and the prediction's) follow the machine's speed: one attempt of the built
job is timed in the sandbox, the graph running, just before the post
(``tests.framework.job_windows``); with fixed windows (30 s claims, one attempt, 10 s reveal
and vote reveal) the job ended ``refunded`` in a CI run under load.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chain.crypto import address_from_text
from chain.encoding import decode
from chain.genesis import Genesis
from chain.ledger import Ledger
from chain.predict.bodies import DeployModel, RequestPrediction
from chain.predict.io import encode_rows, output_hash
from chain.predict.model import DeployedModel, InputSchema, OutputSchema
from chain.predict.params import PREDICT_BOND, PREDICT_PENALTY
from chain.predict.records import PredictionStatus
from chain.predict.request import PredictionRequest
from chain.predict.steps import prediction
from chain.storage import sqlite_url
from chain.types import Amount, Hash32
from client.api.http_client import ApiClient
from client.cli.common import load_key
from client.devnet.processes import REPO_ROOT, down
from sandbox.cleanup import cleanup_containers
from sandbox.engine import connect
from sandbox.model_format import load_model
from sandbox.policy import LABEL_NODE
from sandbox.predict_eval import answer_labels
from tests.framework.devnet_up import up_on_free_ports
from tests.framework.job_windows import job_log_lines, measure_attempt, windows
from tests.framework.template_v2 import make_v2
from tests.predict.images import predict_image_for_test

pytestmark = pytest.mark.docker

TRAINER, EXECUTORS, CHEATER = 0, (1, 2, 3), 3
ROWS, K, FEE, ROYALTY = 50, 3, 301, 100
DIGITS_IN = InputSchema("float32", 64)
DIGITS_OUT = OutputSchema("classes", tuple(str(d) for d in range(10)))


def cli(*args: str, env: dict[str, str]) -> str:
    proc = subprocess.run([sys.executable, "-m", "client", *args], cwd=REPO_ROOT, text=True,
                          capture_output=True, env={**os.environ, **env}, timeout=300)
    assert proc.returncode == 0, f"learningchain {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def short_job(job_dir: Path) -> None:
    """The template (train/v2) with a few epochs of a small network: seconds per run."""
    toml = (job_dir / "job.toml").read_text()
    for name, kind, values in (("epochs", "int", "[2, 3]"), ("hidden_size", "choice", "[32]"),
                               ("learning_rate", "log_uniform", "[0.01, 0.02]")):
        toml, n = re.subn(rf'(name = "{name}"\s*\nkind = "{kind}"\s*\nvalues = )\[[^\]]*\]',
                          rf"\g<1>{values}", toml)
        assert n == 1, f"no {name} in the template's job.toml"
    (job_dir / "job.toml").write_text(toml)


def held_out_rows(test_csv: Path) -> np.ndarray:
    """``ROWS`` of the template's test digits (``holdout/test.csv``: never trained or
    validated on), scaled as the template scales them (pixel / 16)."""
    lines = [ln.split(",") for ln in test_csv.read_text().splitlines()[1:ROWS + 1]]
    return np.array([[float(v) / 16.0 for v in ln[1:]] for ln in lines], dtype=np.float32)


def until(what: str, check: Any, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout_s:.0f} s")
        time.sleep(0.3)


def executor_status(api: ApiClient) -> dict[str, Any]:
    return dict(api.status()["worker"].get("executor") or {})


def test_paid_model_answers_k3_one_wrong_executor_is_outvoted(tmp_path: Path) -> None:
    """[PRED-DEPLOY.1] [PRED-OFFER.1] [PRED-LOTTERY.2] [PRED-ANSWER.1] [PRED-AGREE.1]
    [PRED-AGREE.2] [PRED-PAY.1] [PRED-FORFEIT.1] [PRED-SETTLE.1] [PRED-EXEC.1] on real node
    processes, real sandboxes and a model a real job trained."""
    started = time.monotonic()
    with predict_image_for_test(connect()):  # built here (if absent) so the nodes share it
        job_dir = tmp_path / "digits"
        cli("job", "init", str(job_dir), env={})
        make_v2(job_dir)
        short_job(job_dir)
        cli("job", "build", str(job_dir), env={})  # built once: the probe and the post use it
        quick = {"max_attempts": 1, "min_time_left_s": 5, "max_memory_mb": 1024,
                 "max_disk_mb": 64, "max_time_s": 120}
        serve = {"max_attempts": 0, "predict": True}
        root = tmp_path / "graph"
        layout = up_on_free_ports(root, validators=4, workers=4,
                                  worker_settings={TRAINER: quick, 1: serve, 2: serve,
                                                   CHEATER: {**serve, "cheat_predictions": True}},
                                  users={"submitter": 5_000}, consensus={"commit_ms": 100},
                                  timeout=90)
        try:
            _run(layout, job_dir, started)
        finally:
            down(root)


def _run(layout: Any, job_dir: Path, started: float) -> None:
    api = ApiClient(layout.nodes[0].api_url)
    submitter = next(u for u in layout.users if u.name == "submitter")
    key = load_key(submitter.key_file, submitter.passphrase_file)
    env = {"LC_NODE": layout.nodes[0].api_url}
    # The windows follow this machine's speed now, the graph running: the one attempt the
    # trainer makes must claim before expiry, or the job ends refunded [JOB-TURN.2].
    job_windows = windows(measure_attempt(job_dir))
    print(f"job windows: {job_windows}")
    posted = json.loads(cli(
        "job", "submit", str(job_dir), "--bounty", "100", *job_windows.args(),
        "--voter-reward", "5", "--quorum", "500", "--supermajority", "667", "--max-turns", "1",
        "--key", str(submitter.key_file), "--passphrase-file", str(submitter.passphrase_file),
        "--json", env=env))
    job_id = posted["job_id"]
    job = until("job settled", lambda: (j := api.job(job_id))["settled"] and j,
                job_windows.settle_s())
    assert job["status"] == "paid", (job, job_log_lines(layout, job_id))
    model_hash = job["winner_model_hash"]
    print(f"job paid after {time.monotonic() - started:.1f} s; model {model_hash[:16]}")

    # the submitter: the model, its own labels, the deployment
    model_file = job_dir.parent / "model.safetensors"
    api.download_blob(model_hash, model_file)
    rows = held_out_rows(job_dir / "holdout" / "test.csv")
    blob = encode_rows("float32", 64, [float(v) for v in rows.ravel()])
    record = DeployedModel(Hash32(bytes.fromhex(job_id)), Hash32(bytes.fromhex(model_hash)),
                           "safetensors-mlp", DIGITS_IN, DIGITS_OUT, key.address, ROYALTY)
    local = answer_labels(load_model(model_file.read_bytes(), DIGITS_IN, DIGITS_OUT), record,
                          blob, ROWS)
    assert len(set(decode(local)[1])) >= 5  # a trained model: many different digits
    deployed = api.submit(api.sign(key, DeployModel(
        Hash32(bytes.fromhex(job_id)), Hash32(bytes.fromhex(model_hash)), "safetensors-mlp",
        DIGITS_IN, DIGITS_OUT, ROYALTY)))
    api.wait_for_tx(deployed)
    address = {i: n.address for i, n in enumerate(layout.nodes)}
    clients = {i: ApiClient(n.api_url) for i, n in enumerate(layout.nodes)}
    for i in EXECUTORS:
        until(f"node{i} offers", lambda i=i: executor_status(clients[i]).get("offering"), 30)
    input_file = job_dir.parent / "rows.bin"
    input_file.write_bytes(blob)
    input_blob = api.upload_blob(input_file)["blob"]
    balance = {a: api.account(a)["balance"] for a in address.values()}
    supply_before = api.supply()
    owner_before = api.account(key.address)["balance"]
    requested_at = time.monotonic()
    answer_ms = 1000 * job_windows.commit_s  # both end once all k have acted [PRED-COMMIT.1]
    request_tx = api.submit(api.sign(key, RequestPrediction(PredictionRequest(
        Hash32(bytes.fromhex(job_id)), Hash32(bytes.fromhex(input_blob)), ROWS, Amount(FEE),
        K, "labels", 0, answer_ms, answer_ms))))
    api.wait_for_tx(request_tx)
    for i in (1, 2):
        until(f"node{i} sees the request settle",
              lambda i=i: executor_status(clients[i]).get("counters", {}).get("settled_agreed"),
              2 * job_windows.commit_s + 30)
    print(f"request agreed {time.monotonic() - requested_at:.1f} s after it was sent")
    agreed_blob = job_dir.parent / "agreed.bin"
    api.download_blob(output_hash(local).hex(), agreed_blob)
    assert agreed_blob.read_bytes() == local  # the agreed answer travels by its hash

    royalty = FEE * ROYALTY // 1000
    share, dust = divmod(FEE - royalty, 2)
    for i in (1, 2):
        assert api.account(address[i])["balance"] == balance[address[i]] + share, i
    assert api.account(address[CHEATER])["balance"] == balance[address[CHEATER]]
    assert api.account(key.address)["balance"] == owner_before - FEE + royalty + dust
    supply = api.supply()  # [BANK.1] the penalty is burned; bonds and escrow counted
    assert supply["conserved"], supply
    assert supply["burned"] == supply_before["burned"] + PREDICT_PENALTY, supply
    log = (layout.nodes[CHEATER].directory / "node.log").read_text(errors="replace")
    assert "CHEATING (demo/test): committing a wrong answer" in log
    height = api.status()["height"]
    for other in clients.values():  # the settling block has reached every node
        until("every node at the settled height", lambda o=other: o.status()["height"] >= height,
              30)
    down(layout.root)
    engine = connect()
    for i in EXECUTORS:  # each node removed its warm sandboxes when it stopped
        label = f"{LABEL_NODE}=predict-{address_from_text(address[i]).hex()[:12]}"
        left = engine.containers.list(ignore_removed=True, all=True, filters={"label": label})
        cleanup_containers(engine, label.split("=")[1])
        assert not left, (i, [c.name for c in left])
    _every_ledger_agrees(layout, bytes.fromhex(request_tx), local, address)
    print(f"graph test done in {time.monotonic() - started:.1f} s")


def _every_ledger_agrees(layout: Any, request_id: bytes, local: bytes,
                         address: dict[int, str]) -> None:
    """Each node's own database (the processes are down): the same settled record, bonds."""
    genesis = Genesis.load(layout.genesis)
    seen = []
    for node in layout.nodes:
        ledger = Ledger.open(sqlite_url(node.directory / "data"), genesis)
        try:
            rec = prediction(ledger.state, request_id)
            assert rec is not None and rec.status == PredictionStatus.AGREED, rec
            assert rec.answer == output_hash(local) and rec.escrow == 0
            opened = {a.executor: a.output_hash for a in rec.answers}
            assert set(rec.executors) == {address_from_text(address[i]) for i in EXECUTORS}
            assert opened[address_from_text(address[CHEATER])] != rec.answer
            bonds = {i: ledger.state.get("predictor", address_from_text(address[i]))
                     for i in EXECUTORS}
            assert bonds == {1: PREDICT_BOND, 2: PREDICT_BOND,
                             CHEATER: PREDICT_BOND - PREDICT_PENALTY}, bonds
            assert ledger.state.total_credits() == int(ledger.state.supply)  # [BANK.1]
            seen.append((rec.to_wire(), bonds))
        finally:
            ledger.storage.close()
    assert all(s == seen[0] for s in seen), "the nodes' ledgers differ"
