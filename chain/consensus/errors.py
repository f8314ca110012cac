"""Consensus errors. Each carries a stable ``code`` naming the rule it broke.

They derive from ``chain.errors.ChainError`` so the node treats them like any
other rejected peer input: a clear error, the message dropped, the node goes on.
"""

from __future__ import annotations

from chain.errors import ChainError


class ConsensusError(ChainError):
    """Base of every error raised on bad consensus input."""

    code = "consensus_error"


class InvalidMessage(ConsensusError):
    """A proposal, vote or decision that is malformed or wrongly signed."""

    code = "invalid_message"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}", code=code)


class InvalidCertificate(ConsensusError):
    """A commit certificate that does not prove >2/3 of the voting power [CONS-CERT.1]."""

    code = "invalid_certificate"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}", code=code)


class InvalidEvidence(ConsensusError):
    """Evidence that does not prove an equivocation [CONS-EVIDENCE.1]."""

    code = "invalid_evidence"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}", code=code)


class WalError(ConsensusError):
    """A write-ahead log that cannot be read back (not a torn tail: real corruption)."""

    code = "wal_error"
