"""A train/v3 submitter's duties, shared by ``job submit``, ``job holdout`` and ``job watch``.

The ledger gives the submitter of a train/v3 job two duties (ledger.md §5b): name
the public part of its pool after the split is drawn and before expiry
[HOLDOUT-PUBLISH.1], and name the hidden part in the reveal window after expiry
[HOLDOUT-REVEAL.1]. Failing either burns the deposit [HOLDOUT-FORFEIT.1]. Both
parts are packed from the pool secret that ``job submit`` saved under the job
folder (``secret_path``) and the pool's sample files [HOLDOUT-BLOB.3]; what the
node already holds is not uploaded again. Every refusal says what is wrong and,
for a wrong phase, the times that matter.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from chain.crypto import PrivateKey, address_to_text
from chain.jobspec import DataRef, Holdout
from chain.train.holdout.bodies import HoldoutPublish, HoldoutReveal
from chain.types import Amount, Hash32
from client.api.http_client import ApiClient, ApiError
from client.cli.common import UserError, iso_time, send, user_errors, when
from sandbox.errors import SandboxError
from sandbox.holdout_pool import PoolSecret, load_pool_secret
from sandbox.job_file import JOB_FILE, load_job_file

SECRET_DIR = Path(".learningchain") / "holdout"
"""Where, under the job folder, ``job submit`` keeps each pool secret (``<root hex>.json``)."""
SPLIT_WAIT_S = 120.0
"""How long ``job submit`` waits for the split seed (two blocks after the post)."""
KEEP_SECRET = ("keep it and never share it: it reveals the hidden part, and without it the "
               "hidden part cannot be revealed (the deposit burns) [HOLDOUT-BLOB.2]")

Json = dict[str, Any]


def secret_path(job_dir: Path, root: bytes) -> Path:
    """The pool secret of the pool with this root, under ``job_dir``."""
    return job_dir / SECRET_DIR / f"{bytes(root).hex()}.json"


@dataclass(frozen=True, slots=True)
class Duty:
    """What a duty did: the part named, whether it was uploaded, the transaction's block."""

    part: str
    ref: DataRef
    uploaded: bool
    tx_hash: str
    height: int | None

    def json(self) -> Json:
        return {"part": self.part, "blob": self.ref.blob.hex(), "size": self.ref.size,
                "uploaded": self.uploaded, "tx": self.tx_hash, "height": self.height}


def holdout_of(j: Json) -> Json:
    """The job's ``holdout`` JSON, or a clear refusal for a job of another kind."""
    h = j.get("holdout")
    if not isinstance(h, dict):
        raise UserError(f"job {j['job_id']} is {j['spec']['kind']}, not a train/v3 job with a "
                        "hidden test set", code="not_holdout_job")
    return h


def find_secret(job_dir: Path, j: Json) -> tuple[PoolSecret, Path]:
    """The job's pool secret (by its root) and the pool folder its samples are read from."""
    root = bytes.fromhex(holdout_of(j)["terms"]["root"])
    path = secret_path(job_dir, root)
    if not path.exists():
        raise UserError(f"no pool secret for root {root.hex()} under {job_dir}: looked for "
                        f"{path} (run this in the job folder that submitted job {j['job_id']},"
                        " or pass --job-dir)", code="no_secret")
    try:
        secret = load_pool_secret(path)
        job_file = load_job_file(job_dir)
        if job_file.holdout is None:
            raise UserError(f"{job_dir / JOB_FILE} has no [holdout] table: its pool folder "
                            "is unknown", code="no_pool")
        pool_dir = job_file.holdout.pool_path(job_dir)
    except (SandboxError, ValueError) as e:
        raise UserError(str(e), code="bad_secret") from None
    if secret.root != root:
        raise UserError(f"{path} holds root {secret.root.hex()}, the job commits to "
                        f"{root.hex()}", code="bad_secret")
    return secret, pool_dir


