"""[API-DOC.2] The OpenAPI schemas state the protocol's bounds: each checked against the decoder.

For every bounded integer field of a transfer and a job spec, the schema's
``minimum`` and ``maximum`` are accepted by the chain's own decoder and one
past each is refused; every enum is the chain's list; text and list bounds
match the decoder's. A schema that says ``amount ≥ 0`` where the ledger says
``≥ 1`` (issue 14 §3b) fails here.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from chain.errors import DecodeError
from chain.governance.bodies import GOV_ACTIONS
from chain.jobspec import JOB_KINDS, PARAM_KINDS, JobSpec
from chain.records import JobStatus, Outcome
from chain.transactions import Transfer
from client.api.openapi import openapi_document
from tests.ledger.harness import job_spec

DOC = openapi_document()
SCHEMAS = DOC["components"]["schemas"]


def tx_body(tag: str) -> dict[str, Any]:
    [body] = [b for b in SCHEMAS["TxBody"]["oneOf"] if b["properties"]["type"]["const"] == tag]
    return dict(body)


def spec_props() -> dict[str, Any]:
    return dict(SCHEMAS["JobSpec"]["properties"])


def accepts(decode: Callable[[Any], Any], wire: Any) -> bool:
    try:
        decode(wire)
    except DecodeError:
        return False
    return True


def assert_bounds(schema: dict[str, Any], decode: Callable[[Any], Any],
                  wire_with: Callable[[int], Any], what: str) -> None:
    low, high = schema["minimum"], schema.get("maximum")
    assert accepts(decode, wire_with(low)), f"{what}: the schema's minimum {low} is refused"
    assert not accepts(decode, wire_with(low - 1)), f"{what}: {low - 1} accepted, not ≥ {low}"
    if high is not None:
        assert accepts(decode, wire_with(high)), f"{what}: the schema's maximum {high} is refused"
        assert not accepts(decode, wire_with(high + 1)), f"{what}: {high + 1} accepted"


def test_api_doc_2_transfer_amount_is_at_least_one_as_the_ledger_says() -> None:
    amount = tx_body("transfer")["properties"]["amount"]
    assert amount["minimum"] == 1 and amount["maximum"] == 2**63 - 1
    assert_bounds(amount, Transfer.from_wire, lambda n: [b"\x01" * 20, n], "transfer.amount")


SPEC_WIRE = job_spec().to_wire()
LIMIT_FIELDS = ["memory_mb", "cpu_millis", "time_s", "disk_mb", "model_mb", "image_mb",
                "image_unpacked_mb"]
VOTING_FIELDS = ["reveal_window_ms", "commit_window_ms", "vote_reveal_window_ms",
                 "quorum_permille", "supermajority_permille", "voter_reward", "max_turns"]


def spec_with(path: tuple[int, ...], value: Any) -> list[Any]:
    wire = copy.deepcopy(SPEC_WIRE)
    target = wire
    for i in path[:-1]:
        target = target[i]
    target[path[-1]] = value
    if path[:1] == (5,) and path[1] == 3:  # disk_mb bounds model_mb: keep model_mb ≤ disk_mb
        target[4] = min(target[4], max(1, value))
    return wire


@pytest.mark.parametrize("index,name", list(enumerate(LIMIT_FIELDS)))
def test_api_doc_2_resource_limits_bounds_match_the_decoder(index: int, name: str) -> None:
    schema = spec_props()["limits"]["properties"][name]
    if name == "model_mb":  # bounded above by disk_mb, not a constant
        schema = {"minimum": schema["minimum"]}
    assert_bounds(schema, JobSpec.from_wire, lambda n: spec_with((5, index), n), name)
    assert set(spec_props()["limits"]["properties"]) == set(LIMIT_FIELDS + GPU_FIELDS)


GPU_FIELDS = ["gpu_count", "gpu_memory_mb"]


@pytest.mark.parametrize("index,name", [(7, "gpu_count"), (8, "gpu_memory_mb")])
def test_api_doc_2_gpu_limit_bounds_match_the_decoder(index: int, name: str) -> None:
    """[JOB-GPU.1] The GPU fields, optional in the schema (absent without GPUs), have the
    decoder's bounds in the 9-element limits (one GPU of any memory as the base)."""
    limits = spec_props()["limits"]
    assert set(GPU_FIELDS) <= set(limits["properties"]) and \
        not set(GPU_FIELDS) & set(limits["required"])

    def wire_with(n: int) -> list[Any]:
        wire = copy.deepcopy(SPEC_WIRE)
        wire[5] = [*wire[5], 1, 0]
        wire[5][index] = n
        return wire

    assert_bounds(limits["properties"][name], JobSpec.from_wire, wire_with, name)


