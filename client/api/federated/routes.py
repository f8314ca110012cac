"""API routes over federated jobs [API-FED.1-3] (protocol_spec/federated.md §7).

``GET /federated`` lists the federated jobs (owner, status, rule, rounds done of total,
participants); ``GET /federated/{job_id}`` shows one: its terms, every recorded round
(participants with their commitments, reveals and trust weights, the aggregator, the
model hash, the agreed accuracy, the verdict), the running round as far as it went, the
end ballot and the payout per participant. Read-only views of the ``fed_job`` and
``fed_round`` tables through ``chain.federated.open.reads``'s readers: the routes add nothing
the state does not hold.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Any

from aiohttp import web

from chain.federated.open.reads import fed_job, fed_rounds
from chain.federated.open.records import FedJob, FedPhase, FedRound, FedUpdate, FedVote
from chain.federated.spec import FederatedSpec
from chain.records import Job
from chain.state import State
from chain.types import Address
from client.api.federated.views import weights_json
from client.api.json_forms import addr, data_ref_json, holdout_terms_json, parse_hash
from client.api.predict.routes import not_found
from client.node.handle import NodeHandle

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Json = dict[str, Any]


def _hex(b: bytes | None) -> str | None:
    return None if b is None else bytes(b).hex()


def fed_spec_json(spec: FederatedSpec) -> Json:
    """[FED-SPEC.1] The federated terms of a job's spec."""
    return {
        "initial_model": spec.initial_model.hex(), "dims": spec.dims,
        "scale_bits": spec.scale_bits, "rounds": spec.rounds,
        "min_participants": spec.min_participants, "max_participants": spec.max_participants,
        "rule": spec.aggregation.rule, "trim": spec.aggregation.trim,
        "target_accuracy_ppm": spec.target_accuracy_ppm,
        "holdout": holdout_terms_json(spec.holdout), "privacy": spec.privacy,
        "dp_clip": spec.dp_clip, "dp_noise_permille": spec.dp_noise_permille,
        "commit_window_ms": spec.commit_window_ms, "reveal_window_ms": spec.reveal_window_ms,
        "aggregate_window_ms": spec.aggregate_window_ms, "loo_permille": spec.loo_permille,
        "cohort": [addr(a) for a in spec.cohort],
    }


def update_json(u: FedUpdate, owner: bytes, weights: dict[bytes, int] | None) -> Json:
    """A participant of a round: its commitment, its reveal (null until revealed), and its
    trust weight once the round is recorded or an aggregate posted [FED-AGG.7]."""
    return {"address": addr(u.participant), "owner_reference": bytes(u.participant) == owner,
            "commitment": u.commitment.hex(), "revealed": u.blob is not None,
            "blob": _hex(u.blob), "size": u.size if u.blob is not None else None,
            "update_hash": _hex(u.update_hash),
            "weight": None if weights is None else weights.get(bytes(u.participant), 0)}


def vote_json(v: FedVote) -> Json:
    return {"voter": addr(v.voter), "commitment": v.commitment.hex(), "opened": v.opened,
            "valid": v.valid if v.opened else None,
            "accuracy_ppm": v.accuracy_ppm, "losses": None if v.losses is None else list(v.losses)}


def finished_round_json(rec: FedRound, owner: bytes) -> Json:
    """[API-FED.2] [FED-STATE.2] A recorded round: accepted (model, weights, the agreed
    accuracy [FED-VOTE.4], its aggregator) or void; aggregators voted cheating in it."""
    weights = {bytes(a): int(w) for a, w in rec.weights}
    return {
        "round": rec.round, "phase": "done", "verdict": rec.outcome,
        "model_hash": _hex(rec.model_hash), "model_blob": rec.model_blob.hex(),
        "aggregator": None if rec.aggregator is None else addr(rec.aggregator),
        "slashed": [addr(a) for a in rec.slashed], "accuracy_ppm": rec.accuracy_ppm,
        "weights": weights_json(rec.weights),
        "participants": [update_json(u, owner, weights) for u in rec.updates],
        "attempt": None, "deadline_ms": None, "voters": [], "votes": [],
    }


def running_round_json(fed: FedJob) -> Json:
    """[API-FED.2] [FED-STATE.1] The running round as far as it went: commitments and
    reveals, the drawn aggregator, the posted aggregate's model and weights, the ballot."""
    posted = fed.posted
    weights = None if posted is None else {bytes(a): int(w) for a, w in posted.weights}
    return {
        "round": fed.round, "phase": str(fed.phase), "verdict": None,
        "model_hash": None if posted is None else posted.model_hash.hex(),
        "model_blob": None if posted is None else posted.model_blob.hex(),
        "aggregator": None if fed.aggregator is None else addr(fed.aggregator),
        "slashed": [addr(a) for a in fed.slashed], "accuracy_ppm": None,
        "weights": [] if posted is None else weights_json(posted.weights),
        "participants": [update_json(u, bytes(fed.owner), weights)
                         for u in sorted(fed.updates, key=lambda u: u.participant)],
        "attempt": fed.attempt, "deadline_ms": int(fed.deadline_ms),
        "voters": [addr(a) for a in fed.voters], "votes": [vote_json(v) for v in fed.votes],
    }


