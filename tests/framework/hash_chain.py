"""A stand-in ledger for sync tests and the test node: hash-chained blocks with signed certificates.

Block ``h`` is ``encode([h, prev_hash, payload])``; its certificate is
``encode([block_hash, signer_pubkey, signature])`` where the signature covers
``["learningchain/v1", chain_id, "TEST_CERT", h, block_hash]``. ``apply``
checks the link, the height, the signer and the signature, like a real ledger
checks a commit certificate. It implements ``p2p.sync.BlockSource``.
"""

from __future__ import annotations

from chain.crypto import PrivateKey, sha256, verify
from chain.encoding import decode, encode
from chain.errors import DecodeError, InvalidBlock
from p2p.wire import DOMAIN

CERT_TAG = "TEST_CERT"
GENESIS_HASH = b"\x00" * 32


def cert_digest(chain_id: str, height: int, block_hash: bytes) -> bytes:
    return sha256(encode([DOMAIN, chain_id, CERT_TAG, height, block_hash]))


class HashChain:
    """An in-memory chain that accepts only blocks certified by one of ``signers``."""

    def __init__(self, chain_id: str, signers: set[bytes]) -> None:
        self.chain_id = chain_id
        self.signers = signers
        self.blocks: list[tuple[bytes, bytes]] = []
        self.tip = GENESIS_HASH

    def height(self) -> int:
        return len(self.blocks)

    def get_blocks(self, start: int, count: int) -> list[tuple[bytes, bytes]]:
        if start < 1:
            return []
        return self.blocks[start - 1 : start - 1 + count]

    def make_block(self, key: PrivateKey, payload: bytes) -> tuple[bytes, bytes]:
        height = self.height() + 1
        block = encode([height, self.tip, payload])
        block_hash = sha256(block)
        signature = key.sign(cert_digest(self.chain_id, height, block_hash))
        return block, encode([block_hash, bytes(key.public_key), bytes(signature)])

    def produce(self, key: PrivateKey, payload: bytes = b"") -> None:
        self.apply(*self.make_block(key, payload))

    def apply(self, block: bytes, certificate: bytes) -> None:
        try:
            height, prev, _payload = decode(block, max_size=1 << 20)
            block_hash, signer, signature = decode(certificate, max_size=4096)
        except (DecodeError, ValueError, TypeError) as e:
            raise InvalidBlock("malformed", f"undecodable block or certificate: {e}") from e
        if height != self.height() + 1:
            raise InvalidBlock("height", f"expected height {self.height() + 1}, got {height!r}")
        if prev != self.tip:
            raise InvalidBlock("prev_hash", "block does not extend the tip")
        if block_hash != sha256(block):
            raise InvalidBlock("cert_hash", "certificate is for another block")
        if signer not in self.signers:
            raise InvalidBlock("cert_signer", "certificate signer is not a validator")
        if not isinstance(signature, bytes) or not verify(
            signer, cert_digest(self.chain_id, height, block_hash), signature
        ):
            raise InvalidBlock("cert_signature", "certificate signature does not verify")
        self.blocks.append((block, certificate))
        self.tip = block_hash
