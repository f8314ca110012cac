"""protocol_spec/vectors/predict_ledger.json: prediction requests through blocks, replayable.

Nothing random (tests/predict/ledger_story.py: keys from seeds, fixed salts and model
hash, fixed block times). A second implementation replays the blocks from the genesis
document and must reach every listed state root, and decodes every prediction
transaction and record listed on its own.

    1-7   a job posted, claimed, expired, revealed, voted (a commit window), paid: alice wins
    8     the submitter deploys alice's model; bob, carol, dave, erin offer
    9     alice requests k=3 labels (fee 1001; this block's hash seeds the draw); 10 drawn
    11    the three commit (one with wrong labels); 12 they reveal: agreed, the liar forfeits
    13    alice requests again (fee 30); 14 drawn; 15 two commit different labels;
    16    the commit window ends; 17 both reveal; 18 the reveal window ends: no majority
    19    alice requests a third time (fee 13); 20 drawn; 21 the three commit the
          unloadable answer [PRED-UNLOADABLE.1]; 22 they reveal: agreed, paid with no
          royalty, the model marked unservable [PRED-UNLOADABLE.2-3]; a fourth request is
          then rejected ``model_unservable`` (listed, not in a block)
    23    the liar of block 11, its bond less the penalty, withdraws [PRED-WITHDRAW.1]: the
          rest returns to its balance and its ``predictor`` record is deleted; a second
          withdrawal is rejected ``not_predictor`` (listed, not in a block)
Blocks 1-9 are the bytes of the file before the lottery delay became one block
[PRED-LOTTERY.1]; from block 10 on the story is one block shorter per request.
"""

from __future__ import annotations

from typing import Any

from chain.blocks import Block
from chain.encoding import decode, encode
from chain.errors import DecodeError
from chain.genesis import Genesis, genesis_state
from chain.predict.bodies import RequestPrediction, WithdrawPrediction
from chain.predict.io import UNLOADABLE_BLOB, UNLOADABLE_HASH
from chain.predict.records import PredictionStatus
from chain.predict.steps import deployed_model
from chain.transactions import SignedTransaction
from chain.transition import advance, apply_block
from tests.ledger.harness import Chain
from tests.ledger.vector_files import check_vector_file
from tests.predict.ledger_story import (
    OTHER,
    RIGHT,
    WRONG,
    answer_round,
    commit,
    names,
    ready,
    record,
    request,
    reveal,
    send_request,
)


def tell_predict_story() -> tuple[Chain, bytes, bytes, bytes]:
    chain = Chain()
    model_id = ready(chain)
    agreed = send_request(chain, model_id, fee=1_001)
    liar, *honest = names(chain, agreed)
    answer_round(chain, agreed, {liar: WRONG, **{n: RIGHT for n in honest}})
    split = send_request(chain, model_id, fee=30)
    a, b, _ = names(chain, split)
    chain.block(*(chain.tx(n, commit(chain, n, split, x)) for n, x in ((a, RIGHT), (b, OTHER))))
    chain.block(at=record(chain, split).deadline_ms)
    chain.block(*(chain.tx(n, reveal(n, split, x)) for n, x in ((a, RIGHT), (b, OTHER))))
    chain.block(at=record(chain, split).deadline_ms)
    unloadable = send_request(chain, model_id, fee=13)
    answer_round(chain, unloadable, dict.fromkeys(names(chain, unloadable), UNLOADABLE_BLOB))
    chain.block(chain.tx(liar, WithdrawPrediction()))
    return chain, agreed, split, unloadable


def _rejected(tag: str, body: list[Any]) -> str:
    from chain.transactions import BODY_TYPES
    try:
        BODY_TYPES[tag].from_wire(decode(encode(body)))
    except DecodeError as e:
        return e.code
    raise AssertionError(f"accepted: {tag} {body}")


