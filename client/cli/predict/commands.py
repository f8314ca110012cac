"""``learningchain predict MODEL --input FILE``: ask a deployed model for predictions
[PRED-REQ.1] and follow the request to its agreed answer [API-PREDICT.3].

The rows become the input blob [PRED-IO.1], or with ``--encrypted`` a CKKS batch whose
secret key stays in ``.learningchain/ckks/`` on this machine and is never uploaded
[PRED-CKKS.1]. The blob is uploaded with a progress bar, ``request_prediction`` escrows the
fee, then the command follows the lottery, commit and reveal phases until the request is
settled, and shows the agreed answer (decrypted here in encrypted mode) and what was paid.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from chain.content import blob_id_of_bytes
from chain.predict.bodies import RequestPrediction
from chain.predict.params import MAX_K, MIN_K, MIN_WINDOW_MS
from chain.predict.request import MAX_TOLERANCE, PredictionRequest, min_fee
from chain.types import Amount, Hash32
from client.api.http_client import ApiClient
from client.cli.common import (
    DURATION,
    HASH32,
    UserError,
    client_for,
    emit,
    json_option,
    key_option,
    load_key,
    node_option,
    note,
    out,
    passphrase_option,
    send,
    user_errors,
)
from client.cli.job.transfer_progress import TransferProgress
from client.cli.predict.input import (
    BadInputFile,
    check_encryptable,
    check_rows,
    decode_answer,
    plaintext_blob,
    read_rows,
)
from client.cli.predict.model import encrypted_support, get_model, model

SECRET_DIR = Path(".learningchain") / "ckks"
"""Where an encrypted request's secret context is kept (mode 0600), named by input blob."""
OPEN = ("drawing", "commit", "reveal")


def _secret_path(input_blob: bytes) -> Path:
    return SECRET_DIR / f"{input_blob.hex()}.secret"


def _encrypt(rows: Any) -> tuple[bytes, Any]:
    """The CKKS batch and the keys; the secret context is saved before anything is sent."""
    from client.predict.ckks import CkksKeys  # tenseal loads only for encrypted requests

    keys = CkksKeys.generate()
    blob = keys.encrypt_batch(rows)
    path = _secret_path(blob_id_of_bytes(blob))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(bytes(keys.context.serialize(save_secret_key=True)))
    return blob, keys


def _upload(client: ApiClient, blob: bytes, quiet: bool) -> None:
    blob_id = blob_id_of_bytes(blob)
    with TransferProgress(quiet) as bars:
        with user_errors():
            held = client.has_blob(blob_id)
        if held:
            bars.held("input", blob_id, len(blob))
            return
        with tempfile.TemporaryDirectory(prefix="lc-predict-") as tmp:
            path = Path(tmp) / "input.blob"
            path.write_bytes(blob)
            progress = bars.blob("input", len(blob))
            with user_errors("upload failed: "):
                info = client.upload_blob(path, progress)
            progress(len(blob), len(blob))
    if info["blob"] != blob_id.hex():
        raise UserError(f"the node stored blob {info['blob']} for the input, not "
                        f"{blob_id.hex()}")


def phase_line(rec: dict[str, Any]) -> str:
    """One line per phase change [API-PREDICT.3]."""
    status, k = rec["status"], rec["k"]
    if status == "drawing":
        return f"escrowed {rec['escrow']} credits; executors drawn at height {rec['draw_height']}"
    if status == "commit":
        return f"commit: {len(rec['answers'])}/{k} executors committed"
    if status == "reveal":
        opened = sum(a["output_hash"] is not None for a in rec["answers"])
        return f"reveal: {opened}/{len(rec['answers'])} answers revealed"
    return f"settled: {status}"


def follow(client: ApiClient, request_id: bytes, timeout_s: float, quiet: bool) -> dict[str, Any]:
    """Polls the request at each new block until it is settled; a line per change."""
    deadline = time.monotonic() + timeout_s
    said = ""
    while True:
        with user_errors():
            rec = client.prediction(request_id)
            height = int(client.status()["height"])
        line = phase_line(rec)
        if line != said and not quiet:
            note(line)
        said = line
        if rec["status"] not in OPEN:
            return rec
        left = deadline - time.monotonic()
        if left <= 0:
            raise UserError(f"request {request_id.hex()} still {rec['status']} after "
                            f"{timeout_s:g} s; follow it with learningchain model show "
                            f"{rec['model_id']}", code="predict_timeout")
        with user_errors():
            client.wait(height + 1, timeout=min(left, 10.0))


