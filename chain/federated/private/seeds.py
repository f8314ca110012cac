"""Private mode's key agreement and share exchange [FED-PRIV.6] [FED-PRIV.7] [FED-PRIV.8].

Each participant of a private round makes two fresh secp256k1 key pairs for the round: a
*mask key* whose ECDH with another participant's mask key gives their pair seed, and an
*encryption key* whose ECDH gives the keys that encrypt the Shamir shares it sends. The
mask secret itself is what is Shamir-shared (with the self seed), so survivors can rebuild
a dropped participant's pair seeds with every survivor; the encryption key is separate so
that rebuilding a dropped participant's mask secret opens none of the shares sent to it.

Every share travels encrypted under its own key (one per sender, recipient and kind), so
a survivor *reveals the key* of exactly the share unmasking needs and anyone checks it: the
AEAD refuses a wrong key. Pure: the secrets, self seeds and Shamir coefficients are the
caller's (random, fresh per round).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import coincurve
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from chain.crypto import SECP256K1_ORDER
from chain.encoding import encode
from chain.federated.blobs import DOMAIN
from chain.federated.errors import BlobError, FederatedError
from chain.federated.private.masking import PAIR, SEED_LEN, SELF
from chain.federated.private.shamir import PRIME, split
from chain.types import ADDRESS_LEN, Address, Hash32

KEY_LEN = 33
"""A compressed secp256k1 public key."""
SHARE_LEN = 66
"""[FED-PRIV.7] A share value f(x) < 2**521 as 66 bytes big-endian."""
CT_LEN = SHARE_LEN + 16
"""ChaCha20-Poly1305 ciphertext of a share: 66 bytes and a 16-byte tag."""
NONCE = bytes(12)
"""Every share key encrypts exactly one message, so the nonce is fixed (zero)."""
KINDS = (SELF, PAIR)
SHARE_MAGIC = b"LCFS"
UNMASK_MAGIC = b"LCFK"
VERSION = 1
HEADER = struct.Struct("<4sBBH32sI20sHH")
"""[FED-PRIV.7] [FED-PRIV.8] magic, version 1, reserved u8 0, reserved u16 0, job id, round
(u32), the sender, count (u16), threshold (u16; 0 in an unmask blob): 68 bytes."""
SHARE_ENTRY = ADDRESS_LEN + 2 * CT_LEN
"""[FED-PRIV.7] recipient, self-seed share ciphertext, mask-secret share ciphertext."""
UNMASK_ENTRY = ADDRESS_LEN + 1 + 32
"""[FED-PRIV.8] owner, kind (0 self, 1 pair), share key."""
MAX_KEYED = 256


def _check_key(public: bytes, what: str) -> coincurve.PublicKey:
    if len(public) != KEY_LEN or public[0] not in (2, 3):
        raise FederatedError("bad_key", f"{what} is a 33-byte compressed secp256k1 key",
                             key=bytes(public).hex())
    try:
        return coincurve.PublicKey(bytes(public))
    except ValueError as e:
        raise FederatedError("bad_key", f"{what} is not a point of secp256k1",
                             key=bytes(public).hex()) from e


def check_secret(secret: bytes) -> bytes:
    """A secp256k1 secret: 32 bytes, 1 <= value < n."""
    if len(secret) != 32 or not 0 < int.from_bytes(secret, "big") < SECP256K1_ORDER:
        raise FederatedError("bad_key", "a secret is 32 bytes in 1..n-1", length=len(secret))
    return bytes(secret)


def public_key(secret: bytes) -> bytes:
    """The compressed public key of a round secret."""
    return bytes(coincurve.PrivateKey(check_secret(secret)).public_key.format(compressed=True))


def check_public_key(public: bytes, what: str = "key") -> bytes:
    """[FED-PRIV.6] A published round key: a valid 33-byte compressed point (``bad_key``)."""
    _check_key(public, what)
    return bytes(public)


def ecdh(secret: bytes, public: bytes) -> bytes:
    """[FED-PRIV.6] The 33-byte compressed point ``secret · public``: the same from either
    side of a pair (a·B = b·A)."""
    point = _check_key(public, "the peer's key").multiply(check_secret(secret))
    return bytes(point.format(compressed=True))


def pair_seed(job_id: bytes, round: int, a: bytes, b: bytes, point: bytes) -> bytes:
    """[FED-PRIV.6] ``s_ab = SHA-256(encode([domain, "fed-pair-seed", job_id, round, lo, hi,
    P]))``: lo, hi the two addresses ascending, P the ECDH point of their mask keys."""
    if a == b:
        raise FederatedError("self_pair", "a participant has no pair seed with itself",
                             participant=bytes(a).hex())
    lo, hi = sorted((bytes(a), bytes(b)))
    return hashlib.sha256(encode([DOMAIN, "fed-pair-seed", job_id, round, lo, hi,
                                  point])).digest()


def pair_seeds(job_id: bytes, round: int, me: bytes, mask_secret: bytes,
               mask_keys: Mapping[bytes, bytes]) -> dict[bytes, bytes]:
    """[FED-PRIV.6] ``me``'s pair seed with every other holder of ``mask_keys``."""
    return {a: pair_seed(job_id, round, me, a, ecdh(mask_secret, pk))
            for a, pk in sorted(mask_keys.items()) if a != me}


