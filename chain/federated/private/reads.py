"""What a private round's participant, aggregator and members call [FED-PRIV.6-10].

Pure builders and readers over the state's ``fed_job`` and ``fed_priv`` records: a
participant's per-round secrets and its bodies (commit and keys, shares, masked reveal,
unmask), the blobs a member needs, and the round's model and weights from those blobs
[FED-PRIV.9]. Randomness (secrets, Shamir coefficients, noise) comes in from the caller.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from chain.content import blob_id_of_bytes
from chain.federated import fast
from chain.federated.blobs import ModelBlob, update_hash
from chain.federated.fixed import Q_MAX
from chain.federated.open.bodies import FedCommit, FedReveal
from chain.federated.open.records import FedJob
from chain.federated.private.aggregate import RoundKeys, private_round
from chain.federated.private.bodies import FedKeys, FedShares, FedUnmask, keys_commitment
from chain.federated.private.fast import mask_update_array, masked_blob_bytes
from chain.federated.private.records import FedPrivate
from chain.federated.private.seeds import (
    make_share_blob,
    make_unmask_blob,
    pair_seeds,
    public_key,
    threshold,
)
from chain.federated.spec import FederatedSpec
from chain.types import Address, Hash32


@dataclass(frozen=True, slots=True)
class RoundSecrets:
    """[FED-PRIV.6] A participant's secrets for one private round; kept until the round's
    unmask window has closed (the unmask blob needs ``enc_secret``)."""

    mask_secret: bytes
    enc_secret: bytes
    self_seed: bytes

    @property
    def mask_key(self) -> bytes:
        return public_key(self.mask_secret)

    @property
    def enc_key(self) -> bytes:
        return public_key(self.enc_secret)


def commit_bodies(job_id: bytes, round: int, me: bytes,
                  secrets: RoundSecrets) -> tuple[FedCommit, FedKeys]:
    """[TX-FED.2] [TX-FED.8] The private commit (to the keys) and the keys that open it."""
    commitment = keys_commitment(job_id, round, me, secrets.mask_key, secrets.enc_key)
    return (FedCommit(Hash32(job_id), round, commitment),
            FedKeys(Hash32(job_id), round, secrets.mask_key, secrets.enc_key))


def private_record(state: object, job_id: bytes, round: int) -> FedPrivate:
    """[FED-PRIV.10] The running round's ``fed_priv`` record from a state reader (empty when
    none or an earlier round's)."""
    rec: FedPrivate | None = state.get("fed_priv", job_id)  # type: ignore[attr-defined]
    return rec if rec is not None and rec.round == round else FedPrivate(round)


def round_keys(rec: FedPrivate) -> dict[bytes, RoundKeys]:
    return {bytes(a): RoundKeys(m, e) for a, m, e in rec.keys}


def shares_body(job_id: bytes, round: int, me: Address, secrets: RoundSecrets,
                rec: FedPrivate, self_coefficients: Sequence[int],
                pair_coefficients: Sequence[int]) -> tuple[bytes, FedShares]:
    """[TX-FED.9] [FED-PRIV.7] The share blob for the keyed set and the body naming it;
    ``threshold(len(rec.keys)) - 1`` coefficients per secret."""
    blob = make_share_blob(Hash32(job_id), round, me, secrets.enc_secret, secrets.self_seed,
                           secrets.mask_secret, {a: e for a, _, e in rec.keys},
                           self_coefficients, pair_coefficients).to_bytes()
    return blob, FedShares(Hash32(job_id), round, Hash32(blob_id_of_bytes(blob)), len(blob))


def coefficients_needed(rec: FedPrivate) -> int:
    return threshold(len(rec.keys)) - 1


def masked_reveal(job_id: bytes, round: int, me: bytes, secrets: RoundSecrets,
                  rec: FedPrivate, update: npt.NDArray[np.int64],
                  scale_bits: int) -> tuple[bytes, FedReveal]:
    """[FED-PRIV.3] [TX-FED.3] The masked blob over the mask set (the participants that
    named share blobs) and its reveal: ``update_hash`` is the masked blob's SHA-256, the
    salt zero (private mode opens no update commitment)."""
    mask_keys = {bytes(a): m for a, m, _ in rec.keys if a in rec.mask_set()}
    seeds = pair_seeds(job_id, round, me, secrets.mask_secret, mask_keys)
    words = mask_update_array(update, me, secrets.self_seed, seeds, job_id, round)
    blob = masked_blob_bytes(job_id, round, me, scale_bits, words)
    return blob, FedReveal(Hash32(job_id), round, Hash32(blob_id_of_bytes(blob)), len(blob),
                           update_hash(blob), bytes(32))


