"""The secure channel [WIRE-SECURE.*]: Noise NN key agreement, node-key signatures
over its handshake hash, and the record ciphers. Pure: no I/O, randomness passed in.

1. ``Noise_NN_25519_AESGCM_SHA256`` (noiseprotocol.org rev. 34) with the prologue
   ``PROLOGUE``: the dialler sends its ephemeral X25519 key, the listener answers
   with its own and an empty encrypted payload [WIRE-SECURE.1]. Both then hold
   two one-way keys (``Split``) and the handshake hash ``h`` [WIRE-SECURE.2].
2. Each side's first record is ``identify``: its node key, chain id, listen
   port, topics and agent, signed with its secp256k1 node key over ``h`` and its
   role [WIRE-SECURE.3]. An active attacker that ran one Noise handshake with
   each side holds two different ``h``; neither signature passes on the other.
3. Every later WebSocket message is one record: AES-256-GCM of one frame under
   the direction's key, nonce = 32 zero bits ‖ a 64-bit counter that both sides
   count [WIRE-SECURE.4]. A flipped, replayed, reordered, dropped or injected
   record fails to open (``BadRecord``).
4. Bulk-stream chunks are sealed under a key derived from ``h`` and the bulk
   token, nonce = the chunk index [WIRE-SECURE.6].

Only primitives from ``cryptography`` (OpenSSL): X25519, AES-GCM, HMAC-SHA256.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from chain.crypto import sha256
from chain.encoding import encode
from chain.types import Hash32
from p2p.errors import P2PError
from p2p.wire import DOMAIN, PROTOCOL_VERSION

PROTOCOL_NAME = b"Noise_NN_25519_AESGCM_SHA256"
PROLOGUE = b"learningchain/p2p/secure/2"
"""[WIRE-SECURE.1] Mixed into ``h`` first: a peer of another transport version fails."""
DH_LEN = 32
TAG_LEN = 16
MSG1_LEN = DH_LEN
"""Handshake message 1: the dialler's ephemeral public key, empty payload in clear."""
MSG2_LEN = DH_LEN + TAG_LEN
"""Handshake message 2: the listener's ephemeral public key, empty payload's tag."""
MAX_NONCE = 2**64 - 1
"""Noise reserves 2^64-1; a channel that reaches it is closed, never re-used."""
IDENTIFY_TAG = "P2P_IDENTIFY"
INITIATOR = "initiator"
RESPONDER = "responder"
BULK_INFO = b"learningchain/p2p/bulk/2"
PROBE_INFO = b"learningchain/p2p/probe/2"


class SecureChannelError(P2PError):
    """A handshake message that cannot be a step of [WIRE-SECURE.1]."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="secure_handshake")


class BadRecord(P2PError):
    """[WIRE-SECURE.5] A record that does not open: tampered, replayed, reordered, injected."""

    def __init__(self, message: str = "record does not authenticate") -> None:
        super().__init__(message, code="bad_record")


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.digest(key, data, "sha256")


def hkdf2(chaining_key: bytes, ikm: bytes) -> tuple[bytes, bytes]:
    """Noise's HKDF with two outputs (= RFC 5869 HKDF-SHA256, salt ck, empty info)."""
    temp = _hmac(chaining_key, ikm)
    out1 = _hmac(temp, b"\x01")
    return out1, _hmac(temp, out1 + b"\x02")


def _nonce(n: int) -> bytes:
    """Noise AESGCM nonce: 32 bits of zeros, then ``n`` as 64-bit big-endian."""
    return b"\x00\x00\x00\x00" + n.to_bytes(8, "big")


class CipherState:
    """One direction's key and record counter [WIRE-SECURE.4]. Not thread-safe: one owner."""

    __slots__ = ("_aead", "key", "n")

    def __init__(self, key: bytes) -> None:
        self.key = key
        """The 32-byte AES-256-GCM key (test vectors print it; nothing else reads it)."""
        self._aead = AESGCM(key)
        self.n = 0
        """The nonce of the next record in this direction."""

    def seal(self, plaintext: bytes | bytearray | memoryview, ad: bytes = b"") -> bytes:
        if self.n >= MAX_NONCE:
            raise BadRecord("record counter exhausted: the channel must be closed")
        out = self._aead.encrypt(_nonce(self.n), plaintext, ad)
        self.n += 1
        return out

    def open(self, ciphertext: bytes | bytearray | memoryview, ad: bytes = b"") -> bytes:
        """The next record's plaintext; ``BadRecord`` (counter unchanged) when it fails."""
        if self.n >= MAX_NONCE:
            raise BadRecord("record counter exhausted: the channel must be closed")
        try:
            out = self._aead.decrypt(_nonce(self.n), ciphertext, ad)
        except InvalidTag:
            raise BadRecord(f"record {self.n} does not authenticate") from None
        self.n += 1
        return out


@dataclass(frozen=True, slots=True)
class Session:
    """A finished key agreement: both one-way ciphers and the handshake hash."""

    send: CipherState
    recv: CipherState
    handshake_hash: Hash32
    """``h`` after message 2: the channel binding both node keys sign [WIRE-SECURE.3]."""
    initiator: bool


