"""protocol_spec/vectors/holdout_ledger.json: a train/v3 job from post to payment, replayable.

Nothing random: keys from seeds (the harness's genesis), fixed salts and model
hashes, fixed block times. A second implementation replays the blocks from
the genesis document and must reach every listed state root; the spec's
wire forms (a v3 spec, rejected v3 specs, signed posts the ledger refuses
[HOLDOUT-POST.1], the three new transactions, a holdout vote commitment with its
inputs) are listed on their own too.

    1  submitter posts a train/v3 job (K = 2 finalists, deposit 50)
    2  (empty: its hash draws the split)
    3  split drawn; submitter publishes the public part
    4  alice claims 0.10 (public), bob 0.20
    5  expiry: HOLDOUT
    6  submitter reveals the hidden part: alice's turn
    7  alice reveals; 8 holdout votes committed (hidden 0.90); 9 the commit window ends;
       10 the votes open: alice is a finalist, bob's turn
    11 bob reveals; 12-14 the same (hidden 0.25): bob wins on the hidden part

``answer_story`` (same genesis, blocks 1-7 as above with its own claims): alice's turn
is voted with answers [HOLDOUT-CHALLENGE.1]: four voters answer both challenges, the
fifth evaluates nothing and echoes the claim everywhere; [HOLDOUT-VOTE-REWARD.1] pays
the four (6 // 4 each) and not the fifth. Wire forms of ``holdout_vote_reveal`` with and
without answers and the commitments with answers are listed too.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

from chain.encoding import decode, encode
from chain.errors import DecodeError
from chain.jobspec import JobSpec
from chain.records import Claim, Job, JobStatus
from chain.train.bodies import ClaimLoss, PostJob, RevealModel, VoteCommit, model_commitment
from chain.train.holdout.bodies import (
    HoldoutPublish,
    HoldoutReveal,
    HoldoutVoteReveal,
    holdout_vote_commitment,
)
from chain.train.holdout.records import Finalist, HoldoutStatus
from chain.train.holdout.rules import fills_slot
from chain.transactions import SignedTransaction
from chain.types import Amount, Hash32, Height, TimeMs
from tests.ledger.harness import Chain
from tests.ledger.vector_files import check_vector_file
from tests.train.holdout.test_holdout import HIDDEN, PUBLIC, v3_spec


def fixed(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def _claim(chain: Chain, name: str, job_id: bytes, loss: float) -> SignedTransaction:
    commitment = model_commitment(job_id, chain.addr(name), fixed(f"model:{name}"),
                                  fixed(f"salt:{name}"))
    return chain.tx(name, ClaimLoss(Hash32(job_id), loss, commitment))


def _reveal(chain: Chain, name: str, job_id: bytes) -> SignedTransaction:
    return chain.tx(name, RevealModel(Hash32(job_id), Hash32(fixed(f"model:{name}")),
                                      fixed(f"salt:{name}")))


def _votes(chain: Chain, job_id: bytes, claimer: str, public: float, hidden: float) -> None:
    names = {chain.addr(n): n for n in chain.keys}
    voters = [names[a] for a in chain.job(job_id).eligible_voters]
    commits = [chain.tx(v, VoteCommit(Hash32(job_id), chain.addr(claimer), holdout_vote_commitment(
        job_id, chain.addr(claimer), chain.addr(v), True, public, True, hidden,
        fixed(f"vote:{v}:{claimer}")))) for v in voters]
    chain.block(*commits)
    chain.block(at=chain.job(job_id).phase_deadline_ms)  # the claimer sent no vote of its own
    chain.block(*(chain.tx(v, HoldoutVoteReveal(Hash32(job_id), chain.addr(claimer), True, public,
                                                True, hidden, fixed(f"vote:{v}:{claimer}")))
                  for v in voters))


def tell_holdout_story() -> Chain:
    chain = Chain()
    post = chain.tx("submitter", PostJob(v3_spec()))
    chain.block(post)
    job_id = post.hash
    chain.block()
    chain.block(chain.tx("submitter", HoldoutPublish(Hash32(job_id), PUBLIC)))
    chain.block(_claim(chain, "alice", job_id, 0.10), _claim(chain, "bob", job_id, 0.20))
    chain.block(at=v3_spec().expiry_ms)
    chain.block(chain.tx("submitter", HoldoutReveal(Hash32(job_id), HIDDEN)))
    chain.block(_reveal(chain, "alice", job_id))
    _votes(chain, job_id, "alice", 0.10, 0.90)
    chain.block(_reveal(chain, "bob", job_id))
    _votes(chain, job_id, "bob", 0.20, 0.25)
    return chain


ANSWERS = [(0.880, 0.140), (0.882, 0.142), (0.884, 0.144), (0.886, 0.146)]
"""The four evaluating voters' (hidden, public) challenge answers in the answer story."""


