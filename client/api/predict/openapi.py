"""OpenAPI schemas and paths of the prediction routes [API-PREDICT.1-3]
(``client.api.predict.routes``); ``client.api.openapi`` merges them into its document.
Bounds are the chain's own (chain/predict/params.py) [API-DOC.2]."""

from __future__ import annotations

from collections.abc import Callable

from chain.predict.model import DTYPES, FORMATS, OUTPUT_KINDS
from chain.predict.params import (
    MAX_FEATURES,
    MAX_INLINE_VALUES,
    MAX_K,
    MAX_LABEL_LEN,
    MAX_LABELS,
    MAX_OUTPUTS,
    MAX_ROWS,
    MAX_ROYALTY_PERMILLE,
    MAX_SCALE_EXP,
    MAX_WINDOW_MS,
    MIN_K,
    MIN_WINDOW_MS,
)
from chain.predict.records import PredictionStatus
from chain.predict.request import MAX_TOLERANCE, MODES
from chain.types import MAX_AMOUNT
from client.api.openapi_types import (
    ADDRESS,
    AMOUNT,
    BOOL,
    COUNT,
    HEIGHT_INT,
    HEX32,
    INT,
    POSITIVE_AMOUNT,
    SALT,
    TIME_MS,
    S,
    array,
    bounded,
    nullable,
    obj,
    ref,
    text,
)
from client.api.predict.routes import MAX_MODEL_REQUESTS
from sandbox.model_accepts import INPUT_FILES

STATUS: S = {"enum": [str(s) for s in PredictionStatus],
             "description": "drawing → commit → reveal → agreed | no_majority; unserved: "
                            "too few executors at the draw [PRED-DRAW.1]"}
_MODEL_FIELDS: dict[str, S] = {
    "job_id": {**HEX32, "description": "The settled job whose winner's model this is; "
                                       "also the model id [PRED-MODEL.1]"},
    "model_hash": HEX32, "format": {"enum": list(FORMATS)},
    "input": obj({"dtype": {"enum": list(DTYPES)}, "features": bounded(1, MAX_FEATURES)}),
    "output": obj({
        "kind": {"enum": list(OUTPUT_KINDS)},
        "labels": {**array(text(MAX_LABEL_LEN, 1), MAX_LABELS),
                   "description": "classes: the label of index i; regression: []"},
        "outputs": bounded(0, MAX_OUTPUTS), "scale_exp": bounded(0, MAX_SCALE_EXP)}),
    "owner": ADDRESS, "royalty_permille": bounded(0, MAX_ROYALTY_PERMILLE),
    "unservable_by": {**nullable(HEX32), "description": "The request whose agreed \"does not "
                      "load\" answer closed the model [PRED-UNLOADABLE.3]; null while it "
                      "takes requests"},
    "requests": obj({k: COUNT for k in ("total", "open", *(str(s) for s in PredictionStatus))},
                    description="How many requests named the model, by status"),
    "accepts": obj({
        "modes": {**array({"enum": list(MODES)}, len(MODES)),
                  "description": "Request modes it answers usefully"},
        "input_files": array({"enum": list(INPUT_FILES)}, len(INPUT_FILES)),
        "encrypted": {**nullable(BOOL), "description": "Whether it answers encrypted (CKKS) "
                      "rows; null while the model file is not on this node to read"},
        "encrypted_why": text(400),
    }, description="[PRED-ACCEPTS.1] What the model accepts"),
}
_SUMMARY: dict[str, S] = {
    "request_id": {**HEX32, "description": "The request_prediction transaction's id"},
    "requester": ADDRESS, "status": STATUS, "mode": {"enum": list(MODES)},
    "rows": bounded(1, MAX_ROWS), "k": bounded(MIN_K, MAX_K), "fee": POSITIVE_AMOUNT,
    "included_height": HEIGHT_INT,
    "answer": {**nullable(HEX32), "description": "The agreed output hash (a blob id in labels "
                                                 "and ciphertext modes)"},
}
_WINDOW: S = bounded(MIN_WINDOW_MS, MAX_WINDOW_MS)
_PAID = obj({"address": ADDRESS, "amount": {**AMOUNT, "maximum": MAX_AMOUNT}})

