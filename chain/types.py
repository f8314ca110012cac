"""Distinct names for distinct things, so signatures and type checks say what a value is."""

from __future__ import annotations

from typing import NewType

Address = NewType("Address", bytes)
"""20 bytes: the first 20 bytes of SHA-256 over a compressed secp256k1 public key."""

Hash32 = NewType("Hash32", bytes)
"""A 32-byte SHA-256 digest."""

PublicKeyBytes = NewType("PublicKeyBytes", bytes)
"""A 33-byte compressed secp256k1 public key."""

Signature = NewType("Signature", bytes)
"""A 64-byte compact (r || s) ECDSA signature with low S."""

Height = NewType("Height", int)
Round = NewType("Round", int)
Amount = NewType("Amount", int)
"""Credits, in indivisible units. Never negative, never above ``MAX_AMOUNT``."""
TimeMs = NewType("TimeMs", int)
"""Block time: milliseconds since the Unix epoch."""

ADDRESS_LEN = 20
HASH_LEN = 32
PUBKEY_LEN = 33
SIGNATURE_LEN = 64
MAX_AMOUNT = 2**63 - 1
EMPTY_HASH = Hash32(b"\x00" * HASH_LEN)

DOMAIN = "learningchain/v1"
"""The chain-wide domain of every signed or hashed encoding [TX-SIG.1]."""
SALT_LEN = 32
"""The salt of every commitment carried by a transaction."""
