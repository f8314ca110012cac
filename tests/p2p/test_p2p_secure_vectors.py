"""Vectors of the secure channel [WIRE-SECURE.1-4/6]: protocol_spec/vectors/secure_channel.json.

Fixed node keys and ephemeral keys give every byte of a handshake: both
messages, ``h``, both one-way keys, both ``identify`` records, the first
records after them, a refused (flipped) record, and a sealed bulk chunk.
Regenerate with ``LC_WRITE_VECTORS=1``. A second check derives the keys with
``cryptography``'s own HKDF and verifies the signatures with pure-Python
``ecdsa``, independent of the code that made them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import ecdsa
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from ecdsa.util import sigdecode_string

from chain.crypto import PrivateKey
from p2p.bulk import seal_chunk
from p2p.handshake import make_identify
from p2p.secure import (
    PROLOGUE,
    PROTOCOL_NAME,
    bulk_grant_id,
    bulk_key,
    identify_digest,
    initiator_finish,
    initiator_start,
    probe_id,
    responder_finish,
)
from p2p.wire import GetPeers, Status, encode_frame
from tests.ledger.vector_files import check_vector_file

VECTORS = Path(__file__).resolve().parents[2] / "protocol_spec" / "vectors" / "secure_channel.json"
CHAIN = "lc-vectors"


def _ephemeral(name: bytes) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(hashlib.sha256(b"ephemeral:" + name).digest())


def build_vectors() -> dict[str, Any]:
    alice, bob = PrivateKey.from_seed(b"alice"), PrivateKey.from_seed(b"bob")
    e_i, e_r = _ephemeral(b"initiator"), _ephemeral(b"responder")
    start = initiator_start(e_i)
    message2, responder = responder_finish(e_r, start.message)
    initiator = initiator_finish(start, message2)
    assert initiator.handshake_hash == responder.handshake_hash
    h = initiator.handshake_hash
    ident = {
        "initiator": make_identify(alice, CHAIN, initiator=True, handshake_hash=h,
                                   listen_port=0, topics=("tx", "consensus"), agent="vectors"),
        "responder": make_identify(bob, CHAIN, initiator=False, handshake_hash=h,
                                   listen_port=26656, topics=("tx",), agent="vectors"),
    }
    digests = {role: identify_digest(CHAIN, role, h, m.pubkey, m.listen_port, m.topics, m.agent)
               for role, m in ident.items()}
    records_i = [initiator.send.seal(encode_frame(ident["initiator"])),
                 initiator.send.seal(encode_frame(GetPeers()))]
    records_r = [responder.send.seal(encode_frame(ident["responder"])),
                 responder.send.seal(encode_frame(Status(7)))]
    flipped = bytearray(records_i[1])
    flipped[0] ^= 0x01
    token = hashlib.sha256(b"token").digest()[:16]
    blob = hashlib.sha256(b"blob").digest()
    chunk = b"a chunk of a blob"
    key = bulk_key(h, token, blob)
    return {
        "about": "Noise_NN_25519_AESGCM_SHA256 + node-key identify records [WIRE-SECURE.*]; "
                 "keys: PrivateKey.from_seed; ephemerals: SHA-256('ephemeral:' + role)",
        "protocol_name": PROTOCOL_NAME.decode(),
        "prologue": PROLOGUE.hex(),
        "chain_id": CHAIN,
        "initiator": {"seed": "alice", "pubkey": bytes(alice.public_key).hex(),
                      "ephemeral_secret": e_i.private_bytes_raw().hex()},
        "responder": {"seed": "bob", "pubkey": bytes(bob.public_key).hex(),
                      "ephemeral_secret": e_r.private_bytes_raw().hex()},
        "message1": start.message.hex(),
        "message2": message2.hex(),
        "handshake_hash": h.hex(),
        "key_initiator_to_responder": initiator.send.key.hex(),
        "key_responder_to_initiator": responder.send.key.hex(),
        "identify": {role: {"frame": encode_frame(m).hex(), "digest": digests[role].hex(),
                            "signature": m.signature.hex()} for role, m in ident.items()},
        "records_initiator_to_responder": [r.hex() for r in records_i],
        "records_responder_to_initiator": [r.hex() for r in records_r],
        "plaintexts_initiator_to_responder": [encode_frame(ident["initiator"]).hex(),
                                              encode_frame(GetPeers()).hex()],
        "plaintexts_responder_to_initiator": [encode_frame(ident["responder"]).hex(),
                                              encode_frame(Status(7)).hex()],
        "refused_record_1_initiator_to_responder": bytes(flipped).hex(),
        "bulk": {"token": token.hex(), "blob": blob.hex(), "grant_id": bulk_grant_id(token).hex(),
                 "key": key.hex(), "index": 3, "chunk": chunk.hex(),
                 "sealed": seal_chunk(AESGCM(key), 3, chunk).hex()},
        "reachability_probe_id": probe_id(initiator).hex(),
    }


def test_wire_secure_vectors_match_committed_file() -> None:
    """[WIRE-SECURE.1-4] [WIRE-SECURE.6] [WIRE-PEX.4] secure_channel.json, byte for byte."""
    check_vector_file(VECTORS.name, build_vectors())


def _hkdf(salt: bytes, ikm: bytes) -> tuple[bytes, bytes]:
    out = HKDF(hashes.SHA256(), 64, salt, b"").derive(ikm)
    return out[:32], out[32:]


def test_wire_secure_vectors_check_independently() -> None:
    """[WIRE-SECURE.1-3] The file alone, re-derived with RFC 5869 HKDF from ``cryptography``
    (not our HMAC chain) and verified with pure-Python ``ecdsa``."""
    v = json.loads(VECTORS.read_text())
    e_i = X25519PrivateKey.from_private_bytes(bytes.fromhex(v["initiator"]["ephemeral_secret"]))
    pub_i = e_i.public_key().public_bytes_raw()
    assert pub_i.hex() == v["message1"]
    m2 = bytes.fromhex(v["message2"])
    h = hashlib.sha256(v["protocol_name"].encode().ljust(32, b"\x00")
                       + bytes.fromhex(v["prologue"])).digest()
    ck = v["protocol_name"].encode().ljust(32, b"\x00")
    h = hashlib.sha256(hashlib.sha256(h + pub_i).digest()).digest()  # e, then empty payload
    h = hashlib.sha256(h + m2[:32]).digest()
    ck, k = _hkdf(ck, e_i.exchange(X25519PublicKey.from_public_bytes(m2[:32])))
    assert AESGCM(k).decrypt(bytes(12), m2[32:], h) == b""
    h = hashlib.sha256(h + m2[32:]).digest()
    assert h.hex() == v["handshake_hash"]
    k1, k2 = _hkdf(ck, b"")
    assert (k1.hex(), k2.hex()) == (v["key_initiator_to_responder"],
                                    v["key_responder_to_initiator"])
    for n, (record, plain) in enumerate(zip(v["records_initiator_to_responder"],
                                            v["plaintexts_initiator_to_responder"], strict=True)):
        nonce = bytes(4) + n.to_bytes(8, "big")
        assert AESGCM(k1).decrypt(nonce, bytes.fromhex(record), b"").hex() == plain
    # [WIRE-PEX.4] the probe id: HMAC-SHA256(dialler-to-listener key, info)[:16]
    probe = hmac.new(k1, b"learningchain/p2p/probe/2", hashlib.sha256).digest()[:16]
    assert probe.hex() == v["reachability_probe_id"]
    for role, side in (("initiator", v["initiator"]), ("responder", v["responder"])):
        vk = ecdsa.VerifyingKey.from_string(bytes.fromhex(side["pubkey"]), curve=ecdsa.SECP256k1)
        ident = v["identify"][role]
        assert vk.verify_digest(bytes.fromhex(ident["signature"]), bytes.fromhex(ident["digest"]),
                                sigdecode=sigdecode_string)
