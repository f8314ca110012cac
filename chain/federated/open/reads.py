"""What a client needs to take part in a federated job: tx body builders and state readers.

Builders take the bytes a participant, aggregator, voter or owner holds and return the
bodies to sign (``chain.transactions.sign_transaction``); readers take any ``StateReader``
(the committed state, an overlay) and answer "where is the job, what must I do now".
Pure functions, no I/O: a client fetches blobs and runs sandboxes itself.

Participant, per round:   ``update_bodies`` -> send ``commit`` in the COMMIT phase,
                          ``reveal`` in the REVEAL phase (and upload the blob).
Drawn aggregator:         ``aggregate_body`` in the AGGREGATE phase.
Member voting:            ``vote_bodies`` -> ``commit`` in VOTE_COMMIT / END_COMMIT,
                          ``reveal`` in VOTE_REVEAL / END_REVEAL.
Owner:                    ``part_body("public", ...)`` before round 1's commit closes,
                          ``part_body("hidden", ...)`` in the HIDDEN phase.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from chain.content import blob_id_of_bytes
from chain.federated.blobs import model_hash, update_commitment, update_hash
from chain.federated.open.bodies import (
    END_ROUND,
    FedAggregate,
    FedCommit,
    FedPart,
    FedReveal,
    FedVoteCommit,
    FedVoteReveal,
    fed_vote_commitment,
)
from chain.federated.open.records import FedJob, FedPhase, FedRound, FedUpdate, round_key
from chain.federated.open.steps import ACCEPT
from chain.federated.rounds import FLTRUST
from chain.jobspec import DataRef
from chain.state import StateReader
from chain.types import Address, Hash32

__all__ = [
    "ACCEPT", "END_ROUND", "FedPhase", "UpdateBodies", "VoteBodies", "aggregate_body",
    "duty", "fed_job", "fed_round", "fed_rounds", "part_body", "revealed_updates",
    "update_bodies", "vote_bodies",
]


@dataclass(frozen=True, slots=True)
class UpdateBodies:
    """A participant's pair for one round; keep ``salt`` until the reveal is in a block."""

    commit: FedCommit
    reveal: FedReveal
    salt: bytes


def update_bodies(job_id: bytes, round: int, participant: bytes, update_blob: bytes,
                  salt: bytes | None = None) -> UpdateBodies:
    """[TX-FED.2] [TX-FED.3] [FED-COMMIT.1] The commit and reveal of ``update_blob`` (the
    [FED-QUANT.5] bytes the participant uploads); a fresh 32-byte salt unless given."""
    salt = os.urandom(32) if salt is None else salt
    digest = update_hash(update_blob)
    commitment = update_commitment(job_id, round, participant, digest, salt)
    return UpdateBodies(
        FedCommit(Hash32(job_id), round, commitment),
        FedReveal(Hash32(job_id), round, Hash32(blob_id_of_bytes(update_blob)),
                  len(update_blob), digest, salt),
        salt)


def aggregate_body(job_id: bytes, round: int, attempt: int, model_blob: bytes,
                   weights: dict[bytes, int]) -> FedAggregate:
    """[TX-FED.4] The aggregator's post: the model blob's hash [FED-MODEL.2] and blob id,
    and the weights of the participants whose updates entered the round (any order here;
    sent ascending by address)."""
    return FedAggregate(Hash32(job_id), round, attempt, model_hash(model_blob),
                        Hash32(blob_id_of_bytes(model_blob)),
                        tuple((Address(a), w) for a, w in sorted(weights.items())))


@dataclass(frozen=True, slots=True)
class VoteBodies:
    commit: FedVoteCommit
    reveal: FedVoteReveal
    salt: bytes


