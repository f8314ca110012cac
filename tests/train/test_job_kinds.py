"""Job kinds: ``train/v1`` unchanged, ``train/v2`` naming its data blobs [JOB-KIND.1], [JOB-DATA.1].

Both kinds decode and re-encode to the same bytes; every bound of the v2
``data`` map is tried; every spec in the committed vector files (all v1)
still decodes and keeps its bytes; and ``protocol_spec/vectors/jobspecs.json``
fixes the v2 wire form (valid and rejected specs, a signed post) for a second
implementation.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from chain.encoding import decode, encode
from chain.errors import DecodeError
from chain.jobspec import (
    MAX_DATA_BLOBS,
    MAX_DATA_BYTES,
    TRAIN_V1,
    TRAIN_V2,
    DataRef,
    JobSpec,
)
from chain.records import JobStatus
from chain.state import decode_record
from chain.train.bodies import PostJob
from chain.transactions import SignedTransaction, sign_transaction
from chain.types import Hash32
from tests.ledger.harness import Chain, job_spec
from tests.ledger.vector_files import VECTORS_DIR, check_vector_file

CHAIN_ID = "vector-chain"
TRAIN_BLOB = Hash32(b"\x21" * 32)
VALID_BLOB = Hash32(b"\x22" * 32)


def v2_spec(**kw: Any) -> JobSpec:
    """The harness's v1 spec as a train/v2 spec with two data blobs."""
    data = kw.pop("data", (("train", DataRef(TRAIN_BLOB, 123_456)),
                           ("valid", DataRef(VALID_BLOB, 30_720))))
    return dataclasses.replace(job_spec(**kw), kind=TRAIN_V2, data=data)


def roundtrip(spec: JobSpec) -> JobSpec:
    return JobSpec.from_wire(decode(encode(spec.to_wire())))


def rejected(wire: list[Any]) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        JobSpec.from_wire(decode(encode(wire)))
    return info.value


# -- both kinds ------------------------------------------------------------------------------


def test_job_kind_1_v1_keeps_its_12_element_wire_and_v2_appends_data() -> None:
    """[JOB-KIND.1] [JOB-SPEC-WIRE.1] v1: 12 elements, no data; v2: the same 12, then data."""
    v1, v2 = job_spec(), v2_spec()
    assert len(v1.to_wire()) == 12 and v1.data == ()
    assert len(v2.to_wire()) == 13
    assert v2.to_wire()[:12] == [TRAIN_V2, *v1.to_wire()[1:]]
    assert v2.to_wire()[12] == {"train": [TRAIN_BLOB, 123_456], "valid": [VALID_BLOB, 30_720]}
    for spec in (v1, v2):
        assert roundtrip(spec) == spec
        assert encode(roundtrip(spec).to_wire()) == encode(spec.to_wire())
    assert v2.data_ref("valid") == DataRef(VALID_BLOB, 30_720) and v2.data_ref("x") is None
    assert v2.data_bytes == 123_456 + 30_720


def test_job_kind_1_the_kind_fixes_the_length() -> None:
    """[JOB-KIND.1] A v1 array with a 13th element, or a v2 array without one, is rejected."""
    assert rejected([*job_spec().to_wire(), {}]).code == "bad_field"
    assert rejected(v2_spec().to_wire()[:12]).code == "bad_field"
    assert rejected(["train/v3", *job_spec().to_wire()[1:]]).code == "bad_field"
    assert rejected([]).code == "bad_field"


def test_job_kind_1_a_v1_spec_cannot_carry_data() -> None:
    """[JOB-KIND.1] Data on a v1 spec would vanish on the wire: refused when constructed."""
    with pytest.raises(ValueError):
        dataclasses.replace(job_spec(), data=(("train", DataRef(TRAIN_BLOB, 1)),))


def test_job_data_1_roles_are_sorted_whatever_the_construction_order() -> None:
    """[JOB-DATA.1] The data map is canonical: one order, whatever the caller gave."""
    swapped = v2_spec(data=(("valid", DataRef(VALID_BLOB, 2)), ("train", DataRef(TRAIN_BLOB, 1))))
    assert [role for role, _ in swapped.data] == ["train", "valid"]


# -- the bounds of the data map -----------------------------------------------------------------


def _with_data(data: Any) -> list[Any]:
    return [*v2_spec().to_wire()[:12], data]


