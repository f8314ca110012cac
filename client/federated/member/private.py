"""What a member recomputes for a private round [FED-PRIV.9]: the blobs it needs and the
round's aggregate from them, as a ``RoundAggregate`` the aggregator posts and every voter
compares [FED-VOTE.3]. Pure over ``chain.federated.private.reads``; blobs come in a mapping.
"""

from __future__ import annotations

from collections.abc import Mapping

from chain.federated.blobs import ModelBlob
from chain.federated.fixed import Q_MAX
from chain.federated.open.records import FedJob
from chain.federated.private.reads import (
    private_needed_blobs,
    private_record,
    private_round_model,
)
from chain.federated.spec import FederatedSpec
from chain.state import StateReader
from chain.types import Address
from client.federated.member.compute import RoundAggregate


def private_blobs(state: StateReader, fed: FedJob) -> set[bytes]:
    """The current model, the mask set's share blobs, the survivors' masked and unmask
    blobs of the running round."""
    return private_needed_blobs(fed, private_record(state, fed.job_id, fed.round))


def private_aggregate(state: StateReader, fed: FedJob, spec: FederatedSpec,
                      blobs: Mapping[bytes, bytes], *, cheat: bool = False) -> RoundAggregate:
    """[FED-PRIV.9] [FED-MODEL.3] The private round's next model and weights (1 per
    survivor, none when unmasking failed; ``left_out`` names the survivors then).
    ``cheat`` (DEMO/TEST ONLY) shifts the model's first coordinate by one."""
    rec = private_record(state, fed.job_id, fed.round)
    blob, weights, error = private_round_model(fed, rec, spec, blobs)
    if cheat:
        model = ModelBlob.from_bytes(blob)
        first = model.values[0] + 1 if model.values[0] < Q_MAX else model.values[0] - 1
        blob = ModelBlob(model.scale_bits, (first, *model.values[1:])).to_bytes()
    left_out = () if error is None else tuple(sorted(
        Address(u.participant) for u in fed.updates if u.blob is not None))
    return RoundAggregate(blob, tuple(sorted((Address(a), w) for a, w in weights.items())),
                          left_out)
