"""Shared fixed inputs for the prediction-rule tests: addresses, models, requests."""

from __future__ import annotations

import hashlib

from chain.predict.model import DeployedModel, InputSchema, OutputSchema
from chain.predict.request import PredictionRequest
from chain.types import Address, Amount, Hash32


def h(label: str) -> Hash32:
    return Hash32(hashlib.sha256(label.encode()).digest())


def addr(label: str) -> Address:
    return Address(h(f"addr:{label}")[:20])


def digits_model(royalty: int = 100) -> DeployedModel:
    labels = tuple(str(d) for d in range(10))
    return DeployedModel(h("job:digits"), h("model:digits"), "safetensors-mlp",
                         InputSchema("float32", 64), OutputSchema("classes", labels),
                         addr("owner"), royalty)


def score_model(royalty: int = 0) -> DeployedModel:
    return DeployedModel(h("job:cancer"), h("model:cancer"), "safetensors-mlp",
                         InputSchema("float64", 30), OutputSchema("regression", (), 1, 6),
                         addr("owner"), royalty)


def labels_request(rows: int = 10, k: int = 3, fee: int = 1000) -> PredictionRequest:
    return PredictionRequest(h("job:digits"), h("input:digits"), rows, Amount(fee), k, "labels",
                             0, 5_000, 5_000)