def build_vectors() -> dict[str, Any]:
    chain, agreed, split, unloadable = tell_predict_story()
    model_id = record(chain, agreed).request.model_id
    model = deployed_model(chain.state, model_id)
    assert model is not None
    closed = chain.tx("alice", RequestPrediction(request(model_id, fee=12)))
    reveal_wire = reveal("bob", agreed, RIGHT).to_wire()
    invalid = {
        "predict_reveal_5_items": ("predict_reveal", [*reveal_wire, [1], [2]]),
        "predict_reveal_short_salt": ("predict_reveal", [*reveal_wire[:2], b"\x00" * 31]),
        "predict_reveal_value_not_int64": ("predict_reveal", [*reveal_wire, [2**63]]),
        "deploy_model_royalty_over_500": (
            "deploy_model", [*chain.blocks[7].txs[0].body.to_wire()[:5], 501]),
        "request_prediction_even_k": (
            "request_prediction",
            [[*record(chain, agreed).request.to_wire()[:4], 4,
              *record(chain, agreed).request.to_wire()[5:]]]),
        "offer_prediction_with_field": ("offer_prediction", [100]),
        "withdraw_prediction_with_field": ("withdraw_prediction", [100]),
        "request_prediction_fee_zero": (  # [PRED-REQ.1] a decode error, not fee_too_low
            "request_prediction",
            [[*record(chain, agreed).request.to_wire()[:3], 0,
              *record(chain, agreed).request.to_wire()[4:]]]),
    }
    withdrawer = next(n for n, k in chain.keys.items()
                      if k.address == chain.blocks[-1].txs[0].sender)
    again = chain.tx(withdrawer, WithdrawPrediction())
    return {
        "about": "prediction requests in the ledger (protocol_spec/predict.md §8, state.md §2). "
                 "Replay 'blocks' from 'genesis' (tests/ledger/harness.py make_genesis: keys "
                 "from seeds) and check each state_root; decode each transaction; the "
                 "invalid bodies fail with 'error'.",
        "genesis": chain.genesis.to_json(),
        "blocks": [{"height": b.header.height, "wire": b.encode().hex(),
                    "state_root": b.header.state_root.hex()} for b in chain.blocks],
        "final_predictions": {rid.hex(): encode(record(chain, rid).to_wire()).hex()
                              for rid in (agreed, split, unloadable)},
        "unloadable_answer": {"blob": UNLOADABLE_BLOB.hex(), "output_hash": UNLOADABLE_HASH.hex()},
        "final_model": {"model_id": model_id.hex(), "wire": encode(model.to_wire()).hex()},
        "rejected_transactions": [  # [BLOCK-APPLY.2] check 11 at height tip + 1, tip time + 1 s
            {"name": "request_to_unservable_model", "wire": closed.wire.hex(),
             "height": chain.state.height + 1, "time_ms": chain.state.time_ms + 1_000,
             "error": chain.reject(closed, at=chain.state.time_ms + 1_000)},
            {"name": "withdraw_twice", "wire": again.wire.hex(),
             "height": chain.state.height + 1, "time_ms": chain.state.time_ms + 1_000,
             "error": chain.reject(again, at=chain.state.time_ms + 1_000)}],
        "invalid_bodies": [{"name": n, "tag": t, "wire": encode(w).hex(),
                            "error": _rejected(t, w)} for n, (t, w) in invalid.items()],
    }


def test_predict_ledger_vectors_match_committed_file() -> None:
    """[TX-PREDICT.1] [PRED-STATE.1] [PRED-SETTLE.1] [PRED-FORFEIT.1] [PRED-WITHDRAW.1]
    [PRED-REQ.1] The story's bytes and roots are the committed vectors: one request agreed
    with a liar outvoted, one without a majority, one agreed "does not load"
    [PRED-UNLOADABLE.2] after which a request is rejected, then the liar withdraws what is
    left of its bond; every transaction decodes to its own bytes; a fee of 0 is a decode
    error (``bad_field``)."""
    vectors = build_vectors()
    check_vector_file("predict_ledger.json", vectors)
    chain, agreed, split, unloadable = tell_predict_story()
    assert record(chain, agreed).status == PredictionStatus.AGREED
    assert record(chain, split).status == PredictionStatus.NO_MAJORITY
    assert record(chain, unloadable).answer == UNLOADABLE_HASH
    assert [r["error"] for r in vectors["rejected_transactions"]] == [
        "model_unservable", "not_predictor"]
    withdraw = chain.blocks[-1].txs[0]  # [PRED-WITHDRAW.1]
    assert isinstance(withdraw.body, WithdrawPrediction)
    assert chain.state.get("predictor", withdraw.sender) is None
    assert len(bytes.fromhex(vectors["final_model"]["wire"])) > 0
    assert chain.state.total_credits() == chain.state.supply  # [BANK.1]
    assert len(chain.blocks) == 23
    for case in vectors["invalid_bodies"]:
        assert case["error"] == "bad_field"
    for block in chain.blocks:
        for tx in block.txs:
            assert SignedTransaction.decode(tx.wire).wire == tx.wire


def test_predict_story_replays_from_its_bytes() -> None:
    """[PRED-STATE.1] [PRED-DRAW.1] [PRED-UNLOADABLE.3] Blocks decoded from the vector bytes
    reach the same roots on a fresh state (the draw depends only on the chain's own block
    hashes), the same records, and the model marked unservable."""
    vectors = build_vectors()
    state = genesis_state(Genesis.from_json(vectors["genesis"]))
    for case in vectors["blocks"]:
        block = Block.decode(bytes.fromhex(case["wire"]))
        output = apply_block(state, block)
        advance(state, block, output)
        assert state.state_root.hex() == case["state_root"]
    for rid, wire in vectors["final_predictions"].items():
        assert encode(state.get("prediction", bytes.fromhex(rid)).to_wire()).hex() == wire
    final = vectors["final_model"]  # [PRED-UNLOADABLE.3] marked: an 8-element record
    model = state.get("model", bytes.fromhex(final["model_id"]))
    assert encode(model.to_wire()).hex() == final["wire"] and len(model.to_wire()) == 8
    assert model.unservable_by.hex() in vectors["final_predictions"]
