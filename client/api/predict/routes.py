"""API routes over deployed models and prediction requests [API-PREDICT.1-3].

Read-only views of the ledger's prediction tables (protocol_spec/predict.md §8):
``GET /models`` lists the deployed models with their request counts, ``GET /models/{job_id}``
adds the model's requests (newest first), ``GET /predictions/{request_id}`` shows one request
through its lottery, commit and reveal phases and, once settled, who agreed and who was paid.

The payouts are recomputed with the ledger's own pure rules (``agreement_of`` and
``settle``) from the record, so the API shows exactly what settlement credited without an
index of its own. The per-model counts walk the ``prediction`` table once per committed
height (cached), like ``/supply``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from chain.predict.agreement import majority
from chain.predict.model import DeployedModel
from chain.predict.params import LOTTERY_DELAY
from chain.predict.payout import settle
from chain.predict.records import OPEN, Prediction, PredictionStatus
from chain.predict.steps import agreement_of, deployed_model, prediction
from client.api.json_forms import addr, parse_hash
from client.api.predict.views import output_json
from client.node.handle import NodeHandle
from sandbox.model_accepts import Accepts, model_accepts
from sandbox.model_format import MAX_MODEL_BYTES

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Json = dict[str, Any]

MAX_MODEL_REQUESTS = 200
"""[API-PREDICT.2] A model's page lists at most this many of its requests, newest first."""
COUNT_KEYS = ("total", "open", *(str(s) for s in PredictionStatus))


def not_found(code: str, message: str) -> web.Response:
    """[API-ERR.1] A 404 in the API's error shape, for an id the ledger does not know."""
    return web.json_response({"error": {"code": code, "message": message}}, status=404)


def model_json(model: DeployedModel, counts: dict[str, int], accepts: Accepts) -> Json:
    """[API-PREDICT.1] One deployed model and how many requests named it, by status;
    ``unservable_by``: the request whose agreed "does not load" answer closed the model
    [PRED-UNLOADABLE.3], null while it takes requests; ``accepts`` [PRED-ACCEPTS.1]."""
    return {
        "job_id": model.job_id.hex(), "model_hash": model.model_hash.hex(),
        "format": model.format,
        "input": {"dtype": model.input.dtype, "features": model.input.features},
        "output": output_json(model.output), "owner": addr(model.owner),
        "royalty_permille": model.royalty_permille,
        "unservable_by": None if model.unservable_by is None else model.unservable_by.hex(),
        "requests": {k: counts.get(k, 0) for k in COUNT_KEYS},
        "accepts": accepts.to_json(),
    }


def request_summary_json(rec: Prediction) -> Json:
    req = rec.request
    return {"request_id": rec.request_id.hex(), "requester": addr(rec.requester),
            "status": str(rec.status), "mode": req.mode, "rows": req.rows, "k": req.k,
            "fee": req.fee, "included_height": int(rec.included_height),
            "answer": None if rec.answer is None else rec.answer.hex()}


def outcome_json(rec: Prediction, royalty_permille: int) -> Json | None:
    """[API-PREDICT.3] Who agreed and who was paid, by the ledger's own rules [PRED-AGREE.*]
    [PRED-PAY.*]; None while the request is open."""
    if rec.status in OPEN:
        return None
    fee = int(rec.request.fee)
    if rec.status == PredictionStatus.UNSERVED:
        return {"agreeing": [], "disagreeing": [], "no_shows": [], "paid": [], "royalty": 0,
                "refund": fee, "forfeit": []}
    agreement = agreement_of(rec)
    payout = settle(fee, royalty_permille, agreement)
    return {
        "agreeing": [addr(a) for a in agreement.agreeing],
        "disagreeing": [addr(a) for a in agreement.disagreeing],
        "no_shows": [addr(a) for a in agreement.no_shows],
        "paid": [{"address": addr(a), "amount": int(n)} for a, n in payout.executors],
        "royalty": int(payout.royalty), "refund": int(payout.refund),
        "forfeit": [addr(a) for a in payout.forfeit],
    }


