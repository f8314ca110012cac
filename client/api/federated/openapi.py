"""OpenAPI schemas and paths of the federated routes [API-FED.1-3] (``client.api.federated.routes``)
and the federated transaction bodies [API-FED.4]; ``client.api.openapi`` merges them into
its document. Bounds are the chain's own (chain/federated/) [API-DOC.2]."""

from __future__ import annotations

from collections.abc import Callable

from chain.federated.blobs import MAX_ROUNDS
from chain.federated.fixed import MAX_DIMS, MAX_ROUND_PARTICIPANTS, SCALE_BITS_MAX, SCALE_BITS_MIN
from chain.federated.open.bodies import MAX_ATTEMPT, MAX_WEIGHT, PARTS, PPM
from chain.federated.open.records import DepositStatus, FedPhase
from chain.federated.rewards import MAX_LOSS
from chain.federated.rounds import RULES
from chain.federated.spec import MAX_DP_CLIP, MAX_NOISE_PERMILLE, PRIVACY_MODES
from chain.records import JobStatus
from client.api.openapi_types import (
    ADDRESS,
    AMOUNT,
    BOOL,
    COUNT,
    HEIGHT_INT,
    HEX32,
    PUBKEY,
    SALT,
    TIME_MS,
    S,
    array,
    bounded,
    nullable,
    obj,
    ref,
)

N = MAX_ROUND_PARTICIPANTS
ROUND: S = bounded(1, MAX_ROUNDS)
PPM_S: S = bounded(0, PPM)
WEIGHTS: S = {**array(obj({"address": ADDRESS, "weight": bounded(0, MAX_WEIGHT)}), N),
              "description": "[FED-AGG.7] Trust weights, ascending by address (2^16 = 1)"}
LOSSES: S = nullable(array(bounded(0, MAX_LOSS - 1), N + 1))
PHASE: S = {"enum": [str(p) for p in FedPhase],
            "description": "[FED-ROUND.1] commit → reveal → aggregate → vote_commit → "
                           "vote_reveal (per round); hidden → end_commit → end_reveal; done"}
_SUMMARY: dict[str, S] = {
    "job_id": HEX32, "owner": ADDRESS, "status": {"enum": [str(s) for s in JobStatus]},
    "phase": PHASE, "round": bounded(0, MAX_ROUNDS),
    "rounds_done": {**bounded(0, MAX_ROUNDS), "description": "Recorded rounds (fed_round)"},
    "rounds_total": ROUND, "rule": {"enum": list(RULES)},
    "participants": {**COUNT, "description": "Distinct addresses that committed an update "
                                             "(the owner's FLTrust reference not counted)"},
    "bounty": AMOUNT,
    "accuracy_ppm": {**nullable(PPM_S), "description": "The last accepted round's"},
    "deadline_ms": {**nullable(TIME_MS), "description": "End of the phase; null when done"},
}
_VOTE = obj({"voter": ADDRESS, "commitment": HEX32, "opened": BOOL,
             "valid": {**nullable(BOOL), "description": "null until opened"},
             "accuracy_ppm": nullable(PPM_S), "losses": LOSSES})
_PARTICIPANT = obj({
    "address": ADDRESS,
    "owner_reference": {**BOOL, "description": "The owner's FLTrust reference [TX-FED.2]"},
    "commitment": HEX32, "revealed": BOOL, "blob": nullable(HEX32),
    "size": nullable(bounded(1, 1 << 40)), "update_hash": nullable(HEX32),
    "weight": {**nullable(bounded(0, MAX_WEIGHT)),
               "description": "Trust weight [FED-AGG.7]; null before an aggregate is posted"},
})
_ROUND = obj({
    "round": ROUND, "phase": {"enum": [*(str(p) for p in FedPhase)]},
    "verdict": {**nullable({"enum": ["accepted", "void"]}),
                "description": "[FED-ROUND.4] [FED-ROUND.2]; null while the round runs"},
    "model_hash": {**nullable(HEX32), "description": "The accepted or posted model [FED-MODEL.2]"},
    "model_blob": nullable(HEX32), "aggregator": nullable(ADDRESS),
    "slashed": {**array(ADDRESS, MAX_ATTEMPT + 1),
                "description": "Aggregators voted cheating in this round [FED-ROUND.5]"},
    "accuracy_ppm": {**nullable(PPM_S), "description": "Agreed accuracy [FED-VOTE.4]"},
    "weights": WEIGHTS, "participants": array(_PARTICIPANT, N + 1),
    "attempt": {**nullable(bounded(0, MAX_ATTEMPT)), "description": "Running round only"},
    "deadline_ms": nullable(TIME_MS), "voters": array(ADDRESS), "votes": array(_VOTE),
})
_SPEC = obj({
    "initial_model": HEX32, "dims": bounded(1, MAX_DIMS),
    "scale_bits": bounded(SCALE_BITS_MIN, SCALE_BITS_MAX), "rounds": ROUND,
    "min_participants": bounded(1, N), "max_participants": bounded(1, N),
    "rule": {"enum": list(RULES)}, "trim": COUNT, "target_accuracy_ppm": nullable(PPM_S),
    "holdout": ref("HoldoutTerms"), "privacy": {"enum": list(PRIVACY_MODES)},
    "dp_clip": bounded(0, MAX_DP_CLIP), "dp_noise_permille": bounded(0, MAX_NOISE_PERMILLE),
    "commit_window_ms": COUNT, "reveal_window_ms": COUNT, "aggregate_window_ms": COUNT,
    "loo_permille": bounded(0, 1000),
    "cohort": {**array(ADDRESS, N), "description": "[FED-SPEC.4] The only addresses that "
               "may commit updates; empty: any admitted member"},
}, description="[FED-SPEC.1] The job's federated terms")