def vote_bodies(job_id: bytes, round: int, attempt: int, voter: bytes, valid: bool, *,
                accuracy_ppm: int | None = None, losses: list[int] | None = None,
                salt: bytes | None = None) -> VoteBodies:
    """[TX-FED.5] [TX-FED.6] [FED-VOTE.1] A vote on the round's aggregate (``accuracy_ppm``
    when valid) or, with ``round`` = ``END_ROUND`` and ``attempt`` 0, on the end ballot
    (``losses`` = [final, loo of each of ``FedJob.loo_participants``] when valid)."""
    salt = os.urandom(32) if salt is None else salt
    loss_tuple = None if losses is None else tuple(losses)
    commitment = fed_vote_commitment(job_id, round, attempt, voter, valid, accuracy_ppm,
                                     loss_tuple, salt)
    return VoteBodies(FedVoteCommit(Hash32(job_id), round, attempt, commitment),
                      FedVoteReveal(Hash32(job_id), round, attempt, valid, accuracy_ppm,
                                    loss_tuple, salt), salt)


def part_body(job_id: bytes, which: str, blob: bytes, size: int) -> FedPart:
    """[TX-FED.7] The owner names its ``public`` or ``hidden`` holdout part (a data blob)."""
    return FedPart(Hash32(job_id), which, DataRef(Hash32(blob), size))


# --- readers ------------------------------------------------------------------------------

def fed_job(state: StateReader, job_id: bytes) -> FedJob | None:
    """[FED-STATE.1] The job's running record (phase, round, deadline, updates, votes, ...)."""
    value: FedJob | None = state.get("fed_job", job_id)
    return value


def fed_round(state: StateReader, job_id: bytes, round: int) -> FedRound | None:
    """[FED-STATE.2] A finished round (accepted model hash, blob, weights, accuracy; or void)."""
    value: FedRound | None = state.get("fed_round", round_key(job_id, round))
    return value


def fed_rounds(state: StateReader, job_id: bytes) -> list[FedRound]:
    """Every finished round, in order."""
    out = []
    r = 1
    while (rec := fed_round(state, job_id, r)) is not None:
        out.append(rec)
        r += 1
    return out


def revealed_updates(fed: FedJob) -> tuple[FedUpdate, ...]:
    """The running round's revealed updates, ascending by address [FED-AGG.1] (the owner's
    FLTrust reference included: it is the one whose ``participant`` is ``fed.owner``)."""
    return tuple(sorted((u for u in fed.updates if u.blob is not None),
                        key=lambda u: u.participant))


def duty(state: StateReader, job_id: bytes, address: bytes, now_ms: int) -> str | None:
    """What ``address`` should send now, judged by the committed state at ``now_ms``:
    ``publish``, ``commit``, ``reveal``, ``aggregate``, ``vote_commit``, ``vote_reveal``,
    ``hidden``, or None. Participation (``commit``) is offered to every member; the
    client decides whether to join."""
    fed = fed_job(state, job_id)
    if fed is None or fed.phase == FedPhase.DONE or now_ms >= fed.deadline_ms:
        return None
    owner = address == fed.owner
    if fed.phase == FedPhase.COMMIT:
        if owner and fed.round == 1 and fed.public is None and fed.seed is not None:
            return "publish"
        job = state.job(job_id)
        spec = None if job is None else job.spec.federated
        if owner and (spec is None or spec.aggregation.rule != FLTRUST):
            return None  # the owner commits only its FLTrust reference [TX-FED.2]
        return None if fed.update_of(address) is not None else "commit"
    if fed.phase == FedPhase.REVEAL:
        mine = fed.update_of(address)
        return "reveal" if mine is not None and mine.blob is None else None
    if fed.phase == FedPhase.AGGREGATE:
        return "aggregate" if address == fed.aggregator else None
    if fed.phase == FedPhase.HIDDEN:
        return "hidden" if owner else None
    vote = fed.vote_of(address)
    if fed.phase in (FedPhase.VOTE_COMMIT, FedPhase.END_COMMIT):
        return "vote_commit" if address in fed.voters and vote is None else None
    return "vote_reveal" if vote is not None and not vote.opened else None
