"""The authenticated handshake [WIRE-HANDSHAKE.*], as pure checks plus one driver.

Both sides send ``Hello`` at once, check the other's, then send ``Auth``: a
signature by their node key over a digest that binds the chain id, both public
keys and both fresh nonces [WIRE-HANDSHAKE.2]. Each side therefore signs the
challenge the *other* side just chose, so a recorded handshake cannot be
replayed and a stolen public key without its private key cannot pass
[WIRE-HANDSHAKE.3]. Any mismatch is answered by ``Reject(code, reason)`` and the
connection is closed [WIRE-HANDSHAKE.4].
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from chain.crypto import PrivateKey, address_from_pubkey, sha256, verify
from chain.encoding import encode
from chain.errors import InvalidAddress
from chain.types import Address, Hash32
from p2p.errors import P2PError
from p2p.wire import DOMAIN, PROTOCOL_VERSION, Auth, Hello

HANDSHAKE_TAG = "P2P_HANDSHAKE"


class HandshakeError(P2PError):
    """A handshake that must not complete; ``code`` is sent to the other side."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}", code=code)
        self.reason = reason


class HandshakeRefused(HandshakeError):
    """The other side refused us with a ``Reject`` frame."""


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    """Who the other side proved to be."""

    address: Address
    """20-byte address derived from ``pubkey``."""
    pubkey: bytes
    listen_port: int
    topics: tuple[str, ...]
    agent: str


def new_nonce() -> bytes:
    return os.urandom(32)


def handshake_digest(
    chain_id: str, signer_pubkey: bytes, other_pubkey: bytes, other_nonce: bytes, own_nonce: bytes
) -> Hash32:
    """[WIRE-HANDSHAKE.2] What a side signs: the other side's challenge, bound to both keys."""
    return sha256(
        encode(
            [
                DOMAIN,
                chain_id,
                HANDSHAKE_TAG,
                PROTOCOL_VERSION,
                signer_pubkey,
                other_pubkey,
                other_nonce,
                own_nonce,
            ]
        )
    )


def make_hello(
    key: PrivateKey,
    chain_id: str,
    nonce: bytes,
    listen_port: int,
    topics: tuple[str, ...],
    agent: str,
) -> Hello:
    return Hello(
        PROTOCOL_VERSION, chain_id, bytes(key.public_key), nonce, listen_port, list(topics), agent
    )


def check_hello(hello: Hello, *, chain_id: str, own_pubkey: bytes) -> Address:
    """[WIRE-HANDSHAKE.1] Version, chain id and key of the other side; returns its address."""
    if hello.version != PROTOCOL_VERSION:
        raise HandshakeError("version", f"protocol version {hello.version} != {PROTOCOL_VERSION}")
    if hello.chain_id != chain_id:
        raise HandshakeError("chain_id", f"chain id {hello.chain_id!r} != {chain_id!r}")
    if hello.pubkey == own_pubkey:
        raise HandshakeError("self", "connected to itself")
    try:
        return address_from_pubkey(hello.pubkey)
    except InvalidAddress as e:
        raise HandshakeError("bad_pubkey", str(e)) from e


def make_auth(key: PrivateKey, chain_id: str, own_nonce: bytes, other: Hello) -> Auth:
    digest = handshake_digest(chain_id, bytes(key.public_key), other.pubkey, other.nonce, own_nonce)
    return Auth(bytes(key.sign(digest)))


def check_auth(
    auth: Auth, *, chain_id: str, own_pubkey: bytes, own_nonce: bytes, other: Hello
) -> None:
    """[WIRE-HANDSHAKE.3] The other side signed our fresh nonce with its key."""
    digest = handshake_digest(chain_id, other.pubkey, own_pubkey, own_nonce, other.nonce)
    if not verify(other.pubkey, digest, auth.signature):
        raise HandshakeError("bad_signature", "handshake signature does not verify")