def share_key(job_id: bytes, round: int, sender: bytes, recipient: bytes, kind: str,
              point: bytes) -> bytes:
    """[FED-PRIV.7] The ChaCha20-Poly1305 key of one share: ``SHA-256(encode([domain,
    "fed-share-key", job_id, round, sender, recipient, kind, E]))``, E the ECDH point of the
    two encryption keys; one key per (sender, recipient, kind), so revealing it opens one
    share and nothing else."""
    if kind not in KINDS:
        raise FederatedError("bad_kind", "a share is 'self' or 'pair'", kind=kind)
    return hashlib.sha256(encode([DOMAIN, "fed-share-key", job_id, round, sender, recipient,
                                  kind, point])).digest()


def share_aad(job_id: bytes, round: int, sender: bytes, recipient: bytes, kind: str,
              x: int) -> bytes:
    """[FED-PRIV.7] The associated data: ``encode([domain, "fed-share", job_id, round,
    sender, recipient, kind, x])``."""
    return encode([DOMAIN, "fed-share", job_id, round, sender, recipient, kind, x])


def threshold(keyed: int) -> int:
    """[FED-PRIV.7] Shares needed to rebuild a secret: a majority of the keyed participants,
    ``keyed // 2 + 1``."""
    return keyed // 2 + 1


@dataclass(frozen=True, slots=True)
class ShareBlob:
    """[FED-PRIV.7] One sender's encrypted shares, one entry per keyed participant
    (ascending address; the entry at index k is share x = k + 1)."""

    job_id: Hash32
    round: int
    sender: Address
    threshold: int
    entries: tuple[tuple[Address, bytes, bytes], ...]
    """(recipient, self-seed share ciphertext, mask-secret share ciphertext)."""

    def to_bytes(self) -> bytes:
        head = HEADER.pack(SHARE_MAGIC, VERSION, 0, 0, self.job_id, self.round, self.sender,
                           len(self.entries), self.threshold)
        return head + b"".join(r + s + p for r, s, p in self.entries)

    @classmethod
    def from_bytes(cls, data: bytes) -> ShareBlob:
        """Strict: magic, version, reserved 0, 1..256 entries, threshold 1..n, exact length
        ``68 + 184·n``, recipients strictly ascending."""
        job, rnd, who, n, t = _header(bytes(data), SHARE_MAGIC, SHARE_ENTRY)
        if not 1 <= t <= n:
            raise BlobError("bad_header", "threshold 1..n", offset=66, got=(t, n))
        entries = []
        for k in range(n):
            at = HEADER.size + k * SHARE_ENTRY
            entries.append((Address(data[at:at + ADDRESS_LEN]),
                            bytes(data[at + ADDRESS_LEN:at + ADDRESS_LEN + CT_LEN]),
                            bytes(data[at + ADDRESS_LEN + CT_LEN:at + SHARE_ENTRY])))
        _ascending([e[0] for e in entries])
        return cls(Hash32(job), rnd, Address(who), t, tuple(entries))

    def recipients(self) -> tuple[Address, ...]:
        return tuple(e[0] for e in self.entries)


