"""The OpenAPI 3.1 document of the node's HTTP API (served at ``/api/v1/openapi.json``).

Written by hand, next to ``client.api.server`` and ``client.api.json_forms``: the tests check
that every route the server registers is here and every route here is served, and validate
real responses against these schemas (objects are closed, so an undocumented field fails).

[API-DOC.2] Every schema states the protocol's own bounds (ledger.md, ``chain.fields``
readers of ``chain.transactions`` and ``chain.jobspec``): a transfer ``amount`` and a
``bounty`` are at least 1, balances and escrow at most 2**63-1, windows, permilles,
turns, resource limits, text lengths and list sizes as the decoders bound them, and
every enum (job status, verdict outcome, parameter kind, governance action) is the chain's
own list. ``tests/client/api/test_api_schema_bounds.py`` checks them against the decoders.
"""

from __future__ import annotations

from typing import Any

from chain.governance.bodies import GOV_ACTIONS
from chain.jobspec import (
    JOB_KINDS,
    MAX_ARG_LEN,
    MAX_CHOICES,
    MAX_COMMAND_ARGS,
    MAX_DATA_BLOBS,
    MAX_DATA_BYTES,
    MAX_FINALISTS,
    MAX_GPUS,
    MAX_MB,
    MAX_PARAMS,
    MAX_POOL,
    MIN_POOL,
    PARAM_KINDS,
)
from chain.records import JobStatus, Outcome
from chain.train.holdout.records import HoldoutStatus
from chain.transactions import BODY_TYPES, MAX_NONCE, MAX_TX_SIZE
from client.api.federated.openapi import FED_SCHEMAS, fed_paths, fed_tx_bodies
from client.api.limits import (
    API_PREFIX,
    JOB_STATUS_FILTERS,
    MAX_BLOCKS_PAGE,
    MAX_JOBS_PAGE,
    MAX_WAIT_S,
)
from client.api.openapi_types import (
    ADDRESS,
    AMOUNT,
    BOOL,
    COUNT,
    HEIGHT_INT,
    HEX,
    HEX32,
    INT,
    NUMBER,
    POSITIVE_AMOUNT,
    POWER,
    PUBKEY,
    SALT,
    SECURITY_SCHEMES,
    STRING,
    TIME_MS,
    WINDOW_MS,
    S,
    array,
    bounded,
    guard_writes,
    nullable,
    obj,
    ref,
    text,
)
from client.api.predict.openapi import PREDICT_SCHEMAS, predict_paths, predict_tx_bodies
from client.api.progress_schema import RUN_PROGRESS
from client.api.queue_openapi import QUEUE_SCHEMAS, queue_paths
from client.worker.attempt_log import (
    EXCERPT_BYTES,
    FAULTS,
    LOG_TAIL_BYTES,
    MAX_ATTEMPTS_KEPT,
    MAX_DETAIL_CHARS,
    OUTCOMES,
    STAGES,
)


def _body(tag: str, fields: dict[str, S], description: str) -> S:
    return obj({"type": {"const": tag}, **fields}, description=description)


_HEADER: dict[str, S] = {
    "height": HEIGHT_INT, "hash": HEX32, "chain_id": text(64, 1), "version": INT,
    "time_ms": TIME_MS, "prev_hash": HEX32, "proposer": ADDRESS, "tx_root": HEX32,
    "state_root": HEX32, "last_commit_hash": HEX32, "tx_count": COUNT,
}
_JOB_SUMMARY: dict[str, S] = {
    "job_id": HEX32, "submitter": ADDRESS,
    "status": {"enum": [str(s) for s in JobStatus]},
    "settled": BOOL, "description": text(1024), "image_ref": text(256),
    "bounty": POSITIVE_AMOUNT, "escrow": AMOUNT, "posted_height": HEIGHT_INT,
    "posted_time_ms": TIME_MS, "expiry_ms": TIME_MS, "claim_count": COUNT,
    "best_loss": nullable(NUMBER),
    "winner": nullable(ADDRESS),
}

