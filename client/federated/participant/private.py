"""A data owner's side of a private round [FED-PRIV.10]: train, clip and noise, commit to
fresh round keys, publish them, share the self seed and mask secret, reveal the masked
update, and after the reveals name the unmask blob.

What must survive a crash (the round secrets and the noised update) is written to the
folder before the commitment leaves; a restarted participant finishes the round it
committed to. Randomness (secrets, Shamir coefficients, noise) is drawn here, never in
``chain``.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chain.content import blob_id_of_bytes
from chain.crypto import PrivateKey
from chain.federated.blobs import ModelBlob, UpdateBlob
from chain.federated.open.records import FedJob, FedPhase
from chain.federated.private.reads import (
    RoundSecrets,
    clip_and_noise,
    coefficients_needed,
    commit_bodies,
    masked_reveal,
    private_record,
    shares_body,
    survivors,
    unmask_body,
)
from chain.federated.private.shamir import PRIME
from chain.federated.spec import FederatedSpec
from chain.state import StateReader
from chain.types import Address
from client.federated.participant.rounds import RESEND_MS, Ports, Trainer


@dataclass(frozen=True, slots=True)
class PrivateRecord:
    round: int
    secrets: RoundSecrets
    update: tuple[int, ...]
    """The clipped and noised update, the one that will be masked."""


class PrivateStore:
    """``private-<r>.json`` per round, written to a temporary name and renamed."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def get(self, round_no: int) -> PrivateRecord | None:
        path = self.folder / f"private-{round_no}.json"
        if not path.is_file():
            return None
        d = json.loads(path.read_text())
        return PrivateRecord(round_no, RoundSecrets(bytes.fromhex(d["mask_secret"]),
                                                    bytes.fromhex(d["enc_secret"]),
                                                    bytes.fromhex(d["self_seed"])),
                             tuple(d["update"]))

    def forget(self, before: int) -> list[int]:
        """Deletes the secrets of every round before ``before``: once a round's unmask
        window has closed nothing needs them, and kept they would let a thief of this disk
        unmask this participant's old updates (with the public blobs)."""
        gone = []
        for path in self.folder.glob("private-*.json"):
            r = int(path.stem.split("-", 1)[1])
            if r < before:
                path.unlink()
                gone.append(r)
        return sorted(gone)

    def put(self, record: PrivateRecord) -> None:
        s = record.secrets
        path = self.folder / f"private-{record.round}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"mask_secret": s.mask_secret.hex(),
                                   "enc_secret": s.enc_secret.hex(),
                                   "self_seed": s.self_seed.hex(),
                                   "update": list(record.update)}))
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)


def fresh_secrets() -> RoundSecrets:
    """[FED-PRIV.6] Two fresh secp256k1 secrets and a random self seed for one round."""
    return RoundSecrets(PrivateKey.generate().secret, PrivateKey.generate().secret,
                        secrets.token_bytes(32))