def answer_of(client: ApiClient, rec: dict[str, Any], model: dict[str, Any],
              keys: Any) -> dict[str, Any]:
    """The agreed answer as labels, numbers or decrypted scores."""
    mode, rows = rec["mode"], rec["rows"]
    if mode == "values":
        # [PRED-AGREE.3] the agreed answer is the centre of the agreeing group
        values = next((a["values"] for a in rec["answers"] if a["output_hash"] == rec["answer"]),
                      None)
        if values is None:
            return {"invalid": "the executors agreed the input is invalid"}
        scale, width = 10 ** model["output"]["scale_exp"], model["output"]["outputs"]
        return {"values": [[v / scale for v in values[r * width:(r + 1) * width]]
                           for r in range(rows)]}
    with tempfile.TemporaryDirectory(prefix="lc-answer-") as tmp, \
            user_errors("cannot fetch the agreed answer: "):
        path = Path(tmp) / "answer"
        client.download_blob(rec["answer"], path)
        if blob_id_of_bytes(path.read_bytes()).hex() != rec["answer"]:
            raise UserError(f"the node's answer blob does not hash to {rec['answer']}")
        blob = path.read_bytes()
    kind, data = decode_answer(blob)
    if kind == "invalid":
        return {"invalid": data}
    if mode == "labels":
        labels = model["output"]["labels"]
        return {"labels": [labels[i] for i in data]}
    return {"scores": [float(x) for x in keys.decrypt_scores(blob, rows)]}


@click.command("predict")
@click.argument("model_id", type=HASH32, metavar="MODEL")
@click.option("--input", "input_path", required=True, metavar="FILE",
              type=click.Path(path_type=Path, dir_okay=False),
              help="Rows to predict: a .csv (comma-separated numbers, one row a line) or a "
                   ".npy array.")
@click.option("--header/--no-header", "header", default=None,
              help="The .csv's first line is a header (skipped) / is a row. Without either, a "
                   "first line of names is a header, one of numbers a row, and anything else "
                   "(words and numbers mixed, or 0,1,…,n-1) an error before anything is sent "
                   "[PRED-CSV.1].")
@click.option("--encrypted", is_flag=True,
              help="Encrypt the rows with CKKS; the key stays here and the executors see only "
                   "ciphertexts. The model must answer encrypted rows (model show: "
                   "\"encrypted: yes\"): a linear model or a two-layer square-activation "
                   "MLP, one output, at most 128 features; checked before any fee.")
@click.option("--k", "k", type=click.IntRange(MIN_K, MAX_K), default=3, show_default=True,
              help="Executors drawn (odd); the answer needs k // 2 + 1 of them to agree.")
@click.option("--fee", type=click.IntRange(1), help="Credits escrowed (default: the minimum, "
                                                     "rows × k).")
@click.option("--tolerance", type=click.IntRange(0, MAX_TOLERANCE), default=0,
              show_default=True, help="values mode: how far two agreeing answers may differ, "
                                      "in units of 10^-scale_exp.")
@click.option("--window", type=DURATION, default="60s", show_default=True,
              help="Commit and reveal windows, each.")
@click.option("--timeout", "timeout_ms", type=DURATION, default="10m", show_default=True,
              help="How long to follow the request.")
