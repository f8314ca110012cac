"""The OpenAPI 3.1 document of the node's HTTP API (served at ``/api/v1/openapi.json``).

Written by hand, next to ``client.api.server`` and ``client.api.json_forms``: the tests
check that every route the server registers is here and every route here is
served, and validate real responses against these schemas (objects are
closed with ``additionalProperties: false``, so an undocumented field fails).
"""

from __future__ import annotations

from typing import Any

from client.api.limits import (
    API_PREFIX,
    JOB_STATUS_FILTERS,
    MAX_BLOCKS_PAGE,
    MAX_JOBS_PAGE,
    MAX_WAIT_S,
)

S = dict[str, Any]

HEX32: S = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
HEX: S = {"type": "string", "pattern": "^([0-9a-f]{2})*$"}
ADDRESS: S = {"type": "string", "pattern": "^lc1[0-9a-f]{48}$",
              "description": "Checksummed address text: lc1 + hex(20 bytes) + hex(4-byte check)"}
INT: S = {"type": "integer"}
AMOUNT: S = {"type": "integer", "minimum": 0, "description": "Credits (indivisible units)"}
TIME_MS: S = {"type": "integer", "description": "Milliseconds since the Unix epoch"}
NUMBER: S = {"type": "number"}
STRING: S = {"type": "string"}
BOOL: S = {"type": "boolean"}


def nullable(schema: S) -> S:
    return {"oneOf": [schema, {"type": "null"}]}


def ref(name: str) -> S:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: dict[str, S], *, description: str = "",
        optional: tuple[str, ...] = ()) -> S:
    """A closed object: every property documented, all required unless listed optional."""
    out: S = {"type": "object", "properties": properties,
              "required": [k for k in properties if k not in optional],
              "additionalProperties": False}
    if description:
        out["description"] = description
    return out


def array(items: S) -> S:
    return {"type": "array", "items": items}


def _body(tag: str, fields: dict[str, S], description: str) -> S:
    return obj({"type": {"const": tag}, **fields}, description=description)


