"""A private round's aggregate from what is public: keys on chain, blobs in stores
[FED-PRIV.9].

The aggregator and every member run this same pure function on the same bytes: the
round's published keys, the mask set's share blobs [FED-PRIV.7], the survivors' masked
blobs [FED-PRIV.1] and the survivors' unmask blobs [FED-PRIV.8]. It rebuilds exactly the
seeds unmasking needs (a survivor's self seed, a dropped participant's mask secret, from
the first ``threshold`` shares that open, revealers in address order), removes the masks
[FED-PRIV.4] and divides. Anything that does not add up (a blob that does not decode or
names another slot, too few shares, a rebuilt secret that does not match its key, a sum
out of range) makes the round's aggregate the zero vector with no weights: the model is
unchanged and nobody is paid for the round, the same on every machine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from chain.federated.errors import BlobError, FederatedError
from chain.federated.fast import Vector
from chain.federated.private.fast import (
    masked_words,
    private_aggregate_array,
    unmask_sum_array,
)
from chain.federated.private.masking import PAIR, SELF, masked_header
from chain.federated.private.seeds import (
    ShareBlob,
    UnmaskBlob,
    check_secret,
    ecdh,
    open_share,
    pair_seed,
    public_key,
    threshold,
)
from chain.federated.private.shamir import recover
from chain.types import Address, Hash32


@dataclass(frozen=True, slots=True)
class RoundKeys:
    """[FED-PRIV.6] A participant's published round keys (``fed_keys``)."""

    mask_key: bytes
    enc_key: bytes


@dataclass(frozen=True, slots=True, eq=False)
class PrivateOutcome:
    """[FED-PRIV.9] The round's aggregate and the participants whose updates entered it
    (weight 1 each [FED-REWARD.6]); ``error`` says why nobody's did."""

    aggregate: Vector
    included: tuple[Address, ...]
    error: str | None = None


def _fail(dims: int, why: str) -> PrivateOutcome:
    return PrivateOutcome(np.zeros(dims, dtype=np.int64), (), why)


def usable_share_blob(data: bytes, job_id: bytes, round: int, sender: bytes,
                      keyed: list[bytes]) -> ShareBlob:
    """[FED-PRIV.7] A share blob decodes, names this job, round and sender, has threshold
    ``len(keyed) // 2 + 1`` and one entry per keyed participant (``bad_shares``)."""
    blob = ShareBlob.from_bytes(data)
    if (blob.job_id, blob.round, blob.sender) != (job_id, round, sender) \
            or blob.threshold != threshold(len(keyed)) or list(blob.recipients()) != keyed:
        raise FederatedError("bad_shares", "a share blob names its job, round, sender, the "
                             "round's threshold and every keyed participant",
                             sender=bytes(sender).hex())
    return blob


def usable_unmask_blob(data: bytes, job_id: bytes, round: int, revealer: bytes,
                       survivors: set[bytes], mask_set: list[bytes]) -> UnmaskBlob:
    """[FED-PRIV.8] An unmask blob decodes, names this job, round and revealer, and has one
    entry per mask-set participant: ``self`` for a survivor, ``pair`` for a dropped one."""
    blob = UnmaskBlob.from_bytes(data)
    want = [(o, SELF if o in survivors else PAIR) for o in mask_set]
    if (blob.job_id, blob.round, blob.revealer) != (job_id, round, revealer) \
            or [(o, k) for o, k, _ in blob.entries] != want:
        raise FederatedError("bad_unmask_blob", "an unmask blob names its job, round and "
                             "revealer and one key per mask-set participant, self for a "
                             "survivor, pair for a dropped one", revealer=bytes(revealer).hex())
    return blob


def private_round(job_id: Hash32, round: int, dims: int, scale_bits: int,
                  keys: Mapping[bytes, RoundKeys], shares: Mapping[bytes, bytes],
                  masked: Mapping[bytes, bytes],
                  unmasks: Mapping[bytes, bytes]) -> PrivateOutcome:
    """[FED-PRIV.9] ``keys``: the keyed participants K; ``shares``: the share blob of each
    participant of the mask set M (those that posted one); ``masked``: the masked blob of
    each survivor U (M's participants that revealed); ``unmasks``: the unmask blob of each
    survivor that posted one. D = M minus U."""
    keyed = sorted(bytes(a) for a in keys)
    mask_set = sorted(bytes(a) for a in shares)
    survivors = set(bytes(a) for a in masked)
    if not survivors or not survivors <= set(mask_set) or not set(mask_set) <= set(keyed):
        return _fail(dims, "no_survivors")
    t = threshold(len(keyed))
    try:
        share_blobs = {o: usable_share_blob(shares[o], job_id, round, o, keyed)
                       for o in mask_set}
        words = {}
        for a in sorted(survivors):
            head = masked_header(bytes(masked[a]))
            if head != (job_id, round, a, scale_bits, dims):
                return _fail(dims, f"bad_masked_blob {a.hex()}")
            words[a] = masked_words(masked[a])
    except (BlobError, FederatedError) as e:
        return _fail(dims, f"{e}")
    revealers = []
    for r in sorted(bytes(a) for a in unmasks):
        if r not in survivors:
            continue
        try:
            revealers.append(usable_unmask_blob(unmasks[r], job_id, round, r, survivors,
                                                mask_set))
        except (BlobError, FederatedError):
            continue
    self_seeds: dict[bytes, bytes] = {}
    dropped: dict[bytes, dict[bytes, bytes]] = {}
    for k, o in enumerate(mask_set):
        kind = SELF if o in survivors else PAIR
        got: list[tuple[int, int]] = []
        for rv in revealers:
            if len(got) == t:
                break
            try:
                got.append(open_share(share_blobs[o], rv.revealer, kind, rv.entries[k][2]))
            except FederatedError:
                continue
        if len(got) < t:
            return _fail(dims, f"too_few_shares {o.hex()}: {len(got)} of {t}")
        try:
            secret = recover(got, t)
            if kind == SELF:
                self_seeds[o] = secret
                continue
            if public_key(check_secret(secret)) != keys[o].mask_key:
                return _fail(dims, f"bad_mask_secret {o.hex()}")
            dropped[o] = {i: pair_seed(job_id, round, i, o, ecdh(secret, keys[i].mask_key))
                          for i in sorted(survivors)}
        except FederatedError as e:
            return _fail(dims, f"{e}")
    try:
        total = unmask_sum_array(words, self_seeds, dropped, job_id, round, dims)
    except FederatedError as e:
        return _fail(dims, f"{e}")
    return PrivateOutcome(private_aggregate_array(total, len(survivors)),
                          tuple(Address(a) for a in sorted(survivors)))
