"""The error hierarchy. Every error carries a stable machine-readable ``code``.

``ChainError`` -> ``DecodeError`` (bytes that are not a canonical object),
``InvalidTransaction`` (a transaction the state rejects, with the rule it broke),
``InvalidBlock`` (a block that must not be applied), ``KeyFileError``.
Peer input is rejected with these, never with ``assert``.
"""

from __future__ import annotations


class ChainError(Exception):
    """Base of every error the ledger raises on bad input."""

    code: str = "chain_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.code


class DecodeError(ChainError):
    """Bytes that do not decode to exactly one canonical protocol object."""

    code = "decode_error"


class InvalidSignature(ChainError):
    code = "invalid_signature"


class InvalidAddress(ChainError):
    code = "invalid_address"


class KeyFileError(ChainError):
    """A key file that cannot be read: wrong passphrase, corrupt, or missing."""

    code = "key_file_error"


class InvalidTransaction(ChainError):
    """A transaction that breaks a rule; ``code`` names the rule (see protocol_spec)."""

    code = "invalid_transaction"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}", code=code)


class InvalidBlock(ChainError):
    """A block that must not be applied; the state stays untouched."""

    code = "invalid_block"

    def __init__(self, code: str, message: str, *, tx_index: int | None = None) -> None:
        super().__init__(f"{code}: {message}", code=code)
        self.tx_index = tx_index


class InvalidGenesis(ChainError):
    code = "invalid_genesis"
