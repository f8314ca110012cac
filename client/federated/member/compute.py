"""What a member recomputes for a federated round: pure, from the state's record and blobs.

The aggregator posts it, every voter recomputes it bit for bit and compares [FED-VOTE.3]:
the round's revealed updates (blob id checked against the bytes, decoded strictly, each
naming its slot [FED-QUANT.5]; one that fails is left out [FED-ROUND.2]), the owner's
FLTrust reference, centered clipping's center (the last accepted round's step, from two model
blobs [FED-AGG.11]), ``chain.federated.fast.aggregate_round`` [FED-AGG.1] [FED-AGG.7] and the
next model ``clamp(old + aggregate)`` [FED-MODEL.3]. No I/O: blobs come in as a mapping.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from chain.content import blob_id_of_bytes
from chain.errors import ChainError
from chain.federated import fast
from chain.federated.blobs import ModelBlob, UpdateBlob, model_hash
from chain.federated.fixed import Q_MAX
from chain.federated.open.records import FedJob, FedRound
from chain.federated.open.steps import ACCEPT
from chain.federated.spec import FederatedSpec
from chain.types import Address, Hash32


@dataclass(frozen=True, slots=True)
class RoundAggregate:
    """A round's honest aggregate: the next model's blob and the weights to post."""

    model_blob: bytes
    weights: tuple[tuple[Address, int], ...]
    left_out: tuple[Address, ...]
    """Revealed participants whose blob did not decode or named another slot."""
    replays: tuple[Address, ...] = ()
    """Revealed participants left out for replaying an earlier update [FED-REWARD.10]."""

    @property
    def model_hash(self) -> Hash32:
        return model_hash(self.model_blob)

    @property
    def model(self) -> ModelBlob:
        return ModelBlob.from_bytes(self.model_blob)


def step_base(spec: FederatedSpec, earlier: Sequence[FedRound]) -> Hash32 | None:
    """[FED-AGG.11] The blob id of the model before the last accepted round (the initial
    model's when only one was accepted), whose step to the current model is centered
    clipping's center; None when no round was accepted yet (the center is zero) or the
    rule clips around no center [FED-AGG.12]."""
    if not spec.aggregation.uses_center:
        return None
    accepted = [r for r in earlier if r.outcome == ACCEPT]
    if not accepted:
        return None
    return accepted[-2].model_blob if len(accepted) > 1 else spec.initial_model


def earlier_updates(earlier: Sequence[FedRound]) -> tuple[tuple[int, Address, Hash32], ...]:
    """[FED-REWARD.10] Every update revealed in an earlier round (accepted or void, the
    owner's reference included): ``(round, participant, blob id)``."""
    return tuple((r.round, u.participant, u.blob) for r in earlier for u in r.updates
                 if u.blob is not None)


def needed_blobs(fed: FedJob, base: bytes | None = None,
                 history: Sequence[tuple[int, Address, Hash32]] = ()) -> set[bytes]:
    """The round's revealed update blobs, the current model, ``base`` (``step_base``) and
    the ``history`` of ``earlier_updates``."""
    return {bytes(fed.model_blob)} | {bytes(u.blob) for u in fed.updates if u.blob is not None} \
        | ({bytes(base)} if base is not None else set()) | {bytes(b) for _, _, b in history}


def _decode(data: bytes | None, blob_id: bytes, job_id: bytes, round_no: int,
            participant: bytes, spec: FederatedSpec) -> UpdateBlob | None:
    if data is None or blob_id_of_bytes(data) != blob_id:
        return None
    try:
        return UpdateBlob.from_bytes(data).check_for(job_id, round_no, participant, spec.dims,
                                                     spec.scale_bits)
    except ChainError:
        return None


def round_aggregate(fed: FedJob, spec: FederatedSpec, blobs: Mapping[bytes, bytes],
                    *, base: bytes | None = None,
                    history: Sequence[tuple[int, Address, Hash32]] = (),
                    stale_and_cap: bool = False, cheat: bool = False) -> RoundAggregate:
    """[FED-AGG.1] [FED-AGG.7] [FED-MODEL.3] The running round's aggregate from ``blobs``
    (every id of ``needed_blobs`` present: a missing one is a KeyError naming it); ``base``
    is ``step_base`` [FED-AGG.11], ``history`` ``earlier_updates`` [FED-REWARD.10] (one
    that does not decode for its slot is no update and matches nothing). With
    ``stale_and_cap`` (protocol version 4), each address's latest decodable earlier update
    finds stale copies and the weights are capped [FED-REWARD.12] [FED-REWARD.13].

    ``cheat`` (DEMO/TEST ONLY, a node's ``cheat_federated_aggregate``) shifts the first
    coordinate of the model by one: a wrong aggregate the vote must reject [FED-ROUND.5]."""
    current = blobs[bytes(fed.model_blob)]
    if blob_id_of_bytes(current) != fed.model_blob:
        raise ValueError(f"model blob {fed.model_blob.hex()[:12]} does not match its bytes")
    model = ModelBlob.from_bytes(current)
    updates: dict[bytes, tuple[int, ...]] = {}
    reference = None
    left_out = []
    for u in fed.updates:
        if u.blob is None:
            continue
        blob = _decode(blobs[bytes(u.blob)], u.blob, fed.job_id, fed.round, u.participant,
                       spec)
        if u.participant == fed.owner:
            reference = None if blob is None else blob.values
        elif blob is None:
            left_out.append(u.participant)
        else:
            updates[bytes(u.participant)] = blob.values
    start = np.asarray(model.values, dtype=np.int64)
    center = None
    if base is not None:
        before = blobs[bytes(base)]
        if blob_id_of_bytes(before) != base:
            raise ValueError(f"model blob {base.hex()[:12]} does not match its bytes")
        center = fast.model_step_array(np.asarray(ModelBlob.from_bytes(before).values,
                                                  dtype=np.int64), start)
    before_now = []
    sums: dict[bytes, np.ndarray] = {}
    latest: dict[bytes, tuple[int, ...]] = {}
    for r, who, blob_id in history:
        blob = _decode(blobs[bytes(blob_id)], blob_id, fed.job_id, r, who, spec)
        if blob is None:
            continue
        before_now.append(blob.values)
        latest[bytes(who)] = blob.values  # history is in round order: the last one stays
        if bytes(who) in updates:  # [FED-REWARD.11] the running sums of this round's senders
            values = np.asarray(blob.values, dtype=np.int64)
            sums[bytes(who)] = sums[bytes(who)] + values if bytes(who) in sums else values
    vector, result = fast.aggregate_round_array(spec.aggregation, updates, reference,
                                                spec.dims, center, before_now, sums,
                                                latest if stale_and_cap else None)
    new = fast.apply_aggregate_array(start, vector)
    if cheat:
        new = new.copy()
        new[0] = new[0] + 1 if new[0] < Q_MAX else new[0] - 1
    out = ModelBlob(model.scale_bits, fast.to_tuple(new)).to_bytes()
    weights = tuple(sorted((Address(a), w) for a, w in result.weights))
    return RoundAggregate(out, weights, tuple(sorted(left_out)),
                          tuple(Address(a) for a in result.replays))


def first_draw(fed: FedJob, earlier: Sequence[FedRound]) -> bool:
    """DEMO/TEST ONLY (a node's ``cheat_federated_first_draw``): is ``fed``'s drawn
    aggregator the job's first? No aggregator tried or slashed yet in this round, none
    recorded or slashed in an earlier one. Every verifier of the demo runs with it, so
    exactly the verifier the chain draws first [FED-ROUND.3] cheats, whoever that is: the
    demo's wrong aggregate no longer depends on a fixed cheater being drawn at all."""
    return not fed.tried and not fed.slashed and \
        all(r.aggregator is None and not r.slashed for r in earlier)


def matches(fed: FedJob, mine: RoundAggregate) -> bool:
    """[FED-VOTE.3] The posted aggregate is ours: model hash and weights, exactly."""
    posted = fed.posted
    if posted is None:
        return False
    theirs = tuple((Address(a), w) for a, w in posted.weights)
    return posted.model_hash == mine.model_hash and theirs == mine.weights
