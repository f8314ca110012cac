"""``learningchain model list|show|deploy``: deployed models through a node's API
[API-PREDICT.1-2] and the ``deploy_model`` transaction [PRED-DEPLOY.1].

``deploy`` names the paid winner's model hash as the node reports it
(``winner_model_hash``), so the submitter states which model it deploys and the ledger
checks it is the one the voters verified; the input and output schema are the
submitter's to state, and the command loads the model file with the host's checked loader
against them before sending, as executors will [JOB-EXPORT.3].
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import click

from chain.local_file import LocalFileError, read_local_file
from chain.predict.bodies import DeployModel
from chain.predict.model import DTYPES, InputSchema, OutputSchema
from chain.predict.params import MAX_ROYALTY_PERMILLE
from chain.types import Hash32
from client.api.http_client import ApiClient
from client.cli.common import (
    HASH32,
    UserError,
    client_for,
    emit,
    json_option,
    key_option,
    load_key,
    node_option,
    out,
    passphrase_option,
    send,
    short,
    table,
    user_errors,
    wait_option,
)
from sandbox.deployable import check_model, detect_format
from sandbox.model_accepts import Accepts, model_accepts
from sandbox.model_format import MAX_MODEL_BYTES, ModelFormatError
from sandbox.onnx_check import MAX_ONNX_BYTES

DEPLOYED_NAME = "model.pt"
"""[JOB-EXPORT.1] The one file of a job's output that deploys: /output/model.pt."""
MAX_DEPLOYABLE_BYTES = max(MAX_MODEL_BYTES, MAX_ONNX_BYTES)
"""[NODE-READ.1] The most of a model file a command reads: the largest deploy format's
bound (each format's own is checked after, on the bytes read)."""


@click.group("model")
def model() -> None:
    """Deployed models: list, show, deploy a paid job's winning model."""


def schema_text(m: dict[str, Any]) -> str:
    o = m["output"]
    shape = f"{m['input']['features']} × {m['input']['dtype']}"
    if o["kind"] == "classes":
        return f"{shape} → classes ({len(o['labels'])}: {', '.join(o['labels'][:6])}" \
               f"{', …' if len(o['labels']) > 6 else ''})"
    return f"{shape} → regression ({o['outputs']} outputs, × 10^{o['scale_exp']})"


def serving_text(m: dict[str, Any], full: bool = False) -> str:
    """[PRED-UNLOADABLE.3] ``serving``, or the request whose agreed answer closed the model."""
    by = m.get("unservable_by")
    if not by:
        return "serving"
    return f"unservable (request {by if full else by[:16]} agreed it does not load)"


def accepts_text(m: dict[str, Any]) -> str:
    """[PRED-ACCEPTS.1] ``values, ciphertext · csv or npy rows · encrypted: yes``."""
    a = m["accepts"]
    enc = {True: "yes", False: "no", None: "unknown"}[a["encrypted"]]
    return f"{', '.join(a['modes'])} · {' or '.join(a['input_files'])} rows · encrypted: {enc}"


def encrypted_support(client: ApiClient, m: dict[str, Any]) -> Accepts:
    """[PRED-ACCEPTS.1] Whether the model answers encrypted rows, decided here from its
    public file (fetched, bounded, parsed; nothing in it runs), whatever the node says: the
    answer decides whether a fee is spent on an answer that says nothing."""
    schema = InputSchema(m["input"]["dtype"], int(m["input"]["features"]))
    o = m["output"]
    output = OutputSchema(o["kind"], tuple(o["labels"]), int(o["outputs"]),
                          int(o["scale_exp"]))
    first = model_accepts(m["format"], schema, output, None)
    if first.encrypted is not None:
        return first
    with tempfile.TemporaryDirectory(prefix="lc-model-") as tmp:
        path = Path(tmp) / "model"
        with user_errors("cannot fetch the model file to check it answers encrypted rows: "):
            client.download_blob(m["model_hash"], path, max_bytes=MAX_MODEL_BYTES)
        return model_accepts(m["format"], schema, output, path.read_bytes())


def get_model(client: ApiClient, model_id: bytes) -> dict[str, Any]:
    with user_errors():
        return client.model(model_id)