ROUND_PHASES = (FedPhase.COMMIT, FedPhase.SHARES, FedPhase.REVEAL, FedPhase.UNMASK,
                FedPhase.AGGREGATE, FedPhase.VOTE_COMMIT, FedPhase.VOTE_REVEAL)
END_PHASES = (FedPhase.HIDDEN, FedPhase.END_COMMIT, FedPhase.END_REVEAL)


def participants_of(fed: FedJob, rounds: list[FedRound]) -> list[bytes]:
    """Every address that committed an update (the owner's reference excluded), sorted."""
    seen = {bytes(u.participant) for r in rounds for u in r.updates}
    if fed.phase in ROUND_PHASES:
        seen |= {bytes(u.participant) for u in fed.updates}
    seen.discard(bytes(fed.owner))
    return sorted(seen)


def fed_summary_json(job: Job, fed: FedJob, rounds: list[FedRound]) -> Json:
    """[API-FED.1] One federated job in the list."""
    spec = job.spec.federated
    assert spec is not None
    return {
        "job_id": fed.job_id.hex(), "owner": addr(fed.owner), "status": str(job.status),
        "phase": str(fed.phase), "round": fed.round, "rounds_done": len(rounds),
        "rounds_total": spec.rounds, "rule": spec.aggregation.rule,
        "participants": len(participants_of(fed, rounds)), "bounty": int(job.spec.bounty),
        "accuracy_ppm": fed.accuracy_ppm,
        "deadline_ms": None if fed.phase == FedPhase.DONE else int(fed.deadline_ms),
    }


def payout_addresses(fed: FedJob, rounds: list[FedRound]) -> list[bytes]:
    """[API-FED.3] The payout's rows: every participant and everyone paid, by address."""
    return sorted({*(bytes(a) for a, _ in fed.paid), *participants_of(fed, rounds)})


def banned_payees(state: State, fed: FedJob, rounds: list[FedRound]) -> set[bytes]:
    """[API-FED.3] The payout's addresses that are banned in ``state`` (bans are never
    lifted, so each one's share, if any, was burned [FED-END.4] [JOB-BAN.1])."""
    return {a for a in payout_addresses(fed, rounds) if state.account(Address(a)).banned}


def fed_detail_json(job: Job, fed: FedJob, rounds: list[FedRound],
                    banned: Collection[bytes]) -> Json:
    """[API-FED.2] [API-FED.3] The whole job: terms, every round, the end ballot, payout.
    ``banned``: the banned addresses among the payout's; each one's share is marked
    ``burned`` (the ledger burns a banned participant's share [FED-END.4], and a share
    credited before a ban went with the balance [JOB-BAN.1]: either way nobody has it)."""
    spec = job.spec.federated
    assert spec is not None
    shown = [finished_round_json(r, bytes(fed.owner)) for r in rounds]
    if fed.phase in ROUND_PHASES:
        shown.append(running_round_json(fed))
    in_end = fed.phase in END_PHASES
    paid = {bytes(a): int(v) for a, v in fed.paid}
    return {
        **fed_summary_json(job, fed, rounds),
        "spec": fed_spec_json(spec), "expiry_ms": int(job.spec.expiry_ms),
        "model_blob": fed.model_blob.hex(), "model_hash": _hex(fed.model_hash),
        "seed": _hex(fed.seed), "public": data_ref_json(fed.public),
        "hidden": data_ref_json(fed.hidden), "voter_paid": int(fed.voter_paid),
        "rounds": shown,
        "end": {
            "participants": [addr(a) for a in fed.loo_participants],
            "deposit": str(fed.deposit),
            "voters": [addr(a) for a in fed.voters] if in_end else [],
            "votes": [vote_json(v) for v in fed.votes] if in_end else [],
        },
        "payout": None if fed.phase != FedPhase.DONE else {
            "paid": [{"address": addr(a), "amount": paid.get(a, 0), "burned": a in banned}
                     for a in payout_addresses(fed, rounds)],
            "refund": int(fed.refund)},
    }


class FedRoutes:
    """Handlers over the federated tables; ``routes()`` lists them relative to the prefix."""

    def __init__(self, node: NodeHandle) -> None:
        self.node = node

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("GET", "/federated", self.get_list),
            ("GET", "/federated/{job_id}", self.get_job),
        ]

    async def get_list(self, request: web.Request) -> web.Response:
        """[API-FED.1] Every federated job, in job id order."""
        state = self.node.state
        out = []
        for job_id in sorted(state.keys("fed_job")):
            fed, job = fed_job(state, job_id), state.job(job_id)
            if fed is not None and job is not None:
                out.append(fed_summary_json(job, fed, fed_rounds(state, job_id)))
        return web.json_response({"height": int(state.height), "jobs": out})

    async def get_job(self, request: web.Request) -> web.Response:
        """[API-FED.2] [API-FED.3] One federated job, every round, the end and the payout."""
        job_id = parse_hash(request.match_info["job_id"], "job_id")
        state = self.node.state
        fed, job = fed_job(state, job_id), state.job(job_id)
        if fed is None or job is None:
            return not_found("unknown_federated_job", f"no federated job {job_id.hex()}")
        rounds = fed_rounds(state, job_id)
        return web.json_response(fed_detail_json(job, fed, rounds,
                                                 banned_payees(state, fed, rounds)))