FED_SCHEMAS: dict[str, S] = {
    "FederatedSummary": obj(_SUMMARY, description="[API-FED.1] A federated job"),
    "FederatedList": obj({"height": HEIGHT_INT, "jobs": array(ref("FederatedSummary"))}),
    "FederatedRound": _ROUND,
    "FederatedJob": obj({
        **_SUMMARY, "spec": _SPEC, "expiry_ms": TIME_MS, "model_blob": HEX32,
        "model_hash": nullable(HEX32), "seed": nullable(HEX32),
        "public": nullable(ref("DataRef")), "hidden": nullable(ref("DataRef")),
        "voter_paid": AMOUNT,
        "rounds": {**array(ref("FederatedRound"), MAX_ROUNDS),
                   "description": "Recorded rounds in order, then the running round"},
        "end": obj({"participants": {**array(ADDRESS, N),
                                     "description": "[FED-END.1] loo participants"},
                    "deposit": {"enum": [str(d) for d in DepositStatus]},
                    "voters": array(ADDRESS), "votes": array(_VOTE)},
                   description="[API-FED.3] The end ballot (its votes while it runs)"),
        "payout": {**nullable(obj({
            "paid": array(obj({"address": ADDRESS, "amount": AMOUNT, "burned": {
                **BOOL, "description": "[FED-END.4] The address is banned: its amount "
                "was burned, not credited (or burned with its balance when banned later)"}})),
            "refund": AMOUNT})), "description": "[FED-END.4] Once done; null before"},
    }, description="[API-FED.2] [API-FED.3] One federated job"),
}


def fed_tx_bodies(body: Callable[[str, dict[str, S], str], S]) -> list[S]:
    """[API-FED.4] The federated bodies of ``TxBody`` (``body`` is openapi's ``_body``)."""
    att = bounded(0, MAX_ATTEMPT)
    rnd = bounded(0, MAX_ROUNDS)
    return [
        body("fed_commit", {"job_id": HEX32, "round": rnd, "commitment": HEX32},
             "An update commitment [TX-FED.2] [FED-COMMIT.1]"),
        body("fed_reveal", {"job_id": HEX32, "round": rnd, "blob": HEX32,
                            "size": bounded(1, 1 << 40), "update_hash": HEX32, "salt": SALT},
             "Open an update commitment [TX-FED.3]"),
        body("fed_aggregate", {"job_id": HEX32, "round": rnd, "attempt": att,
                               "model_hash": HEX32, "model_blob": HEX32, "weights": WEIGHTS},
             "The drawn aggregator's model and weights [TX-FED.4]"),
        body("fed_vote_commit", {"job_id": HEX32, "round": rnd, "commitment": HEX32,
                                 "attempt": att},
             "A hidden vote; round 0 is the end ballot [TX-FED.5]"),
        body("fed_vote_reveal", {"job_id": HEX32, "round": rnd, "attempt": att,
                                 "valid": BOOL, "accuracy_ppm": nullable(PPM_S),
                                 "losses": LOSSES, "salt": SALT},
             "Open a vote [TX-FED.6] [FED-VOTE.1]"),
        body("fed_part", {"job_id": HEX32, "which": {"enum": list(PARTS)},
                          "part": ref("DataRef")},
             "The owner names a holdout part [TX-FED.7]"),
        body("fed_keys", {"job_id": HEX32, "round": rnd, "mask_key": PUBKEY,
                          "enc_key": PUBKEY},
             "A private round's keys, opening its commitment [TX-FED.8] [FED-PRIV.6]"),
        body("fed_shares", {"job_id": HEX32, "round": rnd, "blob": HEX32,
                            "size": bounded(1, 1 << 40)},
             "A private round's share blob [TX-FED.9] [FED-PRIV.7]"),
        body("fed_unmask", {"job_id": HEX32, "round": rnd, "blob": HEX32,
                            "size": bounded(1, 1 << 40)},
             "A survivor's unmask blob [TX-FED.10] [FED-PRIV.8]"),
    ]


def fed_paths(op: Callable[..., S], json: Callable[..., S], error: Callable[[str], S],
              path_param: Callable[[str, S, str], S]) -> dict[str, S]:
    """The two routes, built with ``client.api.openapi``'s helpers (passed in)."""
    return {
        "/federated": {"get": op("List federated jobs", {"200": json(ref("FederatedList"))},
                                 tags=("federated",))},
        "/federated/{job_id}": {"get": op(
            "Get federated job",
            {"200": json(ref("FederatedJob")), "400": error("Malformed id"),
             "404": error("No such federated job")},
            params=[path_param("job_id", HEX32, "The federated job's id")],
            tags=("federated",))},
    }