SCHEMAS: dict[str, S] = {
    "Error": obj({"error": obj({"code": STRING, "message": STRING})},
                 description="Every error: a stable machine-readable code and one line"),
    "Status": obj({
        "chain_id": STRING, "address": ADDRESS,
        "roles": array({"enum": ["validator", "full", "worker"]}),
        "height": INT, "last_block_time_ms": TIME_MS, "last_block_hash": nullable(HEX32),
        "state_root": nullable(HEX32), "caught_up": BOOL, "consensus_round": INT,
        "mempool_txs": INT, "peer_count": INT, "p2p_endpoint": STRING,
        "api_endpoint": STRING, "time_ms": TIME_MS, "genesis_hash": HEX32,
        "worker": {"type": "object", "description": "Worker progress summary (free form)"},
        "protocol": obj({"version": INT, "max_known_version": INT, "upgrade_required":
                         nullable(STRING), "upgrade_plan": nullable(ref("UpgradePlan"))}),
        "storage_problem": nullable(STRING),
        "base_height": INT,
        "sync_missing": nullable(array(INT)),
    }, description="The node's view of the chain, its identity and its worker; "
                   "storage_problem says why a decided block cannot be stored right now "
                   "(e.g. the database is locked by another process), null when fine; "
                   "base_height is the oldest block stored here (older ones pruned, "
                   "[storage] retain_blocks); sync_missing [first, last] names heights no "
                   "connected peer stores while they keep this node from catching up"),
    "Peer": obj({"address": ADDRESS, "endpoint": STRING, "outbound": BOOL, "score": NUMBER}),
    "Params": obj({
        "max_block_txs": INT, "max_block_bytes": INT, "min_job_duration_ms": INT,
        "max_job_duration_ms": INT, "min_window_ms": INT, "max_turns": INT,
        "min_quorum_permille": INT, "min_supermajority_permille": INT,
        "governance_window_ms": INT, "validator_change_delay": INT,
        "max_block_time_drift_ms": INT,
        "verifier_bond": {**AMOUNT, "description": "Credits a verifier locks [VERIFY-JOIN.1]"},
    }, description="Protocol parameters fixed at genesis"),
    "BlockHeader": obj(_HEADER),
    "BlockList": obj({"height": INT, "base_height": INT, "blocks": array(ref("BlockHeader"))}),
    "Block": obj({**_HEADER, "tx_hashes": array(HEX32), "txs": array(ref("Transaction"))},
                 description="A block: header fields, transaction ids and decoded bodies"),
    "Transaction": obj({
        "hash": HEX32, "type": {"enum": list(BODY_TYPES)}, "sender": ADDRESS,
        "sender_pubkey": PUBKEY, "nonce": bounded(0, MAX_NONCE),
        "size": bounded(1, MAX_TX_SIZE), "body": ref("TxBody"),
    }, description="A signed transaction, decoded"),
    "TxBody": {"oneOf": [
        obj({"type": {"const": "transfer"}, "to": ADDRESS, "amount": POSITIVE_AMOUNT, "memo": HEX},
            description="Move credits (amount ≥ 1, ledger.md §3)", optional=("memo",)),
        _body("post_job", {"spec": ref("JobSpec")}, "Post a job; its escrow leaves the sender"),
        _body("claim", {"job_id": HEX32, "loss": NUMBER, "commitment": HEX32},
              "Announce a loss with a commitment to the model"),
        _body("reveal", {"job_id": HEX32, "model_hash": HEX32, "salt": SALT},
              "Open the model commitment"),
        _body("vote_commit", {"job_id": HEX32, "claimer": ADDRESS, "commitment": HEX32},
              "A hidden vote"),
        _body("vote_reveal", {"job_id": HEX32, "claimer": ADDRESS, "valid": BOOL,
                              "measured_loss": nullable(NUMBER), "salt": SALT,
                              "challenge_loss": nullable(NUMBER)},
              "Open a vote; challenge_loss answers [VOTE-CHALLENGE.1] (null: none)"),
        _body("gov_propose", {"action": ref("GovernanceAction")}, "Propose a governance action"),
        _body("gov_approve", {"proposal_id": HEX32}, "Approve a pending proposal"),
        _body("verifier_join", {}, "Opt in to verify; locks the verifier bond"),
        _body("verifier_leave", {}, "Opt out of verifying; the bond returns"),
        _body("holdout_publish", {"job_id": HEX32, "part": ref("DataRef")},
              "Name the public part of a hidden test set [HOLDOUT-PUBLISH.1]"),
        _body("holdout_reveal", {"job_id": HEX32, "part": ref("DataRef")},
              "Name the hidden part [HOLDOUT-REVEAL.1]"),
        _body("holdout_vote_reveal", {"job_id": HEX32, "claimer": ADDRESS, "valid": BOOL,
                                      "measured_loss": nullable(NUMBER), "holdout_ok": BOOL,
                                      "hidden_loss": nullable(NUMBER), "salt": SALT,
                                      "hidden_challenge_loss": nullable(NUMBER),
                                      "challenge_loss": nullable(NUMBER)},
              "Open a holdout vote [HOLDOUT-VOTE.1]; the answers on the hidden and the "
              "public part [HOLDOUT-CHALLENGE.1] (null: none)"),
        _body("evidence", {"vote_a": {**HEX, "maxLength": 2048},
                           "vote_b": {**HEX, "maxLength": 2048}},
              "Two conflicting consensus votes"),
    ]},
    "TxStatus": {"oneOf": [
        obj({"hash": HEX32, "status": {"const": "committed"}, "height": HEIGHT_INT,
             "index": COUNT,
             "block_hash": HEX32, "time_ms": TIME_MS, "tx": ref("Transaction")}),
        obj({"hash": HEX32, "status": {"const": "pending"}, "chain_height": HEIGHT_INT}),
    ]},
    "BatchResult": obj({
        "accepted": COUNT, "duplicates": COUNT,
        "rejected": array(obj({"index": COUNT, "status": {"enum": ["rejected", "full"]},
                               "code": STRING, "message": STRING})),
    }),
    "SubmitResult": obj({"hash": HEX32, "status": {"enum": ["accepted", "duplicate"]}}),
    "Account": obj({
        "address": ADDRESS, "balance": AMOUNT, "nonce": bounded(0, MAX_NONCE),
        "next_nonce": {**bounded(0, MAX_NONCE),
                       "description": "Nonce for a new tx (counts pending)"},
        "member": BOOL, "banned": BOOL, "validator_power": bounded(0, 1000),
        "verifier_bond": {**nullable(AMOUNT),
                          "description": "The bond locked to verify; null: not a verifier "
                                         "(ledger.md [VOTE-ELIGIBLE.2])"},
    }),
    "JobSpec": obj({
        "kind": {"enum": list(JOB_KINDS)}, "image_digest": HEX32, "image_blob": HEX32,
        "data": {"type": "object", "maxProperties": MAX_DATA_BLOBS,
                 "additionalProperties": obj({"blob": HEX32,
                                              "size": bounded(1, MAX_DATA_BYTES)}),
                 "description": "train/v2: role (1..32 of a-z 0-9 _ -, a letter first) → "
                                "data blob id and exact size in bytes [JOB-DATA.1] (train "
                                "and valid required); {} for train/v1"},
        "image_ref": text(256),
        "entry_points": {"type": "object", "maxProperties": 8,
                         "required": ["train", "evaluate"],
                         "additionalProperties": {**array(text(MAX_ARG_LEN), MAX_COMMAND_ARGS),
                                                  "minItems": 1},
                         "description": "Entry point name (1..32 characters) → argv"},
        "limits": obj({
            "memory_mb": bounded(16, 1 << 20), "cpu_millis": bounded(100, 256_000),
            "time_s": bounded(1, 7 * 24 * 3600), "disk_mb": bounded(1, MAX_MB),
            "model_mb": {**bounded(1, MAX_MB), "description": "At most disk_mb"},
            "image_mb": bounded(1, MAX_MB), "image_unpacked_mb": bounded(1, MAX_MB),
            "gpu_count": {**bounded(1, MAX_GPUS), "description": "GPUs one training run needs; "
                          "absent when none [JOB-GPU.1]"},
            "gpu_memory_mb": {**bounded(0, MAX_MB), "description": "Least memory per GPU, "
                              "MiB; 0: any. Absent without GPUs [JOB-GPU.1]"}},
            optional=("gpu_count", "gpu_memory_mb"),
            description="What one run may use [JOB-LIMITS.1], [JOB-IMAGE.5], [JOB-GPU.1]"),
        "search_space": array(obj({
            "name": text(64, 1), "kind": {"enum": list(PARAM_KINDS)},
            "values": array({"oneOf": [{"type": "number"}, text(64)]}, MAX_CHOICES)}),
            MAX_PARAMS),
        "bounty": POSITIVE_AMOUNT, "escrow": POSITIVE_AMOUNT, "expiry_ms": TIME_MS,
        "loss_tolerance": {"type": "number", "minimum": 0},
        "voting": obj({
            "reveal_window_ms": WINDOW_MS, "commit_window_ms": WINDOW_MS,
            "vote_reveal_window_ms": WINDOW_MS, "quorum_permille": bounded(1, 1000),
            "supermajority_permille": bounded(500, 1000), "voter_reward": AMOUNT,
            "max_turns": bounded(1, 16)}),
        "description": text(1024),
        "holdout": nullable(ref("HoldoutTerms")),
    }),
    "HoldoutTerms": obj({
        "root": {**HEX32, "description": "Merkle root of the salted pool [HOLDOUT-POOL.1]"},
        "pool": bounded(MIN_POOL, MAX_POOL), "public_permille": bounded(1, 999),
        "finalists": bounded(1, MAX_FINALISTS), "deposit": AMOUNT, "reveal_window_ms": WINDOW_MS,
        "tie_tolerance": {"type": "number", "minimum": 0},
    }, description="train/v3: the hidden test set's terms [HOLDOUT-SPEC.1]"),
    "DataRef": obj({"blob": HEX32, "size": bounded(1, MAX_DATA_BYTES)}),
    "Holdout": obj({
        "terms": ref("HoldoutTerms"),
        "public_count": bounded(1, MAX_POOL - 1), "hidden_count": bounded(1, MAX_POOL - 1),
        "seed": {**nullable(HEX32), "description": "The split seed, drawn at split_height "
                                                   "[HOLDOUT-SPLIT.1]; null before"},
        "split_height": HEIGHT_INT,
        "public": {**nullable(ref("DataRef")), "description": "The published public part"},
        "hidden": {**nullable(ref("DataRef")), "description": "The revealed hidden part"},
        "status": {"enum": [str(s) for s in HoldoutStatus]},
        "reveal_deadline_ms": {**nullable(TIME_MS),
                               "description": "While the job is in status holdout: the end "
                                              "of the reveal window [HOLDOUT-REVEAL.1]"},
        "winner_rule": {"enum": ["hidden_loss", "public_rank"],
                        "description": "hidden_loss once the hidden part is verified, else "
                                       "the first finalist wins [HOLDOUT-WINNER.1]"},
        "finalists": array(obj({"claimer": ADDRESS, "hidden_loss": nullable(NUMBER),
                                "height": HEIGHT_INT, "index": COUNT}), MAX_FINALISTS),
        "hidden_leaderboard": array(obj({
            "rank": bounded(1, MAX_FINALISTS), "claimer": ADDRESS, "hidden_loss": nullable(NUMBER),
            "height": HEIGHT_INT, "index": COUNT,
            "tied": {**BOOL, "description": "Within tie_tolerance of the best hidden loss"},
            "leading": {**BOOL, "description": "The finalist [HOLDOUT-WINNER.1] picks now"},
            "winner": BOOL}), MAX_FINALISTS),
    }, description="A train/v3 job's hidden test set [API-HOLDOUT.1]"),
    "Claim": obj({"claimer": ADDRESS, "loss": NUMBER, "commitment": HEX32,
                  "height": HEIGHT_INT, "index": COUNT}),
    "Vote": obj({"voter": ADDRESS, "commitment": HEX32, "revealed": BOOL,
                 "valid": nullable(BOOL), "measured_loss": nullable(NUMBER),
                 "holdout_ok": {**nullable(BOOL),
                                "description": "A holdout vote: the hidden part matched its "
                                               "root [HOLDOUT-VOTE.1]; null otherwise"},
                 "hidden_loss": nullable(NUMBER), "hidden_challenge_loss": nullable(NUMBER),
                 "challenge_loss": nullable(NUMBER)}),
    "Verdict": obj({
        "claimer": ADDRESS,
        "outcome": {"enum": [str(o) for o in Outcome]},
        "valid_votes": COUNT, "invalid_votes": COUNT, "eligible": COUNT, "time_ms": TIME_MS,
        "model_hash": nullable(HEX32),
        "verified_loss": nullable(NUMBER)}),
    "JobSummary": obj(_JOB_SUMMARY),
    "JobList": obj({"jobs": array(ref("JobSummary"), MAX_JOBS_PAGE), "total": COUNT}),
    "Job": obj({
        **_JOB_SUMMARY,
        "spec": ref("JobSpec"),
        "claims": array(ref("Claim")),
        "tried": array(ADDRESS),
        "turn": nullable(obj({
            "claimer": ADDRESS, "number": bounded(1, 1 << 16),
            "phase": {"enum": ["reveal", "vote_commit", "vote_reveal"]},
            "deadline_ms": TIME_MS, "model_hash": nullable(HEX32),
            "eligible_voters": array(ADDRESS), "votes_committed": COUNT,
            "votes_revealed": COUNT})),
        "phase_deadline_ms": nullable(TIME_MS),
        "turns_voted": COUNT,
        "eligible_voters": {**array(ADDRESS),
                            "description": "The verifiers eligible on the last turn that "
                                           "was voted on (kept after settlement, so a "
                                           "refund can name who did not vote)"},
        "model_hash": nullable(HEX32),
        "votes": array(ref("Vote")),
        "verdicts": array(ref("Verdict")),
        "paid": AMOUNT,
        "winner_model_hash": nullable(HEX32),
        "holdout": {**nullable(ref("Holdout")), "description": "train/v3 only, else null"},
    }, description="A job: spec, escrow, claims (ranked), current turn, votes, verdicts"),
    "Leaderboard": obj({
        "job_id": HEX32, "status": {"enum": [str(s) for s in JobStatus]},
        "claims": array(obj({
            "rank": bounded(1, 1 << 32), "claimer": ADDRESS, "loss": NUMBER,
            "commitment": HEX32, "height": HEIGHT_INT, "index": COUNT,
            "state": {"enum": ["waiting", "current", *(str(o) for o in Outcome)]},
            "winner": BOOL})),
    }, description="Claims ranked: lower loss first, then earlier height, then block position"),
    "ClaimPoint": obj({"claimer": ADDRESS, "loss": NUMBER, "height": HEIGHT_INT,
                       "index": COUNT,
                       "time_ms": TIME_MS, "tx_hash": HEX32},
                      description="One accepted claim transaction: its block, position and time"),
    "ClaimHistory": obj({
        "job_id": HEX32,
        "complete": {"type": "boolean",
                     "description": "False when this node's index may miss older claims"},
        "claims": array(ref("ClaimPoint")),
        "best": array(ref("ClaimPoint")),
    }, description="Every claim of a job in chain order (a claimer's earlier claims too), and "
                   "the claims that lowered the best loss (served with the dashboard)"),
    "AttemptRecord": obj({
        "job_id": HEX32, "worker": ADDRESS,
        "attempt": {**COUNT, "description": "Attempt number (its seed); a run given back "
                                            "repeats it"},
        "run": {**COUNT, "description": "Runs this worker started on the job, this one included"},
        "started_ms": TIME_MS, "seconds": {"type": "number", "minimum": 0},
        "stage": {"enum": list(STAGES), "description": "Where the attempt ended"},
        "outcome": {"enum": list(OUTCOMES)},
        "reason": {**text(64), "description": "The sandbox's failure reason [JOB-EXIT.2] "
                                              "(or inconsistent); empty when ok"},
        "fault": {"enum": list(FAULTS), "description": "Whose fault [JOB-EXIT.5]: job (the "
                                                       "attempt is used up) or worker"},
        "exit_code": nullable(INT), "resumed_from": nullable(COUNT),  # [WORK-RESUME.1]
        "detail": text(MAX_DETAIL_CHARS + 3),
        "loss": nullable(NUMBER),
        "log": {**text(EXCERPT_BYTES), "description": "[API-JOBLOG.3] A redacted excerpt of "
                                                      "the end of what a failed run printed "
                                                      "(UTF-8, invalid bytes replaced)"},
        "log_bytes": {**COUNT, "description": "Bytes the run printed in all"},
    }, description="One training attempt of a job by a worker on this node"),
    "JobAttempts": obj({
        "job_id": HEX32, "node": ADDRESS,
        "worker_role": {"type": "boolean", "description": "Whether this node runs a worker"},
        "attempts": array(ref("AttemptRecord")), "progress": nullable(RUN_PROGRESS),
    }, description="[API-JOBLOG.1] This node's worker attempts on a job, oldest first: "
                   f"the last {MAX_ATTEMPTS_KEPT} per worker, each failed one with the end "
                   "of its output. Other nodes' workers are not known here."),
    "GovernanceAction": obj({
        "kind": {"enum": list(GOV_ACTIONS)},
        "target": {"oneOf": [ADDRESS, PUBKEY, text(32, 1)]},  # plan name: schedule/cancel
        "address": ADDRESS, "power": {**bounded(0, 1000),
                                      "description": "1..1000 for add_validator, else 0"},
        "plan": ref("UpgradePlan")}, optional=("address", "plan")),
    "UpgradePlan": obj({"name": text(32, 1), "version": bounded(2, 65_535), "height": INT}),
    "Validators": obj({
        "validators": array(obj({"address": ADDRESS, "pubkey": PUBKEY, "power": POWER})),
        "total_power": COUNT,
        "scheduled_changes": array(obj({
            "height": HEIGHT_INT, "kind": {"enum": ["add", "remove"]}, "address": ADDRESS,
            "pubkey": nullable(PUBKEY), "power": bounded(0, 1000)})),
    }),
    "Members": obj({"members": array(obj({"address": ADDRESS, "balance": AMOUNT,
                                          "banned": BOOL, "validator": BOOL,
                                          "verifier": BOOL}))}),
    "Proposals": obj({"proposals": array(obj({
        "proposal_id": HEX32, "proposer": ADDRESS, "action": ref("GovernanceAction"),
        "created_ms": TIME_MS, "expires_ms": TIME_MS, "approvals": array(ADDRESS),
        "approved_power": COUNT, "total_power": COUNT,
        "needed_power": {"type": "integer", "minimum": 1,
                         "description": "Approving power needed (more than two thirds)"}}))}),
    "BlobInfo": obj({"blob": HEX32, "size": bounded(1, 1 << 62)}),
    "WaitResult": obj({"height": HEIGHT_INT, "reached": BOOL}),
    "Genesis": obj({
        "hash": {**HEX32, "description": "SHA-256 of the canonical encoding of the document "
                                          "(ledger.md §8); equals /status genesis_hash"},
        "genesis": obj({
            "chain_id": text(64, 1), "genesis_time_ms": TIME_MS,
            "validators": array(obj({"pubkey": PUBKEY, "power": POWER, "name": STRING})),
            "members": array(ADDRESS),
            "balances": {"type": "object", "additionalProperties": AMOUNT,
                         "description": "Address text → initial credits"},
            "params": ref("Params"),
            "verifiers": {**array(ADDRESS),
                          "description": "Members bonded as verifiers at genesis "
                                         "[GENESIS-VERIFIERS.1]"}},
            description="The genesis file as the node parsed it: "
                        "Genesis.from_json(genesis).hash == hash"),
    }, description="[API-GENESIS.1] The genesis document this node runs and its hash"),
    "Supply": obj({
        "height": HEIGHT_INT, "state_root": HEX32,
        "supply": {**AMOUNT, "description": "Credits created at genesis (the only ones)"},
        "balances": {**AMOUNT, "description": "Sum of every account balance"},
        "escrowed": {**AMOUNT, "description": "Sum of every job's escrow and every prediction "
                                              "request's escrow [BANK.1]"},
        "bonded": {**AMOUNT, "description": "Sum of every verifier bond and every "
                                             "prediction executor bond [BANK.1]"},
        "burned": {**AMOUNT, "description": "Credits burned so far (slashing, forfeited "
                                            "bonds, settlements)"},
        "accounts": COUNT, "jobs_holding_escrow": COUNT, "verifiers": COUNT,
        "conserved": {"type": "boolean",
                      "description": "balances + escrowed + bonded + burned == supply "
                                     "[BANK.1]"},
    }, description="[API-SUPPLY.1] Credit totals of the committed state at height"),
}


