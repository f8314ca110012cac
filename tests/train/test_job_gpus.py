"""GPUs in a job's limits [JOB-GPU.1]: the 7-element form unchanged, the 9-element form bounded.

A job without GPUs keeps the exact bytes (and so the id) it had before GPUs
existed: checked against the committed ``jobspecs.json`` and ``ledger.json``.
``protocol_spec/vectors/gpus.json`` fixes both forms and every rejection for a
second implementation; regenerate with ``LC_WRITE_VECTORS=1``.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from chain.encoding import decode, encode
from chain.errors import DecodeError
from chain.jobspec import MAX_GPUS, MAX_MB, JobSpec, ResourceLimits
from chain.records import JobStatus
from chain.train.bodies import PostJob
from chain.transactions import SignedTransaction, sign_transaction
from tests.ledger.harness import Chain, job_spec
from tests.ledger.vector_files import VECTORS_DIR, check_vector_file
from tests.train.test_job_kinds import v2_spec

CHAIN_ID = "vector-chain"
CPU = ResourceLimits(memory_mb=512, cpu_millis=1000, time_s=60, disk_mb=64)
"""The harness spec's limits: no GPU."""
GPU = dataclasses.replace(CPU, gpu_count=2, gpu_memory_mb=16_384)


def gpu_spec(**kw: Any) -> JobSpec:
    return dataclasses.replace(job_spec(**kw), limits=GPU)


def limits_rejected(wire: list[Any]) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        ResourceLimits.from_wire(decode(encode(wire)))
    return info.value


def test_job_gpu_1_no_gpu_is_the_7_element_form_and_gpus_append_two() -> None:
    """[JOB-GPU.1] Without GPUs ``limits`` is the 7 elements it always was; with them, the
    same 7 then ``gpu_count, gpu_memory_mb``; both decode back to their own bytes."""
    assert CPU.to_wire() == [512, 1000, 60, 64, 64, 4096, 8192]
    assert GPU.to_wire() == [*CPU.to_wire(), 2, 16_384]
    for limits in (CPU, GPU):
        raw = encode(limits.to_wire())
        assert ResourceLimits.from_wire(decode(raw)) == limits
        assert encode(ResourceLimits.from_wire(decode(raw)).to_wire()) == raw
    spec = gpu_spec()
    assert JobSpec.from_wire(decode(encode(spec.to_wire()))) == spec
    assert dataclasses.replace(CPU, gpu_count=1).to_wire()[7:] == [1, 0]  # 0 MiB: any GPU


def test_job_gpu_1_specs_posted_before_gpus_keep_their_bytes_and_ids() -> None:
    """[JOB-GPU.1] [JOB-KIND.1] Every committed spec and signed post decodes to no GPU and
    re-encodes to its bytes (so its job id, the post's hash, is unchanged)."""
    specs = json.loads((VECTORS_DIR / "jobspecs.json").read_text())["valid"]
    assert specs
    for case in specs:
        raw = bytes.fromhex(case["wire"])
        spec = JobSpec.from_wire(decode(raw))
        assert spec.limits.gpu_count == 0 and len(spec.limits.to_wire()) == 7
        assert encode(spec.to_wire()) == raw
    posts = 0
    for t in json.loads((VECTORS_DIR / "ledger.json").read_text())["transactions"]:
        tx = SignedTransaction.decode(bytes.fromhex(t["wire"]))
        if isinstance(tx.body, PostJob):
            posts += 1
            assert tx.body.spec.limits.gpu_count == 0
            assert tx.hash.hex() == t["tx_hash"]
            assert encode([tx.body.TAG, tx.sender_pubkey, tx.nonce, tx.body.to_wire(),
                           tx.signature]) == tx.wire
    assert posts >= 1


INVALID_LIMITS = {
    "eight_elements": [*CPU.to_wire(), 1],
    "ten_elements": [*GPU.to_wire(), 0],
    "six_elements": CPU.to_wire()[:6],
    "gpu_count_zero_in_long_form": [*CPU.to_wire(), 0, 0],
    "gpu_count_zero_with_memory": [*CPU.to_wire(), 0, 1024],
    "gpu_count_above_16": [*CPU.to_wire(), MAX_GPUS + 1, 0],
    "gpu_count_negative": [*CPU.to_wire(), -1, 0],
    "gpu_memory_above_2_20": [*CPU.to_wire(), 1, MAX_MB + 1],
    "gpu_memory_negative": [*CPU.to_wire(), 1, -1],
    "gpu_count_float": [*CPU.to_wire(), 1.0, 0],
    "gpu_count_bool": [*CPU.to_wire(), True, 0],
}