def check_submitter(key: PrivateKey, j: Json) -> None:
    """Only the job's submitter can publish or reveal its parts (``not_submitter``)."""
    mine = address_to_text(key.address)
    if mine != j["submitter"]:
        raise UserError(f"{mine} is not the submitter of job {j['job_id']} (the submitter is "
                        f"{j['submitter']})", code="not_submitter")


def publish_problem(j: Json, now: int) -> str:
    """Why the public part cannot be published now, or ``""`` [HOLDOUT-PUBLISH.1]."""
    h = holdout_of(j)
    expiry = int(j["spec"]["expiry_ms"])
    if h["public"] is not None:
        return f"the public part is already published (blob {h['public']['blob']})"
    if j["status"] != "open" or now >= expiry:
        return (f"the public part is published before expiry; claims closed "
                f"{iso_time(expiry)} ({when(expiry, now)}), the job is {j['status']}")
    if h["seed"] is None:
        return (f"the split is not drawn yet: it is drawn in block {h['split_height']} "
                "[HOLDOUT-SPLIT.1]")
    return ""


def reveal_problem(j: Json, now: int) -> str:
    """Why the hidden part cannot be revealed now, or ``""`` [HOLDOUT-REVEAL.1]."""
    h = holdout_of(j)
    expiry = int(j["spec"]["expiry_ms"])
    if h["hidden"] is not None:
        return f"the hidden part is already revealed (blob {h['hidden']['blob']})"
    if j["status"] == "open":
        window = int(h["terms"]["reveal_window_ms"])
        return (f"too early: the hidden part is revealed after expiry, from "
                f"{iso_time(expiry)} ({when(expiry, now)}) until the reveal window of "
                f"{window // 1000} s closes")
    if j["status"] != "holdout":
        return (f"the reveal window is over: the job is {j['status']} (holdout "
                f"{h['status']}); the hidden part is revealed while the job is in status "
                "holdout")
    deadline = h["reveal_deadline_ms"]
    if deadline is not None and now >= int(deadline):
        return f"the reveal window closed {iso_time(deadline)} ({when(deadline, now)})"
    return ""


def _upload_part(client: ApiClient, path: Path, ref: DataRef, label: str, quiet: bool) -> bool:
    """Upload a packed part unless the node has it [JOB-DATA.4]; whether it was uploaded."""
    with user_errors():
        if client.has_blob(ref.blob):
            return False
    bar: Any = click.progressbar(length=max(ref.size, 1), label=label, hidden=quiet,
                                 file=sys.stderr)
    with bar:
        last = [0]

        def progress(done: int, _total: int) -> None:
            bar.update(done - last[0])
            last[0] = done

        with user_errors("upload failed: "):
            info = client.upload_blob(path, progress)
    if info["blob"] != ref.blob.hex():
        raise UserError(f"the node stored blob {info['blob']} for the {label}, expected "
                        f"{ref.blob.hex()} (corrupted upload?)")
    return True


def _name_part(client: ApiClient, key: PrivateKey, j: Json, secret: PoolSecret,
               pool_dir: Path, part: str, quiet: bool, wait: bool) -> Duty:
    """Pack ``part`` from the secret and the samples, upload it, and send its transaction."""
    h = holdout_of(j)
    seed = bytes.fromhex(h["seed"])
    permille = int(h["terms"]["public_permille"])
    from sandbox.holdout_blob import pack_part

    with tempfile.TemporaryDirectory(prefix="lc-holdout-") as tmp:
        dest = Path(tmp) / f"{part}.tar"
        try:
            packed = pack_part(secret, pool_dir, seed, permille, part, dest)
        except (SandboxError, OSError, ValueError) as e:
            raise UserError(f"cannot pack the {part} part: {e}", code="bad_pool") from None
        ref = DataRef(Hash32(packed.blob_id), packed.size)
        uploaded = _upload_part(client, dest, ref, f"uploading the {part} part", quiet)
    job_id = Hash32(bytes.fromhex(j["job_id"]))
    body = HoldoutPublish(job_id, ref) if part == "public" else HoldoutReveal(job_id, ref)
    tx, info = send(client, key, body, wait=wait, what=f"holdout_{part}")
    return Duty(part, ref, uploaded, tx.hash.hex(), info["height"] if info else None)