@click.option("--no-wait", is_flag=True, help="Send the request and print its id.")
@key_option(help="The requester's key.")
@passphrase_option
@node_option
@json_option
def predict(model_id: bytes, input_path: Path, header: bool | None, encrypted: bool, k: int,
            fee: int | None,
            tolerance: int, window: int, timeout_ms: int, no_wait: bool, key_path: Path,
            passphrase_file: Path | None, node_url: str, as_json: bool) -> None:
    """Ask a deployed model (MODEL: its job id) for predictions on the rows of FILE."""
    if k % 2 == 0:
        raise click.BadParameter(f"k must be odd, got {k}", param_hint="--k")
    client = client_for(node_url)
    model = get_model(client, model_id)
    kind, schema = model["output"]["kind"], model["input"]
    if encrypted:
        accepts = encrypted_support(client, model)  # [PRED-ACCEPTS.1] before any fee
        if not accepts.encrypted:
            raise UserError(f"--encrypted: model {model_id.hex()[:16]}… does not answer "
                            f"encrypted rows ({accepts.why}); encrypted requests need a "
                            "linear model or a two-layer square MLP with one output "
                            "(safetensors-mlp); ask without --encrypted",
                            code="not_ckks_model")
    mode = "labels" if kind == "classes" else "ciphertext" if encrypted else "values"
    if tolerance and mode != "values":
        raise click.BadParameter("only a regression model's values take a tolerance",
                                 param_hint="--tolerance")
    key = load_key(key_path, passphrase_file)
    keys = None
    try:
        rows = read_rows(input_path, header)
        check_rows(rows, input_path, int(schema["features"]))
        if encrypted:
            check_encryptable(rows, input_path)
            blob, keys = _encrypt(rows)
        else:
            blob = plaintext_blob(rows, schema["dtype"])
    except BadInputFile as e:
        raise UserError(str(e), code="bad_input_file") from None
    n = int(rows.shape[0])
    window = max(window, MIN_WINDOW_MS)
    request = PredictionRequest(Hash32(model_id), Hash32(blob_id_of_bytes(blob)), n,
                                Amount(fee if fee is not None else min_fee(n, k)), k, mode,
                                tolerance, window, window)
    _upload(client, blob, as_json)
    tx, _ = send(client, key, RequestPrediction(request), wait=True, what="request_prediction")
    if not as_json:
        note(f"request {tx.hash.hex()}: {n} rows, k={k}, fee {request.fee}, mode {mode}")
    result: dict[str, Any] = {"request_id": tx.hash.hex(), "model_id": model_id.hex(),
                              "mode": mode, "rows": n, "fee": int(request.fee)}
    if keys is not None:
        result["secret_key_file"] = str(_secret_path(request.input_blob))
    if no_wait:
        emit({**result, "status": "sent"}, as_json, lambda: out(tx.hash.hex()))
        return
    rec = follow(client, tx.hash, timeout_ms / 1000, as_json)
    outcome = rec["outcome"] or {}
    result.update(status=rec["status"], answer=rec["answer"], refund=outcome.get("refund"),
                  paid=int(request.fee) - int(outcome.get("refund") or 0))
    if rec["status"] != "agreed":
        emit(result, as_json, lambda: out(f"no agreed answer ({rec['status']}): fee refunded"))
        raise SystemExit(1)
    result.update(answer_of(client, rec, model, keys))
    emit(result, as_json, lambda: _show(result))


def _show(result: dict[str, Any]) -> None:
    if "invalid" in result:
        out(f"the executors agreed the input cannot be answered: {result['invalid']}")
    for name in ("labels", "values", "scores"):
        for i, v in enumerate(result.get(name, [])):
            out(f"row {i + 1}: {v}")
    out(f"fee paid {result['paid']} credits (refunded {result['refund']})")


def _saved_keys(input_blob: str) -> Any:
    """The secret context ``predict --encrypted`` saved for this input, or None."""
    path = _secret_path(bytes.fromhex(input_blob))
    if not path.is_file():
        return None
    import tenseal as ts

    from client.predict.ckks import CkksKeys

    return CkksKeys(ts.context_from(path.read_bytes()))


@model.command("request")
@click.argument("request_id", type=HASH32, metavar="REQUEST")
@click.option("--wait/--no-wait", default=False, show_default=True,
              help="Follow the request until it is settled.")
@click.option("--timeout", "timeout_ms", type=DURATION, default="10m", show_default=True)
@node_option
@json_option
def model_request(request_id: bytes, wait: bool, timeout_ms: int, node_url: str,
                  as_json: bool) -> None:
    """One prediction request: its phase, executors and, once agreed, the answer
    (an encrypted one decrypted with the key predict saved in .learningchain/ckks/)."""
    client = client_for(node_url)
    with user_errors():
        rec = client.prediction(request_id)
    if wait and rec["status"] in OPEN:
        rec = follow(client, request_id, timeout_ms / 1000, as_json)
    result: dict[str, Any] = dict(rec)
    if rec["status"] == "agreed":
        keys = _saved_keys(rec["input_blob"]) if rec["mode"] == "ciphertext" else None
        if rec["mode"] != "ciphertext" or keys is not None:
            result.update(answer_of(client, rec, get_model(client, bytes.fromhex(
                rec["model_id"])), keys))

    def text() -> None:
        out(f"request {rec['request_id']}: {rec['status']} ({rec['mode']}, {rec['rows']} rows, "
            f"k={rec['k']}, fee {rec['fee']})")
        out(f"  {phase_line(rec)}")
        opened = {a["executor"]: a for a in rec["answers"]}
        for e in rec["executors"]:
            a = opened.get(e)
            state = "revealed" if a and a["output_hash"] else "committed" if a else "—"
            out(f"  executor {e}: {state}")
        if rec["outcome"]:
            o = rec["outcome"]
            out(f"  agreeing {len(o['agreeing'])}, disagreeing {len(o['disagreeing'])}, "
                f"no-shows {len(o['no_shows'])}; royalty {o['royalty']}, refund {o['refund']}")
        if rec["mode"] == "ciphertext" and rec["status"] == "agreed" and "scores" not in result:
            out("  (encrypted: no saved key here to decrypt the answer)")
        for name in ("labels", "values", "scores"):
            for i, v in enumerate(result.get(name, [])):
                out(f"row {i + 1}: {v}")

    emit(result, as_json, text)