@pytest.mark.parametrize("data, why", [
    ([], "not a map"),
    ({"train": [TRAIN_BLOB, 1]}, "valid missing"),
    ({"valid": [VALID_BLOB, 1]}, "train missing"),
    ({"train": [TRAIN_BLOB, 0], "valid": [VALID_BLOB, 1]}, "size 0"),
    ({"train": [TRAIN_BLOB, MAX_DATA_BYTES + 1], "valid": [VALID_BLOB, 1]}, "size > 1 TiB"),
    ({"train": [TRAIN_BLOB, -1], "valid": [VALID_BLOB, 1]}, "negative size"),
    ({"train": [TRAIN_BLOB[:31], 1], "valid": [VALID_BLOB, 1]}, "blob id of 31 bytes"),
    ({"train": [TRAIN_BLOB, 1, 2], "valid": [VALID_BLOB, 1]}, "three elements"),
    ({"train": [TRAIN_BLOB, 1.0], "valid": [VALID_BLOB, 1]}, "float size"),
    ({"train": [TRAIN_BLOB, 1], "valid": [VALID_BLOB, 1], "Test": [VALID_BLOB, 1]}, "upper"),
    ({"train": [TRAIN_BLOB, 1], "valid": [VALID_BLOB, 1], "../x": [VALID_BLOB, 1]}, "escape"),
    ({"train": [TRAIN_BLOB, 1], "valid": [VALID_BLOB, 1], "a/b": [VALID_BLOB, 1]}, "slash"),
    ({"train": [TRAIN_BLOB, 1], "valid": [VALID_BLOB, 1], "": [VALID_BLOB, 1]}, "empty"),
    ({"train": [TRAIN_BLOB, 1], "valid": [VALID_BLOB, 1], "9x": [VALID_BLOB, 1]}, "digit"),
    ({"train": [TRAIN_BLOB, 1], "valid": [VALID_BLOB, 1], "x" * 33: [VALID_BLOB, 1]}, "long"),
    ({"train": [TRAIN_BLOB, 1], "valid": [VALID_BLOB, 1],
      **{f"extra{i}": [VALID_BLOB, 1] for i in range(MAX_DATA_BLOBS - 1)}}, "nine blobs"),
])
def test_job_data_1_bad_data_maps_are_rejected(data: Any, why: str) -> None:
    """[JOB-DATA.1] Every bound of ``data``: roles, required roles, count, id, size."""
    assert rejected(_with_data(data)).code == "bad_field", why


def test_job_data_1_eight_blobs_and_the_largest_size_decode() -> None:
    """[JOB-DATA.1] The bounds themselves are allowed: 8 roles, 1 TiB, 32-character roles."""
    data = {"train": [TRAIN_BLOB, MAX_DATA_BYTES], "valid": [VALID_BLOB, 1],
            "x" * 32: [VALID_BLOB, 1], **{f"r{i}": [VALID_BLOB, 1] for i in range(5)}}
    assert len(data) == MAX_DATA_BLOBS
    spec = JobSpec.from_wire(decode(encode(_with_data(data))))
    assert len(spec.data) == MAX_DATA_BLOBS and spec.data_bytes == MAX_DATA_BYTES + 7


def test_job_kind_1_a_v2_job_is_posted_and_escrowed_like_a_v1_job() -> None:
    """[JOB-KIND.1] [JOB-POST.1] The ledger takes a v2 post as it takes a v1 post."""
    chain = Chain()
    before = chain.state.account(chain.addr("submitter")).balance
    post = chain.tx("submitter", PostJob(v2_spec()))
    chain.block(post)
    job = chain.job(post.hash)
    assert job.status == JobStatus.OPEN and job.spec == v2_spec()
    assert chain.state.account(chain.addr("submitter")).balance == before - v2_spec().escrow


# -- old vectors keep their bytes ---------------------------------------------------------------


def _same_bytes(tx: SignedTransaction) -> None:
    again = encode([tx.body.TAG, tx.sender_pubkey, tx.nonce, tx.body.to_wire(), tx.signature])
    assert again == tx.wire, f"{tx.body.TAG} changed bytes"


def test_job_kind_1_every_committed_vector_still_decodes_with_its_bytes() -> None:
    """[JOB-KIND.1] ledger.json, blocks.json and chain.json (all v1) decode and re-encode to
    their own bytes: transactions, blocks and the job records of the chain story."""
    from chain.blocks import Block

    ledger = json.loads((VECTORS_DIR / "ledger.json").read_text())
    posts = 0
    for t in ledger["transactions"]:
        tx = SignedTransaction.decode(bytes.fromhex(t["wire"]))
        _same_bytes(tx)
        posts += isinstance(tx.body, PostJob)
    blocks = [case["block"] for case in
              json.loads((VECTORS_DIR / "blocks.json").read_text())["cases"]]
    chain = json.loads((VECTORS_DIR / "chain.json").read_text())
    blocks += [b["block"] for b in chain["blocks"]]
    for raw in blocks:
        try:
            block = Block.decode(bytes.fromhex(raw))
        except DecodeError:
            continue  # a case that tries a malformed block
        for tx in block.txs:
            _same_bytes(tx)
            posts += isinstance(tx.body, PostJob)
    jobs = 0
    for b in chain["blocks"]:
        for table, _key, value in b["changes"]:
            if table == "job" and value is not None:
                record = decode_record("job", bytes.fromhex(value))
                assert encode(record.to_wire()) == bytes.fromhex(value)
                assert record.spec.kind == TRAIN_V1
                jobs += 1
    assert posts >= 2 and jobs >= 3, (posts, jobs)