def test_api_doc_2_a_jobs_limits_json_has_gpu_fields_only_with_gpus() -> None:
    """[JOB-GPU.1] The API's JSON of a spec: a GPU job's limits show its GPU request, a
    GPU-less job's are the 7 fields they always were; both fit the schema's object."""
    import dataclasses

    from client.api.json_forms import spec_json

    schema = spec_props()["limits"]
    plain = job_spec()
    gpu = dataclasses.replace(plain, limits=dataclasses.replace(plain.limits, gpu_count=2,
                                                                gpu_memory_mb=8192))
    for spec, fields in ((plain, LIMIT_FIELDS), (gpu, LIMIT_FIELDS + GPU_FIELDS)):
        shown = spec_json(spec)["limits"]
        assert isinstance(shown, dict) and sorted(shown) == sorted(fields)
        assert set(schema["required"]) <= set(shown) <= set(schema["properties"])
    gpu_shown = spec_json(gpu)["limits"]
    assert isinstance(gpu_shown, dict)
    assert (gpu_shown["gpu_count"], gpu_shown["gpu_memory_mb"]) == (2, 8192)


@pytest.mark.parametrize("index,name", list(enumerate(VOTING_FIELDS)))
def test_api_doc_2_voting_bounds_match_the_decoder(index: int, name: str) -> None:
    schema = spec_props()["voting"]["properties"][name]
    if name == "voter_reward":
        schema = {"minimum": schema["minimum"]}  # the amount's maximum is checked above
    assert_bounds(schema, JobSpec.from_wire, lambda n: spec_with((10, index), n), name)


def test_api_doc_2_bounty_text_and_list_bounds_match_the_decoder() -> None:
    props = spec_props()
    assert_bounds({"minimum": props["bounty"]["minimum"]}, JobSpec.from_wire,
                  lambda n: spec_with((7,), n), "bounty")
    for index, name in ((3, "image_ref"), (11, "description")):
        limit = props[name]["maxLength"]
        assert accepts(JobSpec.from_wire, spec_with((index,), "x" * limit))
        assert not accepts(JobSpec.from_wire, spec_with((index,), "x" * (limit + 1))), name
    params = props["search_space"]
    assert not accepts(JobSpec.from_wire, spec_with(
        (6,), [[f"p{i}", "choice", [1]] for i in range(params["maxItems"] + 1)]))
    values = params["items"]["properties"]["values"]["maxItems"]
    assert not accepts(JobSpec.from_wire, spec_with((6,), [["p", "choice",
                                                             list(range(values + 1))]]))
    assert accepts(JobSpec.from_wire, spec_with((6,), [["p", "choice", list(range(values))]]))


def test_api_doc_2_enums_are_the_chains_own_lists() -> None:
    assert SCHEMAS["JobSummary"]["properties"]["status"]["enum"] == [str(s) for s in JobStatus]
    assert "broken" in SCHEMAS["Job"]["properties"]["status"]["enum"]
    outcomes = SCHEMAS["Verdict"]["properties"]["outcome"]["enum"]
    assert outcomes == [str(o) for o in Outcome]
    assert {"withdrawn", "inconsistent"} <= set(outcomes)
    assert "verified_loss" in SCHEMAS["Verdict"]["required"]
    board_states = (SCHEMAS["Leaderboard"]["properties"]["claims"]["items"]["properties"]
                    ["state"]["enum"])
    assert set(board_states) == {"waiting", "current", *outcomes}
    assert spec_props()["kind"]["enum"] == list(JOB_KINDS)
    kinds = spec_props()["search_space"]["items"]["properties"]["kind"]["enum"]
    assert kinds == list(PARAM_KINDS)
    assert SCHEMAS["GovernanceAction"]["properties"]["kind"]["enum"] == list(GOV_ACTIONS)