class _Symmetric:
    """Noise's SymmetricState (ck, h, k, n) for the two NN messages."""

    def __init__(self) -> None:
        self.h = PROTOCOL_NAME.ljust(32, b"\x00")
        self.ck = self.h
        self.cipher: CipherState | None = None
        self.mix_hash(PROLOGUE)

    def mix_hash(self, data: bytes) -> None:
        self.h = hashlib.sha256(self.h + data).digest()

    def mix_key(self, ikm: bytes) -> None:
        self.ck, key = hkdf2(self.ck, ikm)
        self.cipher = CipherState(key)

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        out = plaintext if self.cipher is None else self.cipher.seal(plaintext, self.h)
        self.mix_hash(out)
        return out

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        if self.cipher is None:
            out = ciphertext
        else:
            try:
                out = self.cipher.open(ciphertext, self.h)
            except BadRecord:
                raise SecureChannelError("handshake message 2 does not authenticate") from None
        self.mix_hash(ciphertext)
        return out

    def split(self, initiator: bool) -> Session:
        k1, k2 = hkdf2(self.ck, b"")
        c1, c2 = CipherState(k1), CipherState(k2)
        send, recv = (c1, c2) if initiator else (c2, c1)
        return Session(send, recv, Hash32(self.h), initiator)


def _dh(private: X25519PrivateKey, public: bytes) -> bytes:
    """X25519; a low-order point (all-zero shared secret) is refused, not used."""
    try:
        return private.exchange(X25519PublicKey.from_public_bytes(public))
    except ValueError as e:
        raise SecureChannelError(f"unusable ephemeral key: {e}") from e


def _public(private: X25519PrivateKey) -> bytes:
    return private.public_key().public_bytes_raw()


@dataclass(frozen=True, slots=True)
class InitiatorStart:
    """The dialler after writing message 1, waiting for message 2."""

    message: bytes
    ephemeral: X25519PrivateKey
    h: bytes
    ck: bytes


def initiator_start(ephemeral: X25519PrivateKey) -> InitiatorStart:
    """[WIRE-SECURE.1] ``-> e``: message 1 is the dialler's ephemeral key (32 bytes)."""
    sym = _Symmetric()
    e = _public(ephemeral)
    sym.mix_hash(e)
    sym.encrypt_and_hash(b"")
    return InitiatorStart(e, ephemeral, sym.h, sym.ck)


def responder_finish(ephemeral: X25519PrivateKey, message1: bytes) -> tuple[bytes, Session]:
    """[WIRE-SECURE.1] Reads message 1, writes ``<- e, ee`` (48 bytes); returns both."""
    if len(message1) != MSG1_LEN:
        raise SecureChannelError(f"handshake message 1 has {len(message1)} bytes, not 32")
    sym = _Symmetric()
    sym.mix_hash(message1)
    sym.decrypt_and_hash(b"")
    e = _public(ephemeral)
    sym.mix_hash(e)
    sym.mix_key(_dh(ephemeral, message1))
    message2 = e + sym.encrypt_and_hash(b"")
    return message2, sym.split(initiator=False)


def initiator_finish(start: InitiatorStart, message2: bytes) -> Session:
    """[WIRE-SECURE.1] Reads message 2; its empty payload must authenticate."""
    if len(message2) != MSG2_LEN:
        raise SecureChannelError(f"handshake message 2 has {len(message2)} bytes, not 48")
    sym = _Symmetric()
    sym.h, sym.ck = start.h, start.ck
    remote = message2[:DH_LEN]
    sym.mix_hash(remote)
    sym.mix_key(_dh(start.ephemeral, remote))
    sym.decrypt_and_hash(message2[DH_LEN:])
    return sym.split(initiator=True)


def identify_digest(
    chain_id: str,
    role: str,
    handshake_hash: bytes,
    pubkey: bytes,
    listen_port: int,
    topics: list[str] | tuple[str, ...],
    agent: str,
) -> Hash32:
    """[WIRE-SECURE.3] What a node key signs: this channel's ``h``, the signer's role
    (no reflection) and every field of its ``identify``."""
    fields: list[Any] = [DOMAIN, chain_id, IDENTIFY_TAG, PROTOCOL_VERSION, role,
                         handshake_hash, pubkey, listen_port, list(topics), agent]  # fmt: skip
    return sha256(encode(fields))


def bulk_key(handshake_hash: bytes, token: bytes, blob: bytes) -> bytes:
    """[WIRE-SECURE.6] The key sealing one grant's chunks: HKDF(salt h, ikm token)."""
    _, key = hkdf2(handshake_hash, token + BULK_INFO + blob)
    return key


def bulk_grant_id(token: bytes) -> bytes:
    """[WIRE-SECURE.6] The grant's public name in a range request (the token stays secret)."""
    return hashlib.sha256(b"learningchain/p2p/bulk-grant\x00" + token).digest()[:16]


def probe_id(session: Session) -> bytes:
    """[WIRE-PEX.4] The reachability probe's id for one connection: HMAC-SHA256 under the
    dialler-to-listener key (secret to the two ends), truncated to 16 bytes."""
    key = session.send.key if session.initiator else session.recv.key
    return hmac.new(key, PROBE_INFO, hashlib.sha256).digest()[:16]


def bulk_nonce(index: int) -> bytes:
    """[WIRE-SECURE.6] Chunk ``index``'s nonce: every grant's key seals each chunk's one
    fixed content (blobs are content-addressed), so a repeat is the same ciphertext."""
    return _nonce(index)