@pytest.mark.parametrize("name", sorted(INVALID_LIMITS))
def test_job_gpu_1_bad_gpu_limits_are_rejected_naming_the_field(name: str) -> None:
    """[JOB-GPU.1] Any length but 7 or 9, a long form without GPUs (two encodings of one
    job), a count above 16 or a memory above 2^20 MiB: ``bad_field``, naming the field."""
    error = limits_rejected(INVALID_LIMITS[name])
    assert error.code == "bad_field", name
    field = "limits" if "elements" in name else (
        "limits.gpu_count" if "count" in name else "limits.gpu_memory_mb")
    assert f"'{field}'" in str(error), (name, str(error))


def test_job_gpu_1_the_bounds_themselves_decode() -> None:
    """[JOB-GPU.1] 16 GPUs of 2^20 MiB, and one GPU of any memory (0), are allowed."""
    for count, memory in ((MAX_GPUS, MAX_MB), (1, 0)):
        limits = ResourceLimits.from_wire([*CPU.to_wire(), count, memory])
        assert (limits.gpu_count, limits.gpu_memory_mb) == (count, memory)


def test_job_gpu_1_memory_without_gpus_cannot_be_constructed() -> None:
    """[JOB-GPU.1] A memory with no GPU would vanish on the wire: refused when built."""
    with pytest.raises(ValueError, match="gpu_memory_mb 1024 without GPUs"):
        dataclasses.replace(CPU, gpu_memory_mb=1024)


def test_job_gpu_1_a_gpu_job_is_posted_and_escrowed_like_any_job() -> None:
    """[JOB-GPU.1] [JOB-POST.1] The ledger takes a GPU job's post as any other, and its
    record keeps the 9-element limits."""
    chain = Chain()
    before = chain.state.account(chain.addr("submitter")).balance
    spec = gpu_spec()
    post = chain.tx("submitter", PostJob(spec))
    chain.block(post)
    job = chain.job(post.hash)
    assert job.status == JobStatus.OPEN and job.spec == spec
    assert job.spec.limits.to_wire()[7:] == [2, 16_384]
    assert chain.state.account(chain.addr("submitter")).balance == before - spec.escrow


def build_vectors() -> dict[str, Any]:
    """gpus.json: limits and specs without and with GPUs, rejected limits, a signed post."""
    from chain.crypto import PrivateKey

    valid_limits = {"no_gpu": CPU, "two_gpus_16gib": GPU,
                    "one_gpu_any_memory": dataclasses.replace(CPU, gpu_count=1),
                    "max_bounds": dataclasses.replace(CPU, gpu_count=MAX_GPUS,
                                                      gpu_memory_mb=MAX_MB)}
    specs = {"v1_no_gpu": job_spec(), "v1_gpu": gpu_spec(),
             "v2_gpu": dataclasses.replace(v2_spec(), limits=GPU)}
    key = PrivateKey.from_seed(b"alice")
    post = sign_transaction(key, CHAIN_ID, 0, PostJob(gpu_spec()))
    return {
        "about": "Job limits without GPUs (7 elements, unchanged) and with GPUs (9: then "
                 "gpu_count, gpu_memory_mb); protocol_spec/ledger.md [JOB-GPU.1], state.md §6. "
                 "Invalid limits are rejected with DecodeError bad_field.",
        "valid_limits": [{"name": name, "limits": limits.to_wire(),
                          "wire": encode(limits.to_wire()).hex()}
                         for name, limits in valid_limits.items()],
        "invalid_limits": [{"name": name, "wire": encode(wire).hex(),
                            "error": limits_rejected(wire).code}
                           for name, wire in sorted(INVALID_LIMITS.items())],
        "specs": [{"name": name, "kind": spec.kind, "wire": encode(spec.to_wire()).hex()}
                  for name, spec in specs.items()],
        "post_job_gpu": {"chain_id": CHAIN_ID, "signer_seed": "alice", "nonce": 0,
                         "wire": post.wire.hex(), "tx_hash": post.hash.hex()},
    }


def test_job_gpu_1_vectors_match_committed_file() -> None:
    """[JOB-GPU.1] protocol_spec/vectors/gpus.json, byte for byte; the spec without GPUs is
    the very bytes jobspecs.json has for it; each valid entry decodes back to its bytes."""
    vectors = build_vectors()
    check_vector_file("gpus.json", vectors)
    old = {c["name"]: c["wire"] for c in
           json.loads((VECTORS_DIR / "jobspecs.json").read_text())["valid"]}
    assert vectors["specs"][0]["wire"] == old["v1"]
    for case in vectors["specs"]:
        raw = bytes.fromhex(case["wire"])
        assert encode(JobSpec.from_wire(decode(raw)).to_wire()) == raw
    for case in vectors["valid_limits"]:
        raw = bytes.fromhex(case["wire"])
        assert ResourceLimits.from_wire(decode(raw)).to_wire() == case["limits"]
