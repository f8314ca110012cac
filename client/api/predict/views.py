"""JSON views of the prediction transactions' bodies [API-JSON.1] [TX-PREDICT.1], for
``json_forms.body_json`` (kept apart so that module stays under its size limit and free of
the prediction routes, which import it)."""

from __future__ import annotations

from typing import Any

from chain.predict.bodies import (
    DeployModel,
    OfferPrediction,
    PredictCommit,
    PredictReveal,
    RequestPrediction,
    WithdrawPrediction,
)
from chain.predict.model import OutputSchema

Json = dict[str, Any]


def output_json(output: OutputSchema) -> Json:
    return {"kind": output.kind, "labels": list(output.labels), "outputs": output.outputs,
            "scale_exp": output.scale_exp}


def predict_body_json(body: Any) -> Json | None:
    """The fields of a prediction body (its ``type`` is added by the caller); None for any
    other body."""
    if isinstance(body, DeployModel):
        return {"job_id": body.job_id.hex(), "model_hash": body.model_hash.hex(),
                "format": body.format,
                "input": {"dtype": body.input.dtype, "features": body.input.features},
                "output": output_json(body.output), "royalty_permille": body.royalty_permille}
    if isinstance(body, OfferPrediction | WithdrawPrediction):
        return {}
    if isinstance(body, RequestPrediction):
        r = body.request
        return {"request": {"model_id": r.model_id.hex(), "input_blob": r.input_blob.hex(),
                            "rows": r.rows, "fee": int(r.fee), "k": r.k, "mode": r.mode,
                            "tolerance": r.tolerance, "commit_window_ms": r.commit_window_ms,
                            "reveal_window_ms": r.reveal_window_ms}}
    if isinstance(body, PredictCommit):
        return {"request_id": body.request_id.hex(), "commitment": body.commitment.hex()}
    if isinstance(body, PredictReveal):
        return {"request_id": body.request_id.hex(), "output_hash": body.output_hash.hex(),
                "salt": body.salt.hex(),
                "values": None if body.values is None else list(body.values)}
    return None