PREDICT_SCHEMAS: dict[str, S] = {
    "Model": obj(_MODEL_FIELDS, description="[API-PREDICT.1] A deployed model"),
    "ModelList": obj({"height": HEIGHT_INT, "models": array(ref("Model"))}),
    "PredictionSummary": obj(_SUMMARY),
    "ModelDetail": obj({**_MODEL_FIELDS, "predictions": {
        **array(ref("PredictionSummary"), MAX_MODEL_REQUESTS),
        "description": "Its latest requests, newest first"}},
        description="[API-PREDICT.2] A deployed model and its requests"),
    "Prediction": obj({
        **_SUMMARY, "model_id": HEX32, "input_blob": HEX32,
        "tolerance": bounded(0, MAX_TOLERANCE), "commit_window_ms": _WINDOW,
        "reveal_window_ms": _WINDOW,
        "escrow": {**AMOUNT, "description": "The fee held until settled, then 0"},
        "draw_height": {**HEIGHT_INT, "description": "included_height + 2 [PRED-DRAW.1]"},
        "deadline_ms": {**nullable(TIME_MS), "description": "End of the commit or reveal "
                                                            "window; null in other phases"},
        "majority": {**bounded(2, MAX_K // 2 + 1), "description": "k // 2 + 1 [PRED-AGREE.1]"},
        "executors": {**array(ADDRESS, MAX_K), "description": "Drawn, in draw order"},
        "answers": array(obj({
            "executor": ADDRESS, "commitment": HEX32,
            "output_hash": {**nullable(HEX32), "description": "null until revealed"},
            "values": nullable(array(INT)),
        }), MAX_K),
        "outcome": nullable(obj({
            "agreeing": array(ADDRESS, MAX_K), "disagreeing": array(ADDRESS, MAX_K),
            "no_shows": array(ADDRESS, MAX_K), "paid": array(_PAID, MAX_K),
            "royalty": AMOUNT, "refund": AMOUNT, "forfeit": array(ADDRESS, MAX_K),
        }, description="Once settled: [PRED-AGREE.*] groups and [PRED-PAY.*] payouts")),
    }, description="[API-PREDICT.3] One prediction request"),
}


_OUTPUT = _MODEL_FIELDS["output"]
_INPUT = _MODEL_FIELDS["input"]


def predict_tx_bodies(body: Callable[[str, dict[str, S], str], S]) -> list[S]:
    """[TX-PREDICT.1] The prediction bodies of ``TxBody`` (``body`` is openapi's ``_body``)."""
    return [
        body("deploy_model", {"job_id": HEX32, "model_hash": HEX32,
                              "format": {"enum": list(FORMATS)}, "input": _INPUT,
                              "output": _OUTPUT,
                              "royalty_permille": bounded(0, MAX_ROYALTY_PERMILLE)},
             "Deploy a paid job's winning model [PRED-DEPLOY.1]"),
        body("offer_prediction", {}, "Join the executor lottery; locks the bond [PRED-OFFER.1]"),
        body("withdraw_prediction", {}, "Leave the executor lottery [PRED-WITHDRAW.1]"),
        body("request_prediction", {"request": obj({
            "model_id": HEX32, "input_blob": HEX32, "rows": bounded(1, MAX_ROWS),
            "fee": POSITIVE_AMOUNT, "k": bounded(MIN_K, MAX_K), "mode": {"enum": list(MODES)},
            "tolerance": bounded(0, MAX_TOLERANCE), "commit_window_ms": _WINDOW,
            "reveal_window_ms": _WINDOW})},
             "Ask for predictions; the fee is escrowed [PRED-REQUEST.1]"),
        body("predict_commit", {"request_id": HEX32, "commitment": HEX32},
             "A drawn executor's hidden answer [PRED-COMMIT.1]"),
        body("predict_reveal", {"request_id": HEX32, "output_hash": HEX32, "salt": SALT,
                                "values": nullable(array(INT, MAX_INLINE_VALUES))},
             "Open an answer; values only in values mode [PRED-REVEAL.1]"),
    ]


def predict_paths(op: Callable[..., S], json: Callable[..., S], error: Callable[[str], S],
                  path_param: Callable[[str, S, str], S]) -> dict[str, S]:
    """The three routes, built with ``client.api.openapi``'s helpers (passed in)."""
    bad = {"400": error("Malformed id")}
    return {
        "/models": {"get": op("List deployed models", {"200": json(ref("ModelList"))},
                              tags=("predict",))},
        "/models/{job_id}": {"get": op(
            "Get deployed model",
            {"200": json(ref("ModelDetail")), **bad, "404": error("No such deployed model")},
            params=[path_param("job_id", HEX32, "Model id (its job's id)")],
            tags=("predict",))},
        "/predictions/{request_id}": {"get": op(
            "Get prediction request",
            {"200": json(ref("Prediction")), **bad, "404": error("No such request")},
            params=[path_param("request_id", HEX32, "Request id (its transaction's id)")],
            tags=("predict",))},
    }
