"""[API-DOC.2] The prediction schemas state the chain's own bounds: each bounded integer of a
``request_prediction`` and a ``deploy_model`` body is accepted by the decoder at the schema's
minimum and maximum and refused one beyond; the enums are the chain's lists."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from chain.predict.bodies import DeployModel, RequestPrediction
from chain.predict.model import DTYPES, FORMATS, OUTPUT_KINDS
from chain.predict.records import PredictionStatus
from chain.predict.request import MODES
from tests.client.api.test_api_schema_bounds import SCHEMAS, assert_bounds, tx_body

REQUEST = [b"\x01" * 32, b"\x02" * 32, 4, 100, 3, "values", 0, 5_000, 5_000]
REQUEST_FIELDS = ["model_id", "input_blob", "rows", "fee", "k", "mode", "tolerance",
                  "commit_window_ms", "reveal_window_ms"]
DEPLOY = [b"\x01" * 32, b"\x02" * 32, "safetensors-mlp", ["float32", 2], ["regression", 1, 0],
          0]


def _request_with(field: str) -> Callable[[int], Any]:
    def wire(n: int) -> Any:
        w = list(REQUEST)
        w[REQUEST_FIELDS.index(field)] = n
        if field == "tolerance":
            w[5] = "values"  # tolerance only in values mode [PRED-REQ.6]
        return [w]

    return wire


@pytest.mark.parametrize("field", ["rows", "fee", "tolerance", "commit_window_ms",
                                   "reveal_window_ms", "k"])
def test_request_prediction_bounds_are_the_decoders(field: str) -> None:
    schema = tx_body("request_prediction")["properties"]["request"]["properties"][field]
    assert_bounds(schema, RequestPrediction.from_wire, _request_with(field),
                  f"request.{field}")


def test_deploy_model_bounds_are_the_decoders() -> None:
    props = tx_body("deploy_model")["properties"]

    def royalty(n: int) -> Any:
        return [*DEPLOY[:5], n]

    def features(n: int) -> Any:
        return [*DEPLOY[:3], ["float32", n], *DEPLOY[4:]]

    def outputs(n: int) -> Any:
        return [*DEPLOY[:4], ["regression", n, 0], DEPLOY[5]]

    def scale(n: int) -> Any:
        return [*DEPLOY[:4], ["regression", 1, n], DEPLOY[5]]

    assert_bounds(props["royalty_permille"], DeployModel.from_wire, royalty, "royalty")
    assert_bounds(props["input"]["properties"]["features"], DeployModel.from_wire, features,
                  "input.features")
    out = props["output"]["properties"]
    # the JSON shows outputs 0 for a classes model; a regression needs at least 1
    assert out["outputs"]["minimum"] == 0
    assert_bounds({**out["outputs"], "minimum": 1}, DeployModel.from_wire, outputs, "outputs")
    assert_bounds(out["scale_exp"], DeployModel.from_wire, scale, "scale_exp")
    assert props["format"]["enum"] == list(FORMATS)
    assert props["input"]["properties"]["dtype"]["enum"] == list(DTYPES)
    assert out["kind"]["enum"] == list(OUTPUT_KINDS)


def test_prediction_enums_are_the_chains() -> None:
    assert SCHEMAS["Prediction"]["properties"]["status"]["enum"] == [
        str(s) for s in PredictionStatus]
    assert SCHEMAS["Prediction"]["properties"]["mode"]["enum"] == list(MODES)
    assert set(SCHEMAS["Model"]["properties"]["requests"]["properties"]) == {
        "total", "open", *(str(s) for s in PredictionStatus)}