def publish(client: ApiClient, key: PrivateKey, j: Json, job_dir: Path, now: int, *,
            quiet: bool = False, wait: bool = True) -> Duty:
    """[HOLDOUT-PUBLISH.1] Name the public part, refusing clearly what the ledger would."""
    check_submitter(key, j)
    secret, pool_dir = find_secret(job_dir, j)
    problem = publish_problem(j, now)
    if problem:
        raise UserError(f"cannot publish the public part of job {j['job_id']}: {problem}",
                        code="wrong_phase")
    return _name_part(client, key, j, secret, pool_dir, "public", quiet, wait)


def reveal(client: ApiClient, key: PrivateKey, j: Json, job_dir: Path, now: int, *,
           quiet: bool = False, wait: bool = True) -> Duty:
    """[HOLDOUT-REVEAL.1] Name the hidden part in the reveal window."""
    check_submitter(key, j)
    secret, pool_dir = find_secret(job_dir, j)
    problem = reveal_problem(j, now)
    if problem:
        raise UserError(f"cannot reveal the hidden part of job {j['job_id']}: {problem}",
                        code="wrong_phase")
    return _name_part(client, key, j, secret, pool_dir, "hidden", quiet, wait)


def get_job_json(client: ApiClient, job_id: str) -> Json:
    with user_errors():
        j: Json = client.job(job_id)
    return j


def wait_for_split(client: ApiClient, job_id: str, timeout_s: float = SPLIT_WAIT_S) -> Json:
    """The job's JSON once its split seed is drawn (block ``posted_height + 2``)."""
    deadline = time.monotonic() + timeout_s
    while True:
        j = get_job_json(client, job_id)
        h = holdout_of(j)
        if h["seed"] is not None:
            return j
        left = deadline - time.monotonic()
        if left <= 0:
            raise UserError(f"the split of job {job_id} was not drawn within {timeout_s:.0f} s "
                            f"(it is drawn in block {h['split_height']}); publish later with: "
                            f"learningchain job holdout publish {job_id}", code="timeout")
        try:
            with user_errors():
                height = int(client.status()["height"])
            client.wait(height + 1, timeout=min(left, 10.0))
        except ApiError:
            time.sleep(0.5)


def next_steps(j: Json, now: int) -> list[str]:
    """What the submitter must do after publishing: reveal within the window after expiry."""
    h = holdout_of(j)
    expiry = int(j["spec"]["expiry_ms"])
    window = int(h["terms"]["reveal_window_ms"])
    return [f"claims close {iso_time(expiry)} ({when(expiry, now)}); then the hidden part "
            f"({h['hidden_count']} samples) must be revealed within {window // 1000} s, by "
            f"{iso_time(expiry + window)}, or the deposit of {h['terms']['deposit']} burns",
            f"reveal with: learningchain job holdout reveal {j['job_id']}",
            f"or keep running: learningchain job watch {j['job_id']} --key KEY "
            "(it reveals by itself)"]


# --- job submit ------------------------------------------------------------------------------

def commit_pool(job_dir: Path, config: Any) -> tuple[PoolSecret, Holdout]:
    """[HOLDOUT-BLOB.1] Commit to the ``[holdout]`` pool with fresh salts; the chain's terms."""
    from sandbox.holdout_pool import make_pool

    try:
        secret = make_pool(config.pool_path(job_dir))
        t = config.terms(secret.root, secret.pool)
    except (SandboxError, ValueError, OSError) as e:
        raise UserError(f"{job_dir / JOB_FILE}: [holdout]: {e}", code="bad_pool") from None
    return secret, Holdout(Hash32(t.root), t.pool, t.public_permille, t.finalists,
                           Amount(t.deposit), t.reveal_window_ms, t.tie_tolerance)


