"""The story chain as vectors (protocol_spec/vectors/chain.json) and what it must prove.

A second implementation starts from the genesis document, applies each
block's bytes, checks each certificate against the set of its height, and
must reach every listed state root and exactly the listed changes
(``protocol_spec/state.md``). Regenerate with ``LC_WRITE_VECTORS=1``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from enum import Enum
from typing import Any

from chain.blocks import Block
from chain.consensus.certificate import decode_certificate, verify_certificate
from chain.consensus.validators import ValidatorSet
from chain.crypto import address_to_text
from chain.encoding import encode
from chain.genesis import genesis_records, genesis_state
from chain.governance.bodies import GovernanceAction
from chain.jobspec import FEDERATED_V1, TRAIN_V1, TRAIN_V3, JobSpec, ResourceLimits
from chain.records import JobStatus, VoteRecord
from chain.state import Change, decode_record, encode_record
from chain.transition import advance, apply_block
from chain.types import EMPTY_HASH
from tests.ledger.story import CHAIN_ID, Story, seed_of, tell_story
from tests.ledger.vector_files import check_vector_file


def named(value: Any) -> Any:
    """A record as JSON with field names: bytes as hex, enums as their value."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: named(getattr(value, f.name)) for f in dataclasses.fields(value)
                if not _off_the_wire(value, f.name)}
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [named(v) for v in value]
    return value


def _off_the_wire(value: Any, name: str) -> bool:
    """[JOB-KIND.1] A train/v1 spec has no ``data`` on its wire and only train/v3 has a
    ``holdout``, so neither is in their named forms; nor are a plain vote's holdout fields
    [HOLDOUT-VOTE.1], nor the GPU fields of limits without GPUs [JOB-GPU.1], nor
    ``federated`` outside federated/v1 [FED-SPEC.1]."""
    if isinstance(value, ResourceLimits):
        return not value.gpu_count and name in ("gpu_count", "gpu_memory_mb")
    if isinstance(value, JobSpec):
        return (value.kind == TRAIN_V1 and name == "data") or \
            (value.kind != TRAIN_V3 and name == "holdout") or \
            (value.kind != FEDERATED_V1 and name == "federated")
    if isinstance(value, VoteRecord):
        return not value.is_holdout_vote and name in ("holdout_ok", "hidden_loss")
    if isinstance(value, GovernanceAction):  # [UPGRADE-PLAN.1] only schedule_upgrade has one
        return name == "plan" and value.plan is None
    return False


def change_vector(change: Change) -> list[Any]:
    return [change.table, change.key.hex(), None if change.value is None else change.value.hex()]


def record_examples(story: Story) -> dict[str, dict[str, Any]]:
    """The first record of each table in the story, as wire bytes and with field names."""
    examples: dict[str, dict[str, Any]] = {}
    changes = genesis_records(story.genesis) + [c for b in story.blocks for c in b.changes]
    for change in changes:
        if change.value is None or change.table in examples:
            continue
        examples[change.table] = {"key": change.key.hex(), "wire": change.value.hex(),
                                  "fields": named(decode_record(change.table, change.value))}
    return examples


def build_chain_vectors() -> dict[str, Any]:
    story = tell_story()
    g = story.genesis
    return {
        "about": "LearningChain chain vectors: one consistent story from genesis; format: "
                 "protocol_spec/vectors/README.md#chainjson",
        "keys": {name: {"seed": seed_of(name), "pubkey": k.public_key.hex(),
                        "address": k.address.hex(), "address_text": address_to_text(k.address)}
                 for name, k in story.keys.items()},
        "genesis": {
            "doc": g.to_json(), "hashed_form": encode(g.hashed_form()).hex(),
            "hash": g.hash.hex(),
            "records": [change_vector(c) for c in genesis_records(g)],
            "state_root": genesis_state(g).state_root.hex(),
        },
        "blocks": [{
            "height": b.block.header.height, "note": b.note, "block": b.block.encode().hex(),
            "block_hash": b.block.hash.hex(), "certificate": b.certificate.encode().hex(),
            "validator_set": [[v.address.hex(), v.public_key.hex(), v.power]
                              for v in b.validator_set.validators],
            "changes": [change_vector(c) for c in b.changes],
            "state_root": b.state_root.hex(),
        } for b in story.blocks],
        "commitments": story.commitments,
        "record_examples": record_examples(story),
    }


