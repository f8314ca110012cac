"""``learningchain model list|show|deploy`` and ``learningchain predict`` against a real solo
node over 127.0.0.1 (timed blocks): a real paid job, its model deployed by the CLI, a
request built from a CSV file, uploaded, escrowed and followed through the lottery, commit
and reveal phases to its agreed labels (the drawn executors' transactions are sent by the
test, as executor nodes would), and bad input files refused before anything is sent."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result

from chain.content import blob_id_of_bytes
from chain.crypto import address_to_text
from chain.predict.answer import answer_commitment, values_hash
from chain.predict.bodies import PredictCommit, PredictReveal
from chain.predict.io import encode_rows, labels_blob, output_hash
from chain.types import Hash32
from client.api.http_client import ApiClient
from client.cli.main import cli
from sandbox.ckks_eval import evaluate, parse_batch
from sandbox.model_format import export_mlp
from tests.client.api.test_api_support import ApiThread
from tests.client.cli.test_cli_chain import key_file, run
from tests.client.test_models_api_support import offer, paid_job, step
from tests.framework.wait import wait_until
from tests.predict.ledger_story import fixed

ROWS = [[0.5, 1.0], [-1.0, 2.0], [0.0, 0.0], [3.0, -3.5]]
RIGHT = labels_blob([0, 2, 1, 1], 3)
WRONG = labels_blob([1, 1, 1, 1], 3)


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[ApiThread]:
    with ApiThread(tmp_path, validators=1, block_interval=0.1) as api:
        yield api


def paid(chain: ApiThread, outputs: int = 3, dtype: str = "float32",
         model: bytes | None = None) -> bytes:
    """A paid job whose winner's model is a real safetensors-mlp file of 2 features and
    ``outputs`` outputs (or ``model``), held by the node (``model deploy`` checks it against
    the schema)."""
    node = chain.node
    assert node is not None
    if model is None:
        model = export_mlp([(np.ones((outputs, 2)), np.zeros(outputs))], dtype)
    model_hash = chain.in_loop(lambda: node.blob_store.put_bytes(model))
    return chain.call(paid_job(node, chain.keys, model_hash))


def deploy(chain: ApiThread, tmp_path: Path, job_id: bytes, *extra: str, code: int = 0,
           who: str = "submitter") -> Result:
    return run(["model", "deploy", job_id.hex(), "--features", "2", *extra,
                *key_file(tmp_path, chain.keys[who], who)], chain, code=code)


def csv_file(tmp_path: Path, text: str, name: str = "rows.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_model_deploy_list_and_show(chain: ApiThread, tmp_path: Path) -> None:
    """[PRED-DEPLOY.1] [API-PREDICT.1-2] deploy sends the paid winner's model hash; only the
    submitter may; a schema the winner's file does not fit (labels count, dtype, features,
    outputs) is refused before sending [JOB-EXPORT.3]; list and show read it back with its
    schema, owner and royalty."""
    assert "no deployed models" in run(["model", "list"], chain).output
    job_id = paid(chain)
    out = deploy(chain, tmp_path, job_id, "--labels", "cat,dog,fish", who="alice",
                 code=1).output
    assert "deploy_model rejected" in out and "not_submitter" in out
    out = deploy(chain, tmp_path, job_id, code=2).output
    assert "--labels" in out and "--outputs" in out
    for wrong in (["--labels", "cat,dog"], ["--labels", "a,b,c", "--dtype", "float64"],
                  ["--outputs", "2"]):  # [JOB-EXPORT.3] the file: 3 outputs, float32
        out = deploy(chain, tmp_path, job_id, *wrong, code=1).output
        assert "does not fit the schema" in out, out
    out = run(["model", "deploy", job_id.hex(), "--features", "3", "--labels", "a,b,c",
               *key_file(tmp_path, chain.keys["submitter"], "submitter")], chain, code=1).output
    assert "does not fit the schema 3 × float32" in out
    assert chain.in_loop(lambda: list(chain.node.state.keys("model"))) == []  # type: ignore
    assert "deployed" in deploy(chain, tmp_path, job_id, "--labels", "cat,dog,fish",
                                "--royalty", "100").output
    models = json.loads(run(["model", "list", "--json"], chain).stdout)["models"]
    job = ApiClient(chain.url).job(job_id)
    assert [(m["job_id"], m["model_hash"]) for m in models] == [
        (job_id.hex(), job["winner_model_hash"])]
    assert models[0]["owner"] == address_to_text(chain.keys["submitter"].address)
    listed = run(["model", "list"], chain).output
    assert job_id.hex()[:16] in listed and "10%" in listed and "classes (3: cat, dog, fish)" \
        in listed
    shown = run(["model", "show", job_id.hex()], chain).output
    assert "2 × float32 → classes" in shown and "royalty 100‰" in shown
    # [PRED-ACCEPTS.1] what it accepts, on each page
    assert "accepts     labels · csv or npy rows · encrypted: no" in shown
    assert "a classifier (3 labels) answers labels" in shown
    assert "labels · csv or npy rows · encrypted: no" in listed
    assert models[0]["accepts"]["modes"] == ["labels"]
    assert "serving" in listed and "status      serving" in shown
    again = deploy(chain, tmp_path, job_id, "--labels", "cat,dog,fish", code=1).output
    assert "already_deployed" in again


def test_job_export_7_deploy_onnx_and_refuse_a_pickle_naming_the_formats(
        chain: ApiThread, tmp_path: Path) -> None:
    """[JOB-EXPORT.1] [JOB-EXPORT.7] [PRED-MODEL.1] A paid job whose model.pt is ONNX deploys
    with format ``onnx`` after the host check; one whose model.pt is a torch.save zip (the
    issue's CNN) is refused before anything is sent, and the refusal names the formats that
    are deployable."""
    from tests.predict.onnx_models import mlp

    onnx_job = paid(chain, model=mlp().SerializeToString())
    out = run(["model", "deploy", onnx_job.hex(), "--features", "3", "--labels", "a,b,c",
               *key_file(tmp_path, chain.keys["submitter"], "submitter")], chain, code=1).output
    assert "io: ONNX: input 'x' has shape [None, 4], the schema says [batch, 3]" in out
    sent = json.loads(run(["model", "deploy", onnx_job.hex(), "--features", "4", "--labels",
                           "a,b,c", "--json",
                           *key_file(tmp_path, chain.keys["submitter"], "submitter")],
                          chain).stdout)
    assert sent["format"] == "onnx"
    assert ApiClient(chain.url).model(onnx_job)["format"] == "onnx"
    zip_job = paid(chain, model=b"PK\x03\x04" + bytes(60))
    out = run(["model", "deploy", zip_job.hex(), "--features", "4", "--labels", "a,b,c",
               *key_file(tmp_path, chain.keys["submitter"], "submitter")], chain, code=1).output
    assert "torch.save zip" in out and "deployable formats: safetensors-mlp/v1" in out
    assert "ONNX (deploy format onnx)" in out


def _predict_in_thread(args: list[str]) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def go() -> None:
        box["result"] = CliRunner().invoke(cli, args, catch_exceptions=False)

    thread = threading.Thread(target=go, name="predict-cli")
    thread.start()
    return thread, box


def _predict_in_thread_in(folder: Path, args: list[str]
                          ) -> tuple[threading.Thread, dict[str, Any]]:
    """The command run from ``folder`` (its .learningchain/ goes there); the working
    directory is process-wide, so it is set before the thread starts and the test reads
    nothing relative meanwhile."""
    box: dict[str, Any] = {}
    old = os.getcwd()
    os.chdir(folder)

    def go() -> None:
        try:
            box["result"] = CliRunner().invoke(cli, args, catch_exceptions=False)
        finally:
            os.chdir(old)

    thread = threading.Thread(target=go, name="predict-cli")
    thread.start()
    return thread, box


def test_predict_follows_the_request_to_the_agreed_labels(chain: ApiThread,
                                                          tmp_path: Path) -> None:
    """[PRED-REQ.1] [PRED-IO.1] [API-PREDICT.3] predict builds the canonical rows blob from a
    CSV (header skipped), uploads it, escrows the minimum fee (rows × k) and follows the
    phases; the drawn executors commit and reveal (one wrong, outvoted); the command prints
    each row's agreed label and the fee paid."""
    assert chain.node is not None
    node, keys = chain.node, chain.keys
    job_id = paid(chain)
    deploy(chain, tmp_path, job_id, "--labels", "cat,dog,fish", "--royalty", "100")
    chain.call(offer(node, keys))
    rows = csv_file(tmp_path, "a,b\n" + "".join(f"{x},{y}\n" for x, y in ROWS))
    client = ApiClient(chain.url)
    thread, box = _predict_in_thread(
        ["predict", job_id.hex(), "--input", str(rows), "--window", "30s",
         *key_file(tmp_path, keys["alice"], "alice"), "--node", chain.url])
    models = wait_until(lambda: client.model(job_id)["predictions"] or None, timeout=30)
    request_id = bytes.fromhex(models[0]["request_id"])
    rec = wait_until(lambda: (r := client.prediction(request_id))["status"] == "commit" and r,
                     timeout=30)
    assert rec["fee"] == 4 * 3 and rec["rows"] == 4 and rec["mode"] == "labels"
    blob = encode_rows("float32", 2, [v for row in ROWS for v in row])
    assert rec["input_blob"] == blob_id_of_bytes(blob).hex()
    assert client.has_blob(rec["input_blob"])
    names = {address_to_text(k.address): n for n, k in keys.items()}
    answers = dict(zip((names[a] for a in rec["executors"]), (RIGHT, RIGHT, WRONG),
                       strict=True))
    salts = {n: fixed(f"s:{n}") for n in answers}
    chain.in_loop(lambda: node.blob_store.put_bytes(RIGHT))  # an executor published it
    chain.call(step(node, keys, *((n, PredictCommit(Hash32(request_id), answer_commitment(
        request_id, keys[n].address, output_hash(b), salts[n]))) for n, b in answers.items())))
    chain.call(step(node, keys, *((n, PredictReveal(Hash32(request_id), output_hash(b),
                                                    salts[n])) for n, b in answers.items())))
    thread.join(timeout=60)
    result: Result = box["result"]
    assert result.exit_code == 0, result.output
    # not "commit: 0/3": that progress line shows only if the CLI polled while the request
    # was in its commit phase, which on a loaded machine it may not (CI, 2026-11-27)
    assert "executors drawn at height" in result.stderr and "settled: agreed" in result.stderr
    assert [line for line in result.stdout.splitlines() if line.startswith("row ")] == [
        "row 1: cat", "row 2: fish", "row 3: dog", "row 4: dog"]
    assert "fee paid 11 credits (refunded 1)" in result.stdout  # 12 - 5 - 5 - royalty 1
    shown = run(["model", "request", request_id.hex()], chain).output
    assert "agreed (labels, 4 rows, k=3, fee 12)" in shown and "disagreeing 1" in shown
    assert "row 2: fish" in shown and shown.count(": revealed") == 3


def test_predict_escrows_and_the_request_is_visible(chain: ApiThread, tmp_path: Path) -> None:
    """[PRED-REQ.4] --no-wait --json: the request is escrowed with the given fee and k and
    readable at /predictions/{id}; a .npy file works like a CSV."""
    assert chain.node is not None
    job_id = paid(chain)
    deploy(chain, tmp_path, job_id, "--labels", "cat,dog,fish")
    path = tmp_path / "rows.npy"
    np.save(path, np.asarray(ROWS, dtype=np.float64))
    out = json.loads(run(["predict", job_id.hex(), "--input", str(path), "--k", "5",
                          "--fee", "77", "--no-wait", "--json",
                          *key_file(tmp_path, chain.keys["alice"], "alice")], chain).stdout)
    rec = ApiClient(chain.url).prediction(out["request_id"])
    assert (rec["fee"], rec["k"], rec["rows"], rec["requester"]) == (
        77, 5, 4, address_to_text(chain.keys["alice"].address))
    assert rec["status"] in ("drawing", "unserved")  # nobody offers: unserved at the draw
    assert rec["escrow"] == 77 or rec["outcome"]["refund"] == 77


BAD_FILES = [
    ("cols.csv", "1,2,3\n4,5,6\n", "3 columns; the model takes 2 features"),
    ("word.csv", "1,2\n3,oops\n", "line 2, column 2: 'oops' is not a number"),
    ("ragged.csv", "1,2\n3\n", "line 2 has 1 columns"),
    ("nan.csv", "1,2\nnan,4\n", "row 2, column 1 is nan"),
    ("empty.csv", "a,b\n", "no rows of numbers"),
    ("rows.txt", "1,2\n", "expected a .csv or .npy file"),
]


def test_bad_input_files_are_refused_before_anything_is_sent(chain: ApiThread,
                                                             tmp_path: Path) -> None:
    """A bad rows file is one clear error naming the file and the bad data; no blob is
    uploaded and no transaction sent. A pickled .npy is refused, never unpickled; a
    classifier refuses --encrypted."""
    assert chain.node is not None
    job_id = paid(chain)
    deploy(chain, tmp_path, job_id, "--labels", "cat,dog,fish")
    alice = key_file(tmp_path, chain.keys["alice"], "alice")
    blobs = chain.in_loop(lambda: chain.node.blob_store.blobs())  # type: ignore[union-attr]
    pickled = tmp_path / "obj.npy"
    np.save(pickled, np.asarray([{"x": 1}, 2], dtype=object), allow_pickle=True)
    cases = [(csv_file(tmp_path, text, name), says) for name, text, says in BAD_FILES]
    cases.append((pickled, "not a numeric .npy array"))
    for path, says in cases:
        out = run(["predict", job_id.hex(), "--input", str(path), *alice], chain,
                  code=1).output
        assert says in out and path.name in out, out
    out = run(["predict", job_id.hex(), "--input", str(cases[0][0]), "--encrypted", *alice],
              chain, code=1).output
    assert "does not answer encrypted rows (a classifier" in out
    assert chain.in_loop(lambda: chain.node.blob_store.blobs()) == blobs  # type: ignore
    assert ApiClient(chain.url).model(job_id)["requests"]["total"] == 0


def test_pred_accepts_1_encrypted_is_refused_before_any_fee_for_a_relu_mlp(
        chain: ApiThread, tmp_path: Path) -> None:
    """[PRED-ACCEPTS.1] A one-output regression whose file is a two-layer ReLU MLP: the
    ledger would take a ciphertext request (one output, 2 features) and the executors would
    answer ``schema``, spending the fee. ``predict --encrypted`` reads the model file first
    and refuses, naming why; nothing is uploaded or sent. ``model show`` says the same."""
    assert chain.node is not None
    relu = export_mlp([(np.ones((3, 2)), np.zeros(3)), (np.ones((1, 3)), np.zeros(1))])
    job_id = paid(chain, model=relu)
    deploy(chain, tmp_path, job_id, "--outputs", "1")
    shown = run(["model", "show", job_id.hex()], chain).output
    assert "values · csv or npy rows · encrypted: no" in shown, shown
    alice = key_file(tmp_path, chain.keys["alice"], "alice")
    blobs = chain.in_loop(lambda: chain.node.blob_store.blobs())  # type: ignore[union-attr]
    rows = csv_file(tmp_path, "1,2\n3,4\n")
    out = run(["predict", job_id.hex(), "--input", str(rows), "--encrypted", *alice], chain,
              code=1).output
    assert "does not answer encrypted rows (not linear and not a two-layer square MLP" in out
    assert chain.in_loop(lambda: chain.node.blob_store.blobs()) == blobs  # type: ignore
    assert ApiClient(chain.url).model(job_id)["requests"]["total"] == 0


def test_encrypted_predict_decrypts_the_agreed_scores_here(chain: ApiThread,
                                                           tmp_path: Path) -> None:
    """[PRED-CKKS.1] --encrypted on a one-output regression model: the uploaded batch holds
    only the public context (an executor's parse accepts it, which refuses a secret key), the
    secret context stays in .learningchain/ckks/ (mode 0600) and is never a blob on the node;
    the executors' agreed scores blob (computed here by the executor's own evaluation) is
    decrypted by the command to w·x + b within the stated 1e-3."""
    assert chain.node is not None
    node, keys = chain.node, chain.keys
    job_id = paid(chain, outputs=1, dtype="float64")
    deploy(chain, tmp_path, job_id, "--dtype", "float64", "--outputs", "1")
    chain.call(offer(node, keys))
    rows = csv_file(tmp_path, "".join(f"{x},{y}\n" for x, y in ROWS))
    client = ApiClient(chain.url)
    work = tmp_path / "requester"
    work.mkdir()
    thread, box = _predict_in_thread_in(work, [
        "predict", job_id.hex(), "--input", str(rows), "--encrypted", "--window", "30s",
        "--json", *key_file(tmp_path, keys["alice"], "alice"), "--node", chain.url])
    rec = wait_until(lambda: (p := client.model(job_id)["predictions"]) and (
        r := client.prediction(p[0]["request_id"]))["status"] == "commit" and r, timeout=60)
    request_id = bytes.fromhex(rec["request_id"])
    assert rec["mode"] == "ciphertext"
    batch = chain.in_loop(lambda: node.blob_store.path(bytes.fromhex(rec["input_blob"]))
                          ).read_bytes()
    parse_batch(batch)  # public context only, or this raises
    [secret] = list((work / ".learningchain" / "ckks").iterdir())
    assert secret.stat().st_mode & 0o077 == 0
    assert secret.read_bytes() not in batch
    weights, bias = [0.75, -1.5], 0.25
    scores = evaluate(batch, weights, bias)
    chain.in_loop(lambda: node.blob_store.put_bytes(scores))
    salts = {a: fixed(f"s:{a}") for a in rec["executors"]}
    names = {address_to_text(k.address): n for n, k in keys.items()}
    chain.call(step(node, keys, *((names[a], PredictCommit(Hash32(request_id), answer_commitment(
        request_id, keys[names[a]].address, output_hash(scores), salts[a])))
        for a in rec["executors"])))
    chain.call(step(node, keys, *((names[a], PredictReveal(Hash32(request_id),
                                                           output_hash(scores), salts[a]))
                                  for a in rec["executors"])))
    thread.join(timeout=60)
    result: Result = box["result"]
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    expected = np.asarray(ROWS) @ np.asarray(weights) + bias
    assert np.max(np.abs(np.asarray(doc["scores"]) - expected)) < 1e-3
    assert doc["secret_key_file"].endswith(".secret") and doc["status"] == "agreed"
    before = os.getcwd()
    os.chdir(work)  # model request finds the saved key there, as predict left it
    try:
        again = json.loads(run(["model", "request", rec["request_id"], "--json"], chain).stdout)
    finally:
        os.chdir(before)
    assert again["scores"] == doc["scores"]


def test_values_request_prints_the_agreed_centre_within_tolerance(chain: ApiThread,
                                                                 tmp_path: Path) -> None:
    """[PRED-AGREE.3] [PRED-ANSWER.2] A regression model (2 outputs, scale 10^3) asked with
    --tolerance 5: two executors 2 units apart agree, the third is 100 away and outvoted; the
    command prints the agreed centre's values scaled back (within 0.005 of the truth)."""
    assert chain.node is not None
    node, keys = chain.node, chain.keys
    job_id = paid(chain, outputs=2)
    deploy(chain, tmp_path, job_id, "--outputs", "2", "--scale-exp", "3")
    chain.call(offer(node, keys))
    rows = csv_file(tmp_path, "".join(f"{x},{y}\n" for x, y in ROWS))
    client = ApiClient(chain.url)
    thread, box = _predict_in_thread(
        ["predict", job_id.hex(), "--input", str(rows), "--tolerance", "5", "--window", "30s",
         "--json", *key_file(tmp_path, keys["alice"], "alice"), "--node", chain.url])
    rec = wait_until(lambda: (p := client.model(job_id)["predictions"]) and (
        r := client.prediction(p[0]["request_id"]))["status"] == "commit" and r, timeout=30)
    assert rec["mode"] == "values" and rec["tolerance"] == 5
    request_id = bytes.fromhex(rec["request_id"])
    truth = [1500, -250, 0, 42, 7, 9, -3000, 1]
    names = {address_to_text(k.address): n for n, k in keys.items()}
    drawn = [names[a] for a in rec["executors"]]
    answers = dict(zip(drawn, (truth, [v + 2 for v in truth], [v + 100 for v in truth]),
                       strict=True))
    salts = {n: fixed(f"v:{n}") for n in drawn}
    chain.call(step(node, keys, *((n, PredictCommit(Hash32(request_id), answer_commitment(
        request_id, keys[n].address, values_hash(v), salts[n]))) for n, v in answers.items())))
    chain.call(step(node, keys, *((n, PredictReveal(Hash32(request_id), values_hash(v),
                                                    salts[n], tuple(v)))
                                  for n, v in answers.items())))
    thread.join(timeout=60)
    result: Result = box["result"]
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    got = np.asarray(doc["values"]).reshape(-1)
    assert got.shape == (8,) and np.max(np.abs(got - np.asarray(truth) / 1000)) <= 0.005
    assert doc["status"] == "agreed" and doc["paid"] == 12


def test_model_status_names_the_request_that_closed_it() -> None:
    """[PRED-UNLOADABLE.3] ``model list|show`` print ``serving`` while ``unservable_by`` is
    null, else the request whose agreed answer said the model does not load (list: its
    prefix; show: the whole id)."""
    from client.cli.predict.model import serving_text

    rid = "ab" * 32
    assert serving_text({"unservable_by": None}) == "serving"
    assert rid[:16] in serving_text({"unservable_by": rid}) and rid not in \
        serving_text({"unservable_by": rid})
    assert rid in serving_text({"unservable_by": rid}, full=True)