def prediction_json(rec: Prediction, model: DeployedModel | None) -> Json:
    """[API-PREDICT.3] One request: its terms, phase, executors, commitments, reveals,
    agreed answer and payouts."""
    req = rec.request
    open_phase = rec.status in (PredictionStatus.COMMIT, PredictionStatus.REVEAL)
    return {
        **request_summary_json(rec),
        "model_id": req.model_id.hex(), "input_blob": req.input_blob.hex(),
        "tolerance": req.tolerance, "commit_window_ms": req.commit_window_ms,
        "reveal_window_ms": req.reveal_window_ms, "escrow": int(rec.escrow),
        "draw_height": int(rec.included_height) + LOTTERY_DELAY,
        "deadline_ms": int(rec.deadline_ms) if open_phase else None,
        "majority": majority(req.k),
        "executors": [addr(a) for a in rec.executors],
        "answers": [{"executor": addr(a.executor), "commitment": a.commitment.hex(),
                     "output_hash": None if a.output_hash is None else a.output_hash.hex(),
                     "values": None if a.values is None else list(a.values)}
                    for a in rec.answers],
        "outcome": outcome_json(rec, 0 if model is None else model.royalty_permille),
    }


class PredictRoutes:
    """Handlers over the prediction tables; ``routes()`` lists them relative to the prefix."""

    def __init__(self, node: NodeHandle) -> None:
        self.node = node
        self._index: tuple[tuple[int, bytes], dict[bytes, list[Prediction]]] | None = None
        self._accepts: dict[bytes, Accepts] = {}
        """[PRED-ACCEPTS.1] Per model hash, once known (a model file never changes)."""

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("GET", "/models", self.get_models),
            ("GET", "/models/{job_id}", self.get_model),
            ("GET", "/predictions/{request_id}", self.get_prediction),
        ]

    def _by_model(self) -> dict[bytes, list[Prediction]]:
        """Every request per model id, newest first; rebuilt once per committed height."""
        state = self.node.state
        key = (int(state.height), bytes(state.state_root))
        if self._index is None or self._index[0] != key:
            index: dict[bytes, list[Prediction]] = {}
            for request_id in state.keys("prediction"):
                rec = prediction(state, request_id)
                if rec is not None:
                    index.setdefault(bytes(rec.request.model_id), []).append(rec)
            for recs in index.values():
                recs.sort(key=lambda r: (-int(r.included_height), bytes(r.request_id)))
            self._index = (key, index)
        return self._index[1]

    async def _accepts_of(self, model: DeployedModel) -> Accepts:
        """[PRED-ACCEPTS.1] Read from the model file when this node stores it (a bounded
        parse, in a thread: nothing in it runs); unknown encryption until then."""
        key = bytes(model.model_hash)
        known = self._accepts.get(key)
        if known is not None:
            return known
        path = self.node.blob_path(key)
        data = None
        if path is not None and path.stat().st_size <= MAX_MODEL_BYTES:
            data = await asyncio.to_thread(path.read_bytes)
        accepts = await asyncio.to_thread(model_accepts, model.format, model.input,
                                          model.output, data)
        if accepts.encrypted is not None:
            self._accepts[key] = accepts
        return accepts

    def _counts(self, recs: list[Prediction]) -> dict[str, int]:
        counts = {"total": len(recs), "open": sum(r.status in OPEN for r in recs)}
        for r in recs:
            counts[str(r.status)] = counts.get(str(r.status), 0) + 1
        return counts

    async def get_models(self, request: web.Request) -> web.Response:
        """[API-PREDICT.1] Every deployed model, in job id order."""
        state = self.node.state
        index = self._by_model()
        models = [m for m in (deployed_model(state, k) for k in sorted(state.keys("model")))
                  if m is not None]
        return web.json_response({
            "height": int(state.height),
            "models": [model_json(m, self._counts(index.get(bytes(m.job_id), [])),
                                  await self._accepts_of(m))
                       for m in models]})

    async def get_model(self, request: web.Request) -> web.Response:
        """[API-PREDICT.2] One model and its latest requests."""
        job_id = parse_hash(request.match_info["job_id"], "job_id")
        model = deployed_model(self.node.state, job_id)
        if model is None:
            return not_found("unknown_model", f"no deployed model {job_id.hex()}")
        recs = self._by_model().get(bytes(job_id), [])
        return web.json_response({
            **model_json(model, self._counts(recs), await self._accepts_of(model)),
            "predictions": [request_summary_json(r) for r in recs[:MAX_MODEL_REQUESTS]]})

    async def get_prediction(self, request: web.Request) -> web.Response:
        """[API-PREDICT.3] One request as the ledger holds it."""
        request_id = parse_hash(request.match_info["request_id"], "request_id")
        state = self.node.state
        rec = prediction(state, request_id)
        if rec is None:
            return not_found("unknown_request", f"no prediction request {request_id.hex()}")
        return web.json_response(prediction_json(rec, deployed_model(state,
                                                                     rec.request.model_id)))
