"""The authenticated handshake [WIRE-HANDSHAKE.*] inside the secure channel [WIRE-SECURE.*].

The Noise NN key agreement (``p2p.secure``) gives both sides fresh one-way keys
and a handshake hash ``h``. Each side's first record is then ``Identify``: its
node key, chain id and listen details, signed with its node key over ``h`` and
its role [WIRE-SECURE.3]. Since ``h`` covers both fresh ephemeral keys, a
recorded handshake cannot be replayed, a man in the middle cannot relay a
signature from one channel to the other, and claiming someone's public key
without its private key fails [WIRE-HANDSHAKE.3]. Any mismatch is answered by a
``Reject(code, reason)`` record and the connection is closed [WIRE-HANDSHAKE.4].
"""

from __future__ import annotations

from dataclasses import dataclass

from chain.crypto import PrivateKey, address_from_pubkey, verify
from chain.errors import InvalidAddress
from chain.types import Address
from p2p.errors import P2PError
from p2p.secure import INITIATOR, RESPONDER, identify_digest
from p2p.wire import PROTOCOL_VERSION, Identify


class HandshakeError(P2PError):
    """A handshake that must not complete; ``code`` is sent to the other side."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}", code=code)
        self.reason = reason


class HandshakeRefused(HandshakeError):
    """The other side refused us with a ``Reject`` record."""


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    """Who the other side proved to be."""

    address: Address
    """20-byte address derived from ``pubkey``."""
    pubkey: bytes
    listen_port: int
    topics: tuple[str, ...]
    agent: str


def role(initiator: bool) -> str:
    return INITIATOR if initiator else RESPONDER


def make_identify(
    key: PrivateKey,
    chain_id: str,
    *,
    initiator: bool,
    handshake_hash: bytes,
    listen_port: int,
    topics: tuple[str, ...],
    agent: str,
) -> Identify:
    """[WIRE-SECURE.3] Our first record: who we are, signed over this channel's ``h``."""
    pubkey = bytes(key.public_key)
    digest = identify_digest(
        chain_id, role(initiator), handshake_hash, pubkey, listen_port, topics, agent
    )
    return Identify(
        PROTOCOL_VERSION, chain_id, pubkey, listen_port, list(topics), agent,
        bytes(key.sign(digest)),
    )  # fmt: skip


def check_identify(other: Identify, *, chain_id: str, own_pubkey: bytes) -> Address:
    """[WIRE-HANDSHAKE.1] Version, chain id and key of the other side; returns its address."""
    if other.version != PROTOCOL_VERSION:
        raise HandshakeError("version", f"protocol version {other.version} != {PROTOCOL_VERSION}")
    if other.chain_id != chain_id:
        raise HandshakeError("chain_id", f"chain id {other.chain_id!r} != {chain_id!r}")
    if other.pubkey == own_pubkey:
        raise HandshakeError("self", "connected to itself")
    try:
        return address_from_pubkey(other.pubkey)
    except InvalidAddress as e:
        raise HandshakeError("bad_pubkey", str(e)) from e


def check_identify_signature(
    other: Identify, *, chain_id: str, other_is_initiator: bool, handshake_hash: bytes
) -> None:
    """[WIRE-HANDSHAKE.3] [WIRE-SECURE.3] The other's node key signed this channel's ``h``
    in the other's role."""
    digest = identify_digest(
        chain_id, role(other_is_initiator), handshake_hash, other.pubkey, other.listen_port,
        other.topics, other.agent,
    )  # fmt: skip
    if not verify(other.pubkey, digest, other.signature):
        raise HandshakeError("bad_signature", "identify signature does not verify")


def identity_of(address: Address, other: Identify) -> PeerIdentity:
    return PeerIdentity(address, other.pubkey, other.listen_port, tuple(other.topics), other.agent)
