"""Blocks [BLOCK-*]: a header that commits to the transactions and the resulting state.

Wire form: ``[header, [tx_wire, ...]]`` where each transaction is embedded as
its own canonical bytes (so its id is the hash of exactly those bytes). The
block hash is SHA-256 of the encoded header. The commit certificate of block
h is produced after it is decided, so it travels beside the block, and block
h+1 commits to it through ``last_commit_hash``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chain import fields as F
from chain.encoding import decode, encode
from chain.errors import DecodeError, FieldError
from chain.transactions import SignedTransaction
from chain.types import Address, Hash32, Height, TimeMs
from chain.versions import GENESIS_PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS

BLOCK_VERSION = GENESIS_PROTOCOL_VERSION
"""The version of a block before any upgrade; later blocks carry the version in force
[BLOCK-VERSION.1]."""
MAX_BLOCK_SIZE = 32 * 1024 * 1024
MAX_BLOCK_BODY_BYTES = 2 * 1024 * 1024
"""[BLOCK-SIZE.2] The largest ``max_block_bytes`` a genesis may set: what one consensus
proposal carries ([CONS-MSG.2]) once the framing room below is added."""
BLOCK_FRAMING_ROOM = 64 * 1024
"""[BLOCK-SIZE.2] Bytes an encoded block adds to the sum of its transactions: the header
(under 400 bytes) and msgpack framing (at most 3 bytes per transaction of up to 16 KiB,
so 60,000 for 20,000 transactions, plus the array headers)."""


def merkle_root(leaves: list[bytes]) -> Hash32:
    """[BLOCK-MERKLE.1] RFC 6962 Merkle tree hash over the transaction ids."""
    if not leaves:
        return Hash32(hashlib.sha256(b"").digest())
    level = [hashlib.sha256(b"\x00" + leaf).digest() for leaf in leaves]
    return Hash32(_reduce(level))


def _reduce(nodes: list[bytes]) -> bytes:
    # Split at the largest power of two below n, as RFC 6962 does; iterative pairing
    # gives the same root for these balanced splits when we carry odd nodes up unpaired.
    while len(nodes) > 1:
        paired = [hashlib.sha256(b"\x01" + nodes[i] + nodes[i + 1]).digest()
                  for i in range(0, len(nodes) - 1, 2)]
        if len(nodes) % 2:
            paired.append(nodes[-1])
        nodes = paired
    return nodes[0]


@dataclass(frozen=True, slots=True)
class BlockHeader:
    chain_id: str
    height: Height
    time_ms: TimeMs
    prev_hash: Hash32
    proposer: Address
    tx_root: Hash32
    state_root: Hash32
    """The state root after applying this block [STATE-ROOT.1]."""
    last_commit_hash: Hash32
    """Hash of the commit certificate of block height-1 (empty hash for height 1)."""
    version: int = BLOCK_VERSION

    def to_wire(self) -> list[Any]:
        return [self.version, self.chain_id, self.height, self.time_ms, self.prev_hash,
                self.proposer, self.tx_root, self.state_root, self.last_commit_hash]

    @classmethod
    def from_wire(cls, v: Any) -> BlockHeader:
        a = F.array(v, "header", 9)
        version = F.uint(a[0], "version", 1)
        if version not in SUPPORTED_PROTOCOL_VERSIONS:  # [BLOCK-VERSION.2]
            known = sorted(SUPPORTED_PROTOCOL_VERSIONS)
            raise FieldError("version", f"a known protocol version {known}", version)
        return cls(
            chain_id=F.text(a[1], "chain_id", 64, 1), height=Height(F.uint(a[2], "height", 1)),
            time_ms=TimeMs(F.uint(a[3], "time_ms")), prev_hash=F.hash32(a[4], "prev_hash"),
            proposer=F.address(a[5], "proposer"), tx_root=F.hash32(a[6], "tx_root"),
            state_root=F.hash32(a[7], "state_root"),
            last_commit_hash=F.hash32(a[8], "last_commit_hash"), version=version,
        )

    def encode(self) -> bytes:
        return encode(self.to_wire())

    @property
    def hash(self) -> Hash32:
        return Hash32(hashlib.sha256(self.encode()).digest())


@dataclass(frozen=True, slots=True)
class Block:
    header: BlockHeader
    txs: tuple[SignedTransaction, ...]
    hash: Hash32 = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hash", self.header.hash)

    def encode(self) -> bytes:
        return encode([self.header.to_wire(), [tx.wire for tx in self.txs]])

    @classmethod
    def decode(cls, data: bytes, *, max_size: int = MAX_BLOCK_SIZE,
               known: Callable[[bytes], SignedTransaction | None] | None = None) -> Block:
        """Parses a block. ``known(tx_hash)`` may return an already-decoded transaction
        with that hash (e.g. from the mempool): its wire bytes are the same by definition
        of the hash, so it is reused instead of decoding them again."""
        value = decode(data, max_size=max_size)
        a = F.array(value, "block", 2)
        header = BlockHeader.from_wire(a[0])
        raw_txs = F.array(a[1], "txs", max_len=1 << 20)
        txs = []
        for i, raw in enumerate(raw_txs):
            if not isinstance(raw, bytes):
                raise DecodeError(f"tx {i} is not bin", code="bad_field")
            reused = known(hashlib.sha256(raw).digest()) if known is not None else None
            txs.append(reused if reused is not None and reused.wire == raw
                       else SignedTransaction.decode(raw))
        return cls(header, tuple(txs))


def tx_root(txs: tuple[SignedTransaction, ...] | list[SignedTransaction]) -> Hash32:
    return merkle_root([tx.hash for tx in txs])