def tell_answer_story() -> tuple[Chain, dict[str, int]]:
    """[HOLDOUT-CHALLENGE.1] [HOLDOUT-VOTE-REWARD.1] The answer story; each voter's reward."""
    chain = Chain()
    post = chain.tx("submitter", PostJob(v3_spec()))
    chain.block(post)
    job_id = post.hash
    chain.block()
    chain.block(chain.tx("submitter", HoldoutPublish(Hash32(job_id), PUBLIC)))
    chain.block(_claim(chain, "alice", job_id, 0.10), _claim(chain, "bob", job_id, 0.20))
    chain.block(at=v3_spec().expiry_ms)
    chain.block(chain.tx("submitter", HoldoutReveal(Hash32(job_id), HIDDEN)))
    chain.block(_reveal(chain, "alice", job_id))
    names = {chain.addr(n): n for n in chain.keys}
    voters = [names[a] for a in chain.job(job_id).eligible_voters]
    alice = chain.addr("alice")
    votes = {v: (True, 0.10, True, 0.90, *ANSWERS[i]) for i, v in enumerate(voters[:4])}
    votes[voters[4]] = (True, 0.10, True, 0.10, 0.10, 0.10)
    before = {v: chain.balance(v) for v in voters}
    chain.block(*(chain.tx(v, VoteCommit(Hash32(job_id), alice, holdout_vote_commitment(
        job_id, alice, chain.addr(v), valid, measured, ok, hidden, fixed(f"vote:{v}:alice"),
        h_answer, p_answer))) for v, (valid, measured, ok, hidden, h_answer, p_answer)
        in votes.items()))
    chain.block(at=chain.job(job_id).phase_deadline_ms)
    chain.block(*(chain.tx(v, HoldoutVoteReveal(Hash32(job_id), alice, valid, measured, ok, hidden,
                                                 fixed(f"vote:{v}:alice"), h_answer, p_answer))
                  for v, (valid, measured, ok, hidden, h_answer, p_answer) in votes.items()))
    return chain, {chain.addr(v).hex(): chain.balance(v) - before[v] for v in voters}


def _reveal_forms() -> list[dict[str, Any]]:
    """[HOLDOUT-CHALLENGE.1] ``holdout_vote_reveal`` body arrays: decoded answers or the code."""
    base: list[Any] = [fixed("job"), fixed("claimer")[:20], True, 0.1, True, 0.9, fixed("salt")]
    out = []
    for wire in (base, [*base, 0.88], [*base, 0.88, 0.14], [*base, None, 0.14],
                 [*base, None], [*base, 0.88, None], [*base, 0.88, 0.14, 0.2]):
        try:
            body = HoldoutVoteReveal.from_wire(decode(encode(wire)))
            result: dict[str, Any] = {"hidden_challenge_loss": body.hidden_challenge_loss,
                                      "challenge_loss": body.challenge_loss}
        except DecodeError as e:
            result = {"error": e.code}
        out.append({"wire": encode(wire).hex(), **result})
    return out


def _rejected(wire: list[Any]) -> str:
    try:
        JobSpec.from_wire(decode(encode(wire)))
    except DecodeError as e:
        return e.code
    raise AssertionError(f"accepted: {wire}")


def _refused_posts() -> list[dict[str, Any]]:
    """[HOLDOUT-POST.1] Signed posts the ledger refuses at the genesis state, with codes."""
    chain = Chain()
    least = 6 * 3 + 1  # the harness's voter_reward 6 x max_turns 3 + 1
    cases = {"deposit_too_small": v3_spec(deposit=least - 1),
             "too_many_finalists": v3_spec(finalists=4)}
    out = []
    at = chain.state.time_ms + 1_000  # the genesis time + 1 s, at height 1 [BLOCK-APPLY.2]
    for name, spec in cases.items():
        tx = chain.tx("submitter", PostJob(spec))
        out.append({"name": name, "tx": tx.wire.hex(), "height": chain.state.height + 1,
                    "time_ms": at, "error": chain.reject(tx, at=at)})
    return out


