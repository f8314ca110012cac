"""Prediction requests in the ledger, through real blocks: each rule of predict.md §8 and
its attacks. Every test ends by checking [BANK.1] (credits neither created nor lost).

The story: alice wins the submitter's job; the submitter deploys alice's model (royalty
10 %); bob, carol, dave and erin offer prediction service; alice asks k=3 of them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from chain.genesis import genesis_state
from chain.ledger import Ledger
from chain.predict.answer import answer_commitment, values_hash
from chain.predict.bodies import (
    OfferPrediction,
    PredictCommit,
    PredictReveal,
    RequestPrediction,
    WithdrawPrediction,
)
from chain.predict.io import invalid_blob, output_hash
from chain.predict.model import OutputSchema
from chain.predict.params import (
    MAX_OPEN_PER_REQUESTER,
    MAX_REVEAL_VALUES,
    PREDICT_BOND,
    PREDICT_PENALTY,
)
from chain.predict.records import PredictionStatus
from chain.predict.steps import deployed_model, predictor_bond
from chain.storage import metadata, sqlite_url
from chain.transition import advance, apply_block
from chain.types import Hash32
from tests.ledger.harness import Chain
from tests.predict.ledger_story import (
    EXECUTORS,
    MODEL_HASH,
    OTHER,
    RIGHT,
    ROYALTY,
    WRONG,
    answer_round,
    commit,
    conserved,
    deploy,
    fixed,
    names,
    paid_job,
    ready,
    record,
    request,
    reveal,
    salt,
    send_request,
)

PG_URL = os.environ.get("LC_TEST_POSTGRES_URL",
                        "postgresql+psycopg2://lc:lc@127.0.0.1:5432/lc_test")


def replayed_root(chain: Chain) -> bytes:
    """A validator re-applies every block from genesis with apply_block: the roots must match
    block by block, and the whole state at the end."""
    state = genesis_state(chain.genesis)
    for block in chain.blocks:
        output = apply_block(state, block)
        assert output.state_root == block.header.state_root
        advance(state, block, output)
    assert state.digest() == chain.state.digest()
    return state.state_root


def balances(chain: Chain, *who: str) -> dict[str, int]:
    return {n: chain.balance(n) for n in who}


def test_k3_all_agree_fees_paid_royalty_to_owner_dust_to_requester() -> None:
    """[PRED-REQUEST.1] [PRED-DRAW.1] [PRED-COMMIT.1] [PRED-REVEAL.1] [PRED-SETTLE.1]
    [PRED-PAY.1] [PRED-STATE.1] [PRED-WINDOW.1] Three exact label answers agree: each
    executor gets (fee − royalty) // 3, the owner the royalty, the requester the dust; a
    validator replaying the blocks reaches the same roots."""
    chain = Chain()
    model_id = ready(chain)
    before = balances(chain, "alice", "submitter", *EXECUTORS)
    tx = chain.tx("alice", RequestPrediction(request(model_id, fee=1_001)))
    chain.block(tx)
    rid = tx.hash
    rec = record(chain, rid)
    assert rec.status == PredictionStatus.DRAWING and rec.escrow == 1_001
    assert chain.balance("alice") == before["alice"] - 1_001 and conserved(chain)
    chain.block()  # [PRED-DRAW.1] drawn at included + 1, from the including block's hash
    drawn = names(chain, rid)
    assert len(drawn) == 3 and len(set(drawn)) == 3 and "alice" not in drawn
    assert record(chain, rid).status == PredictionStatus.COMMIT
    answer_round(chain, rid, {n: RIGHT for n in drawn})
    rec = record(chain, rid)
    assert rec.status == PredictionStatus.AGREED and rec.answer == output_hash(RIGHT)
    assert rec.escrow == 0 and chain.state.get("active_prediction", rid) is None
    royalty = 1_001 * ROYALTY // 1000
    share = (1_001 - royalty) // 3
    after = balances(chain, "alice", "submitter", *EXECUTORS)
    assert after["submitter"] - before["submitter"] == royalty
    assert after["alice"] - before["alice"] == -1_001 + (1_001 - royalty - 3 * share)
    for n in EXECUTORS:
        assert after[n] - before[n] == (share if n in drawn else 0)
        assert predictor_bond(chain.state, chain.addr(n)) == PREDICT_BOND
    assert conserved(chain)
    assert replayed_root(chain) == chain.state.state_root


def test_wrong_labels_outvoted_forfeit_and_the_two_others_paid() -> None:
    """[PRED-FORFEIT.1] [PRED-PAY.1] [PRED-AGREE.2] One executor reveals wrong labels: it is
    outvoted, unpaid, and PREDICT_PENALTY of its bond is burned; the other two share the
    pool."""
    chain = Chain()
    rid = send_request(chain, ready(chain))
    liar, *honest = names(chain, rid)
    before = balances(chain, *EXECUTORS)
    burned = chain.state.burned
    answer_round(chain, rid, {liar: WRONG, **{n: RIGHT for n in honest}})
    rec = record(chain, rid)
    assert rec.status == PredictionStatus.AGREED and rec.answer == output_hash(RIGHT)
    assert chain.balance(liar) == before[liar]
    assert predictor_bond(chain.state, chain.addr(liar)) == PREDICT_BOND - PREDICT_PENALTY
    assert chain.state.burned == burned + PREDICT_PENALTY
    for n in honest:
        assert chain.balance(n) - before[n] == (1_000 - 100) // 2
    assert conserved(chain) and replayed_root(chain) == chain.state.state_root


def test_a_no_show_forfeits_and_the_majority_is_paid() -> None:
    """[PRED-FORFEIT.1] [PRED-AGREE.1] [PRED-WINDOW.1] A drawn executor that never commits
    forfeits when the reveal window settles; the two that agree are a majority of three."""
    chain = Chain()
    rid = send_request(chain, ready(chain))
    absent, *present = names(chain, rid)
    answer_round(chain, rid, {n: RIGHT for n in present})
    rec = record(chain, rid)
    assert rec.status == PredictionStatus.AGREED
    assert predictor_bond(chain.state, chain.addr(absent)) == PREDICT_BOND - PREDICT_PENALTY
    assert conserved(chain) and replayed_root(chain) == chain.state.state_root


def test_no_majority_refunds_the_requester_and_only_no_shows_forfeit() -> None:
    """[PRED-PAY.2] [PRED-SETTLE.1] Two different answers and a no-show: no majority, the
    whole fee returns, nobody is paid, only the no-show forfeits."""
    chain = Chain()
    rid = send_request(chain, ready(chain))
    a, b, absent = names(chain, rid)
    before = balances(chain, "alice", "submitter", a, b)
    answer_round(chain, rid, {a: RIGHT, b: OTHER})
    rec = record(chain, rid)
    assert rec.status == PredictionStatus.NO_MAJORITY and rec.answer is None
    after = balances(chain, "alice", "submitter", a, b)
    assert after["alice"] - before["alice"] == 1_000 and after["submitter"] == before["submitter"]
    assert after[a] == before[a] and after[b] == before[b]
    assert predictor_bond(chain.state, chain.addr(a)) == PREDICT_BOND
    assert predictor_bond(chain.state, chain.addr(absent)) == PREDICT_BOND - PREDICT_PENALTY
    assert conserved(chain) and replayed_root(chain) == chain.state.state_root


def test_nobody_commits_settles_when_the_commit_window_ends() -> None:
    """[PRED-WINDOW.1] With no commitment the request settles at the end of the commit
    window: refund, all three forfeit."""
    chain = Chain()
    rid = send_request(chain, ready(chain))
    chain.block(at=record(chain, rid).deadline_ms)
    assert record(chain, rid).status == PredictionStatus.NO_MAJORITY
    for n in names(chain, rid):
        assert predictor_bond(chain.state, chain.addr(n)) == PREDICT_BOND - PREDICT_PENALTY
    assert conserved(chain)


def test_too_few_executors_is_unserved_and_refunded() -> None:
    """[PRED-DRAW.1] [PRED-LOTTERY.2] k=5 with four candidates: UNSERVED, the fee returns."""
    chain = Chain()
    model_id = ready(chain)
    before = chain.balance("alice")
    rid = send_request(chain, model_id, k=5)
    rec = record(chain, rid)
    assert rec.status == PredictionStatus.UNSERVED and rec.escrow == 0 and not rec.executors
    assert chain.balance("alice") == before and conserved(chain)


def test_only_the_submitter_deploys_its_paid_winners_model_once() -> None:
    """[PRED-DEPLOY.1] not_submitter, not_winner_model, already_deployed, unknown_job,
    job_not_paid."""
    chain = Chain()
    job_id = paid_job(chain)
    assert chain.reject(chain.tx("alice", deploy(job_id))) == "not_submitter"
    assert chain.reject(chain.tx("submitter", deploy(job_id, fixed("model:other")))) \
        == "not_winner_model"
    assert chain.reject(chain.tx("submitter", deploy(fixed("no job")))) == "unknown_job"
    chain.block(chain.tx("submitter", deploy(job_id)))
    model = deployed_model(chain.state, job_id)
    assert model is not None and model.owner == chain.addr("submitter")
    assert model.model_hash == MODEL_HASH
    assert chain.reject(chain.tx("submitter", deploy(job_id))) == "already_deployed"
    from chain.train.bodies import PostJob
    from tests.ledger.harness import job_spec
    post = chain.tx("submitter", PostJob(job_spec(expiry_ms=chain.now + 60_000)))
    chain.block(post)
    assert chain.reject(chain.tx("submitter", deploy(post.hash))) == "job_not_paid"
    assert conserved(chain)


def test_offer_and_withdraw_prediction_service() -> None:
    """[PRED-OFFER.1] [PRED-WITHDRAW.1] Members only, once, the bond locked; a drawn executor
    cannot withdraw until its request settles, then the bond returns."""
    chain = Chain()
    model_id = ready(chain)
    assert chain.reject(chain.tx("mallory", OfferPrediction())) == "not_member"
    assert chain.reject(chain.tx("bob", OfferPrediction())) == "already_predictor"
    assert chain.reject(chain.tx("alice", WithdrawPrediction())) == "not_predictor"
    rid = send_request(chain, model_id)
    drawn = names(chain, rid)
    assert chain.reject(chain.tx(drawn[0], WithdrawPrediction())) == "executing"
    answer_round(chain, rid, {n: RIGHT for n in drawn})
    before = chain.balance(drawn[0])
    chain.block(chain.tx(drawn[0], WithdrawPrediction()))
    assert chain.balance(drawn[0]) == before + PREDICT_BOND
    assert predictor_bond(chain.state, chain.addr(drawn[0])) is None
    assert conserved(chain)


def test_an_executor_not_drawn_cannot_commit_or_reveal() -> None:
    """[PRED-COMMIT.1] [PRED-REVEAL.1] not_executor, no_commitment, unknown_request,
    already_committed, not_in_commit_window, not_in_reveal_window."""
    chain = Chain()
    rid = send_request(chain, ready(chain))
    drawn = names(chain, rid)
    outsider = next(n for n in EXECUTORS if n not in drawn)
    assert chain.reject(chain.tx(outsider, commit(chain, outsider, rid, RIGHT))) \
        == "not_executor"
    assert chain.reject(chain.tx(drawn[0], commit(chain, drawn[0], fixed("x"), RIGHT))) \
        == "unknown_request"
    assert chain.reject(chain.tx(drawn[0], reveal(drawn[0], rid, RIGHT))) \
        == "not_in_reveal_window"
    chain.block(chain.tx(drawn[0], commit(chain, drawn[0], rid, RIGHT)))
    assert chain.reject(chain.tx(drawn[0], commit(chain, drawn[0], rid, RIGHT))) \
        == "already_committed"
    chain.block(at=record(chain, rid).deadline_ms)
    assert chain.reject(chain.tx(drawn[1], commit(chain, drawn[1], rid, RIGHT))) \
        == "not_in_commit_window"
    assert chain.reject(chain.tx(outsider, reveal(outsider, rid, RIGHT))) == "no_commitment"
    assert conserved(chain)


def test_a_reveal_that_does_not_open_its_commitment_is_rejected() -> None:
    """[PRED-REVEAL.1] [PRED-ANSWER.1] Another output, another salt, or a copy of another
    executor's commitment opened as one's own: answer_commitment_mismatch; labels answers
    carry no values (bad_values); a second reveal is already_revealed."""
    chain = Chain()
    rid = send_request(chain, ready(chain))
    a, b, c = names(chain, rid)
    copied = commit(chain, a, rid, RIGHT)  # b copies a's commitment
    chain.block(chain.tx(a, copied), chain.tx(b, PredictCommit(copied.request_id,
                                                                copied.commitment)),
                chain.tx(c, commit(chain, c, rid, RIGHT)))
    assert record(chain, rid).status == PredictionStatus.REVEAL
    assert chain.reject(chain.tx(a, reveal(a, rid, WRONG))) == "answer_commitment_mismatch"
    assert chain.reject(chain.tx(a, PredictReveal(rid, output_hash(RIGHT), fixed("salt")))) \
        == "answer_commitment_mismatch"
    assert chain.reject(chain.tx(b, reveal(a, rid, RIGHT))) == "answer_commitment_mismatch"
    with_values = PredictReveal(rid, output_hash(RIGHT), reveal(a, rid, RIGHT).salt, (1, 2))
    assert chain.reject(chain.tx(a, with_values)) == "bad_values"
    chain.block(chain.tx(a, reveal(a, rid, RIGHT)))
    assert chain.reject(chain.tx(a, reveal(a, rid, RIGHT))) == "already_revealed"
    chain.block(chain.tx(c, reveal(c, rid, RIGHT)))
    chain.block(at=record(chain, rid).deadline_ms)
    rec = record(chain, rid)
    assert rec.status == PredictionStatus.AGREED  # a and c; b could not open the copy
    assert predictor_bond(chain.state, chain.addr(b)) == PREDICT_BOND - PREDICT_PENALTY
    assert conserved(chain) and replayed_root(chain) == chain.state.state_root


def test_a_requester_cannot_hold_more_than_eight_open_requests() -> None:
    """[PRED-REQ.5] [PRED-REQ.4] [PRED-REQ.1] [PRED-REQUEST.1] Flooding: the ninth open
    request is too_many_open_requests; a fee below rows × k is fee_too_low; an unknown
    model is unknown_model; a fee above the balance is insufficient_balance. A settled
    request frees a slot."""
    chain = Chain()
    model_id = ready(chain)
    txs = [chain.tx("alice", RequestPrediction(request(model_id, fee=12 + i)))
           for i in range(MAX_OPEN_PER_REQUESTER)]
    chain.block(*txs)
    assert chain.reject(chain.tx("alice", RequestPrediction(request(model_id, fee=12)))) \
        == "too_many_open_requests"
    assert chain.reject(chain.tx("bob", RequestPrediction(request(model_id, fee=11)))) \
        == "fee_too_low"
    assert chain.reject(chain.tx("bob", RequestPrediction(request(fixed("none"), fee=12)))) \
        == "unknown_model"
    assert chain.reject(chain.tx("bob", RequestPrediction(request(model_id, fee=5_000)))) \
        == "insufficient_balance"
    chain.block()
    chain.block()  # all eight drawn
    chain.block(at=record(chain, txs[0].hash).deadline_ms)  # nobody commits: all settle
    assert record(chain, txs[0].hash).status == PredictionStatus.NO_MAJORITY
    chain.block(chain.tx("alice", RequestPrediction(request(model_id, fee=12))))
    assert conserved(chain)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres",
                                                            marks=pytest.mark.postgres)])
def test_prediction_tables_survive_storage_and_reopen(backend: str, tmp_path: Path) -> None:
    """[PRED-STATE.1] [STORE-ATOMIC.1] The model, predictor, prediction and active_prediction
    records go through the real database (SQLite file, PostgreSQL) and decode back: a
    reopened ledger has the same digest and root, and keeps applying blocks."""
    url = sqlite_url(tmp_path) if backend == "sqlite" else PG_URL
    if backend == "postgres":
        engine = sa.create_engine(url)
        metadata.drop_all(engine)
        engine.dispose()
    chain = Chain(url=url)
    rid = send_request(chain, ready(chain))
    drawn = names(chain, rid)
    chain.block(*(chain.tx(n, commit(chain, n, rid, RIGHT)) for n in drawn))
    assert chain.ledger is not None
    digest, root = chain.state.digest(), chain.state.state_root
    chain.ledger.close()
    reopened = Ledger.open(url, chain.genesis)
    assert reopened.state.digest() == digest and reopened.state.state_root == root
    assert record(chain, rid) == reopened.state.get("prediction", rid)
    chain.ledger, chain.state = reopened, reopened.state
    chain.block(*(chain.tx(n, reveal(n, rid, RIGHT)) for n in drawn))
    assert record(chain, rid).status == PredictionStatus.AGREED and conserved(chain)
    reopened.close()
    if backend == "postgres":
        engine = sa.create_engine(url)
        metadata.drop_all(engine)
        engine.dispose()


REGRESSION = OutputSchema("regression", (), 1, 3)


def values_reveal(name: str, rid: bytes, values: tuple[int, ...]) -> PredictReveal:
    return PredictReveal(Hash32(rid), values_hash(values), salt(name, rid), values)


def values_commit(chain: Chain, name: str, rid: bytes, values: tuple[int, ...]) -> PredictCommit:
    return PredictCommit(Hash32(rid), answer_commitment(rid, chain.addr(name),
                                                        values_hash(values), salt(name, rid)))


def test_values_mode_agrees_within_tolerance_and_outvotes_the_far_answer() -> None:
    """[PRED-AGREE.3] [PRED-REVEAL.1] [PRED-ANSWER.2] A regression model: two answers within
    the tolerance agree (the lower-hash centre is the answer), a far one forfeits; values
    that do not hash to the output hash, or of the wrong count, are bad_values; an invalid
    answer [PRED-IO.3] travels without values."""
    chain = Chain()
    model_id = ready(chain, REGRESSION)
    rid = send_request(chain, model_id, mode="values", tolerance=2)
    a, b, c = names(chain, rid)
    answers = {a: (1000, 2000, -5, 7), b: (1001, 1999, -4, 7), c: (9000, 2000, -5, 7)}
    chain.block(*(chain.tx(n, values_commit(chain, n, rid, v)) for n, v in answers.items()))
    bad = PredictReveal(Hash32(rid), values_hash(answers[a]), salt(a, rid), (1000, 2000, -5, 8))
    assert chain.reject(chain.tx(a, bad)) == "bad_values"
    short = (1, 2, 3)
    chain.block()
    assert chain.reject(chain.tx(a, PredictReveal(Hash32(rid), values_hash(short), salt(a, rid),
                                                  short))) == "answer_commitment_mismatch"
    chain.block(*(chain.tx(n, values_reveal(n, rid, v)) for n, v in answers.items()))
    rec = record(chain, rid)
    assert rec.status == PredictionStatus.AGREED
    assert rec.answer == min(values_hash(answers[a]), values_hash(answers[b]))
    assert predictor_bond(chain.state, chain.addr(c)) == PREDICT_BOND - PREDICT_PENALTY
    invalid = output_hash(invalid_blob("schema"))
    rid2 = send_request(chain, model_id, mode="values", tolerance=2, fee=100)
    x, y, z = names(chain, rid2)
    chain.block(*(chain.tx(n, PredictCommit(Hash32(rid2), answer_commitment(
        rid2, chain.addr(n), invalid, salt(n, rid2)))) for n in (x, y, z)))
    assert chain.reject(chain.tx(x, PredictReveal(Hash32(rid2), fixed("not invalid"),
                                                  salt(x, rid2)))) == "answer_commitment_mismatch"
    chain.block(*(chain.tx(n, PredictReveal(Hash32(rid2), invalid, salt(n, rid2)))
                  for n in (x, y, z)))
    assert record(chain, rid2).status == PredictionStatus.AGREED
    assert record(chain, rid2).answer == invalid
    assert chain.reject(chain.tx("alice", RequestPrediction(request(
        model_id, mode="values", rows=MAX_REVEAL_VALUES + 1, fee=6_000)))) == "too_many_values"
    assert conserved(chain) and replayed_root(chain) == chain.state.state_root


def test_the_largest_values_reveal_fits_one_transaction() -> None:
    """[PRED-REQUEST.1] [TX-PREDICT.1] MAX_REVEAL_VALUES values of the widest int64 encoding
    still make a signed reveal within [TX-SIZE.1]; one more request-sized answer would not
    always: the bound keeps honest executors able to reveal."""
    from chain.crypto import PrivateKey
    from chain.transactions import MAX_TX_SIZE, sign_transaction

    widest = tuple([-(2**63)] * MAX_REVEAL_VALUES)
    key = PrivateKey.from_seed(b"executor")
    tx = sign_transaction(key, "test-chain", 2**62, PredictReveal(
        Hash32(b"\x01" * 32), values_hash(widest), b"\x02" * 32, widest))
    assert len(tx.wire) <= MAX_TX_SIZE
    assert MAX_TX_SIZE - len(tx.wire) < 9 * 300  # the bound is not far below the limit