def keep_secret(job_dir: Path, secret: PoolSecret) -> Path:
    """[HOLDOUT-BLOB.2] Save the pool secret (mode 0600, never over another) before the post."""
    from sandbox.holdout_pool import save_pool_secret

    try:
        return save_pool_secret(secret, secret_path(job_dir, secret.root))
    except (SandboxError, OSError) as e:
        raise UserError(f"cannot save the pool secret: {e}", code="os_error") from None


def publish_after_post(client: ApiClient, key: PrivateKey, job_id: str, job_dir: Path,
                       quiet: bool) -> tuple[Json, list[str]]:
    """After ``job submit`` posted a train/v3 job: wait for the split, publish the public part
    [HOLDOUT-PUBLISH.1]; the JSON of what was done and the lines saying what comes next."""
    try:
        j = wait_for_split(client, job_id)
        with user_errors():
            now = int(client.status()["time_ms"])
        duty = publish(client, key, j, job_dir, now, quiet=quiet)
    except UserError as e:
        raise UserError(f"job {job_id} is posted but its public part is not published: "
                        f"{e.raw_message}; publish before claims close with: learningchain job "
                        f"holdout publish {job_id} --job-dir {job_dir}", code=e.code) from None
    j = get_job_json(client, job_id)
    h = holdout_of(j)
    lines = [f"split drawn in block {h['split_height']} (seed {h['seed'][:16]}…): "
             f"{h['public_count']} public, {h['hidden_count']} hidden samples",
             f"public part: blob {duty.ref.blob.hex()} ({duty.ref.size} bytes, "
             f"{'uploaded' if duty.uploaded else 'already on the node'}), published in block "
             f"{duty.height}", *next_steps(j, now)]
    expiry = int(j["spec"]["expiry_ms"])
    return ({**duty.json(), "seed": h["seed"], "public_count": h["public_count"],
             "hidden_count": h["hidden_count"],
             "reveal_by_ms": expiry + int(h["terms"]["reveal_window_ms"])}, lines)


# --- job watch ---------------------------------------------------------------------------------

class WatchDuties:
    """``job watch --key``: the submitter's duties done as the job reaches them.

    Publishes once the split is drawn and nothing is published; reveals once the job is
    in status holdout. Without the pool secret (or for another member's job) it only
    says why once and watches."""

    def __init__(self, key: PrivateKey, job_dir: Path) -> None:
        self.key = key
        self.job_dir = job_dir
        self.idle_reason: str | None = None
        self._failed: set[str] = set()

    def idle(self, j: Json) -> str:
        """Why this watch cannot do the duties of this job ("" when it can)."""
        if j.get("holdout") is None:
            return "not a train/v3 job: nothing to publish or reveal"
        try:
            check_submitter(self.key, j)
            find_secret(self.job_dir, j)
        except UserError as e:
            return f"{e.raw_message}; only watching"
        return ""

    def step(self, client: ApiClient, j: Json, now: int) -> list[Json]:
        """Events of what was done (or failed) for ``j`` as it is now."""
        if self.idle_reason is None:
            self.idle_reason = self.idle(j)
            if self.idle_reason:
                return [{"event": "duties", "active": False, "reason": self.idle_reason}]
        if self.idle_reason:
            return []
        h = holdout_of(j)
        part = ("public" if h["public"] is None and h["seed"] is not None
                and j["status"] == "open" and now < int(j["spec"]["expiry_ms"])
                else "hidden" if h["hidden"] is None and not reveal_problem(j, now) else None)
        if part is None:
            return []
        try:
            duty = (publish if part == "public" else reveal)(client, self.key, j, self.job_dir,
                                                             now, quiet=True)
        except UserError as e:
            if e.raw_message in self._failed:
                return []
            self._failed.add(e.raw_message)
            return [{"event": "duty_failed", "part": part, "reason": e.raw_message}]
        return [{"event": "duty", **duty.json()}]
