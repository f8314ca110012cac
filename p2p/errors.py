"""The root of every error the p2p layer raises on bad input or a failed exchange.

Each carries a stable machine-readable ``code`` (the reason a peer is charged or a
request failed), like ``chain.errors.ChainError`` does for the ledger.
"""

from __future__ import annotations


class P2PError(Exception):
    """Base of p2p errors: a frame, handshake, blob, bulk stream or request gone wrong."""

    code: str = "p2p_error"

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
