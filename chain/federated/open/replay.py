"""What a member needs for the end ballot [FED-END.1]: every accepted round's inputs from the
state, and the final and leave-one-out models [FED-REWARD.2] from the fetched blobs.

The ledger records per round the revealed updates and the weights (which name the
updates that entered the aggregation); ``replay_plan`` reads them, ``round_inputs`` decodes
the blobs a client fetched (strictly, each naming its slot [FED-QUANT.5]), and
``end_models`` replays with ``chain.federated.fast`` (bit for bit the reference rules).
Pure: the caller fetches blobs and evaluates the models on the hidden part.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from chain.federated import fast
from chain.federated.blobs import ModelBlob, UpdateBlob
from chain.federated.errors import FederatedError
from chain.federated.job_copies import copy_counts_array
from chain.federated.open.reads import fed_job, fed_rounds
from chain.federated.open.records import FedRound
from chain.federated.open.steps import ACCEPT
from chain.federated.rounds import RoundInput
from chain.federated.spec import FederatedSpec
from chain.state import StateReader
from chain.types import Address, Hash32


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    """A finished (or ending) job's rounds as the leave-one-out replays need them."""

    job_id: Hash32
    owner: Address
    spec: FederatedSpec
    rounds: tuple[FedRound, ...]
    """Accepted rounds only: a void round left the model unchanged."""
    loo_participants: tuple[Address, ...]
    """The end ballot's order of losses (after the final loss)."""

    def blobs(self) -> set[bytes]:
        """Every blob id to fetch: the initial model and each entering update."""
        out = {bytes(self.spec.initial_model)}
        for r in self.rounds:
            included = {a for a, _ in r.weights} | {self.owner}
            out |= {bytes(u.blob) for u in r.updates
                    if u.blob is not None and u.participant in included}
        return out


def replay_plan(state: StateReader, job_id: bytes) -> ReplayPlan | None:
    """[FED-STATE.2] The plan of a federated job, or None for another job."""
    fed, job = fed_job(state, job_id), state.job(job_id)
    if fed is None or job is None or job.spec.federated is None:
        return None
    accepted = tuple(r for r in fed_rounds(state, job_id) if r.outcome == ACCEPT)
    return ReplayPlan(Hash32(job_id), fed.owner, job.spec.federated, accepted,
                      fed.loo_participants)


def round_inputs(plan: ReplayPlan, blobs: Mapping[bytes, bytes]) -> list[RoundInput]:
    """[FED-AGG.1] Each accepted round's entering updates (the participants its weights
    name) and, under FLTrust, the owner's reference, decoded from ``blobs`` (blob id ->
    bytes); a missing or mismatched blob is a ``FederatedError`` naming it."""
    out = []
    for r in plan.rounds:
        included = {a for a, _ in r.weights}
        updates: dict[bytes, tuple[int, ...]] = {}
        reference = None
        for u in r.updates:
            if u.blob is None or (u.participant not in included and u.participant != plan.owner):
                continue
            data = blobs.get(bytes(u.blob))
            if data is None:
                raise FederatedError("missing_blob", f"round {r.round}: blob of "
                                     f"{u.participant.hex()} not given", blob=u.blob)
            blob = UpdateBlob.from_bytes(data)
            if (blob.job_id, blob.round, blob.participant, blob.dims, blob.scale_bits) != (
                    plan.job_id, r.round, u.participant, plan.spec.dims, plan.spec.scale_bits):
                raise FederatedError("wrong_slot", f"round {r.round}: the blob of "
                                     f"{u.participant.hex()} names another slot", blob=u.blob)
            if u.participant == plan.owner:
                reference = blob.values
            else:
                updates[u.participant] = blob.values
        out.append(RoundInput(updates, reference))
    return out


def end_models(plan: ReplayPlan, blobs: Mapping[bytes, bytes]
               ) -> tuple[tuple[int, ...], dict[Address, tuple[int, ...]]]:
    """[FED-MODEL.3] [FED-REWARD.2] The final model and, for each end-ballot participant,
    the model without it: what members evaluate on the hidden part for the end vote."""
    initial = blobs.get(bytes(plan.spec.initial_model))
    if initial is None:
        raise FederatedError("missing_blob", "the initial model's blob is not given",
                             blob=plan.spec.initial_model)
    start = ModelBlob.from_bytes(initial).values
    inputs = round_inputs(plan, blobs)
    agg = plan.spec.aggregation
    final = fast.replay(agg, start, inputs)
    return final, {a: fast.replay(agg, start, inputs, without=a)
                   for a in plan.loo_participants}


def end_copy_counts(plan: ReplayPlan, blobs: Mapping[bytes, bytes]) -> list[int]:
    """[FED-REWARD.14] Each end-ballot participant's copy count over the job (its job sum's
    near-copies among the participants', plus 1), in ``loo_participants`` order."""
    return copy_counts_array(round_inputs(plan, blobs),
                             [bytes(a) for a in plan.loo_participants])