@dataclass(frozen=True, slots=True)
class UnmaskBlob:
    """[FED-PRIV.8] A survivor's revealed share keys: one per participant of the mask set,
    ascending by owner, ``self`` for a survivor and ``pair`` for a dropped one."""

    job_id: Hash32
    round: int
    revealer: Address
    entries: tuple[tuple[Address, str, bytes], ...]

    def to_bytes(self) -> bytes:
        head = HEADER.pack(UNMASK_MAGIC, VERSION, 0, 0, self.job_id, self.round,
                           self.revealer, len(self.entries), 0)
        return head + b"".join(o + bytes([KINDS.index(k)]) + key for o, k, key in self.entries)

    @classmethod
    def from_bytes(cls, data: bytes) -> UnmaskBlob:
        """Strict: magic, version, reserved 0, threshold field 0, kinds 0 or 1, exact length
        ``68 + 53·n``, owners strictly ascending."""
        job, rnd, who, n, t = _header(bytes(data), UNMASK_MAGIC, UNMASK_ENTRY)
        if t:
            raise BlobError("bad_header", "an unmask blob's threshold field is 0", offset=66,
                            got=t)
        entries = []
        for k in range(n):
            at = HEADER.size + k * UNMASK_ENTRY
            kind = data[at + ADDRESS_LEN]
            if kind > 1:
                raise BlobError("bad_kind", "kind 0 (self) or 1 (pair)", offset=at + 20,
                                got=kind)
            entries.append((Address(data[at:at + ADDRESS_LEN]), KINDS[kind],
                            bytes(data[at + ADDRESS_LEN + 1:at + UNMASK_ENTRY])))
        _ascending([e[0] for e in entries])
        return cls(Hash32(job), rnd, Address(who), tuple(entries))


def _header(data: bytes, magic: bytes, entry: int) -> tuple[bytes, int, bytes, int, int]:
    if len(data) < HEADER.size:
        raise BlobError("truncated", "a share or unmask header is 68 bytes", got=len(data))
    got, version, r8, r16, job, rnd, who, n, t = HEADER.unpack_from(data)
    if got != magic:
        raise BlobError("bad_magic", f"this blob starts with {magic!r}", offset=0, got=got)
    if version != VERSION or r8 or r16 or not 1 <= rnd <= 1000 or not 1 <= n <= MAX_KEYED:
        raise BlobError("bad_header", "version 1, reserved 0, round 1..1000, 1..256 entries",
                        offset=4, got=(version, r8, r16, rnd, n))
    if len(data) != HEADER.size + n * entry:
        raise BlobError("bad_length", f"{n} entries make {HEADER.size + n * entry} bytes",
                        got=len(data))
    return job, rnd, who, n, t


def _ascending(addresses: Sequence[bytes]) -> None:
    if list(addresses) != sorted(set(addresses)):
        raise BlobError("bad_order", "entries strictly ascending by address",
                        got=[a.hex() for a in addresses])


def share_blob_size(keyed: int) -> int:
    """[FED-PRIV.7] ``68 + 184·keyed`` bytes."""
    return HEADER.size + SHARE_ENTRY * keyed


def unmask_blob_size(mask_set: int) -> int:
    """[FED-PRIV.8] ``68 + 53·|mask set|`` bytes."""
    return HEADER.size + UNMASK_ENTRY * mask_set


