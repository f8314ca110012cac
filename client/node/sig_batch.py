"""Transaction signatures checked on every core before they are needed [TX-SIG-CACHE.2].

A node verifies each transaction's signature once [TX-SIG-CACHE.1], but one at a time on
the thread that admits or applies it: on two cores half the machine sat idle while the
other verified a block of ten thousand transfers (bench/ledger.py's ratio, 0.79 of a bare
verify loop). libsecp256k1's verify runs without the GIL (coincurve's cffi calls release
it), so a batch split over a thread pool verifies in parallel. What this module decides is
only *when* a signature is checked: each result goes into the node's ``SignatureCache``
exactly as a serial check would, on the caller's thread, and a transaction whose signature
fails is left out of the cache, so the ledger's own check refuses it with ``bad_signature``
as before. Nothing here changes what is valid.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from chain.crypto import verify
from chain.transactions import SignedTransaction
from chain.transition import SignatureCache

MIN_BATCH = 32
"""Fewer unchecked signatures than this are left to the serial check (a pool round trip
costs more than it saves)."""
MAX_WORKERS = 8


class BatchVerifier:
    """A small pool of verify threads; one per node, closed with it."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, min(MAX_WORKERS, workers or os.cpu_count() or 1))
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="lc-verify") \
            if self.workers > 1 else None

    def check(self, txs: Sequence[SignedTransaction], chain_id: str) -> list[bool]:
        """Whether each signature verifies, in order, over the pool; no shared state is
        touched, so it may run off the event loop."""
        digests = [tx.digest(chain_id) for tx in txs]  # encoding holds the GIL: once, here
        if self._pool is None or len(txs) < MIN_BATCH:
            return [verify(tx.sender_pubkey, d, tx.signature) for tx, d in zip(txs, digests,
                                                                              strict=True)]
        size = -(-len(txs) // self.workers)

        def chunk(lo: int) -> list[bool]:
            return [verify(tx.sender_pubkey, d, tx.signature)
                    for tx, d in zip(txs[lo:lo + size], digests[lo:lo + size], strict=True)]

        out: list[bool] = []
        for part in self._pool.map(chunk, range(0, len(txs), size)):
            out.extend(part)
        return out

    def unchecked(self, txs: Sequence[SignedTransaction],
                  cache: SignatureCache) -> list[SignedTransaction]:
        """The transactions whose signatures the cache does not hold yet, once each."""
        seen: set[bytes] = set()
        out = []
        for tx in txs:
            if tx.hash not in cache and tx.hash not in seen:
                seen.add(tx.hash)
                out.append(tx)
        return out

    def prefill(self, txs: Sequence[SignedTransaction], chain_id: str,
                cache: SignatureCache) -> int:
        """[TX-SIG-CACHE.2] Verify what ``cache`` lacks in parallel and remember the valid
        ones; returns how many were added. Small batches are left to the serial check."""
        todo = self.unchecked(txs, cache)
        if len(todo) < MIN_BATCH or self._pool is None:
            return 0
        return remember(todo, self.check(todo, chain_id), cache)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


def remember(txs: Sequence[SignedTransaction], valid: Sequence[bool],
             cache: SignatureCache) -> int:
    """Adds the valid ones to ``cache`` (on the thread that owns it)."""
    added = 0
    for tx, ok in zip(txs, valid, strict=True):
        if ok:
            cache.add(tx.hash)
            added += 1
    return added
