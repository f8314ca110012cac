"""The error hierarchy. Every error carries a stable machine-readable ``code``.

``ChainError`` -> ``DecodeError`` (bytes that are not a canonical object) ->
``FieldError`` (one field out of type or bounds: field, expected, got),
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


class FieldError(DecodeError):
    """One decoded field out of type or bounds [ENC-LIMIT.1]: which, expected, got."""

    code = "bad_field"

    def __init__(self, field: str, expected: str, got: object) -> None:
        self.field, self.expected, self.got = field, expected, _shown(got)
        super().__init__(f"bad field {field!r}: expected {expected}, got {self.got}")


def _shown(value: object, limit: int = 48) -> str:
    """A short, inert picture of a bad value (peer bytes can be large or hostile)."""
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        shown = f"{len(raw)} bytes 0x{raw[:16].hex()}{'…' if len(raw) > 16 else ''}"
    elif isinstance(value, list | dict | tuple):
        shown = f"{type(value).__name__} of {len(value)}"
    else:
        shown = repr(value)
    return shown if len(shown) <= limit else shown[:limit] + "…"


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