def make_share_blob(job_id: Hash32, round: int, sender: Address, enc_secret: bytes,
                    self_seed: bytes, mask_secret: bytes, enc_keys: Mapping[bytes, bytes],
                    self_coefficients: Sequence[int],
                    pair_coefficients: Sequence[int]) -> ShareBlob:
    """[FED-PRIV.7] Shamir-share ``self_seed`` and ``mask_secret`` [FED-PRIV.5] among the
    keyed participants ``enc_keys`` (address -> encryption key; the sender included) with
    threshold ``keyed // 2 + 1`` (so ``threshold - 1`` coefficients each), x = 1-based rank
    of the recipient's address, and encrypt each share to its recipient."""
    order = sorted(enc_keys)
    t = threshold(len(order))
    if len(self_coefficients) != t - 1 or len(pair_coefficients) != t - 1 \
            or sender not in enc_keys or len(self_seed) != SEED_LEN:
        raise FederatedError("bad_share", f"{t - 1} coefficients per secret, the sender "
                             "among the keyed", keyed=len(order), sender=bytes(sender).hex())
    selfs = split(self_seed, self_coefficients, len(order))
    pairs = split(check_secret(mask_secret), pair_coefficients, len(order))
    entries = []
    for k, r in enumerate(order):
        point = ecdh(enc_secret, enc_keys[r])
        cts = [ChaCha20Poly1305(share_key(job_id, round, sender, r, kind, point)).encrypt(
            NONCE, share[k][1].to_bytes(SHARE_LEN, "big"),
            share_aad(job_id, round, sender, r, kind, k + 1))
            for kind, share in ((SELF, selfs), (PAIR, pairs))]
        entries.append((Address(r), cts[0], cts[1]))
    return ShareBlob(job_id, round, sender, t, tuple(entries))


def open_share(blob: ShareBlob, recipient: bytes, kind: str, key: bytes) -> tuple[int, int]:
    """[FED-PRIV.8] The share ``(x, f(x))`` that ``blob`` sent ``recipient``, decrypted with
    its share key; ``bad_share_key`` when the AEAD refuses it (a wrong key, or a ciphertext
    not made for this job, round, pair and kind)."""
    k = next((i for i, e in enumerate(blob.entries) if e[0] == recipient), None)
    if k is None or kind not in KINDS or len(key) != 32:
        raise FederatedError("bad_share_key", "no such share", recipient=bytes(recipient).hex(),
                             kind=kind)
    ct = blob.entries[k][1 if kind == SELF else 2]
    try:
        plain = ChaCha20Poly1305(key).decrypt(NONCE, ct, share_aad(
            blob.job_id, blob.round, blob.sender, recipient, kind, k + 1))
    except InvalidTag as e:
        raise FederatedError("bad_share_key", "the key does not open the share",
                             sender=blob.sender.hex(), recipient=bytes(recipient).hex(),
                             kind=kind) from e
    y = int.from_bytes(plain, "big")
    if y >= PRIME:
        raise FederatedError("bad_share", "a share value is below 2**521 - 1", got=y)
    return k + 1, y


def received_key(job_id: bytes, round: int, sender: bytes, me: bytes, kind: str,
                 enc_secret: bytes, sender_enc_key: bytes) -> bytes:
    """[FED-PRIV.8] The share key of the share ``sender`` sent ``me``, from my side."""
    return share_key(job_id, round, sender, me, kind, ecdh(enc_secret, sender_enc_key))


def make_unmask_blob(job_id: Hash32, round: int, me: Address, enc_secret: bytes,
                     enc_keys: Mapping[bytes, bytes], survivors: Sequence[bytes],
                     dropped: Sequence[bytes]) -> UnmaskBlob:
    """[FED-PRIV.8] A survivor's reveal: for each survivor the key of its self-seed share,
    for each dropped participant the key of its mask-secret share; never both for one
    (``bad_unmask`` if the two sets meet)."""
    if set(survivors) & set(dropped):
        raise FederatedError("bad_unmask", "a participant is a survivor or dropped, never "
                             "both", both=sorted(a.hex() for a in set(survivors) & set(dropped)))
    entries = [(Address(o), SELF if o in survivors else PAIR,
                received_key(job_id, round, o, me, SELF if o in survivors else PAIR,
                             enc_secret, enc_keys[o]))
               for o in sorted({*survivors, *dropped})]
    return UnmaskBlob(job_id, round, me, tuple(entries))
