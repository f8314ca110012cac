"""[PRED-SETTLE.1] What settlement leaves in a Prediction record: ``deadline_ms`` keeps the
reveal window's deadline (predict.md §8), pinned on the real ledger."""

from __future__ import annotations

from chain.predict.records import PredictionStatus
from tests.ledger.harness import Chain
from tests.predict.ledger_story import RIGHT, answer_round, names, ready, record, send_request


def test_pred_settle_1_deadline_keeps_the_reveal_deadline() -> None:
    """[PRED-SETTLE.1] [PRED-WINDOW.1] Agreed after every commitment: the deadline the last
    commitment set stays. Nobody commits: the tick that ends the commit window sets the
    reveal deadline and settles in the same block; that deadline stays."""
    chain = Chain()
    model_id = ready(chain)
    agreed = send_request(chain, model_id)
    drawn = names(chain, agreed)
    answer_round(chain, agreed, dict.fromkeys(drawn, RIGHT))
    rec = record(chain, agreed)
    assert rec.status == PredictionStatus.AGREED and rec.escrow == 0
    commit_block = chain.blocks[-2]
    assert rec.deadline_ms == commit_block.header.time_ms + rec.request.reveal_window_ms
    silent = send_request(chain, model_id, fee=50)
    commit_deadline = record(chain, silent).deadline_ms
    ended = chain.block(at=commit_deadline)
    rec = record(chain, silent)
    assert rec.status == PredictionStatus.NO_MAJORITY and rec.answers == ()
    assert rec.deadline_ms == ended.header.time_ms + rec.request.reveal_window_ms
