"""The node's HTTP API [API-*]: JSON over aiohttp, read-only but for tx submit and blob upload.

Served on 127.0.0.1 by default. Every response is JSON except raw blocks and
blob downloads; every error is ``{"error": {"code", "message"}}`` with a 4xx
status for bad input (a 500 means a bug here, never bad input). Bodies are
bounded: ``MAX_JSON_BODY`` for transactions and JSON, ``max_upload_bytes``
for blobs, which stream to a temporary file and never sit in memory; uploads are
bounded per client too (``client.api.upload_limits``, handlers in
``client.api.blob_routes``).

Reads are open; every write needs the node's token when it has one, and a server
bound off loopback must have one (``client.api.access``, [API-AUTH.*]).

The routes and their shapes are documented in ``client.api.openapi`` (served at
``/api/v1/openapi.json``); the tests check the two agree route for route and
field for field. The server reads the node only through ``NodeHandle`` and
runs in the node's event loop, so it sees one consistent committed state per
request.

The handlers over the committed state (accounts, governance, genesis,
supply) live in ``client.api.state_routes``; ``routes()`` lists them with
the rest. Other routes (the dashboard) go on ``ApiServer.app`` before ``start()``
(aiohttp freezes the router then); a route under ``/api/`` must also be
added to the OpenAPI document, or the completeness test fails.

Whether a transaction is pending is read from the node's ``mempool``
attribute when it has one (``SoloNode`` and ``LedgerNode`` do), else from
the hashes submitted through this server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from chain.encoding import decode
from chain.errors import DecodeError
from chain.mempool import Admission
from chain.records import SETTLED
from chain.transactions import SignedTransaction
from client.api.access import AUTHORIZED, auth_middleware
from client.api.blob_routes import BlobRoutes
from client.api.federated.routes import FedRoutes
from client.api.json_forms import (
    BadInput,
    addr,
    block_header_json,
    block_json,
    hx,
    job_json,
    job_summary_json,
    leaderboard_json,
    params_json,
    parse_address,
    parse_float,
    parse_hash,
    parse_int,
    tx_json,
)
from client.api.limits import (
    API_PREFIX,
    JOB_STATUS_FILTERS,
    MAX_BLOCKS_PAGE,
    MAX_JOBS_PAGE,
    MAX_JSON_BODY,
    MAX_TX_BATCH,
    MAX_TX_BATCH_BYTES,
    MAX_WAIT_S,
    MAX_WAITERS,
    RECENT_SUBMITS,
)
from client.api.openapi import openapi_document
from client.api.predict.routes import PredictRoutes
from client.api.problems import ApiProblem, error_response
from client.api.queue_routes import QueueRoutes
from client.api.state_routes import StateRoutes
from client.api.token_file import TokenError, check_token, is_loopback_host, no_token_message
from client.api.upload_limits import UploadLimiter, UploadLimits
from client.node.handle import CommittedBlock, NodeHandle
from client.worker.attempt_log import LOG_TAIL_BYTES, job_attempts

log = logging.getLogger(__name__)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed",
               413: "too_large", 415: "unsupported_media_type"}


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """[API-ERR.1] Every failure becomes the JSON error shape; bad input is never a 500."""
    try:
        return await handler(request)
    except ApiProblem as e:
        return error_response(e.status, e.code, e.message, e.headers)
    except BadInput as e:
        return error_response(400, e.code, e.message)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        code = _HTTP_CODES.get(e.status, "http_error")
        message = e.text if e.text and e.status != 404 else e.reason
        if e.status == 404:
            message = f"no route {request.method} {request.path}"
        return error_response(e.status, code, message or e.reason)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("API handler failed: %s %s", request.method, request.path)
        return error_response(500, "internal", "internal error (logged on the node)")


class ApiServer:
    """The node's HTTP API; construct with a ``NodeHandle``, then ``await start()``.

    ``token``: what a write must send [API-AUTH.*] (required unless ``host`` is a
    loopback address: ``TokenError`` says so); ``upload_limits``: per client
    [API-UPLOAD.*] (``max_upload_bytes`` overrides its size bound).
    """

    def __init__(self, node: NodeHandle, host: str = "127.0.0.1", port: int = 0, *,
                 token: str | None = None, upload_limits: UploadLimits | None = None,
                 max_upload_bytes: int | None = None,
                 blob_fetch_timeout_s: float = 600.0) -> None:
        if token is None and not is_loopback_host(host):
            raise TokenError(no_token_message(host))
        if token is not None:
            check_token(token, "ApiServer")
        limits = upload_limits or UploadLimits()
        if max_upload_bytes is not None:
            limits = dataclasses.replace(limits, max_upload_bytes=max_upload_bytes)
        self.node = node
        self.host = host
        self.token_required = token is not None
        self._requested_port = port
        self.app = web.Application(client_max_size=MAX_JSON_BODY,
                                   middlewares=[_errors, auth_middleware(token)])
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._block_event = asyncio.Event()
        self._waiters = 0
        self._stopped = False
        self._recent: OrderedDict[bytes, None] = OrderedDict()
        self._listening = False
        self.state_routes = StateRoutes(node)
        self.queue_routes = QueueRoutes(node)
        self.predict_routes = PredictRoutes(node)
        self.fed_routes = FedRoutes(node)
        self.blob_routes = BlobRoutes(node, UploadLimiter(limits), blob_fetch_timeout_s)
        for method, path, handler in self.routes():
            self.app.router.add_route(method, API_PREFIX + path, handler)

    def routes(self) -> list[tuple[str, str, Handler]]:
        """Every route, relative to ``API_PREFIX`` (the OpenAPI document lists the same)."""
        return [
            ("GET", "/status", self.get_status),
            ("GET", "/peers", self.get_peers),
            ("GET", "/params", self.get_params),
            ("GET", "/blocks", self.get_blocks),
            ("GET", "/blocks/{height}", self.get_block),
            ("GET", "/blocks/{height}/raw", self.get_block_raw),
            ("GET", "/txs/{hash}", self.get_tx),
            ("POST", "/txs", self.post_tx),
            ("POST", "/txs/batch", self.post_tx_batch),
            ("GET", "/jobs", self.get_jobs),
            ("GET", "/jobs/{job_id}", self.get_job),
            ("GET", "/jobs/{job_id}/leaderboard", self.get_leaderboard),
            ("GET", "/jobs/{job_id}/logs", self.get_job_logs),
            *self.queue_routes.routes(),  # why a job has no claim yet [API-QUEUE.1]
            *self.state_routes.routes(),  # accounts, governance, genesis, supply
            *self.predict_routes.routes(),  # models, predictions [API-PREDICT.1-3]
            *self.fed_routes.routes(),  # federated jobs [API-FED.1-3]
            *self.blob_routes.routes(),  # upload, download, info [API-UPLOAD.*]
            ("GET", "/wait", self.get_wait),
            ("GET", "/openapi.json", self.get_openapi),
        ]

    # -- lifecycle -------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._port}"

    async def start(self) -> None:
        if not self._listening:
            self.node.add_block_listener(self._on_block)
            self._listening = True
        self._stopped = False
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._requested_port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self._port = sockets[0].getsockname()[1] if sockets else self._requested_port
        log.info("API listening on %s", self.url)

    async def stop(self) -> None:
        self._stopped = True
        self._block_event.set()  # long polls return at once
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _on_block(self, _event: CommittedBlock) -> None:
        if self._stopped:
            return
        event, self._block_event = self._block_event, asyncio.Event()
        event.set()

    # -- node and chain ---------------------------------------------------------------

    async def get_status(self, request: web.Request) -> web.Response:
        s = self.node.status()
        return web.json_response({
            "chain_id": s.chain_id,
            "address": addr(s.address),
            "roles": list(s.roles),
            "height": s.height,
            "last_block_time_ms": s.last_block_time_ms,
            "last_block_hash": hx(s.last_block_hash),
            "state_root": hx(s.state_root),
            "caught_up": s.caught_up,
            "consensus_round": s.consensus_round,
            "mempool_txs": s.mempool_txs,
            "peer_count": len(s.peers),
            "p2p_endpoint": s.p2p_endpoint,
            "api_endpoint": s.api_endpoint or self.url,
            "time_ms": self.node.now_ms(),
            "genesis_hash": self.node.genesis.hash.hex(),
            "worker": _jsonable(self._operator_training(request, s.worker)),
            "protocol": s.protocol,
            "storage_problem": s.storage_problem,
            "base_height": s.base_height,
            "sync_missing": list(s.sync_missing) if s.sync_missing else None,
        })

    async def get_peers(self, request: web.Request) -> web.Response:
        return web.json_response([
            {"address": addr(p.address), "endpoint": p.endpoint, "outbound": p.outbound,
             "score": p.score}
            for p in self.node.status().peers
        ])

    async def get_params(self, request: web.Request) -> web.Response:
        return web.json_response(params_json(self.node.state.params))

    async def get_blocks(self, request: web.Request) -> web.Response:
        """Block headers, newest first unless ``order=asc``; ``from`` is the first height
        (ascending from below the base height: from the base, [STORE-PRUNE.5])."""
        q = request.query
        tip = self.node.height
        order = q.get("order", "desc")
        if order not in ("asc", "desc"):
            raise BadInput("bad_order", "order must be 'asc' or 'desc'")
        limit = parse_int(q.get("limit"), "limit", default=20, low=1, high=MAX_BLOCKS_PAGE)
        if order == "desc":
            start = min(parse_int(q.get("from"), "from", default=tip), tip)
            heights = range(start, max(0, start - limit), -1)
        else:
            start = max(self.node.base_height, parse_int(q.get("from"), "from", default=1))
            heights = range(start, min(tip, start + limit - 1) + 1)
        out = []
        for h in heights:
            block = self.node.block(h)
            if block is not None:
                out.append(block_header_json(block))
        return web.json_response({"height": tip, "base_height": self.node.base_height,
                                  "blocks": out})

    def _height(self, request: web.Request) -> int:
        height = parse_int(request.match_info["height"], "height", low=1)
        if height > self.node.height:
            raise ApiProblem(404, "unknown_block",
                             f"no block {height} yet (height is {self.node.height})")
        base = self.node.base_height
        if height < base:  # [STORE-PRUNE.5]
            raise ApiProblem(410, "pruned_block",
                             f"block {height} was pruned here: this node keeps blocks "
                             f"{base}..{self.node.height} ([storage] retain_blocks); ask a node "
                             "that keeps every block")
        return height

    async def get_block(self, request: web.Request) -> web.Response:
        height = self._height(request)
        block = self.node.block(height)
        if block is None:
            raise ApiProblem(404, "unknown_block", f"block {height} is not stored here")
        return web.json_response(block_json(block))

    async def get_block_raw(self, request: web.Request) -> web.Response:
        """Canonical msgpack ``[block_bytes, certificate_bytes_or_nil]`` for tooling."""
        from chain.encoding import encode

        height = self._height(request)
        data = self.node.block_with_certificate(height)
        if data is None:
            raise ApiProblem(404, "unknown_block", f"block {height} is not stored here")
        block_bytes, certificate = data
        return web.Response(body=encode([block_bytes, certificate]),
                            content_type="application/octet-stream")

    # -- transactions ------------------------------------------------------------------

    async def get_tx(self, request: web.Request) -> web.Response:
        tx_hash = parse_hash(request.match_info["hash"], "hash")
        location = self.node.tx_location(tx_hash)
        if location is not None:
            height, index = location
            block = self.node.block(height)
            if block is not None and index < len(block.txs):
                return web.json_response({
                    "hash": tx_hash.hex(), "status": "committed", "height": height,
                    "index": index, "block_hash": block.hash.hex(),
                    "time_ms": block.header.time_ms, "tx": tx_json(block.txs[index]),
                })
        if self._is_pending(tx_hash):
            return web.json_response({"hash": tx_hash.hex(), "status": "pending",
                                      "chain_height": self.node.height})
        base = self.node.base_height
        if base > 1:  # [STORE-PRUNE.5] it may be in a pruned block: say so, same code
            raise ApiProblem(404, "unknown_tx", f"no committed or pending transaction "
                             f"{tx_hash.hex()} in blocks {base}..{self.node.height}; blocks "
                             f"below {base} were pruned here, so it may be in one of those")
        raise ApiProblem(404, "unknown_tx", f"no committed or pending transaction {tx_hash.hex()}")

    def _is_pending(self, tx_hash: bytes) -> bool:
        """In the node's mempool (when it shows one), else submitted here and not committed."""
        mempool = getattr(self.node, "mempool", None)
        if mempool is not None and hasattr(mempool, "__contains__"):
            return tx_hash in mempool
        return tx_hash in self._recent

    async def post_tx(self, request: web.Request) -> web.Response:
        """Admit a signed transaction: raw octet-stream bytes, or JSON ``{"tx": hex}``."""
        raw = await self._tx_bytes(request)
        try:
            tx = SignedTransaction.decode(raw)
        except DecodeError as e:
            raise ApiProblem(400, e.code, f"not a valid transaction: {e.message}") from None
        result = self.node.submit(tx)
        if result.status == Admission.REJECTED:
            raise ApiProblem(400, result.code, result.message)
        if result.status == Admission.FULL:
            status = 429 if result.code == "sender_limit" else 503
            raise ApiProblem(status, result.code, result.message)
        self._recent[tx.hash] = None
        if len(self._recent) > RECENT_SUBMITS:
            self._recent.popitem(last=False)
        return web.json_response({"hash": tx.hash.hex(), "status": str(result.status)},
                                 status=202)

    async def post_tx_batch(self, request: web.Request) -> web.Response:
        """Admit many signed transactions at once (load generators, wallets with queues).

        Body: canonical msgpack array of raw signed transactions, at most
        ``MAX_TX_BATCH`` of them and ``MAX_TX_BATCH_BYTES`` in all. Each is
        admitted in order, exactly as ``POST /txs`` would; the answer lists
        the ones that were not, with the mempool's reason. Once the pool
        answers ``mempool_full``, the rest of the batch is answered from each
        transaction's hash (pending: a duplicate; else ``full``) without being
        parsed: the pool cannot empty while the batch is handled.
        """
        if request.content_type != "application/octet-stream":
            raise ApiProblem(415, "unsupported_media_type",
                             "send a msgpack array of raw transactions as application/octet-stream")
        body = bytearray()
        async for piece in request.content.iter_chunked(64 * 1024):
            body += piece
            if len(body) > MAX_TX_BATCH_BYTES:
                raise ApiProblem(413, "too_large", f"batch over {MAX_TX_BATCH_BYTES} bytes")
        try:
            wires = decode(bytes(body), max_size=MAX_TX_BATCH_BYTES)
        except DecodeError as e:
            raise BadInput("bad_batch", f"not a msgpack array of transactions: {e}") from None
        if not isinstance(wires, list) or not all(isinstance(w, bytes) for w in wires):
            raise BadInput("bad_batch", "expected a msgpack array of byte strings")
        if len(wires) > MAX_TX_BATCH:
            raise BadInput("bad_batch", f"at most {MAX_TX_BATCH} transactions per batch")
        accepted = duplicates = 0
        rejected: list[dict[str, object]] = []
        mempool = getattr(self.node, "mempool", None)
        room = getattr(self.node, "submit_room", None)
        # [API-BATCH.1] Parse (and check the signatures of) only as many new transactions
        # as the submission window still admits: the rest would be answered 'full' after
        # costing the node their decoding and their signatures, batch after re-sent batch.
        parsed: list[SignedTransaction | None] = (
            mempool.decode_new(wires, limit=room() if room is not None else None)
            if mempool is not None else [None] * len(wires))
        prefill = getattr(self.node, "prefill_signatures", None)
        if prefill is not None:  # [TX-SIG-CACHE.2] the batch's signatures on every core
            await prefill([tx for tx in parsed if isinstance(tx, SignedTransaction)])
        full: dict[str, object] | None = None
        for index, wire in enumerate(wires):
            if full is None and mempool is not None and index >= len(parsed):  # [API-BATCH.1]
                full = {"status": str(Admission.FULL), "code": "mempool_full",
                        "message": f"{len(mempool)} transactions pending; retry shortly"}
            if full is not None and mempool is not None:
                # The pool stays full for the rest of this batch (nothing leaves it while we
                # run): answer each new transaction 'full' from its hash, without parsing
                # and re-checking what the client must send again anyway.
                if hashlib.sha256(wire).digest() in mempool:
                    duplicates += 1
                else:
                    rejected.append({**full, "index": index})
                continue
            tx = parsed[index]
            if tx is None:
                try:
                    tx = SignedTransaction.decode(wire)
                except DecodeError as e:
                    rejected.append({"index": index, "status": "rejected", "code": e.code,
                                     "message": e.message})
                    continue
            result = self.node.submit(tx)
            if result.status == Admission.ACCEPTED:
                accepted += 1
            elif result.status == Admission.DUPLICATE:
                duplicates += 1
            else:
                rejected.append({"index": index, "status": str(result.status),
                                 "code": result.code, "message": result.message})
                if result.status == Admission.FULL and result.code == "mempool_full":
                    full = rejected[-1]
        return web.json_response({"accepted": accepted, "duplicates": duplicates,
                                  "rejected": rejected})

    async def _tx_bytes(self, request: web.Request) -> bytes:
        ctype = request.content_type
        if ctype == "application/json":
            try:
                doc = json.loads(await request.read())
            except (ValueError, UnicodeDecodeError):
                raise BadInput("bad_json", "request body is not JSON") from None
            if not isinstance(doc, dict) or not isinstance(doc.get("tx"), str):
                raise BadInput("bad_json", 'expected {"tx": "<hex of the signed transaction>"}')
            try:
                return bytes.fromhex(doc["tx"])
            except ValueError:
                raise BadInput("bad_hex", "'tx' is not hex") from None
        if ctype == "application/octet-stream":
            return await request.read()
        raise ApiProblem(415, "unsupported_media_type",
                         "send application/octet-stream (raw tx) or application/json")

    # -- accounts and jobs ---------------------------------------------------------------

    async def get_jobs(self, request: web.Request) -> web.Response:
        q = request.query
        wanted = q.get("status", "all")
        if wanted not in JOB_STATUS_FILTERS:
            raise BadInput("bad_status", f"status must be one of {', '.join(JOB_STATUS_FILTERS)}")
        limit = parse_int(q.get("limit"), "limit", default=100, low=1, high=MAX_JOBS_PAGE)
        submitter = parse_address(q["submitter"]) if q.get("submitter") else None
        state = self.node.state
        jobs = []
        for key in state.keys("job"):
            job = state.job(key)
            if job is None or (submitter is not None and job.submitter != submitter):
                continue
            if wanted == "all" or str(job.status) == wanted \
                    or (wanted == "settled" and job.status in SETTLED) \
                    or (wanted == "active" and job.status not in SETTLED):
                jobs.append(job)
        jobs.sort(key=lambda j: (j.posted_height, j.job_id), reverse=True)
        return web.json_response({"jobs": [job_summary_json(j) for j in jobs[:limit]],
                                  "total": len(jobs)})

    def _job(self, request: web.Request) -> Any:
        job_id = parse_hash(request.match_info["job_id"], "job_id")
        job = self.node.state.job(job_id)
        if job is None:
            raise ApiProblem(404, "unknown_job", f"no job {job_id.hex()}")
        return job

    async def get_job(self, request: web.Request) -> web.Response:
        job = self._job(request)
        return web.json_response(job_json(job, self.node.state.holdout(job.job_id)))

    async def get_leaderboard(self, request: web.Request) -> web.Response:
        job = self._job(request)
        return web.json_response({"job_id": job.job_id.hex(), "status": str(job.status),
                                  "claims": leaderboard_json(job)})

    async def get_job_logs(self, request: web.Request) -> web.Response:
        """[API-JOBLOG.1] This node's worker attempts on a job: how each ended, and the end
        of what a failed run printed (``tail`` bytes of it, at most ``LOG_TAIL_BYTES``)."""
        job = self._job(request)
        tail = parse_int(request.query.get("tail"), "tail", default=LOG_TAIL_BYTES, low=0,
                         high=LOG_TAIL_BYTES)
        records = await asyncio.to_thread(job_attempts, Path(self.node.data_dir) / "worker",
                                          job.job_id)
        status = self.node.status()
        return web.json_response({
            "job_id": job.job_id.hex(), "node": addr(status.address),
            "worker_role": "worker" in status.roles,
            "attempts": [r.with_tail(tail).to_json() for r in records],
            "progress": self._run_progress(job.job_id,
                                           operator=request.get(AUTHORIZED, False)),
        })

    def _trainer(self) -> Any:
        worker: Any = getattr(self.node, "worker", None)
        return getattr(worker, "trainer", None)

    def _run_progress(self, job_id: bytes, *, operator: bool) -> dict[str, object] | None:
        """[API-PROGRESS.1] The live progress of this node's own worker on the job; never
        gossiped, so another node's API does not know it. [API-PROGRESS.2] Every field for
        the node's operator (a request ``AUTHORIZED`` by the API token, [API-AUTH.1]); the
        public view for anyone else [API-PROGRESS.3]."""
        trainer = self._trainer()
        return trainer.progress_of(job_id, operator=operator) if trainer is not None else None

    def _operator_training(self, request: web.Request, worker: Any) -> Any:
        """[API-PROGRESS.2] ``/status``'s worker summary carries the public view of the
        training's progress; the node's operator gets every field."""
        trainer = self._trainer()
        if not request.get(AUTHORIZED, False) or trainer is None or not isinstance(worker, dict) \
                or not worker.get("training"):
            return worker
        return {**worker, "training": trainer.doing(operator=True)}

    # -- long poll and the document ---------------------------------------------------------

    async def get_wait(self, request: web.Request) -> web.Response:
        """Returns once the chain reaches ``height`` or after ``timeout`` seconds."""
        q = request.query
        target = parse_int(q.get("height"), "height", low=0)
        timeout = parse_float(q.get("timeout"), "timeout", default=30.0, low=0.0,
                              high=MAX_WAIT_S)
        if self.node.height < target and timeout > 0:
            if self._waiters >= MAX_WAITERS:
                raise ApiProblem(503, "busy", "too many waiting requests; retry later")
            self._waiters += 1
            try:
                async with asyncio.timeout(timeout):
                    while self.node.height < target and not self._stopped:
                        await self._block_event.wait()
            except TimeoutError:
                pass
            finally:
                self._waiters -= 1
        height = self.node.height
        return web.json_response({"height": height, "reached": height >= target})

    async def get_openapi(self, request: web.Request) -> web.Response:
        return web.json_response(openapi_document())


def _jsonable(value: Any) -> Any:
    """The worker summary as JSON: bytes to hex, tuples to lists, unknowns to text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return str(value)

