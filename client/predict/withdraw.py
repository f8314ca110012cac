"""Taking the prediction bond back when a node stops offering the service [PRED-WITHDRAW.1].

A node that once ran with ``[worker] predict = true`` left a ``predictor`` record on chain:
it is still in the lottery [PRED-DRAW.1] and would forfeit [PRED-FORFEIT.1] every request it
is drawn for but no longer answers. When it runs with ``predict = false`` this follower sends
``withdraw_prediction`` (what is left of the bond returns), waiting while the key is drawn on
an open request, since the ledger refuses a withdrawal then (``executing``). It needs no
Docker engine, unlike the ``Executor``.
"""

from __future__ import annotations

import logging

from chain.crypto import PrivateKey, address_to_text
from chain.predict.bodies import WithdrawPrediction
from chain.predict.steps import open_predictions
from client.node.handle import CommittedBlock, NodeHandle
from client.worker.outbox import Action, Outbox

log = logging.getLogger("learningchain.executor")

WITHDRAW = b"withdraw"
"""The ``Action`` key of our ``withdraw_prediction`` (no request id)."""


class PredictWithdrawal:
    """Sends ``withdraw_prediction`` once the key offers and is not drawn on an open request."""

    def __init__(self, node: NodeHandle, key: PrivateKey | None = None) -> None:
        self.node = node
        self.key = key if key is not None else node.key
        self.outbox = Outbox(node, self.key)
        self.waiting_on: int = 0
        """Open requests the key is drawn on (the withdrawal waits for them), for status."""

    def start(self) -> None:
        self.node.add_block_listener(self._on_block)
        self.node.add_tick_listener(lambda: self._on_block(None))  # [CONS-PACE.1]
        self.step()

    def _on_block(self, _event: CommittedBlock | None) -> None:
        try:
            self.step()
        except Exception:
            log.exception("withdrawing the prediction bond failed; trying again next block")

    def step(self) -> None:
        """Decide from the committed state; at most one withdrawal per ``RESEND_BLOCKS``."""
        state = self.node.state
        address = self.key.address
        if state.get("predictor", address) is None:
            return
        self.waiting_on = sum(1 for r in open_predictions(state) if address in r.executors)
        if self.waiting_on:  # [PRED-WITHDRAW.1] refused while executing: wait
            return
        action = Action("withdraw_prediction", WITHDRAW)
        if self.outbox.due(action, state.height) and self.outbox.send(
                WithdrawPrediction(), "withdraw_prediction", WITHDRAW, action):
            log.info("prediction service is off for %s: withdrawing its bond",
                     address_to_text(address))
