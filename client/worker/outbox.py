"""How the worker sends transactions: next nonce, sign, submit, log; never raise.

A transaction may sit in the mempool for a few blocks, so each one is sent
for a purpose (an ``Action``) and not sent again for that purpose until
``RESEND_BLOCKS`` blocks have passed without its effect reaching the chain.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

from chain.crypto import PrivateKey
from chain.mempool import Admission
from chain.transactions import Body, sign_transaction
from client.node.handle import NodeHandle

log = logging.getLogger("learningchain.worker")

RESEND_BLOCKS = 5
"""A transaction whose effect is not on chain this many blocks later is sent again."""


def short(value: bytes) -> str:
    """A job id or hash as logs show it."""
    return value.hex()[:12]


@dataclass(frozen=True, slots=True)
class Action:
    """A transaction's purpose: what kind, on which job, about what."""

    kind: str
    job_id: bytes
    detail: bytes = b""


class Outbox:
    """Signs and submits the worker's transactions; counts and logs every outcome."""

    def __init__(self, node: NodeHandle, key: PrivateKey) -> None:
        self.node = node
        self.key = key
        self.counters: Counter[str] = Counter()
        self._sent: dict[Action, int] = {}

    def due(self, action: Action, height: int) -> bool:
        """Never sent for this purpose, or sent ``RESEND_BLOCKS`` ago without effect."""
        sent = self._sent.get(action)
        return sent is None or height - sent >= RESEND_BLOCKS

    def note(self, action: Action) -> None:
        """Count ``action`` as tried now (it failed before a transaction could be sent)."""
        self._sent[action] = self.node.height

    def send(self, body: Body, what: str, job_id: bytes, action: Action | None = None) -> bool:
        """Sign with the next nonce and submit; a rejection is logged (code and message)."""
        label = short(job_id)
        if action is not None:
            self._sent[action] = self.node.height
        try:
            tx = sign_transaction(self.key, self.node.chain_id,
                                  self.node.next_nonce(self.key.address), body)
            result = self.node.submit(tx)
        except Exception as e:
            log.error("job %s: %s could not be sent: %s", label, what, e)
            self.counters["rejected"] += 1
            return False
        if result.accepted or result.status == Admission.DUPLICATE:
            self.counters[what] += 1
            log.info("job %s: %s sent (tx %s)", label, what, short(tx.hash))
            return True
        self.counters["rejected"] += 1
        code = result.code or str(result.status)
        message = result.message.removeprefix(f"{code}: ")
        log.warning("job %s: %s rejected: %s: %s", label, what, code, message)
        return False

    def prune(self, live: set[bytes]) -> None:
        """Forget the actions of jobs that are no longer followed."""
        self._sent = {a: h for a, h in self._sent.items() if a.job_id in live}
