"""Errors of the federated rules; both derive from the ledger's root ``ChainError``."""

from __future__ import annotations

from chain.errors import ChainError, DecodeError


class BlobError(DecodeError):
    """An update or model blob that is not exactly one well-formed blob [FED-QUANT.5]
    [FED-MODEL.1]: ``code`` names what is wrong, ``offset`` where, ``got`` what was there."""

    code = "bad_fed_blob"

    def __init__(self, code: str, message: str, *, offset: int | None = None,
                 got: object = None) -> None:
        where = f" at byte {offset}" if offset is not None else ""
        super().__init__(f"{code}{where}: {message}", code=code)
        self.offset, self.got = offset, got


class FederatedError(ChainError):
    """Inputs a federated rule cannot take (mismatched dimensions, too few updates, a bad
    parameter); ``code`` names the rule's complaint and ``data`` holds the offending values."""

    code = "federated_error"

    def __init__(self, code: str, message: str, **data: object) -> None:
        super().__init__(f"{code}: {message}", code=code)
        self.data = data
