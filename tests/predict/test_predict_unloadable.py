"""A deployed model executors cannot load, through real blocks [PRED-UNLOADABLE.1-4].

The attack: the owner deploys a model that passed the voters' evaluation but that the
executors' sandbox refuses (or whose layers do not fit the deployed schema), then asks for
predictions, so that every drawn executor fails and forfeits as a no-show. The defence:
executors answer the canonical "does not load" blob; agreed, they are paid the whole fee
(no royalty), nobody forfeits, and the model takes no further request.

Every test ends by checking [BANK.1].
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from chain.encoding import encode
from chain.errors import FieldError
from chain.predict.agreement import Agreement, exact_agreement
from chain.predict.bodies import RequestPrediction
from chain.predict.io import UNLOADABLE_BLOB, UNLOADABLE_HASH, invalid_blob, output_hash
from chain.predict.model import DeployedModel, OutputSchema
from chain.predict.params import PREDICT_BOND, PREDICT_PENALTY
from chain.predict.payout import settle
from chain.predict.records import PredictionStatus
from chain.predict.steps import deployed_model, predictor_bond
from chain.types import Address, Hash32
from tests.ledger.harness import Chain
from tests.predict.ledger_story import (
    EXECUTORS,
    RIGHT,
    answer_round,
    commit,
    conserved,
    names,
    ready,
    record,
    request,
    reveal,
    send_request,
)

UNLOADABLE = UNLOADABLE_BLOB
REGRESSION = OutputSchema("regression", (), 1, 3)


def _bonds(chain: Chain) -> dict[str, int | None]:
    return {n: predictor_bond(chain.state, chain.addr(n)) for n in EXECUTORS}


def test_unloadable_blob_is_fixed_and_distinct() -> None:
    """[PRED-UNLOADABLE.1] The answer is one fixed canonical blob, its hash the blob id, and
    it is none of the five invalid answers (an executor cannot pass a bad input off as a bad
    model, nor the reverse: they are different answers and do not agree)."""
    assert encode(["predict-invalid/v1", "unloadable_model"]) == UNLOADABLE_BLOB
    assert UNLOADABLE_HASH.hex() == ("63bf3edf47ec972d7a04990f684cdfa4"
                                     "ed8dd4a02f7b104aeb2bbc38dbcb1616")
    assert output_hash(UNLOADABLE_BLOB) == UNLOADABLE_HASH
    for reason in ("not_rows", "schema", "row_count", "not_finite", "out_of_range"):
        assert output_hash(invalid_blob(reason)) != UNLOADABLE_HASH
    with pytest.raises(FieldError):
        invalid_blob("unloadable_model")  # not an input reason [PRED-IO.3]


def test_agreed_unloadable_pays_executors_no_royalty_no_forfeit_and_closes_the_model() -> None:
    """[PRED-UNLOADABLE.2] [PRED-UNLOADABLE.3] All three executors answer "does not load":
    agreed; each is paid ``fee // 3``, the dust returns, the owner gets no royalty, no bond
    is touched; the model is marked unservable by this request and the next request to it
    is rejected ``model_unservable``."""
    chain = Chain()
    model_id = ready(chain)
    rid = send_request(chain, model_id, fee=1_001)
    drawn = names(chain, rid)
    before = {n: chain.balance(n) for n in (*drawn, "submitter", "alice")}
    answer_round(chain, rid, {n: UNLOADABLE for n in drawn})
    rec = record(chain, rid)
    assert rec.status == PredictionStatus.AGREED and rec.answer == UNLOADABLE_HASH
    for n in drawn:
        assert chain.balance(n) == before[n] + 333
    assert chain.balance("submitter") == before["submitter"]  # no royalty
    assert chain.balance("alice") == before["alice"] + 2  # dust
    assert _bonds(chain) == dict.fromkeys(EXECUTORS, PREDICT_BOND)
    model = deployed_model(chain.state, model_id)
    assert model is not None and model.unservable_by == rid
    code = chain.reject(chain.tx("alice", RequestPrediction(request(model_id))))
    assert code == "model_unservable"
    assert conserved(chain)


def test_lone_unloadable_claim_is_outvoted_and_forfeits() -> None:
    """[PRED-UNLOADABLE.4] One executor says "does not load", two load it and agree: the
    claimer is a disagreeing minority, unpaid, and forfeits; the model stays servable."""
    chain = Chain()
    model_id = ready(chain)
    rid = send_request(chain, model_id)
    liar, *honest = names(chain, rid)
    answer_round(chain, rid, {liar: UNLOADABLE, **{n: RIGHT for n in honest}})
    rec = record(chain, rid)
    assert rec.status == PredictionStatus.AGREED and rec.answer == output_hash(RIGHT)
    assert predictor_bond(chain.state, chain.addr(liar)) == PREDICT_BOND - PREDICT_PENALTY
    model = deployed_model(chain.state, model_id)
    assert model is not None and model.unservable_by is None
    send_request(chain, model_id, fee=100)  # still accepted
    assert conserved(chain)


def test_unloadable_minority_without_majority_does_not_close_the_model() -> None:
    """[PRED-UNLOADABLE.3] [PRED-PAY.2] One "does not load", one labels answer, one no-show:
    no majority, the fee is refunded, only the no-show forfeits, the model stays open (only
    an *agreed* unloadable answer closes it)."""
    chain = Chain()
    model_id = ready(chain)
    rid = send_request(chain, model_id)
    a, b, absent = names(chain, rid)
    answer_round(chain, rid, {a: UNLOADABLE, b: RIGHT})
    chain.block(at=record(chain, rid).deadline_ms)
    assert record(chain, rid).status == PredictionStatus.NO_MAJORITY
    assert predictor_bond(chain.state, chain.addr(absent)) == PREDICT_BOND - PREDICT_PENALTY
    assert predictor_bond(chain.state, chain.addr(a)) == PREDICT_BOND
    model = deployed_model(chain.state, model_id)
    assert model is not None and model.unservable_by is None
    assert conserved(chain)


def test_values_mode_unloadable_reveal_carries_no_values() -> None:
    """[PRED-UNLOADABLE.1] [PRED-REVEAL.1] In ``values`` mode the unloadable answer is
    revealed without values, like an invalid answer; two of three agree on it (the third is
    a no-show and forfeits): agreed, the model closes."""
    chain = Chain()
    model_id = ready(chain, output=REGRESSION)
    rid = send_request(chain, model_id, mode="values", tolerance=2)
    a, b, absent = names(chain, rid)
    answer_round(chain, rid, {a: UNLOADABLE, b: UNLOADABLE})
    chain.block(at=record(chain, rid).deadline_ms)
    rec = record(chain, rid)
    assert rec.status == PredictionStatus.AGREED and rec.answer == UNLOADABLE_HASH
    assert predictor_bond(chain.state, chain.addr(absent)) == PREDICT_BOND - PREDICT_PENALTY
    model = deployed_model(chain.state, model_id)
    assert model is not None and model.unservable_by == rid
    assert conserved(chain)


def test_values_reveal_of_unloadable_with_values_is_bad_values() -> None:
    """[PRED-UNLOADABLE.1] [PRED-REVEAL.1] The unloadable hash with values attached does not
    hash from them: ``bad_values``; an arbitrary hash without values is ``bad_values`` too."""
    chain = Chain()
    model_id = ready(chain, output=REGRESSION)
    rid = send_request(chain, model_id, mode="values", tolerance=2)
    a, *_ = names(chain, rid)
    chain.block(chain.tx(a, commit(chain, a, rid, UNLOADABLE)))
    chain.block(at=record(chain, rid).deadline_ms)
    with_values = reveal(a, rid, UNLOADABLE)
    assert chain.reject(chain.tx(a, replace(with_values, values=(1, 2, 3, 4)))) == "bad_values"
    chain.block(chain.tx(a, with_values))
    opened = record(chain, rid).answer_of(chain.addr(a))
    assert opened is not None and opened.output_hash == UNLOADABLE_HASH
    assert conserved(chain)


def test_owner_attack_costs_the_fee_and_ends_after_one_request() -> None:
    """[PRED-UNLOADABLE.2] [PRED-UNLOADABLE.3] The attack of §9: the owner requests its own
    unloadable model with several requests in flight. Each settles with the executors paid
    from the owner's fee and no bond lost; the owner's balance only falls (no royalty on
    its own fee); after the first agreed answer no further request is accepted, and the
    model keeps the first request as ``unservable_by``."""
    chain = Chain()
    model_id = ready(chain)
    start = chain.balance("submitter")
    first = send_request(chain, model_id, requester="submitter", fee=300)
    second = send_request(chain, model_id, requester="submitter", fee=300)
    answer_round(chain, first, {n: UNLOADABLE for n in names(chain, first)})
    answer_round(chain, second, {n: UNLOADABLE for n in names(chain, second)})
    assert chain.balance("submitter") == start - 600
    assert _bonds(chain) == dict.fromkeys(EXECUTORS, PREDICT_BOND)
    model = deployed_model(chain.state, model_id)
    assert model is not None and model.unservable_by == first
    assert chain.reject(chain.tx("submitter", RequestPrediction(request(model_id)))) \
        == "model_unservable"
    assert conserved(chain)


def test_reject_order_unknown_model_then_unservable_then_mode() -> None:
    """[PRED-UNLOADABLE.3] [PRED-REQUEST.1] Codes in order: ``unknown_model`` first, then
    ``model_unservable`` before ``mode_mismatch`` (a values request to a closed classes
    model is ``model_unservable``)."""
    chain = Chain()
    model_id = ready(chain)
    rid = send_request(chain, model_id)
    answer_round(chain, rid, {n: UNLOADABLE for n in names(chain, rid)})
    assert chain.reject(chain.tx("alice", RequestPrediction(request(b"\x09" * 32)))) \
        == "unknown_model"
    assert chain.reject(chain.tx("alice", RequestPrediction(
        request(model_id, mode="values")))) == "model_unservable"
    assert conserved(chain)


def test_payout_unloadable_has_no_royalty() -> None:
    """[PRED-UNLOADABLE.2] The pure payout: a royalty of 500 ‰ is not paid on an agreed
    unloadable answer; the whole fee is the executors' pool, dust to the requester."""
    drawn = [Address(bytes([i]) * 20) for i in (1, 2, 3)]
    agreement: Agreement = exact_agreement(drawn, dict.fromkeys(drawn, UNLOADABLE_HASH))
    payout = settle(100, 500, agreement)
    assert payout.royalty == 0 and payout.refund == 1 and payout.forfeit == ()
    assert [a for _, a in payout.executors] == [33, 33, 33]
    normal = settle(100, 500, exact_agreement(drawn, dict.fromkeys(drawn, Hash32(b"\1" * 32))))
    assert normal.royalty == 50


def test_deployed_model_wire_keeps_seven_elements_until_marked() -> None:
    """[PRED-UNLOADABLE.3] [PRED-MODEL.1] A servable record keeps its 7-element wire (old
    records' bytes unchanged); a marked one has 8; 6 or 9 elements, or a marker that is not
    32 bytes, is a FieldError."""
    chain = Chain()
    model = deployed_model(chain.state, ready(chain))
    assert model is not None
    wire = model.to_wire()
    assert len(wire) == 7 and DeployedModel.from_wire(wire) == model
    marked = replace(model, unservable_by=Hash32(b"\7" * 32))
    assert len(marked.to_wire()) == 8 and DeployedModel.from_wire(marked.to_wire()) == marked
    for bad in (wire[:6], [*wire, b"\7" * 32, 1], [*wire, b"\7" * 31], [*wire, None]):
        with pytest.raises(FieldError):
            DeployedModel.from_wire(bad)
