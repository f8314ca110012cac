"""Private mode's round on the ledger [TX-FED.8] [TX-FED.9] [TX-FED.10] [FED-PRIV.10].

A private round has two more windows than an open one: ``commit`` (each participant
commits to and publishes its round keys) -> ``shares`` (each keyed participant names its
share blob) -> ``reveal`` (the mask set reveals masked updates) -> ``unmask`` (each
survivor names its unmask blob) -> ``aggregate`` as in an open round. The ``fed_priv``
table holds the running round's keys and blob ids; the ledger checks who, when, once and
sizes, and never reads a blob (members recompute the aggregate [FED-PRIV.9] and vote).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from chain.context import TxContext
from chain.crypto import address_to_text
from chain.errors import InvalidTransaction
from chain.federated.errors import FederatedError
from chain.federated.open.records import FedJob, FedPhase
from chain.federated.private.bodies import FedKeys, FedShares, FedUnmask, keys_commitment
from chain.federated.private.records import FedPrivate
from chain.federated.private.seeds import check_public_key, share_blob_size, unmask_blob_size
from chain.federated.spec import PRIVATE, FederatedSpec
from chain.records import Job
from chain.state import Overlay
from chain.types import Address, Hash32, TimeMs


def _reject(code: str, message: str) -> InvalidTransaction:
    return InvalidTransaction(code, message)


def private_record(view: Overlay, fed: FedJob) -> FedPrivate:
    """[FED-PRIV.10] The running round's record (empty when none or an earlier round's)."""
    rec: FedPrivate | None = view.get("fed_priv", fed.job_id)
    return rec if rec is not None and rec.round == fed.round else FedPrivate(fed.round)


def is_private(job: Job) -> bool:
    return job.spec.federated is not None and job.spec.federated.privacy == PRIVATE


def _require(view: Overlay, job_id: Hash32, round: int, phase: FedPhase, now: TimeMs,
             window_code: str) -> tuple[Job, FedJob, FederatedSpec]:
    """unknown_job, not_federated, not_private, wrong_round, the phase's window."""
    job = view.job(job_id)
    if job is None:
        raise _reject("unknown_job", f"no job {job_id.hex()}")
    fed: FedJob | None = view.get("fed_job", job_id)
    if fed is None or job.spec.federated is None:
        raise _reject("not_federated", f"job {job_id.hex()} is {job.spec.kind}, not "
                                       "federated/v1")
    if not is_private(job):
        raise _reject("not_private", "the job's updates are open: no keys, shares or unmask")
    if round != fed.round:
        raise _reject("wrong_round", f"the job is in round {fed.round}, not {round}")
    if fed.phase != phase or now >= fed.deadline_ms:
        raise _reject(window_code, f"the job is in its {fed.phase} phase (round {fed.round})")
    return job, fed, job.spec.federated


def _insert(rows: tuple[Any, ...], row: Any) -> tuple[Any, ...]:
    return tuple(sorted((*rows, row), key=lambda r: r[0]))


def apply_fed_keys(view: Overlay, sender: Address, body: FedKeys, ctx: TxContext) -> None:
    """[TX-FED.8] A committed participant publishes its round keys in the commit window;
    they open its commitment [FED-PRIV.6]."""
    _, fed, _ = _require(view, body.job_id, body.round, FedPhase.COMMIT, ctx.time_ms,
                         "not_in_commit_window")
    mine = fed.update_of(sender)
    if mine is None:
        raise _reject("no_commitment", f"{address_to_text(sender)} committed nothing")
    rec = private_record(view, fed)
    if sender in rec.keyed():
        raise _reject("already_keyed", "this participant already published its keys")
    try:
        check_public_key(body.mask_key, "mask_key")
        check_public_key(body.enc_key, "enc_key")
    except FederatedError as e:
        raise _reject("bad_key", str(e)) from e
    if body.mask_key == body.enc_key:
        raise _reject("bad_key", "the mask key and the encryption key are two keys")
    if keys_commitment(fed.job_id, fed.round, sender, body.mask_key,
                       body.enc_key) != mine.commitment:
        raise _reject("commitment_mismatch", "the keys do not open the commitment")
    view.put("fed_priv", fed.job_id, replace(
        rec, keys=_insert(rec.keys, (sender, body.mask_key, body.enc_key))))


def apply_fed_shares(view: Overlay, sender: Address, body: FedShares, ctx: TxContext) -> None:
    """[TX-FED.9] A keyed participant names its share blob in the shares window; the
    participants that do form the round's mask set."""
    _, fed, _ = _require(view, body.job_id, body.round, FedPhase.SHARES, ctx.time_ms,
                         "not_in_shares_window")
    rec = private_record(view, fed)
    if sender not in rec.keyed():
        raise _reject("not_keyed", f"{address_to_text(sender)} published no round keys")
    if sender in rec.mask_set():
        raise _reject("already_shared", "this participant already named its share blob")
    size = share_blob_size(len(rec.keys))
    if body.size != size:
        raise _reject("wrong_size", f"a share blob of this round is {size} bytes")
    view.put("fed_priv", fed.job_id, replace(
        rec, shares=_insert(rec.shares, (sender, body.blob, body.size))))


def check_private_reveal(view: Overlay, fed: FedJob, sender: Address) -> None:
    """[TX-FED.3] In private mode a reveal comes from the mask set (``not_in_mask_set``)
    and opens no commitment: its masked blob [FED-PRIV.1] could not be committed before
    the mask set was known (the commitment bound the keys [TX-FED.8])."""
    if sender not in private_record(view, fed).mask_set():
        raise _reject("not_in_mask_set", f"{address_to_text(sender)} named no share blob")


def apply_fed_unmask(view: Overlay, sender: Address, body: FedUnmask, ctx: TxContext) -> None:
    """[TX-FED.10] A survivor (a mask-set participant that revealed) names its unmask blob
    in the unmask window."""
    _, fed, _ = _require(view, body.job_id, body.round, FedPhase.UNMASK, ctx.time_ms,
                         "not_in_unmask_window")
    rec = private_record(view, fed)
    mine = fed.update_of(sender)
    if mine is None or mine.blob is None or sender not in rec.mask_set():
        raise _reject("not_survivor", f"{address_to_text(sender)} revealed no masked update")
    if sender in (u[0] for u in rec.unmasks):
        raise _reject("already_unmasked", "this survivor already named its unmask blob")
    size = unmask_blob_size(len(rec.shares))
    if body.size != size:
        raise _reject("wrong_size", f"an unmask blob of this round is {size} bytes")
    view.put("fed_priv", fed.job_id, replace(
        rec, unmasks=_insert(rec.unmasks, (sender, body.blob, body.size))))


def phase_after_commit(job: Job) -> FedPhase:
    """[FED-PRIV.10] A private round's commit window is followed by its shares window."""
    return FedPhase.SHARES if is_private(job) else FedPhase.REVEAL
