"""``learningchain job holdout publish|reveal JOB``: a train/v3 submitter's duties by hand.

``job submit`` publishes the public part itself once the split is drawn, and
``job watch JOB --key KEY`` does both duties while it runs; these commands are for
a submit that was interrupted before publishing, and for revealing the hidden
part in the window after expiry without a watch running (ledger.md §5b). Both
find the pool secret by the job's root under ``--job-dir`` (the job folder that
was submitted; default: the current folder) and sign with ``--key``.
"""

from __future__ import annotations

from pathlib import Path

import click

from client.cli.common import (
    HASH32,
    client_for,
    emit,
    json_option,
    key_option,
    load_key,
    node_option,
    out,
    passphrase_option,
    user_errors,
    wait_option,
)
from client.cli.job import holdout_duties
from sandbox.cli import job

job_dir_option = click.option(
    "--job-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=".",
    show_default=True, help="The job folder that was submitted (holds job.toml, the pool and "
                            f"{holdout_duties.SECRET_DIR}/).")


@job.group("holdout")
def holdout() -> None:
    """A train/v3 job's hidden test set: publish the public part, reveal the hidden part."""


def _run(part: str, job_id: bytes, job_dir: Path, key_path: Path,
         passphrase_file: Path | None, node_url: str, wait: bool, as_json: bool) -> None:
    client = client_for(node_url)
    j = holdout_duties.get_job_json(client, job_id.hex())
    holdout_duties.holdout_of(j)
    key = load_key(key_path, passphrase_file)
    with user_errors():
        now = int(client.status()["time_ms"])
    duty = (holdout_duties.publish if part == "public" else holdout_duties.reveal)(
        client, key, j, job_dir, now, quiet=as_json, wait=wait)

    def text() -> None:
        verb = "published" if part == "public" else "revealed"
        where = f"in block {duty.height}" if duty.height is not None else "(pending)"
        out(f"{part} part of job {job_id.hex()} {verb} {where}: blob {duty.ref.blob.hex()} "
            f"({duty.ref.size} bytes, {'uploaded' if duty.uploaded else 'already on the node'})")
        if part == "public":
            for line in holdout_duties.next_steps(j, now):
                out(line)
        else:
            out("voters now check it against the pool's root and judge the finalists on it; "
                f"follow with: learningchain job watch {job_id.hex()}")

    emit({"job_id": job_id.hex(), **duty.json()}, as_json, text)


@holdout.command("publish")
@click.argument("job_id", type=HASH32)
@job_dir_option
@key_option(help="The submitter's key file.")
@passphrase_option
@node_option
@wait_option("the holdout_publish")
@json_option
def holdout_publish(job_id: bytes, job_dir: Path, key_path: Path, passphrase_file: Path | None,
                    node_url: str, wait: bool, as_json: bool) -> None:
    """Publish the public part of JOB_ID's pool (after the split, before expiry)."""
    _run("public", job_id, job_dir, key_path, passphrase_file, node_url, wait, as_json)


@holdout.command("reveal")
@click.argument("job_id", type=HASH32)
@job_dir_option
@key_option(help="The submitter's key file.")
@passphrase_option
@node_option
@wait_option("the holdout_reveal")
@json_option
def holdout_reveal(job_id: bytes, job_dir: Path, key_path: Path, passphrase_file: Path | None,
                   node_url: str, wait: bool, as_json: bool) -> None:
    """Reveal the hidden part of JOB_ID's pool (in the reveal window after expiry)."""
    _run("hidden", job_id, job_dir, key_path, passphrase_file, node_url, wait, as_json)