class PrivateParticipant:
    """The private half of ``Participant.step``."""

    def __init__(self, job_id: bytes, address: bytes, ports: Ports, train: Trainer,
                 store: PrivateStore, log: Callable[[str], None] = lambda _m: None,
                 rng: np.random.Generator | None = None) -> None:
        self.job_id, self.address, self.ports = job_id, Address(address), ports
        self.train, self.store, self.log = train, store, log
        self.rng = rng or np.random.default_rng(secrets.randbits(64))
        self._sent: dict[tuple[int, str], int] = {}
        self._waits: set[tuple[int, str]] = set()
        """(round, what) already logged as waited for: one line per wait, not per block."""

    def step(self, state: StateReader, fed: FedJob, spec: FederatedSpec) -> str:
        """``training``, ``model_missing``, ``committed``, ``keyed``, ``shared``,
        ``revealed``, ``unmasked``, ``lost_secrets``, ``sent_recently`` or ``wait``."""
        done_before = fed.round + (0 if fed.phase in (FedPhase.COMMIT, FedPhase.SHARES,
                                                      FedPhase.REVEAL, FedPhase.UNMASK) else 1)
        self.store.forget(done_before)
        if self.ports.now_ms() >= fed.deadline_ms:
            return "wait"
        rec = private_record(state, self.job_id, fed.round)
        mine = fed.update_of(self.address)
        if fed.phase == FedPhase.COMMIT:
            if mine is None:
                return self._commit(fed, spec)
            if self.address in rec.keyed():
                return "wait"
            record = self.store.get(fed.round)
            if record is None:
                return "lost_secrets"
            return self._send(fed.round, "keys", commit_bodies(
                self.job_id, fed.round, self.address, record.secrets)[1])
        record = self.store.get(fed.round)
        if mine is None:
            return "wait"
        if record is None:
            return "lost_secrets"
        if fed.phase == FedPhase.SHARES and self.address in rec.keyed() \
                and self.address not in rec.mask_set():
            t = coefficients_needed(rec)
            blob, body = shares_body(self.job_id, fed.round, self.address, record.secrets, rec,
                                     [secrets.randbelow(PRIME) for _ in range(t)],
                                     [secrets.randbelow(PRIME) for _ in range(t)])
            return self._send(fed.round, "shares", body, blob)
        if fed.phase == FedPhase.REVEAL and mine.blob is None \
                and self.address in rec.mask_set():
            blob, reveal = masked_reveal(self.job_id, fed.round, self.address, record.secrets,
                                         rec, np.array(record.update, dtype=np.int64),
                                         spec.scale_bits)
            return self._send(fed.round, "reveal", reveal, blob)
        if fed.phase == FedPhase.UNMASK and bytes(self.address) in survivors(fed, rec)[0] \
                and self.address not in (u[0] for u in rec.unmasks):
            blob, unmask = unmask_body(fed, rec, self.address, record.secrets)
            return self._send(fed.round, "unmask", unmask, blob)
        return "wait"

    def _commit(self, fed: FedJob, spec: FederatedSpec) -> str:
        record = self.store.get(fed.round)
        if record is None:
            data = self.ports.read_blob(fed.model_blob)
            if data is None:
                self._log_wait(fed.round, "model_missing",
                               f"waiting for the global model blob {fed.model_blob.hex()[:12]}")
                return "model_missing"
            if blob_id_of_bytes(data) != fed.model_blob:
                raise ValueError(f"model blob {fed.model_blob.hex()[:12]} does not match "
                                 "its bytes")
            model = ModelBlob.from_bytes(data)
            update: UpdateBlob | None = self.train(model, fed.round)
            if update is None:
                self._log_wait(fed.round, "training", "training in the sandbox")
                return "training"
            update.check_for(self.job_id, fed.round, self.address, model.dims,
                             model.scale_bits)
            noised = clip_and_noise(np.array(update.values, dtype=np.int64), spec, self.rng)
            record = PrivateRecord(fed.round, fresh_secrets(),
                                   tuple(int(v) for v in noised))
            self.store.put(record)  # before the commitment to its keys leaves
            self.log(f"round {fed.round}: trained, clipped and noised "
                     f"{len(record.update)} coordinates")
        return self._send(fed.round, "commit", commit_bodies(
            self.job_id, fed.round, self.address, record.secrets)[0])

    def _log_wait(self, round_no: int, what: str, message: str) -> None:
        """A round that goes void without this owner must say what it waited for."""
        if (round_no, what) not in self._waits:
            self._waits.add((round_no, what))
            self.log(f"round {round_no}: {message}")

    def _send(self, round_no: int, what: str, body: object, blob: bytes | None = None) -> str:
        now = self.ports.now_ms()
        last = self._sent.get((round_no, what))
        if last is not None and now - last < RESEND_MS:
            return "sent_recently"
        if blob is not None:
            self.ports.put_blob(blob)
        if self.ports.submit(body, f"private {what}"):  # type: ignore[arg-type]
            self._sent[(round_no, what)] = now
            self.log(f"round {round_no}: {what} sent")
        return {"commit": "committed", "keys": "keyed", "shares": "shared",
                "reveal": "revealed", "unmask": "unmasked"}[what]