def _slot_cases() -> list[dict[str, Any]]:
    """[HOLDOUT-SLOT.1] Whether a finalist fills one of the K slots: claimed public loss,
    agreed hidden loss, the job's tie_tolerance and loss_tolerance (float64 arithmetic)."""
    cases = [(0.10, 0.90, 0.02, 0.01), (0.10, 0.125, 0.02, 0.01), (0.20, 0.25, 0.02, 0.01),
             (0.5, 0.5625, 0.0625, 0.0), (0.5, 0.5625, 0.03125, 0.03125),
             (0.5, 0.5625000001, 0.0625, 0.0), (0.30, 0.10, 0.0, 0.0), (0.3, None, 0.0, 0.0)]
    return [{"claimed": c, "hidden": h, "tie_tolerance": t, "loss_tolerance": tol,
             "fills_slot": h is None or h - c <= t + tol} for c, h, t, tol in cases]


def build_vectors() -> dict[str, Any]:
    chain = tell_holdout_story()
    job_id = chain.blocks[0].txs[0].hash
    holdout = chain.state.holdout(job_id)
    assert holdout is not None
    spec = v3_spec()
    wire = spec.to_wire()
    invalid = {
        "v3_without_holdout": wire[:13],
        "v3_no_public_sample": [*wire[:13], [*wire[13][:2], 50, *wire[13][3:]]],
        "v3_with_valid_role": [*wire[:12], {**wire[12], "valid": [b"\x01" * 32, 5]}, wire[13]],
        "v3_negative_tie": [*wire[:13], [*wire[13][:6], -0.5]],
    }
    commitment_inputs = {"job_id": job_id.hex(), "claimer": chain.addr("alice").hex(),
                         "voter": chain.addr("carol").hex(), "valid": True,
                         "measured_loss": 0.1, "holdout_ok": True, "hidden_loss": 0.9,
                         "salt": fixed("vote:carol:alice").hex()}
    return {
        "about": "train/v3 hidden test sets (protocol_spec/ledger.md §5b, state.md §2 and §6). "
                 "Replay 'blocks' from 'genesis' (tests/ledger/harness.py make_genesis: keys "
                 "from seeds) and check each state_root; decode each spec and transaction.",
        "genesis": chain.genesis.to_json(),
        "blocks": [{"height": b.header.height, "wire": b.encode().hex(),
                    "state_root": b.header.state_root.hex()} for b in chain.blocks],
        "final_job": encode(chain.job(job_id).to_wire()).hex(),
        "final_holdout": encode(holdout.to_wire()).hex(),
        "spec_v3": encode(wire).hex(),
        "invalid_specs": [{"name": n, "wire": encode(w).hex(), "error": _rejected(w)}
                          for n, w in invalid.items()],
        "refused_posts": _refused_posts(),
        "slot_cases": _slot_cases(),
        "holdout_vote_commitment": {
            "inputs": commitment_inputs,
            "commitment": holdout_vote_commitment(
                job_id, chain.addr("alice"), chain.addr("carol"), True, 0.1, True, 0.9,
                fixed("vote:carol:alice")).hex()},
        **_answer_vectors(chain, job_id, commitment_inputs),
    }


def _answer_vectors(chain: Chain, job_id: bytes, inputs: dict[str, Any]) -> dict[str, Any]:
    """[HOLDOUT-CHALLENGE.1] [HOLDOUT-VOTE-REWARD.1] What the answers add to the vectors."""
    story, paid = tell_answer_story()
    alice, carol, salt = chain.addr("alice"), chain.addr("carol"), fixed("vote:carol:alice")
    return {
        # A vote without a hidden answer carries no hidden loss either (the third case):
        # the listed inputs are exactly what its commitment opens with.
        "holdout_vote_commitments_with_answers": [
            {"inputs": {**inputs, "hidden_loss": hidden, "hidden_challenge_loss": h,
                        "challenge_loss": p},
             "commitment": holdout_vote_commitment(job_id, alice, carol, True, 0.1, True,
                                                   hidden, salt, h, p).hex()}
            for h, p, hidden in ((0.88, None, 0.9), (0.88, 0.14, 0.9), (None, 0.14, None))],
        "holdout_vote_reveal_forms": _reveal_forms(),
        "answer_story": {
            "blocks": [{"height": b.header.height, "wire": b.encode().hex(),
                        "state_root": b.header.state_root.hex()} for b in story.blocks],
            "voter_rewards": paid},
    }


