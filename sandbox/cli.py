"""``learningchain sandbox ...`` and ``learningchain job ...`` commands.

Both are plain click groups: the node issue adds ``job submit``/``status``
to the same ``job`` group.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from sandbox.errors import SandboxError


def _fail(e: SandboxError) -> None:
    raise click.ClickException(str(e))


def _progress(message: str) -> None:
    click.echo(message, err=True)


@click.group()
def sandbox() -> None:
    """Docker sandbox for untrusted jobs: base image, cleanup."""


@sandbox.command("base-image")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def base_image_cmd(as_json: bool) -> None:
    """Build the offline base image (Debian + Python + torch) and the job launcher
    [JOB-SECCOMP.5]; idempotent."""
    from sandbox import launcher
    from sandbox.base_image import ensure_base_image
    from sandbox.engine import connect

    try:
        launcher.folder()
        result = ensure_base_image(connect(), log=_progress)
    except SandboxError as e:
        _fail(e)
        return
    if as_json:
        click.echo(json.dumps({"tag": result.tag, "image_id": result.image_id,
                               "built": result.built, "seconds": round(result.seconds, 2)}))
    else:
        state = "built" if result.built else "already present"
        click.echo(f"{result.tag} {result.image_id} ({state})")


@sandbox.command("cleanup")
@click.option("--node", "node_id", default=None,
              help="Remove every container of this node (label learningchain.node), running "
                   "ones too: only for a node you know is not running.")
@click.option("--grace-s", type=click.FloatRange(min=0), default=None,
              help="Without --node: seconds a stopped or never-started container is left to "
                   "its node (default 120).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def cleanup_cmd(node_id: str | None, grace_s: float | None, as_json: bool) -> None:
    """Remove job containers left behind by a crash.

    Without --node: only stopped or never-started ones (no node can be using
    them); running ones are kept and listed, since their node may be alive."""
    from sandbox.cleanup import GRACE_S, sweep
    from sandbox.engine import connect

    try:
        done = sweep(connect(), node_id, grace_s=GRACE_S if grace_s is None else grace_s)
    except SandboxError as e:
        _fail(e)
        return
    if as_json:
        click.echo(json.dumps({"removed": [c.to_json() for c in done.removed],
                               "kept": [c.to_json() for c in done.kept]}))
        return
    click.echo(f"removed {len(done.removed)} job container(s)")
    for c in done.removed:
        click.echo(_shown(f"  removed {c.name} ({c.id[:12]}, {c.state}, node {c.node}, "
                          f"job {c.job})"))
    for c in done.kept:
        click.echo(_shown(f"  kept {c.name} ({c.id[:12]}, {c.state}, node {c.node}): its node "
                          f"may be running; if it crashed: learningchain sandbox cleanup "
                          f"--node {c.node}"))


def _shown(line: str) -> str:
    """A line carrying label values (anyone with the engine can set them) made inert:
    unprintable characters escaped as in JSON [TERM-INERT.1]."""
    return line if line.isprintable() else json.dumps(line)[1:-1]


@click.group()
def job() -> None:
    """Training jobs: create from the template, build offline."""


@job.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", default="digits-mlp", show_default=True, help="Job name.")
@click.option("--export", "export", type=click.Choice(["safetensors-mlp", "onnx"]),
              default="safetensors-mlp", show_default=True,
              help="The format train writes /output/model.pt in; both deploy "
                   "(job_contract.md [JOB-EXPORT.1]). onnx adds onnx and onnxruntime to the "
                   "image ([python] packages).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def init_cmd(directory: Path, name: str, export: str, as_json: bool) -> None:
    """Write a working template job (PyTorch, UCI digits) into DIRECTORY."""
    from sandbox.job_template import init_job

    try:
        split = init_job(directory, name, export)
    except SandboxError as e:
        _fail(e)
        return
    if as_json:
        click.echo(json.dumps({"dir": str(directory), "train": split.train,
                               "valid": split.valid, "test": split.test}))
    else:
        click.echo(f"wrote job {name!r} to {directory}: {split.train} training, "
                   f"{split.valid} validation, {split.test} held-out test rows")
        click.echo(f"next: learningchain job build {directory}")


@job.command("build")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--blob", "blob_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Also export the image to this file (docker save).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def build_cmd(directory: Path, blob_path: Path | None, as_json: bool) -> None:
    """Build DIRECTORY's image offline (--network none) and print its digest."""
    from sandbox.engine import BULK_TIMEOUT_S, connect
    from sandbox.image_blob import export_image
    from sandbox.job_template import build_job

    try:
        client = connect(BULK_TIMEOUT_S)
        built = build_job(client, directory, log=_progress)
        blob = export_image(client, built.image_id, blob_path) if blob_path else None
    except SandboxError as e:
        _fail(e)
        return
    if as_json:
        out: dict[str, object] = {"image_id": built.image_id, "tag": built.tag}
        if blob is not None:
            out.update(blob=str(blob.path), blob_id=blob.blob_id.hex(), blob_size=blob.size)
        click.echo(json.dumps(out))
    else:
        click.echo(built.image_id)
