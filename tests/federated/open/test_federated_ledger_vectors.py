"""protocol_spec/vectors/federated_ledger.json: a federated job through blocks, replayable.

Nothing random (tests/federated/fed_ledger_story.py: keys from seeds, salts from names,
fixed updates and block times). A second implementation replays the blocks from the
genesis document and must reach every listed state root and the listed records; it
checks the commitments, the aggregator draw and the decoding of refused bodies on its own.

The story: the owner posts (bounty 300, deposit 20, voter reward 5 × 3 turns, plain mean,
2 rounds, min 2 / max 3 participants, loo 500 ‰), publishes its public part; alice, bob
and carol commit and reveal (each commitment locks the reveal deposit of 50 credits, each
reveal returns it [FED-DEPOSIT.1]); round 1 accepted; round 2's first aggregator posts a wrong
model, is voted invalid by all, banned; the next aggregator's honest one is accepted; the
owner names its hidden part; the end ballot agrees the losses; the bounty is paid.
``cohort``: a second, short story at protocol version 6 whose job names alice and bob as
its cohort [FED-SPEC.4]: carol's commitment is refused, and so is the post at version 5.
"""

from __future__ import annotations

from typing import Any

from chain.blocks import Block
from chain.context import TxContext
from chain.encoding import decode, encode
from chain.errors import DecodeError, InvalidTransaction
from chain.federated.blobs import update_commitment
from chain.federated.open.bodies import fed_vote_commitment
from chain.federated.open.reads import fed_rounds
from chain.federated.open.records import FedPhase
from chain.federated.open.steps import aggregator_seed, reveal_deposit
from chain.genesis import Genesis, genesis_state
from chain.jobspec import FEDERATED_V1, JobSpec
from chain.state import Overlay
from chain.train.bodies import PostJob
from chain.transactions import BODY_TYPES, SignedTransaction
from chain.transition import advance, apply_block, apply_transaction
from chain.types import Height, TimeMs
from chain.versions import COHORT_VERSION
from tests.federated.fed_ledger_story import FedStory, fed_job_spec, fed_spec
from tests.federated.open.test_federated_ledger import LOSSES, two_rounds_with_a_cheat
from tests.ledger.harness import Chain
from tests.ledger.vector_files import check_vector_file


def _rejected(tag: str, body: list[Any]) -> str:
    try:
        BODY_TYPES[tag].from_wire(decode(encode(body)))
    except DecodeError as e:
        return e.code
    raise AssertionError(f"accepted: {tag} {body}")


def _txs(story: FedStory, tag: str) -> list[Any]:
    return [tx.body for b in story.chain.blocks for tx in b.txs if tag == tx.body.TAG]


def cohort_vectors() -> dict[str, Any]:
    """[FED-SPEC.4] [TX-FED.2] [TX-FED.12] A job naming alice and bob as its cohort, at
    protocol version 6: posted, public part named, carol's commitment refused, alice's and
    bob's in one block; and the same post refused on a version-5 chain."""
    old = FedStory(Chain(protocol_version=COHORT_VERSION - 1))
    story = FedStory(Chain(protocol_version=COHORT_VERSION))
    chain = story.chain
    spec = fed_job_spec(cohort=tuple(sorted(chain.addr(n) for n in ("alice", "bob"))))
    early = old.chain.tx("submitter", PostJob(spec))
    refused_post = {"genesis": old.chain.genesis.to_json(), "tx": early.wire.hex(),
                    "time_ms": old.chain.now + 1_000, "error": old.chain.reject(early)}
    story.post(spec)
    story.publish()
    carol = chain.tx("carol", story.bodies("carol", 1).commit)
    refused_commit = {"after_height": chain.state.height, "tx": carol.wire.hex(),
                      "time_ms": chain.now + 1_000, "error": chain.reject(carol)}
    chain.block(*(chain.tx(n, story.bodies(n, 1).commit) for n in ("alice", "bob")))
    return {
        "about": "a job whose cohort is alice and bob (protocol version 6): replay 'blocks' "
                 "from 'genesis'; 'refused_commit' (carol, an admitted member) applied "
                 "after block 'after_height' at 'time_ms' fails with 'error'; "
                 "'refused_post' is the same post on a version-5 chain's first block.",
        "genesis": chain.genesis.to_json(),
        "job_id": story.job_id.hex(),
        "cohort": [a.hex() for a in sorted(chain.addr(n) for n in ("alice", "bob"))],
        "blocks": [{"height": b.header.height, "wire": b.encode().hex(),
                    "state_root": b.header.state_root.hex()} for b in chain.blocks],
        "refused_commit": refused_commit,
        "refused_post": refused_post,
        "participants": [u.participant.hex() for u in story.fed.updates],
    }


