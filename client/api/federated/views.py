"""JSON views of the federated transactions' bodies [API-FED.4] [TX-FED.2-7], for
``json_forms.body_json`` (kept apart, free of ``json_forms``, so that module can import it
without a cycle, as ``predict_json``)."""

from __future__ import annotations

from typing import Any

from chain.crypto import address_to_text
from chain.federated.open.bodies import (
    FedAggregate,
    FedCommit,
    FedPart,
    FedReveal,
    FedVoteCommit,
    FedVoteReveal,
)
from chain.federated.private.bodies import FedKeys, FedShares, FedUnmask

Json = dict[str, Any]


def weights_json(weights: tuple[tuple[bytes, int], ...]) -> list[Json]:
    """[FED-AGG.7] Trust weights as ``[{address, weight}]`` (weight in 0..2^16)."""
    return [{"address": address_to_text(a), "weight": int(w)} for a, w in weights]


def fed_body_json(body: Any) -> Json | None:
    """[API-FED.4] The fields of a federated transaction body (``type`` added by the
    caller); None for any other body."""
    if isinstance(body, FedCommit | FedVoteCommit):
        out: Json = {"job_id": body.job_id.hex(), "round": body.round,
                     "commitment": body.commitment.hex()}
        if isinstance(body, FedVoteCommit):
            out["attempt"] = body.attempt
        return out
    if isinstance(body, FedReveal):
        return {"job_id": body.job_id.hex(), "round": body.round, "blob": body.blob.hex(),
                "size": body.size, "update_hash": body.update_hash.hex(),
                "salt": body.salt.hex()}
    if isinstance(body, FedAggregate):
        return {"job_id": body.job_id.hex(), "round": body.round, "attempt": body.attempt,
                "model_hash": body.model_hash.hex(), "model_blob": body.model_blob.hex(),
                "weights": weights_json(body.weights)}
    if isinstance(body, FedVoteReveal):
        return {"job_id": body.job_id.hex(), "round": body.round, "attempt": body.attempt,
                "valid": body.valid, "accuracy_ppm": body.accuracy_ppm,
                "losses": None if body.losses is None else list(body.losses),
                "salt": body.salt.hex()}
    if isinstance(body, FedPart):
        return {"job_id": body.job_id.hex(), "which": body.which,
                "part": {"blob": body.part.blob.hex(), "size": body.part.size}}
    if isinstance(body, FedKeys):  # [TX-FED.8]
        return {"job_id": body.job_id.hex(), "round": body.round,
                "mask_key": body.mask_key.hex(), "enc_key": body.enc_key.hex()}
    if isinstance(body, FedShares | FedUnmask):  # [TX-FED.9] [TX-FED.10]
        return {"job_id": body.job_id.hex(), "round": body.round, "blob": body.blob.hex(),
                "size": body.size}
    return None