# -- the v2 vectors -----------------------------------------------------------------------------


ENTRY_POINTS_AT_THE_BOUND: dict[str, list[str]] = {
    "train": ["t" * 256] * 32, "evaluate": [""],
    **{"e" * 32 if i == 0 else f"extra{i}": ["/job/x"] for i in range(6)}}
"""[JOB-ENTRY.3] 8 names, a 32-character name, 32 arguments of 256 characters, an empty
argument: every bound reached, none passed."""


def _entry_point_cases() -> dict[str, dict[str, Any]]:
    """[JOB-ENTRY.3] One step past each bound of ``entry_points``: each is ``bad_field``."""
    ok = ENTRY_POINTS_AT_THE_BOUND
    return {
        "entry_points_nine_names": {**ok, "ninth": ["/job/x"]},
        "entry_points_name_33_chars": {**{k: v for k, v in ok.items() if k != "e" * 32},
                                       "e" * 33: ["/job/x"]},
        "entry_points_empty_name": {**{k: v for k, v in ok.items() if k != "e" * 32},
                                    "": ["/job/x"]},
        "entry_points_33_args": {**ok, "train": ["t"] * 33},
        "entry_points_arg_257_chars": {**ok, "train": ["t" * 257]},
        "entry_points_empty_argv": {**ok, "extra1": []},
        "entry_points_arg_not_text": {**ok, "extra1": [b"/job/x"]},
        "entry_points_missing_evaluate": {k: v for k, v in ok.items() if k != "evaluate"},
    }


def build_vectors() -> dict[str, Any]:
    """jobspecs.json: v1 and v2 specs with their bytes, rejected v2 specs, a signed v2 post."""
    from chain.crypto import PrivateKey

    valid = {"v1": job_spec(), "v2": v2_spec(),
             "v2_extra_role": v2_spec(data=(("train", DataRef(TRAIN_BLOB, 1)),
                                            ("valid", DataRef(VALID_BLOB, 2)),
                                            ("test_public", DataRef(Hash32(b"\x23" * 32), 3)))),
             "v2_entry_points_at_the_bound": JobSpec.from_wire(
                 [*v2_spec().to_wire()[:4], ENTRY_POINTS_AT_THE_BOUND,
                  *v2_spec().to_wire()[5:]])}
    base = v2_spec().to_wire()
    invalid = {
        "v2_without_data": base[:12],
        "v1_with_data": [TRAIN_V1, *base[1:]],
        "v2_missing_valid": _with_data({"train": [TRAIN_BLOB, 1]}),
        "v2_zero_size": _with_data({"train": [TRAIN_BLOB, 0], "valid": [VALID_BLOB, 1]}),
        "v2_bad_role": _with_data({"train": [TRAIN_BLOB, 1], "valid": [VALID_BLOB, 1],
                                   "../etc": [VALID_BLOB, 1]}),
        "v2_nine_blobs": _with_data({"train": [TRAIN_BLOB, 1], "valid": [VALID_BLOB, 1],
                                     **{f"r{i}": [VALID_BLOB, 1] for i in range(7)}}),
        **{name: [*base[:4], eps, *base[5:]] for name, eps in _entry_point_cases().items()},
    }
    key = PrivateKey.from_seed(b"alice")
    post = sign_transaction(key, CHAIN_ID, 0, PostJob(v2_spec()))
    return {
        "about": "Job specs of each kind (protocol_spec/state.md §6, ledger.md §5 [JOB-KIND.1], "
                 "[JOB-DATA.1]); invalid ones are rejected with DecodeError bad_field",
        "valid": [{"name": name, "kind": spec.kind, "wire": encode(spec.to_wire()).hex()}
                  for name, spec in valid.items()],
        "invalid": [{"name": name, "wire": encode(wire).hex(), "error": rejected(wire).code}
                    for name, wire in invalid.items()],
        "post_job_v2": {"chain_id": CHAIN_ID, "signer_seed": "alice", "nonce": 0,
                        "wire": post.wire.hex(), "tx_hash": post.hash.hex()},
    }


def test_job_data_1_vectors_match_committed_file() -> None:
    """[JOB-KIND.1] [JOB-DATA.1] protocol_spec/vectors/jobspecs.json, byte for byte; each
    valid spec decodes back to its bytes."""
    vectors = build_vectors()
    check_vector_file("jobspecs.json", vectors)
    for case in vectors["valid"]:
        raw = bytes.fromhex(case["wire"])
        assert encode(JobSpec.from_wire(decode(raw)).to_wire()) == raw
    tx = SignedTransaction.decode(bytes.fromhex(vectors["post_job_v2"]["wire"]))
    assert isinstance(tx.body, PostJob) and tx.body.spec.kind == TRAIN_V2
    assert tx.signature_valid(CHAIN_ID)