@model.command("list")
@node_option
@json_option
def model_list(node_url: str, as_json: bool) -> None:
    """Every deployed model with its schema, owner, royalty and requests."""
    client = client_for(node_url)
    with user_errors():
        doc = client.models()

    def text() -> None:
        if not doc["models"]:
            out("no deployed models (learningchain model deploy JOB)")
            return
        table(["MODEL", "SCHEMA", "ACCEPTS", "OWNER", "ROYALTY", "REQUESTS", "OPEN", "AGREED",
               "STATUS"],
              [[m["job_id"][:16], schema_text(m), accepts_text(m), short(m["owner"]),
                f"{m['royalty_permille'] / 10:g}%", m["requests"]["total"],
                m["requests"]["open"], m["requests"]["agreed"], serving_text(m)]
               for m in doc["models"]],
              right=(5, 6, 7))

    emit(doc, as_json, text)


@model.command("show")
@click.argument("model_id", type=HASH32, metavar="MODEL")
@node_option
@json_option
def model_show(model_id: bytes, node_url: str, as_json: bool) -> None:
    """One model and its latest requests (MODEL: its job id)."""
    m = get_model(client_for(node_url), model_id)

    def text() -> None:
        out(f"model {m['job_id']}")
        out(f"  model hash  {m['model_hash']} ({m['format']})")
        out(f"  schema      {schema_text(m)}")
        out(f"  accepts     {accepts_text(m)}")
        out(f"              {m['accepts']['encrypted_why']}")
        out(f"  owner       {m['owner']}, royalty {m['royalty_permille']}‰")
        out(f"  status      {serving_text(m, full=True)}")
        counts = m["requests"]
        out(f"  requests    {counts['total']} ({counts['open']} open, {counts['agreed']} "
            f"agreed, {counts['no_majority']} without majority, {counts['unserved']} "
            f"unserved)")
        if m["predictions"]:
            table(["REQUEST", "STATUS", "MODE", "ROWS", "K", "FEE", "HEIGHT"],
                  [[p["request_id"][:16], p["status"], p["mode"], p["rows"], p["k"], p["fee"],
                    p["included_height"]] for p in m["predictions"]], right=(3, 4, 5, 6))

    emit(m, as_json, text)


def output_schema(labels: str | None, outputs: int | None, scale_exp: int) -> OutputSchema:
    if (labels is None) == (outputs is None):
        raise click.UsageError("give --labels (a classifier) or --outputs (a regression)")
    try:
        if labels is not None:
            return OutputSchema("classes", tuple(x.strip() for x in labels.split(",")))
        return OutputSchema("regression", (), int(outputs or 0), scale_exp)
    except ValueError as e:
        raise click.UsageError(f"bad output schema: {e}") from None


def check_file(data: bytes, schema: InputSchema, output: OutputSchema) -> str:
    """[JOB-EXPORT.1-7] The deploy format of a model file that passes its format's host
    check against the schema (a parse: nothing in the file runs here), else
    ``ModelFormatError`` naming the deployable formats."""
    fmt = detect_format(data)
    check_model(data, fmt, schema, output)
    return fmt


def read_model_file(path: Path) -> bytes:
    """[NODE-READ.1] A model file's bytes, read as every file a command reads for its user:
    a regular file only (a FIFO, ``/dev/zero`` or a directory is refused naming its type, and
    never blocks), at most ``MAX_DEPLOYABLE_BYTES``, whatever ``stat`` says; each format's
    own bound is checked after. A file over the bound is ``ModelFormatError`` ``size``."""
    try:
        return read_local_file(path, MAX_DEPLOYABLE_BYTES, what="model file")
    except LocalFileError as e:
        if e.code == "file_too_large":
            raise ModelFormatError("size", f"model file over {MAX_DEPLOYABLE_BYTES} bytes",
                                   e.read) from None
        raise


def check_model_file(client: ApiClient, model_hash: str, schema: InputSchema,
                     output: OutputSchema) -> str:
    """[JOB-EXPORT.1-7] The winner's model file, checked here as executors will check it
    against the schema about to be deployed; returns its deploy format. A file that does not
    fit would make every request to it fail in their sandboxes, so a mismatch (or a pickle)
    is refused before anything is sent, naming the formats that are deployable."""
    with tempfile.TemporaryDirectory(prefix="lc-deploy-") as tmp:
        path = Path(tmp) / "model"
        with user_errors("cannot fetch the winner's model to check it: "):
            client.download_blob(model_hash, path, max_bytes=MAX_DEPLOYABLE_BYTES)
        try:
            return check_file(read_model_file(path), schema, output)
        except ModelFormatError as e:
            raise UserError(f"the winner's model {model_hash[:16]}… does not fit the schema "
                            f"{schema.features} × {schema.dtype} → {output.kind}: {e}",
                            code="model_mismatch") from None