def test_chain_vectors_match_committed_file() -> None:
    """[STATE-ROOT.1] [STATE-RECORD.1] The story's bytes, changes and roots, byte for byte."""
    check_vector_file("chain.json", build_chain_vectors())


def test_story_replays_from_bytes_with_certificates() -> None:
    """[BLOCK-APPLY.1] [CONS-CERT.1] What a verifier does: genesis, then each block's bytes,
    each certificate verified against the set of its height, each root and change list equal."""
    vectors = build_chain_vectors()
    story = tell_story()
    state = genesis_state(story.genesis)
    assert state.state_root.hex() == vectors["genesis"]["state_root"]
    for entry in vectors["blocks"]:
        validator_set = ValidatorSet.from_members(
            (v.pubkey, v.power) for v in state.validators().values())
        block = Block.decode(bytes.fromhex(entry["block"]))
        certificate = decode_certificate(bytes.fromhex(entry["certificate"]))
        assert certificate.block_hash == block.hash
        verify_certificate(certificate, validator_set, CHAIN_ID)
        output = apply_block(state, block)
        assert [change_vector(c) for c in output.changes] == entry["changes"]
        advance(state, block, output)
        assert state.state_root.hex() == entry["state_root"]
    assert state.total_credits() == state.supply  # [BANK.1] across the whole story


def test_story_covers_every_table_and_the_whole_job() -> None:
    """[STATE-RECORD.1] Every table of the state has a record example; the job was paid."""
    story = tell_story()
    examples = record_examples(story)
    assert set(examples) == {"account", "member", "validator", "job", "active_job", "proposal",
                             "valset_change", "params", "meta", "evidence", "verifier"}
    job = story.state.job(story.blocks[1].block.txs[2].hash)
    assert job is not None and job.status == JobStatus.PAID
    assert job.winner == story.keys["alice"].address


def test_every_story_record_round_trips() -> None:
    """[STATE-RECORD.1] decode(encode(record)) is the record, for every change in the story."""
    story = tell_story()
    for change in genesis_records(story.genesis) + [c for b in story.blocks for c in b.changes]:
        if change.value is not None:
            record = decode_record(change.table, change.value)
            assert encode_record(change.table, record) == change.value


def test_vote_commitment_vector_is_opened_by_its_own_voter() -> None:
    """[VOTE-COMMIT.1] The vector's vote commitment is bob's, and bob signs the vote carrying it."""
    story = tell_story()
    vote = story.commitments["vote"]
    tx = next(t for b in story.blocks for t in b.block.txs
              if t.hash.hex() == vote["carried_by_tx"])
    assert tx.sender.hex() == vote["inputs"]["voter"] == story.keys["bob"].address.hex()
    assert tx.body.commitment.hex() == vote["commitment"]  # type: ignore[union-attr]
    model = story.commitments["model"]
    claim = next(t for b in story.blocks for t in b.block.txs
                 if t.hash.hex() == model["carried_by_tx"])
    assert claim.sender.hex() == model["inputs"]["claimer"]


def test_genesis_hash_is_sha256_of_its_hashed_form() -> None:
    """[GENESIS-HASH.1] Validators in document order; members and balances by raw address."""
    g = tell_story().genesis
    assert g.hash == hashlib.sha256(encode(g.hashed_form())).digest()
    form = g.hashed_form()
    assert form[5] == sorted(form[5])
    assert [a for a, _ in form[6]] == sorted(a for a, _ in form[6])
    assert [v[2] for v in form[4]] == ["v0", "v1", "v2", "v3"]


def test_genesis_zero_balance_creates_no_record() -> None:
    """[GENESIS-STATE.1] erin's zero balance is hashed into genesis but is no account record."""
    story = tell_story()
    erin = story.keys["erin"].address
    assert [erin, 0] in story.genesis.hashed_form()[6]
    assert not any(c.table == "account" and c.key == erin for c in genesis_records(story.genesis))


def test_genesis_root_uses_the_empty_hash_as_previous_root() -> None:
    """[STATE-EMPTY-HASH.1] root(0) chains from 32 zero bytes, not from SHA-256("")."""
    from chain.state import compute_state_root

    g = tell_story().genesis
    assert EMPTY_HASH == b"\x00" * 32
    assert genesis_state(g).state_root == compute_state_root(b"\x00" * 32, 0, genesis_records(g))