_HEADER: dict[str, S] = {
    "height": INT, "hash": HEX32, "chain_id": STRING, "version": INT, "time_ms": TIME_MS,
    "prev_hash": HEX32, "proposer": ADDRESS, "tx_root": HEX32, "state_root": HEX32,
    "last_commit_hash": HEX32, "tx_count": INT,
}
_JOB_SUMMARY: dict[str, S] = {
    "job_id": HEX32, "submitter": ADDRESS,
    "status": {"enum": ["open", "reveal", "vote_commit", "vote_reveal", "paid", "refunded",
                        "broken"]},
    "settled": BOOL, "description": STRING, "image_ref": STRING, "bounty": AMOUNT,
    "escrow": AMOUNT, "posted_height": INT, "posted_time_ms": TIME_MS,
    "expiry_ms": TIME_MS, "claim_count": INT, "best_loss": nullable(NUMBER),
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
        "storage_problem": nullable(STRING),
    }, description="The node's view of the chain, its identity and its worker; "
                   "storage_problem says why a decided block cannot be stored right now "
                   "(e.g. the database is locked by another process), null when fine"),
    "Peer": obj({"address": ADDRESS, "endpoint": STRING, "outbound": BOOL, "score": NUMBER}),
    "Params": obj({
        "max_block_txs": INT, "max_block_bytes": INT, "min_job_duration_ms": INT,
        "max_job_duration_ms": INT, "min_window_ms": INT, "max_turns": INT,
        "min_quorum_permille": INT, "min_supermajority_permille": INT,
        "governance_window_ms": INT, "validator_change_delay": INT,
        "max_block_time_drift_ms": INT,
    }, description="Protocol parameters fixed at genesis"),
    "BlockHeader": obj(_HEADER),
    "BlockList": obj({"height": INT, "blocks": array(ref("BlockHeader"))}),
    "Block": obj({**_HEADER, "tx_hashes": array(HEX32), "txs": array(ref("Transaction"))},
                 description="A block: header fields, transaction ids and decoded bodies"),
    "Transaction": obj({
        "hash": HEX32, "type": STRING, "sender": ADDRESS, "sender_pubkey": HEX,
        "nonce": INT, "size": INT, "body": ref("TxBody"),
    }, description="A signed transaction, decoded"),
    "TxBody": {"oneOf": [
        _body("transfer", {"to": ADDRESS, "amount": AMOUNT}, "Move credits"),
        _body("post_job", {"spec": ref("JobSpec")}, "Post a job; its escrow leaves the sender"),
        _body("claim", {"job_id": HEX32, "loss": NUMBER, "commitment": HEX32},
              "Announce a loss with a commitment to the model"),
        _body("reveal", {"job_id": HEX32, "model_hash": HEX32, "salt": HEX},
              "Open the model commitment"),
        _body("vote_commit", {"job_id": HEX32, "claimer": ADDRESS, "commitment": HEX32},
              "A hidden vote"),
        _body("vote_reveal", {"job_id": HEX32, "claimer": ADDRESS, "valid": BOOL,
                              "measured_loss": nullable(NUMBER), "salt": HEX},
              "Open a vote"),
        _body("gov_propose", {"action": ref("GovernanceAction")}, "Propose a governance action"),
        _body("gov_approve", {"proposal_id": HEX32}, "Approve a pending proposal"),
        _body("evidence", {"vote_a": HEX, "vote_b": HEX}, "Two conflicting consensus votes"),
    ]},
    "TxStatus": {"oneOf": [
        obj({"hash": HEX32, "status": {"const": "committed"}, "height": INT, "index": INT,
             "block_hash": HEX32, "time_ms": TIME_MS, "tx": ref("Transaction")}),
        obj({"hash": HEX32, "status": {"const": "pending"}, "chain_height": INT}),
    ]},
    "BatchResult": obj({
        "accepted": INT, "duplicates": INT,
        "rejected": array(obj({"index": INT, "status": {"enum": ["rejected", "full"]},
                               "code": STRING, "message": STRING})),
    }),
    "SubmitResult": obj({"hash": HEX32, "status": {"enum": ["accepted", "duplicate"]}}),
    "Account": obj({
        "address": ADDRESS, "balance": AMOUNT, "nonce": INT,
        "next_nonce": {"type": "integer", "description": "Nonce for a new tx (counts pending)"},
        "member": BOOL, "banned": BOOL, "validator_power": INT,
    }),
    "JobSpec": obj({
        "kind": STRING, "image_digest": HEX32, "image_blob": HEX32, "image_ref": STRING,
        "entry_points": {"type": "object", "additionalProperties": array(STRING)},
        "limits": obj({"memory_mb": INT, "cpu_millis": INT, "time_s": INT, "disk_mb": INT}),
        "search_space": array(obj({"name": STRING,
                                   "kind": {"enum": ["choice", "uniform", "log_uniform", "int"]},
                                   "values": array({"type": ["number", "string"]})})),
        "bounty": AMOUNT, "escrow": AMOUNT, "expiry_ms": TIME_MS, "loss_tolerance": NUMBER,
        "voting": obj({
            "reveal_window_ms": INT, "commit_window_ms": INT, "vote_reveal_window_ms": INT,
            "quorum_permille": INT, "supermajority_permille": INT, "voter_reward": AMOUNT,
            "max_turns": INT}),
        "description": STRING,
    }),
    "Claim": obj({"claimer": ADDRESS, "loss": NUMBER, "commitment": HEX32, "height": INT,
                  "index": INT}),
    "Vote": obj({"voter": ADDRESS, "commitment": HEX32, "revealed": BOOL,
                 "valid": nullable(BOOL), "measured_loss": nullable(NUMBER)}),
    "Verdict": obj({
        "claimer": ADDRESS,
        "outcome": {"enum": ["valid", "cheat", "forfeit", "no_quorum", "inconclusive",
                             "withdrawn", "inconsistent"]},
        "valid_votes": INT, "invalid_votes": INT, "eligible": INT, "time_ms": TIME_MS,
        "model_hash": nullable(HEX32),
        "verified_loss": nullable(NUMBER)}),
    "JobSummary": obj(_JOB_SUMMARY),
    "JobList": obj({"jobs": array(ref("JobSummary")), "total": INT}),
    "Job": obj({
        **_JOB_SUMMARY,
        "spec": ref("JobSpec"),
        "claims": array(ref("Claim")),
        "tried": array(ADDRESS),
        "turn": nullable(obj({
            "claimer": ADDRESS, "number": INT,
            "phase": {"enum": ["reveal", "vote_commit", "vote_reveal"]},
            "deadline_ms": TIME_MS, "model_hash": nullable(HEX32),
            "eligible_voters": array(ADDRESS), "votes_committed": INT,
            "votes_revealed": INT})),
        "phase_deadline_ms": nullable(TIME_MS),
        "turns_voted": INT,
        "model_hash": nullable(HEX32),
        "votes": array(ref("Vote")),
        "verdicts": array(ref("Verdict")),
        "paid": AMOUNT,
        "winner_model_hash": nullable(HEX32),
    }, description="A job: spec, escrow, claims (ranked), current turn, votes, verdicts"),
    "Leaderboard": obj({
        "job_id": HEX32, "status": STRING,
        "claims": array(obj({
            "rank": INT, "claimer": ADDRESS, "loss": NUMBER, "commitment": HEX32,
            "height": INT, "index": INT,
            "state": {"enum": ["waiting", "current", "valid", "cheat", "forfeit", "no_quorum",
                               "inconclusive", "withdrawn", "inconsistent"]},
            "winner": BOOL})),
    }, description="Claims ranked: lower loss first, then earlier height, then block position"),
    "ClaimPoint": obj({"claimer": ADDRESS, "loss": NUMBER, "height": INT, "index": INT,
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
    "GovernanceAction": obj({
        "kind": {"enum": ["admit_member", "add_validator", "remove_validator"]},
        "target": {"type": "string", "description": "Address, or public key hex (add)"},
        "address": ADDRESS, "power": INT}),
    "Validators": obj({
        "validators": array(obj({"address": ADDRESS, "pubkey": HEX, "power": INT})),
        "total_power": INT,
        "scheduled_changes": array(obj({
            "height": INT, "kind": {"enum": ["add", "remove"]}, "address": ADDRESS,
            "pubkey": nullable(HEX), "power": INT})),
    }),
    "Members": obj({"members": array(obj({"address": ADDRESS, "balance": AMOUNT,
                                          "banned": BOOL, "validator": BOOL}))}),
    "Proposals": obj({"proposals": array(obj({
        "proposal_id": HEX32, "proposer": ADDRESS, "action": ref("GovernanceAction"),
        "created_ms": TIME_MS, "expires_ms": TIME_MS, "approvals": array(ADDRESS),
        "approved_power": INT, "total_power": INT,
        "needed_power": {"type": "integer",
                         "description": "Approving power needed (more than two thirds)"}}))}),
    "BlobInfo": obj({"blob": HEX32, "size": INT}),
    "WaitResult": obj({"height": INT, "reached": BOOL}),
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
OCTET = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}


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
            "Get block", {"200": _json(ref("Block")), **BAD, "404": NOT_FOUND},
            params=[HEIGHT], tags=("chain",))},
        "/blocks/{height}/raw": {"get": _op(
            "Get raw block",
            {"200": {"description": "Canonical msgpack [block bytes, certificate bytes or nil]",
                     "content": OCTET}, **BAD, "404": NOT_FOUND},
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
            {"200": _json(ref("BatchResult"), "Each admitted in order; the others listed"),
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
             **BAD, "413": _error("Larger than the node accepts"),
             "415": _error("Wrong content type"), "503": _error("Too many uploads at once")},
            body={"required": True, "content": OCTET}, tags=("blobs",))},
        "/blobs/{blob}": {"get": _op(
            "Download blob",
            {"200": {"description": "The blob's bytes", "content": OCTET}, **BAD,
             "404": _error("Not stored here and no peer could serve it")},
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
                '{"error": {"code", "message"}} with a 4xx status.'),
        },
        "servers": [{"url": API_PREFIX}],
        "paths": _paths(),
        "components": {"schemas": SCHEMAS},
    }