@model.command("deploy")
@click.argument("job_id", type=HASH32, metavar="JOB")
@click.option("--features", type=click.IntRange(1), required=True,
              help="Numbers per input row.")
@click.option("--dtype", type=click.Choice(DTYPES), default="float32", show_default=True)
@click.option("--labels", help="A classifier's labels, comma-separated, in output order.")
@click.option("--outputs", type=click.IntRange(1), help="A regression's outputs per row.")
@click.option("--scale-exp", type=click.IntRange(0, 18), default=0, show_default=True,
              help="A regression's outputs are answered as round(y × 10^scale_exp).")
@click.option("--royalty", "royalty", type=click.IntRange(0, MAX_ROYALTY_PERMILLE), default=0,
              show_default=True, help="Your share of every agreed request's fee, permille.")
@key_option(help="The job's submitter key.")
@passphrase_option
@wait_option()
@node_option
@json_option
def model_deploy(job_id: bytes, features: int, dtype: str, labels: str | None,
                 outputs: int | None, scale_exp: int, royalty: int, key_path: Any,
                 passphrase_file: Any, wait: bool, node_url: str, as_json: bool) -> None:
    """Make a paid job's winning model answer prediction requests [PRED-DEPLOY.1]."""
    output = output_schema(labels, outputs, scale_exp)
    client = client_for(node_url)
    with user_errors():
        job = client.job(job_id)
    model_hash = job.get("winner_model_hash")
    if job["status"] != "paid" or not isinstance(model_hash, str):
        raise UserError(f"job {job_id.hex()[:16]} is {job['status']}: only a paid job's "
                        "winning model can be deployed", code="job_not_paid")
    schema = InputSchema(dtype, features)
    fmt = check_model_file(client, model_hash, schema, output)
    key = load_key(key_path, passphrase_file)
    body = DeployModel(Hash32(job_id), Hash32(bytes.fromhex(model_hash)), fmt,
                       schema, output, royalty)
    tx, _ = send(client, key, body, wait=wait, what="deploy_model")
    result = {"model_id": job_id.hex(), "model_hash": model_hash, "format": fmt,
              "tx": tx.hash.hex(), "committed": wait}

    def text() -> None:
        out(f"model {job_id.hex()} {'deployed' if wait else 'sent'} ({fmt}, model hash "
            f"{model_hash[:16]}…, royalty {royalty}‰)")
        out(f"ask it: learningchain predict {job_id.hex()} --input ROWS.csv")

    emit(result, as_json, text)


@model.command("check")
@click.argument("model_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                metavar="FILE")
@click.option("--features", type=click.IntRange(1), required=True,
              help="Numbers per input row.")
@click.option("--dtype", type=click.Choice(DTYPES), default="float32", show_default=True)
@click.option("--labels", help="A classifier's labels, comma-separated, in output order.")
@click.option("--outputs", type=click.IntRange(1), help="A regression's outputs per row.")
@click.option("--scale-exp", type=click.IntRange(0, 18), default=0, show_default=True)
@json_option
def model_check(model_file: Path, features: int, dtype: str, labels: str | None,
                outputs: int | None, scale_exp: int, as_json: bool) -> None:
    """Would FILE (a job's /output/model.pt from a local run) deploy with this schema?
    Checked here as deploy and every executor check it [JOB-EXPORT.1-7], before any job is
    posted or paid; nothing in the file runs. FILE is read as [NODE-READ.1] says: a regular
    file only, to a bound."""
    output = output_schema(labels, outputs, scale_exp)
    schema = InputSchema(dtype, features)
    try:
        data = read_model_file(model_file)
        fmt = check_file(data, schema, output)
    except LocalFileError as e:
        raise UserError(str(e), code=e.code) from None
    except ModelFormatError as e:
        raise UserError(f"{model_file}: not deployable with the schema {features} × {dtype} "
                        f"→ {output.kind}: {e}", code="model_mismatch") from None
    size = len(data)
    note = None
    if model_file.name != DEPLOYED_NAME:  # [JOB-EXPORT.1] only this name is ever deployed
        note = (f"{model_file.name} is checked as if it were the job's /output/"
                f"{DEPLOYED_NAME}: it deploys only as /output/{DEPLOYED_NAME}, so train "
                f"must write these bytes there")
    result = {"file": str(model_file), "format": fmt, "deployable": True, "bytes": size,
              "deployed_path": f"/output/{DEPLOYED_NAME}", "note": note}

    def text() -> None:
        out(f"{model_file}: deployable as {fmt} ({size} bytes)")
        if note:
            out(f"note: {note}")

    emit(result, as_json, text)
