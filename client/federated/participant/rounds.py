"""A data owner's side of a federated job: each round, train locally, commit, reveal.

The loop is one ``step`` at a time over a committed state (``chain.federated.open.reads``'s
readers) and a few ports (submit a body, read and store blobs, train), so the same
code runs against a node (``client.federated.participant.node_loop``) and against the ledger
harness in tests. What each round must keep across a crash (the update blob and its
salt) is written to the ``RoundStore`` *before* the commitment is sent: a participant
restarted on the same folder reveals what it committed [FED-COMMIT.1].

A private job's rounds go to ``client.federated.participant.private`` [FED-PRIV.10].

Rules followed: commit in the COMMIT phase, reveal the committed blob in the REVEAL
phase [TX-FED.2] [TX-FED.3]; the update blob names this job, round and address
[FED-QUANT.5]; the global model is the state's current ``model_blob``, checked by its
blob id before training on it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from chain.content import blob_id_of_bytes
from chain.federated.blobs import ModelBlob, UpdateBlob
from chain.federated.open.reads import FedPhase, duty, fed_job, update_bodies
from chain.federated.open.records import FedJob
from chain.federated.spec import PRIVATE, FederatedSpec
from chain.state import StateReader
from chain.transactions import Body
from client.node.atomic_write import write_replacing

RESEND_MS = 10_000
"""A commit or reveal not yet in a block is sent again after this long (a lost tx)."""

Trainer = Callable[[ModelBlob, int], UpdateBlob | None]
"""(global model, round) -> this participant's update blob for the round, or None while it
is still being trained (a node trains on a thread and steps again when it is done)."""


class Ports(Protocol):
    """What the loop needs from a node."""

    def state(self) -> StateReader: ...

    def now_ms(self) -> int: ...

    def submit(self, body: Body, what: str) -> bool: ...

    def read_blob(self, blob_id: bytes) -> bytes | None:
        """The blob's bytes if held locally; None (and a fetch started) otherwise."""
        ...

    def put_blob(self, data: bytes, source: Path | None = None) -> bytes:
        """Store and announce ``data``; its blob id. ``source``: a file holding exactly
        ``data``, linked into the store rather than written again where the store can (a
        reveal on a full disk [WORK-FED.2])."""
        ...


class PrivateStep(Protocol):
    """A private round's steps (``client.federated.participant.private``) [FED-PRIV.10]."""

    def step(self, state: StateReader, fed: FedJob, spec: FederatedSpec) -> str: ...


@dataclass(frozen=True, slots=True)
class RoundRecord:
    round: int
    salt: bytes
    blob: bytes
    """The update blob's bytes [FED-QUANT.5]."""


class RoundStore:
    """One folder per job: ``round-<r>.json`` (salt) beside ``round-<r>.blob``, each written
    to a temporary name and renamed, the blob first."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def get(self, round_no: int) -> RoundRecord | None:
        meta = self.folder / f"round-{round_no}.json"
        blob = self.folder / f"round-{round_no}.blob"
        if not meta.is_file() or not blob.is_file():
            return None
        salt = bytes.fromhex(json.loads(meta.read_text())["salt"])
        return RoundRecord(round_no, salt, blob.read_bytes())

    def blob_path(self, round_no: int) -> Path:
        """The file of round ``round_no``'s update blob (present once ``put``)."""
        return self.folder / f"round-{round_no}.blob"

    def put(self, record: RoundRecord) -> None:
        """Raises ``OSError`` when a write fails (a full disk), leaving no partial copy:
        ``get`` then finds no record, since it needs both files [WORK-FED.2]."""
        write_replacing(self.blob_path(record.round), record.blob)
        write_replacing(self.folder / f"round-{record.round}.json",
                        json.dumps({"salt": record.salt.hex()}).encode())