def build_vectors() -> dict[str, Any]:
    story, cheat = two_rounds_with_a_cheat()
    chain, job = story.chain, story.job_id
    aggregate = _txs(story, "fed_aggregate")[0].to_wire()
    vote = _txs(story, "fed_vote_reveal")[0].to_wire()
    reveal = _txs(story, "fed_reveal")[0].to_wire()
    invalid = {
        "fed_aggregate_weight_over_2_16": ("fed_aggregate",
                                           [*aggregate[:5], [[aggregate[5][0][0], 65537]]]),
        "fed_aggregate_5_items": ("fed_aggregate", aggregate[:5]),
        "fed_vote_reveal_accuracy_over_1e6": ("fed_vote_reveal",
                                              [*vote[:4], 1_000_001, None, vote[6]]),
        "fed_vote_reveal_loss_2_40": ("fed_vote_reveal", [*vote[:4], None, [1 << 40], vote[6]]),
        "fed_reveal_short_salt": ("fed_reveal", [*reveal[:5], b"\x00" * 31]),
        "fed_part_which_other": ("fed_part", [job, "valid", [b"\x00" * 32, 1]]),
    }
    salt = b"\x01" * 32
    addr = chain.addr("alice")
    return {
        "about": "a federated/v1 job in the ledger (protocol_spec/federated.md §7, state.md "
                 "§2). Replay 'blocks' from 'genesis' (tests/ledger/harness.py make_genesis: "
                 "keys from seeds) and check each state_root and the final records; "
                 "'cheat' is the aggregator banned in round 2; the commitments and the "
                 "draw seed are computed from their inputs; 'reveal_deposit' is "
                 "[FED-DEPOSIT.1]'s amount for each (bounty, rounds, max_participants); "
                 "the invalid bodies fail to decode with 'error'.",
        "genesis": chain.genesis.to_json(),
        "job_id": job.hex(),
        "jobspec": {"wire": encode(chain.job(job).spec.to_wire()).hex(),
                    "escrow": chain.job(job).spec.escrow},
        "cheat": chain.addr(cheat).hex(),
        "blocks": [{"height": b.header.height, "hash": b.hash.hex(), "wire": b.encode().hex(),
                    "state_root": b.header.state_root.hex()} for b in chain.blocks],
        "final_fed_job": encode(story.fed.to_wire()).hex(),
        "final_rounds": [encode(r.to_wire()).hex() for r in fed_rounds(chain.state, job)],
        "paid": {a.hex(): v for a, v in story.fed.paid},
        "end_losses": LOSSES,
        "update_commitment": {
            "job_id": job.hex(), "round": 1, "participant": addr.hex(),
            "update_hash": (b"\x02" * 32).hex(), "salt": salt.hex(),
            "commitment": update_commitment(job, 1, addr, b"\x02" * 32, salt).hex()},
        "vote_commitment": {
            "job_id": job.hex(), "round": 2, "attempt": 1, "voter": addr.hex(), "valid": True,
            "accuracy_ppm": 720_000, "losses": None, "salt": salt.hex(),
            "commitment": fed_vote_commitment(job, 2, 1, addr, True, 720_000, None,
                                              salt).hex()},
        "end_vote_commitment": {
            "job_id": job.hex(), "round": 0, "attempt": 0, "voter": addr.hex(), "valid": True,
            "accuracy_ppm": None, "losses": LOSSES, "salt": salt.hex(),
            "commitment": fed_vote_commitment(job, 0, 0, addr, True, None, tuple(LOSSES),
                                              salt).hex()},
        "aggregator_seed": {
            "job_id": job.hex(), "round": 2, "attempt": 1, "block_hash": (b"\x03" * 32).hex(),
            "seed": hex(aggregator_seed(job, 2, 1, b"\x03" * 32))},
        "reveal_deposit": [
            {"bounty": b, "rounds": r, "max_participants": m,
             "deposit": reveal_deposit(b, fed_spec(rounds=r, max_participants=m,
                                                   min_participants=1))}
            for b, r, m in ((300, 2, 3), (600, 10, 6), (5, 2, 3), (0, 1, 1),
                            (10**12, 1000, 256))],
        "invalid_bodies": [{"name": n, "tag": t, "wire": encode(w).hex(),
                            "error": _rejected(t, w)} for n, (t, w) in invalid.items()],
        "cohort": cohort_vectors(),
    }


