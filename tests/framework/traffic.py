"""A steady stream of transfers, so a resting graph [CONS-PACE.1] keeps making blocks.

One transfer at a time, each sent once the previous one is committed: the graph makes
blocks at the pace its consensus commits them, with one transaction in each. Used by the
upgrade stories (tests/client/test_upgrade_graph.py on loopback,
tests/hosts/test_upgrade_rehearsal.py on the emulated hosts), which need blocks to carry
on across the height of an upgrade.
"""

from __future__ import annotations

import threading
from typing import Any

from chain.transactions import Transfer
from chain.types import Address, Amount
from client.api.http_client import ApiClient


class TransferStream:
    """``start()`` sends 1 credit ``key`` -> ``to`` through ``api`` over and over until
    ``stop()``; a refused or lost transfer is retried after 0.2 s. ``sent`` counts the
    committed ones."""

    def __init__(self, api: ApiClient, key: Any, to: Address) -> None:
        self.api, self.key, self.to = api, key, to
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                tx = self.api.sign(self.key, Transfer(self.to, Amount(1)))
                self.api.submit(tx)
                self.api.wait_for_tx(tx.hash, timeout=10)
                self.sent += 1
            except Exception:
                self._stop.wait(0.2)
