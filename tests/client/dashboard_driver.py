"""Drives a devnet's job with signed transactions, for the dashboard's browser tests.

``test_dashboard_browser.py`` and ``test_dashboard_screenshot.py`` post jobs,
claim, reveal and vote as the graph's users (no Docker: the "models" are
blobs or random hashes) and watch what the dashboard makes of it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from chain.crypto import PrivateKey
from chain.keyfile import read_key_file
from chain.train.bodies import VoteCommit, VoteReveal, vote_commitment
from chain.transactions import Body
from chain.types import Hash32
from client.api.http_client import ApiClient
from client.devnet.network import NetworkLayout
from tests.framework.wait import describe, wait_until


def load_keys(layout: NetworkLayout) -> dict[str, PrivateKey]:
    keys = {u.name: read_key_file(u.key_file, u.passphrase_file.read_text().strip())
            for u in layout.users}
    node = layout.nodes[0]
    keys["node0"] = read_key_file(node.directory / "node.key",
                                  (node.directory / "passphrase").read_text().strip())
    return keys


class Driver:
    """Signs and sends transactions as the graph's users, and waits on the job."""

    def __init__(self, client: ApiClient, keys: dict[str, PrivateKey]) -> None:
        self.client = client
        self.keys = keys

    def send(self, name: str, body: Body, *, wait: bool = True) -> bytes:
        tx = self.client.sign(self.keys[name], body)
        self.client.submit(tx)
        if wait:
            self.client.wait_for_tx(tx.hash, timeout=30)
        return tx.hash

    def wait_job(self, job_id: str, check: Callable[[dict[str, Any]], bool],
                 timeout: float = 30.0) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            job = self.client.job(job_id)
            if check(job):
                return job
            self.client.wait(int(self.client.status()["height"]) + 1, timeout=2)  # a block
            return None

        return wait_until(reached, timeout=timeout, step=0,
                          what=f"job {job_id[:12]}: {describe(check)}",
                          detail=lambda: self.client.job(job_id))

    def vote(self, job: Hash32, claimer: str, voters: list[str], valid: bool,
             measured: float, own: tuple[bool, float]) -> None:
        """Every voter, and the claimer on its own claim ([VOTE-SELF.1], ``own``), commits a
        hidden vote, then (all committed) every one opens it."""
        claimer_address = self.keys[claimer].address
        ballots = {**{v: (valid, measured) for v in voters}, claimer: own}
        salts = {v: os.urandom(32) for v in ballots}
        sent = [self.send(v, VoteCommit(job, claimer_address, vote_commitment(
            job, claimer_address, self.keys[v].address, ok, loss, salts[v])), wait=False)
            for v, (ok, loss) in ballots.items()]
        for tx_hash in sent:
            self.client.wait_for_tx(tx_hash, timeout=30)
        sent = [self.send(v, VoteReveal(job, claimer_address, ok, loss, salts[v]),
                          wait=False) for v, (ok, loss) in ballots.items()]
        for tx_hash in sent:
            self.client.wait_for_tx(tx_hash, timeout=30)