def test_holdout_ledger_vectors_match_committed_file() -> None:
    """[HOLDOUT-SPEC.1] [HOLDOUT-STATE.1] [HOLDOUT-SPLIT.1] [HOLDOUT-VOTE.1] [HOLDOUT-WINNER.1]
    [HOLDOUT-POST.1] [HOLDOUT-SLOT.1] [HOLDOUT-CHALLENGE.1] [HOLDOUT-VOTE-REWARD.1]
    The story's bytes and roots are the committed vectors; the story ends with bob paid."""
    vectors = build_vectors()
    check_vector_file("holdout_ledger.json", vectors)
    chain = tell_holdout_story()
    job = chain.job(chain.blocks[0].txs[0].hash)
    assert job.status == JobStatus.PAID and job.winner == chain.addr("bob")
    holdout = chain.state.holdout(job.job_id)
    assert holdout is not None and holdout.status == HoldoutStatus.VERIFIED
    assert len(chain.blocks) == 14
    for case in vectors["invalid_specs"]:
        assert case["error"] == "bad_field"
    for case in vectors["refused_posts"]:
        assert case["error"] == case["name"]
    _check_slot_cases(vectors["slot_cases"])
    _check_commitments_open(vectors)
    assert sorted(vectors["answer_story"]["voter_rewards"].values()) == [0, 1, 1, 1, 1]
    codes = [f.get("error") for f in vectors["holdout_vote_reveal_forms"]]
    assert codes == [None, None, None, None, "bad_field", "bad_field", "bad_field"]
    for block in chain.blocks:
        for tx in block.txs:
            assert SignedTransaction.decode(tx.wire).wire == tx.wire


def _opens(case: dict[str, Any]) -> bool:
    """Whether a listed commitment opens with its listed inputs [HOLDOUT-VOTE.1]."""
    i = case["inputs"]
    recomputed = holdout_vote_commitment(
        bytes.fromhex(i["job_id"]), bytes.fromhex(i["claimer"]), bytes.fromhex(i["voter"]),
        i["valid"], i["measured_loss"], i["holdout_ok"], i["hidden_loss"],
        bytes.fromhex(i["salt"]), i.get("hidden_challenge_loss"), i.get("challenge_loss"))
    return recomputed.hex() == case["commitment"]


def _check_commitments_open(vectors: dict[str, Any]) -> None:
    """[HOLDOUT-VOTE.1] [HOLDOUT-CHALLENGE.1] Every listed opening opens its commitment: the
    vector's inputs, not the generator's arguments, are what a reader recomputes from."""
    cases = [vectors["holdout_vote_commitment"],
             *vectors["holdout_vote_commitments_with_answers"]]
    assert len(cases) == 4
    for case in cases:
        assert _opens(case), case


def test_a_listed_opening_that_does_not_open_is_caught() -> None:
    """[HOLDOUT-VOTE.1] The opening check fails on the defect it guards against: the third
    answered case listed with hidden_loss 0.9 although its commitment binds nil."""
    case = build_vectors()["holdout_vote_commitments_with_answers"][2]
    assert case["inputs"]["hidden_loss"] is None and _opens(case)
    assert not _opens({**case, "inputs": {**case["inputs"], "hidden_loss": 0.9}})


def _check_slot_cases(cases: list[dict[str, Any]]) -> None:
    """Each slot case through the ledger's own rule, on a job built with its tolerances."""
    chain = Chain()
    for case in cases:
        spec = v3_spec(tie=case["tie_tolerance"])
        spec = dataclasses.replace(spec, loss_tolerance=case["loss_tolerance"])
        claim = Claim(chain.addr("alice"), case["claimed"], Hash32(b"\x02" * 32), Height(2), 0)
        job = Job(Hash32(b"\x01" * 32), chain.addr("submitter"), spec, Height(1),
                  TimeMs(0), JobStatus.HOLDOUT, Amount(0), claims=(claim,))
        finalist = Finalist(claim.claimer, case["hidden"], claim.height, claim.index)
        assert fills_slot(job, finalist) == case["fills_slot"], case


def test_holdout_story_replays_from_its_bytes() -> None:
    """[HOLDOUT-STATE.1] [HOLDOUT-VOTE-REWARD.1] Blocks decoded from the vector bytes (both
    stories) reach the same roots."""
    from chain.blocks import Block
    from chain.genesis import Genesis, genesis_state
    from chain.transition import advance, apply_block

    vectors = build_vectors()
    for blocks in (vectors["blocks"], vectors["answer_story"]["blocks"]):
        state = genesis_state(Genesis.from_json(vectors["genesis"]))
        for case in blocks:
            block = Block.decode(bytes.fromhex(case["wire"]))
            output = apply_block(state, block)
            advance(state, block, output)
            assert state.state_root.hex() == case["state_root"]
    assert dataclasses.asdict(state.params) == dataclasses.asdict(Chain().state.params)
