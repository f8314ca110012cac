"""secp256k1 identities through coincurve (libsecp256k1) [KEY-*].

Signatures are 64-byte compact ``r || s`` over a 32-byte SHA-256 digest, with
S in the lower half of the group order. libsecp256k1's verify refuses high-S
signatures, so a malleated twin of a valid signature never verifies
[KEY-LOW-S.1]. Verification keeps a small cache of parsed public keys because
parsing costs as much as a quarter of a verify.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import coincurve
from coincurve._libsecp256k1 import ffi, lib

from chain.errors import InvalidAddress, InvalidSignature
from chain.types import (
    ADDRESS_LEN,
    PUBKEY_LEN,
    SIGNATURE_LEN,
    Address,
    Hash32,
    PublicKeyBytes,
    Signature,
)

ADDRESS_PREFIX = "lc1"
_CTX = coincurve.GLOBAL_CONTEXT.ctx
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def sha256(data: bytes) -> Hash32:
    return Hash32(hashlib.sha256(data).digest())


def address_from_pubkey(pubkey: bytes) -> Address:
    """[KEY-ADDR.1] address = SHA-256(compressed public key)[:20]."""
    if len(pubkey) != PUBKEY_LEN or pubkey[0] not in (2, 3):
        raise InvalidAddress("public key must be 33 bytes, compressed")
    return Address(hashlib.sha256(pubkey).digest()[:ADDRESS_LEN])


def address_to_text(address: bytes) -> str:
    """[KEY-ADDR-TEXT.1] ``lc1`` + hex(address) + hex(first 4 bytes of SHA-256(address))."""
    if len(address) != ADDRESS_LEN:
        raise InvalidAddress(f"address must be {ADDRESS_LEN} bytes")
    checksum = hashlib.sha256(b"lc-address" + address).digest()[:4]
    return ADDRESS_PREFIX + address.hex() + checksum.hex()


def address_from_text(text: str) -> Address:
    """Parses a text address; any typo fails the checksum with a clear error."""
    text = text.strip()
    if not text.startswith(ADDRESS_PREFIX):
        raise InvalidAddress(f"address must start with {ADDRESS_PREFIX!r}: {text!r}")
    body = text[len(ADDRESS_PREFIX) :]
    if len(body) != 2 * (ADDRESS_LEN + 4):
        raise InvalidAddress(f"address has wrong length: {text!r}")
    try:
        raw = bytes.fromhex(body)
    except ValueError as e:
        raise InvalidAddress(f"address is not hex: {text!r}") from e
    address = Address(raw[:ADDRESS_LEN])
    if address_to_text(address) != text.lower():
        raise InvalidAddress(f"address checksum mismatch (mistyped?): {text!r}")
    return address


@lru_cache(maxsize=65536)
def _parsed_pubkey(pubkey: bytes) -> object:
    """Parses a compressed key into libsecp256k1's form; None when invalid."""
    out = ffi.new("secp256k1_pubkey *")
    if not lib.secp256k1_ec_pubkey_parse(_CTX, out, pubkey, len(pubkey)):
        return None
    return out


def verify(pubkey: bytes, digest: bytes, signature: bytes) -> bool:
    """True when ``signature`` is a valid low-S signature of ``digest`` by ``pubkey``."""
    if len(signature) != SIGNATURE_LEN or len(digest) != 32 or len(pubkey) != PUBKEY_LEN:
        return False
    parsed = _parsed_pubkey(bytes(pubkey))
    if parsed is None:
        return False
    sig = ffi.new("secp256k1_ecdsa_signature *")
    if not lib.secp256k1_ecdsa_signature_parse_compact(_CTX, sig, signature):
        return False
    # secp256k1_ecdsa_verify returns 0 for high-S signatures: no malleability.
    return bool(lib.secp256k1_ecdsa_verify(_CTX, sig, digest, parsed))


def require_valid_signature(pubkey: bytes, digest: bytes, signature: bytes) -> None:
    if not verify(pubkey, digest, signature):
        raise InvalidSignature("signature does not verify (wrong key, digest, or high-S)")


def is_low_s(signature: bytes) -> bool:
    return len(signature) == SIGNATURE_LEN and int.from_bytes(signature[32:], "big") <= (
        SECP256K1_ORDER // 2
    )


@dataclass(frozen=True, slots=True)
class PrivateKey:
    """A secp256k1 private key. ``secret`` never leaves the process except via keyfile."""

    secret: bytes

    @classmethod
    def generate(cls) -> PrivateKey:
        return cls(coincurve.PrivateKey().secret)

    @classmethod
    def from_seed(cls, seed: bytes) -> PrivateKey:
        """A deterministic key for tests and test vectors; never for real funds."""
        counter = 0
        while True:
            candidate = hashlib.sha256(seed + counter.to_bytes(4, "big")).digest()
            if 0 < int.from_bytes(candidate, "big") < SECP256K1_ORDER:
                return cls(candidate)
            counter += 1

    def __post_init__(self) -> None:
        if len(self.secret) != 32 or not 0 < int.from_bytes(self.secret, "big") < SECP256K1_ORDER:
            raise ValueError("private key must be 32 bytes in [1, n-1]")

    def __repr__(self) -> str:
        return f"PrivateKey(address={address_to_text(self.address)})"

    @property
    def public_key(self) -> PublicKeyBytes:
        return _public_key(self.secret)

    @property
    def address(self) -> Address:
        return address_from_pubkey(self.public_key)

    def sign(self, digest: bytes) -> Signature:
        """RFC 6979 deterministic, low-S compact signature of a 32-byte digest."""
        if len(digest) != 32:
            raise ValueError("sign takes a 32-byte digest")
        sig = ffi.new("secp256k1_ecdsa_signature *")
        if not lib.secp256k1_ecdsa_sign(_CTX, sig, digest, self.secret, ffi.NULL, ffi.NULL):
            raise ValueError("signing failed")
        out = ffi.new("unsigned char[64]")
        lib.secp256k1_ecdsa_signature_serialize_compact(_CTX, out, sig)
        return Signature(bytes(ffi.buffer(out, 64)))


@lru_cache(maxsize=1024)
def _public_key(secret: bytes) -> PublicKeyBytes:
    return PublicKeyBytes(coincurve.PrivateKey(secret).public_key.format(compressed=True))