def test_federated_ledger_vectors_match_committed_file() -> None:
    """[TX-FED.1] [TX-FED.4] [TX-FED.6] [FED-ROUND.3] [FED-ROUND.5] [FED-VOTE.1]
    [FED-STATE.1] [FED-STATE.2] [FED-DEPOSIT.1] The story's bytes and roots are the committed
    vectors; every transaction decodes to its own bytes; the refused bodies fail to decode;
    the reveal deposit's amounts."""
    vectors = build_vectors()
    check_vector_file("federated_ledger.json", vectors)
    assert all(case["error"] == "bad_field" for case in vectors["invalid_bodies"])
    assert sum(vectors["paid"].values()) == 300
    assert [c["deposit"] for c in vectors["reveal_deposit"]] == [50, 10, 1, 1, 3906250]
    spec = JobSpec.from_wire(decode(bytes.fromhex(vectors["jobspec"]["wire"])))
    assert spec.kind == FEDERATED_V1 and spec.escrow == vectors["jobspec"]["escrow"] == 335
    assert encode(spec.to_wire()).hex() == vectors["jobspec"]["wire"]  # [JOB-KIND.1]
    story, _ = two_rounds_with_a_cheat()
    assert story.fed.phase == FedPhase.DONE
    for block in story.chain.blocks:
        for tx in block.txs:
            assert SignedTransaction.decode(tx.wire).wire == tx.wire


def test_federated_story_replays_from_its_bytes() -> None:
    """[FED-ROUND.1] [FED-ROUND.3] [FED-END.4] Blocks decoded from the vector bytes reach the
    same roots and records on a fresh state (the draws depend only on the chain's own block
    hashes); credits are conserved [BANK.1]."""
    vectors = build_vectors()
    state = genesis_state(Genesis.from_json(vectors["genesis"]))
    for case in vectors["blocks"]:
        block = Block.decode(bytes.fromhex(case["wire"]))
        output = apply_block(state, block)
        advance(state, block, output)
        assert state.state_root.hex() == case["state_root"]
        assert block.hash.hex() == case["hash"]
    job = bytes.fromhex(vectors["job_id"])
    assert encode(state.get("fed_job", job).to_wire()).hex() == vectors["final_fed_job"]
    assert [encode(r.to_wire()).hex() for r in fed_rounds(state, job)] == \
        vectors["final_rounds"]
    assert state.account(bytes.fromhex(vectors["cheat"])).banned  # type: ignore[arg-type]
    assert state.total_credits() == state.supply


def test_cohort_story_replays_from_its_bytes() -> None:
    """[FED-SPEC.4] [TX-FED.2] [TX-FED.12] The cohort's blocks reach their roots on a fresh
    state; carol's committed bytes are refused there with ``not_in_cohort``, the post on a
    version-5 genesis with ``needs_protocol_version``; only the cohort took part."""
    case = build_vectors()["cohort"]
    assert case["refused_commit"]["error"] == "not_in_cohort"
    assert case["refused_post"]["error"] == "needs_protocol_version"
    assert sorted(case["participants"]) == case["cohort"]
    state = genesis_state(Genesis.from_json(case["genesis"]))
    for b in case["blocks"]:
        block = Block.decode(bytes.fromhex(b["wire"]))
        advance(state, block, apply_block(state, block))
        assert state.state_root.hex() == b["state_root"]
        if block.header.height == case["refused_commit"]["after_height"]:
            assert _refusal(state, case["refused_commit"]) == "not_in_cohort"
    old = genesis_state(Genesis.from_json(case["refused_post"]["genesis"]))
    assert _refusal(old, case["refused_post"]) == "needs_protocol_version"


def _refusal(state: Any, case: dict[str, Any]) -> str:
    tx = SignedTransaction.decode(bytes.fromhex(case["tx"]))
    ctx = TxContext(state.chain_id, Height(state.height + 1), TimeMs(case["time_ms"]), 0,
                    tx.hash)
    try:
        apply_transaction(Overlay(state), tx, ctx, None)
    except InvalidTransaction as e:
        return e.code
    raise AssertionError("accepted")