def survivors(fed: FedJob, rec: FedPrivate) -> tuple[list[bytes], list[bytes]]:
    """[FED-PRIV.8] (U, D): the mask set's participants that revealed, and the others."""
    revealed = {bytes(u.participant) for u in fed.updates if u.blob is not None}
    mask_set = [bytes(a) for a in rec.mask_set()]
    return [a for a in mask_set if a in revealed], [a for a in mask_set if a not in revealed]


def unmask_body(fed: FedJob, rec: FedPrivate, me: Address,
                secrets: RoundSecrets) -> tuple[bytes, FedUnmask]:
    """[TX-FED.10] [FED-PRIV.8] A survivor's unmask blob and the body naming it."""
    up, down = survivors(fed, rec)
    blob = make_unmask_blob(fed.job_id, fed.round, me, secrets.enc_secret,
                            {bytes(a): e for a, _, e in rec.keys}, up, down).to_bytes()
    return blob, FedUnmask(fed.job_id, fed.round, Hash32(blob_id_of_bytes(blob)), len(blob))


def private_needed_blobs(fed: FedJob, rec: FedPrivate) -> set[bytes]:
    """The current model, the mask set's share blobs, the masked blobs and unmask blobs."""
    return ({bytes(fed.model_blob)} | {bytes(b) for _, b, _ in rec.shares}
            | {bytes(u.blob) for u in fed.updates if u.blob is not None}
            | {bytes(b) for _, b, _ in rec.unmasks})


def _checked(blobs: Mapping[bytes, bytes], blob_id: bytes) -> bytes:
    data = blobs[bytes(blob_id)]
    return data if blob_id_of_bytes(data) == blob_id else b""


def private_round_model(fed: FedJob, rec: FedPrivate, spec: FederatedSpec,
                        blobs: Mapping[bytes, bytes]) -> tuple[bytes, dict[bytes, int], str | None]:
    """[FED-PRIV.9] [FED-MODEL.3] [FED-REWARD.6] The next model's blob, the weights (1 per
    survivor whose update entered the sum; none when unmasking failed) and why it failed.
    ``blobs`` holds every id of ``private_needed_blobs`` (a missing one is a KeyError); a
    blob whose bytes do not match its id counts as one that does not decode."""
    current = blobs[bytes(fed.model_blob)]
    if blob_id_of_bytes(current) != fed.model_blob:
        raise ValueError(f"model blob {fed.model_blob.hex()[:12]} does not match its bytes")
    model = ModelBlob.from_bytes(current)
    up, _ = survivors(fed, rec)
    masked = {bytes(u.participant): _checked(blobs, u.blob) for u in fed.updates
              if u.blob is not None and bytes(u.participant) in up}
    outcome = private_round(fed.job_id, fed.round, spec.dims, spec.scale_bits,
                            round_keys(rec),
                            {bytes(a): _checked(blobs, b) for a, b, _ in rec.shares},
                            masked,
                            {bytes(a): _checked(blobs, b) for a, b, _ in rec.unmasks})
    new = fast.apply_aggregate_array(np.asarray(model.values, dtype=np.int64),
                                     outcome.aggregate)
    out = ModelBlob(model.scale_bits, fast.to_tuple(new)).to_bytes()
    return out, {bytes(a): 1 for a in outcome.included}, outcome.error


def clip_and_noise(update: npt.NDArray[np.int64], spec: FederatedSpec,
                   rng: np.random.Generator) -> npt.NDArray[np.int64]:
    """[FED-PRIV.3] A participant's distributed DP before masking (federated.md §6): clip to
    L2 norm <= ``dp_clip`` (quantised units), add Gaussian noise of std ``dp_clip ·
    dp_noise_permille / 1000 / sqrt(min_participants)`` rounded to integers, clamp to
    ±Q_MAX. Not checkable by anyone (the update is masked): each participant's own duty."""
    x = np.asarray(update, dtype=np.float64)
    norm = float(np.sqrt(np.dot(x, x)))
    if spec.dp_clip and norm > spec.dp_clip:
        x = x * (spec.dp_clip / norm)
    sigma = spec.dp_clip * spec.dp_noise_permille / 1000 / math.sqrt(spec.min_participants)
    if sigma > 0:
        x = x + rng.normal(0.0, sigma, size=x.shape)
    return np.clip(np.rint(x), -Q_MAX, Q_MAX).astype(np.int64)

