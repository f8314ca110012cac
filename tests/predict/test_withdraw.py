"""A node that stops offering prediction service takes its bond back [PRED-WITHDRAW.1],
against real blocks (the harness chain through ``LedgerView``)."""

from __future__ import annotations

from pathlib import Path

from chain.predict.bodies import WithdrawPrediction
from chain.predict.params import PREDICT_BOND
from client.predict.withdraw import PredictWithdrawal
from tests.ledger.harness import Chain
from tests.predict.ledger_story import EXECUTORS, RIGHT, answer_round, names, ready, send_request
from tests.predict.test_executor import LedgerView


def test_withdraws_when_off_but_waits_while_drawn(tmp_path: Path) -> None:
    """[PRED-WITHDRAW.1] With ``predict`` off, a drawn member's follower sends nothing while
    its request is open (the ledger would refuse: ``executing``), then withdraws once it
    settles; the bond returns and the member leaves the lottery. A member not drawn
    withdraws at once. Nothing is sent twice within the resend delay."""
    chain = Chain(validators=1)
    model_id = ready(chain)
    rid = send_request(chain, model_id)
    drawn = names(chain, rid)
    idle = next(n for n in EXECUTORS if n not in drawn)
    followers = {}
    for n in (drawn[0], idle):
        view = LedgerView(chain, chain.keys[n], tmp_path / n)
        followers[n] = (PredictWithdrawal(view), view)
    balance = {n: chain.balance(n) for n in followers}

    for follower, _ in followers.values():
        follower.step()
    busy, idle_view = followers[drawn[0]], followers[idle][1]
    assert busy[1].sent == [] and busy[0].waiting_on == 1
    sent = idle_view.take()
    assert [type(t.body) for t in sent] == [WithdrawPrediction]
    chain.block(*sent)
    assert chain.state.get("predictor", chain.addr(idle)) is None
    assert chain.balance(idle) == balance[idle] + PREDICT_BOND
    followers[idle][0].step()
    assert idle_view.take() == []  # nothing left to withdraw

    answer_round(chain, rid, {n: RIGHT for n in drawn})
    busy[0].step()
    sent = busy[1].take()
    assert [type(t.body) for t in sent] == [WithdrawPrediction]
    busy[0].step()
    assert busy[1].take() == []  # not resent before RESEND_BLOCKS
    chain.block(*sent)
    assert chain.state.get("predictor", chain.addr(drawn[0])) is None
    assert chain.balance(drawn[0]) > balance[drawn[0]]  # its bond and its share of the fee