class Participant:
    """Takes part in one federated job as ``address``."""

    def __init__(self, job_id: bytes, address: bytes, ports: Ports, train: Trainer,
                 store: RoundStore, log: Callable[[str], None] = lambda _m: None,
                 private: PrivateStep | None = None) -> None:
        self.job_id, self.address, self.ports = job_id, address, ports
        self.train, self.store, self.log = train, store, log
        self._sent: dict[tuple[int, str], int] = {}
        self.private = private
        self._model: tuple[bytes, ModelBlob] | None = None
        """The last global model read and checked against its blob id: a step comes every
        quiet second while the trainer runs, and a large model is read, hashed and parsed
        once a round, not once a step."""
        self._unstored: dict[int, RoundRecord] = {}
        """A trained round the store refused (a full disk): kept here, not trained again,
        and stored before its commitment is sent [WORK-FED.2]."""
        self.disk_problem: str | None = None
        """Why the last store or reveal failed, while it fails; None once one succeeds."""

    def step(self) -> str:
        """Do what the state asks of us now; returns what was done or waited for:
        ``no_job``, ``done``, ``wait``, ``model_missing``, ``training``, ``committed``,
        ``revealed``,
        ``lost_update`` (a reveal is due but the store lost the blob), ``sent_recently`` or
        ``cannot_store`` (the round's files could not be written, as on a full disk;
        tried again next step)."""
        state = self.ports.state()
        fed = fed_job(state, self.job_id)
        if fed is None:
            return "no_job"
        job = state.job(self.job_id)
        if fed.phase == FedPhase.DONE:
            if self.private is not None and job is not None and job.spec.federated \
                    is not None and job.spec.federated.privacy == PRIVATE:
                self.private.step(state, fed, job.spec.federated)  # forgets the secrets
            return "done"
        if job is not None and job.spec.federated is not None \
                and job.spec.federated.privacy == PRIVATE:  # [FED-PRIV.10]
            if self.private is None:
                return "unsupported"
            return self.private.step(state, fed, job.spec.federated)
        what = duty(state, self.job_id, self.address, self.ports.now_ms())
        if what == "commit":
            return self._commit(fed.round, fed.model_blob)
        if what == "reveal":
            record = self.store.get(fed.round)
            if record is None:
                return "lost_update"
            return self._send(record, "reveal")
        return "wait"

    def _commit(self, round_no: int, model_blob: bytes) -> str:
        record = self.store.get(round_no) or self._unstored.get(round_no)
        if record is None:
            model = self._global_model(model_blob)
            if model is None:
                return "model_missing"
            update = self.train(model, round_no)
            if update is None:
                return "training"
            update.check_for(self.job_id, round_no, self.address, model.dims, model.scale_bits)
            record = RoundRecord(round_no, os.urandom(32), update.to_bytes())
            self._unstored = {round_no: record}
            self.log(f"round {round_no}: trained, update of {update.dims} coordinates")
        if round_no in self._unstored:
            try:  # before the commitment leaves [FED-COMMIT.1] [WORK-FED.2]
                self.store.put(record)
            except OSError as e:
                return self._cannot_store(f"cannot keep round {round_no}'s update: {e}")
            del self._unstored[round_no]
        return self._send(record, "commit")

    def _cannot_store(self, why: str) -> str:
        """[WORK-FED.2] Nothing is sent that the disk could not keep; said once per cause."""
        if why != self.disk_problem:
            self.log(f"{why}; nothing sent, trying again")
        self.disk_problem = why
        return "cannot_store"

    def _global_model(self, model_blob: bytes) -> ModelBlob | None:
        if self._model is not None and self._model[0] == model_blob:
            return self._model[1]
        data = self.ports.read_blob(model_blob)
        if data is None:
            return None
        if blob_id_of_bytes(data) != model_blob:
            raise ValueError(f"model blob {model_blob.hex()[:12]} does not match its bytes")
        model = ModelBlob.from_bytes(data)
        self._model = (model_blob, model)
        return model

    def _send(self, record: RoundRecord, what: str) -> str:
        now = self.ports.now_ms()
        last = self._sent.get((record.round, what))
        if last is not None and now - last < RESEND_MS:
            return "sent_recently"
        bodies = update_bodies(self.job_id, record.round, self.address, record.blob,
                               record.salt)
        if what == "reveal":
            try:  # the kept file, linked: a full disk needs no new bytes [WORK-FED.2]
                self.ports.put_blob(record.blob, self.store.blob_path(record.round))
            except OSError as e:
                return self._cannot_store(f"cannot serve round {record.round}'s update: {e}")
        self.disk_problem = None
        if self.ports.submit(bodies.commit if what == "commit" else bodies.reveal, what):
            self._sent[(record.round, what)] = now
            self.log(f"round {record.round}: {what} sent")
        return "committed" if what == "commit" else "revealed"