def _json(schema: S, description: str = "OK") -> S:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> S:
    return _json(ref("Error"), description)


def _path_param(name: str, schema: S, description: str) -> S:
    return {"name": name, "in": "path", "required": True, "schema": schema,
            "description": description}


def _query(name: str, schema: S, description: str, required: bool = False) -> S:
    return {"name": name, "in": "query", "required": required, "schema": schema,
            "description": description}


def _op(summary: str, responses: dict[str, S], *, params: list[S] | None = None,
        body: S | None = None, tags: tuple[str, ...] = ()) -> S:
    op: S = {"summary": summary, "responses": responses,
             "operationId": summary.lower().replace(" ", "_").replace("'", "")[:60]}
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = body
    if tags:
        op["tags"] = list(tags)
    return op


HEIGHT = _path_param("height", {"type": "integer", "minimum": 1}, "Block height")
JOB_ID = _path_param("job_id", HEX32, "Job id (hash of its post_job transaction)")
BAD = {"400": _error("Malformed input")}
NOT_FOUND = _error("Not found")
PRUNED = _error("Below the base height: pruned here ([storage] retain_blocks); code pruned_block")
OCTET = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
STORAGE_FULL = _error("This node's disk is full: nothing kept (code storage_full)")


def _paths() -> dict[str, S]:
    return {
        "/status": {"get": _op("Node status", {"200": _json(ref("Status"))},
                               tags=("node",))},
        "/peers": {"get": _op("Connected peers", {"200": _json(array(ref("Peer")))},
                              tags=("node",))},
        "/params": {"get": _op("Protocol parameters", {"200": _json(ref("Params"))},
                               tags=("chain",))},
        "/blocks": {"get": _op(
            "List blocks", {"200": _json(ref("BlockList")), **BAD},
            params=[
                _query("from", {"type": "integer", "minimum": 0},
                       "First height listed (default: the tip for desc, 1 for asc)"),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_BLOCKS_PAGE,
                                 "default": 20}, "How many blocks"),
                _query("order", {"enum": ["desc", "asc"], "default": "desc"},
                       "Newest first (desc) or oldest first"),
            ], tags=("chain",))},
        "/blocks/{height}": {"get": _op(
            "Get block", {"200": _json(ref("Block")), **BAD, "404": NOT_FOUND, "410": PRUNED},
            params=[HEIGHT], tags=("chain",))},
        "/blocks/{height}/raw": {"get": _op(
            "Get raw block",
            {"200": {"description": "Canonical msgpack [block bytes, certificate bytes or nil]",
                     "content": OCTET}, **BAD, "404": NOT_FOUND, "410": PRUNED},
            params=[HEIGHT], tags=("chain",))},
        "/txs": {"post": _op(
            "Submit transaction",
            {"202": _json(ref("SubmitResult"), "Admitted to the mempool (and gossiped)"),
             "400": _error("Malformed, or rejected by the mempool (code names the rule)"),
             "413": _error("Body too large"), "415": _error("Wrong content type"),
             "429": _error("Too many pending transactions of this sender"),
             "503": _error("Mempool full")},
            body={"required": True, "content": {
                **OCTET,
                "application/json": {"schema": obj({"tx": HEX})}}},
            tags=("chain",))},
        "/txs/batch": {"post": _op(
            "Submit transactions in a batch",
            {"200": _json(ref("BatchResult"),
                          "Each admitted in order; the others listed (after the first "
                          "mempool_full or the window's room, the rest: full or duplicate)"),
             "400": _error("Not a msgpack array of byte strings, or too many"),
             "413": _error("Body too large"), "415": _error("Wrong content type")},
            body={"required": True, "content": OCTET}, tags=("chain",))},
        "/txs/{hash}": {"get": _op(
            "Get transaction",
            {"200": _json(ref("TxStatus")), **BAD,
             "404": _error("Neither committed nor pending")},
            params=[_path_param("hash", HEX32, "Transaction id")], tags=("chain",))},
        "/accounts/{address}": {"get": _op(
            "Get account", {"200": _json(ref("Account")), **BAD},
            params=[_path_param("address", ADDRESS, "Account address")], tags=("chain",))},
        "/jobs": {"get": _op(
            "List jobs", {"200": _json(ref("JobList")), **BAD},
            params=[
                _query("status", {"enum": list(JOB_STATUS_FILTERS), "default": "all"},
                       "Only jobs in this status (active = not settled)"),
                _query("submitter", ADDRESS, "Only jobs of this submitter"),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_JOBS_PAGE,
                                 "default": 100}, "How many jobs (newest first)"),
            ], tags=("jobs",))},
        "/jobs/{job_id}": {"get": _op(
            "Get job", {"200": _json(ref("Job")), **BAD, "404": NOT_FOUND},
            params=[JOB_ID], tags=("jobs",))},
        "/jobs/{job_id}/leaderboard": {"get": _op(
            "Job leaderboard", {"200": _json(ref("Leaderboard")), **BAD, "404": NOT_FOUND},
            params=[JOB_ID], tags=("jobs",))},
        "/jobs/{job_id}/logs": {"get": _op(
            "Job attempts on this node",
            {"200": _json(ref("JobAttempts")), **BAD, "404": NOT_FOUND},
            params=[JOB_ID, _query("tail", {"type": "integer", "minimum": 0,
                                            "maximum": LOG_TAIL_BYTES,
                                            "default": LOG_TAIL_BYTES},
                                   "Bytes of each failed run's output to include (its end)")],
            tags=("jobs",))},
        "/jobs/{job_id}/history": {"get": _op(
            "Job claim history", {"200": _json(ref("ClaimHistory")), **BAD, "404": NOT_FOUND},
            params=[JOB_ID], tags=("jobs",))},
        "/validators": {"get": _op("List validators", {"200": _json(ref("Validators"))},
                                   tags=("governance",))},
        "/members": {"get": _op("List members", {"200": _json(ref("Members"))},
                                tags=("governance",))},
        "/proposals": {"get": _op("List proposals", {"200": _json(ref("Proposals"))},
                                  tags=("governance",))},
        "/blobs": {"post": _op(
            "Upload blob",
            {"201": _json(ref("BlobInfo"), "Stored; the id is its content address"),
             **BAD, "413": _error("Larger than the node accepts"), "507": STORAGE_FULL,
             "415": _error("Wrong content type"), "503": _error("Too many uploads at once")},
            body={"required": True, "content": OCTET}, tags=("blobs",))},
        "/blobs/{blob}": {"get": _op("Download blob", {
            "200": {"description": "The blob's bytes", "content": OCTET}, **BAD,
             "404": _error("Not stored here and no peer could serve it"), "507": STORAGE_FULL},
            params=[_path_param("blob", HEX32, "Blob id (chain.content)")],
            tags=("blobs",))},
        "/blobs/{blob}/info": {"get": _op(
            "Blob info",
            {"200": _json(ref("BlobInfo"), "Stored on this node"), **BAD,
             "404": _error("Not stored on this node (peers are not asked)")},
            params=[_path_param("blob", HEX32, "Blob id (chain.content)")],
            tags=("blobs",))},
        "/wait": {"get": _op(
            "Wait for height",
            {"200": _json(ref("WaitResult"), "The chain reached the height, or time ran out"),
             **BAD, "503": _error("Too many waiting requests")},
            params=[
                _query("height", {"type": "integer", "minimum": 0}, "Height to wait for",
                       required=True),
                _query("timeout", {"type": "number", "minimum": 0, "maximum": MAX_WAIT_S,
                                   "default": 30}, "Seconds to wait at most"),
            ], tags=("chain",))},
        "/genesis": {"get": _op(
            "Genesis document", {"200": _json(ref("Genesis"))}, tags=("chain",))},
        "/supply": {"get": _op(
            "Credit supply", {"200": _json(ref("Supply"), "Totals at the committed height")},
            tags=("chain",))},
        "/openapi.json": {"get": _op(
            "OpenAPI document", {"200": _json({"type": "object"}, "This document")},
            tags=("node",))},
    }


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "LearningChain node API",
            "version": "1",
            "description": (
                "Read the chain, submit signed transactions, move blobs. Bytes are lowercase "
                "hex, addresses lc1… text, amounts integers, times milliseconds. Errors are "
                '{"error": {"code", "message"}} with a 4xx status. Writes take the node\'s '
                "token (Authorization: Bearer) once it has one [API-AUTH.*]."),
        },
        "servers": [{"url": API_PREFIX}],
        "paths": guard_writes({**_paths(), **predict_paths(_op, _json, _error, _path_param),
                               **fed_paths(_op, _json, _error, _path_param),
                               **queue_paths(_op, _json, _error, _path_param)}, _error),
        "components": {"securitySchemes": SECURITY_SCHEMES, "schemas": {
            **SCHEMAS, **PREDICT_SCHEMAS, **FED_SCHEMAS, **QUEUE_SCHEMAS,
            "TxBody": {"oneOf": [*SCHEMAS["TxBody"]["oneOf"], *predict_tx_bodies(_body),
                                 *fed_tx_bodies(_body)]}}},
    }
