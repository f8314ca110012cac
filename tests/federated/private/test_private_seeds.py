"""Private mode's key agreement, share exchange and unmasking from public bytes, tried to
break [FED-PRIV.6] [FED-PRIV.7] [FED-PRIV.8] [FED-PRIV.9].

Vectors: protocol_spec/vectors/federated_private.json (regenerate with
``LC_WRITE_VECTORS=1``): keys from fixed secrets, an ECDH point, a pair seed, share keys,
the share blobs and unmask blobs of a round of four with one dropped, and its aggregate.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.crypto import PrivateKey
from chain.federated.errors import BlobError, FederatedError
from chain.federated.fixed import Q_MAX, rdiv
from chain.federated.private.aggregate import RoundKeys, private_round
from chain.federated.private.fast import mask_update_array, masked_blob_bytes
from chain.federated.private.masking import PAIR, SELF
from chain.federated.private.seeds import (
    HEADER,
    ShareBlob,
    UnmaskBlob,
    ecdh,
    make_share_blob,
    make_unmask_blob,
    open_share,
    pair_seed,
    pair_seeds,
    public_key,
    received_key,
    share_blob_size,
    share_key,
    threshold,
    unmask_blob_size,
)
from chain.federated.private.shamir import PRIME
from chain.types import Address, Hash32
from tests.ledger.vector_files import check_vector_file

JOB = Hash32(hashlib.sha256(b"private ledger job").digest())
ROUND = 3
DIMS = 5


def h(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def coefficients(label: str, n: int) -> list[int]:
    return [int.from_bytes(hashlib.sha512(f"{label} {k}".encode()).digest(), "big") % PRIME
            for k in range(n)]


class Party:
    """One participant's round secrets, fixed from a name (vectors) ."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.address = Address(h(f"address {name}")[:20])
        self.mask_secret = PrivateKey.from_seed(f"mask {name}".encode()).secret
        self.enc_secret = PrivateKey.from_seed(f"enc {name}".encode()).secret
        self.self_seed = h(f"self {name}")
        self.keys = RoundKeys(public_key(self.mask_secret), public_key(self.enc_secret))


def build_round(names: list[str], updates: dict[str, list[int]], dropped: set[str],
                silent: set[str] = frozenset()) -> dict[str, Any]:  # type: ignore[assignment]
    """Keys, share blobs, masked blobs of the survivors, unmask blobs of the survivors not
    ``silent``: every byte as a client would make it."""
    parties = sorted((Party(n) for n in names), key=lambda p: p.address)
    keys = {p.address: p.keys for p in parties}
    enc = {a: k.enc_key for a, k in keys.items()}
    t = threshold(len(parties))
    shares = {p.address: make_share_blob(JOB, ROUND, p.address, p.enc_secret, p.self_seed,
                                         p.mask_secret, enc,
                                         coefficients(f"self {p.name}", t - 1),
                                         coefficients(f"pair {p.name}", t - 1)).to_bytes()
              for p in parties}
    survivors = [p for p in parties if p.name not in dropped]
    mask_keys = {a: k.mask_key for a, k in keys.items()}
    masked = {}
    for p in survivors:
        seeds = pair_seeds(JOB, ROUND, p.address, p.mask_secret, mask_keys)
        words = mask_update_array(np.array(updates[p.name], dtype=np.int64), p.address,
                                  p.self_seed, seeds, JOB, ROUND)
        masked[p.address] = masked_blob_bytes(JOB, ROUND, p.address, 16, words)
    up = [p.address for p in survivors]
    down = [p.address for p in parties if p.name in dropped]
    unmasks = {p.address: make_unmask_blob(JOB, ROUND, p.address, p.enc_secret, enc, up,
                                           down).to_bytes()
               for p in survivors if p.name not in silent}
    return {"parties": parties, "keys": keys, "shares": shares, "masked": masked,
            "unmasks": unmasks}


UPDATES = {"ann": [100, -5, 0, Q_MAX, 7], "bob": [1, 2, 3, 4, 5],
           "cyd": [-100, 5, 9, -Q_MAX, -7], "dee": [40, 40, 40, 40, 40]}


def run(r: dict[str, Any]) -> Any:
    return private_round(JOB, ROUND, DIMS, 16, r["keys"], r["shares"], r["masked"],
                         r["unmasks"])


def test_ecdh_pair_seeds_agree_and_bind_job_round_and_pair() -> None:
    """[FED-PRIV.6] Both sides of a pair derive the same point and seed; another job, round
    or pair gives another seed; an invalid published key is ``bad_key``."""
    a, b, c = Party("ann"), Party("bob"), Party("cyd")
    p_ab = ecdh(a.mask_secret, b.keys.mask_key)
    assert p_ab == ecdh(b.mask_secret, a.keys.mask_key) and len(p_ab) == 33
    s = pair_seed(JOB, ROUND, a.address, b.address, p_ab)
    assert s == pair_seed(JOB, ROUND, b.address, a.address, p_ab)
    assert s != pair_seed(JOB, ROUND + 1, a.address, b.address, p_ab)
    assert s != pair_seed(h("other"), ROUND, a.address, b.address, p_ab)
    assert pair_seeds(JOB, ROUND, a.address, a.mask_secret, {
        b.address: b.keys.mask_key, c.address: c.keys.mask_key, a.address: a.keys.mask_key}
    ) == {b.address: s, c.address: pair_seed(JOB, ROUND, a.address, c.address,
                                              ecdh(a.mask_secret, c.keys.mask_key))}
    for bad in (b"\x02" + bytes(32), b"\x04" + bytes(32), bytes(33), b"\x02" * 32):
        with pytest.raises(FederatedError) as e:
            ecdh(a.mask_secret, bad)
        assert e.value.code == "bad_key"


def test_each_share_opens_only_for_its_recipient_and_kind() -> None:
    """[FED-PRIV.7] A share blob has one entry per keyed participant (``68 + 184·n``
    bytes); the recipient's key opens its share and only it; another recipient's or kind's
    key is refused by the AEAD (``bad_share_key``)."""
    r = build_round(["ann", "bob", "cyd"], UPDATES, set())
    ann, bob, cyd = r["parties"]
    blob = ShareBlob.from_bytes(r["shares"][ann.address])
    assert len(r["shares"][ann.address]) == share_blob_size(3) == 68 + 3 * 184
    assert blob.threshold == 2 and blob.recipients() == tuple(p.address for p in r["parties"])
    key = received_key(JOB, ROUND, ann.address, bob.address, SELF, bob.enc_secret,
                       ann.keys.enc_key)
    x, y = open_share(blob, bob.address, SELF, key)
    assert x == 2 and 0 <= y < PRIME
    for who, kind in ((cyd.address, SELF), (bob.address, PAIR)):
        with pytest.raises(FederatedError) as e:
            open_share(blob, who, kind, key)
        assert e.value.code == "bad_share_key"
    # the sender's own side derives the same key
    assert key == share_key(JOB, ROUND, ann.address, bob.address, SELF,
                            ecdh(ann.enc_secret, bob.keys.enc_key))


def test_strict_blob_decoding() -> None:
    """[FED-PRIV.7] [FED-PRIV.8] Share and unmask blobs decode strictly: magic, version,
    reserved bytes, length, ascending entries, kind 0 or 1; each with its code."""
    r = build_round(["ann", "bob", "cyd"], UPDATES, {"cyd"})
    share = r["shares"][r["parties"][0].address]
    unmask = next(iter(r["unmasks"].values()))
    assert len(unmask) == unmask_blob_size(3)
    cases = [(ShareBlob, share[:60], "truncated"), (ShareBlob, b"XXXX" + share[4:], "bad_magic"),
             (ShareBlob, share[:4] + b"\x02" + share[5:], "bad_header"),
             (ShareBlob, share + b"\x00", "bad_length"),
             (ShareBlob, share[:66] + (9).to_bytes(2, "little") + share[68:], "bad_header"),
             (UnmaskBlob, share, "bad_magic"),
             (UnmaskBlob, unmask[:88] + b"\x02" + unmask[89:], "bad_kind")]
    swapped = unmask[:68] + unmask[68 + 53:68 + 106] + unmask[68:68 + 53] + unmask[68 + 106:]
    cases.append((UnmaskBlob, swapped, "bad_order"))
    for cls, data, code in cases:
        with pytest.raises(BlobError) as e:
            cls.from_bytes(data)  # type: ignore[attr-defined]
        assert e.value.code == code, (cls, code)
    assert ShareBlob.from_bytes(share).to_bytes() == share
    assert UnmaskBlob.from_bytes(unmask).to_bytes() == unmask


def test_the_aggregate_is_the_mean_of_the_survivors_with_a_dropout() -> None:
    """[FED-PRIV.9] [FED-PRIV.4] [FED-PRIV.5] Four participants share, one drops before
    masking: the three survivors' unmask blobs rebuild their self seeds and the dropped
    one's mask secret, and the aggregate is the plain mean of the survivors' updates, bit
    for bit; the unmask blobs reveal self keys of survivors and pair keys of the dropped,
    never both for one participant."""
    r = build_round(["ann", "bob", "cyd", "dee"], UPDATES, {"dee"})
    out = run(r)
    assert out.error is None
    names = ["ann", "bob", "cyd"]
    want = [rdiv(sum(UPDATES[n][k] for n in names), 3) for k in range(DIMS)]
    assert out.aggregate.tolist() == want
    assert sorted(out.included) == sorted(p.address for p in r["parties"] if p.name != "dee")
    dee = next(p.address for p in r["parties"] if p.name == "dee")
    for data in r["unmasks"].values():
        kinds = {o: k for o, k, _ in UnmaskBlob.from_bytes(data).entries}
        assert kinds.pop(dee) == PAIR and set(kinds.values()) == {SELF}
    with pytest.raises(FederatedError):
        make_unmask_blob(JOB, ROUND, dee, r["parties"][0].enc_secret,
                         {p.address: p.keys.enc_key for p in r["parties"]}, [dee], [dee])


def test_too_few_or_wrong_shares_give_the_zero_aggregate() -> None:
    """[FED-PRIV.9] With fewer unmask blobs than the threshold the round adds nothing (zero
    vector, nobody included); an unmask blob with a wrong key is skipped, and with enough
    others the round still unmasks; a masked blob that names another slot voids it."""
    r = build_round(["ann", "bob", "cyd", "dee"], UPDATES, {"dee"}, silent={"ann", "bob"})
    out = run(r)
    assert out.included == () and out.aggregate.tolist() == [0] * DIMS
    assert out.error is not None and out.error.startswith("too_few_shares")
    r = build_round(["ann", "bob", "cyd", "dee"], UPDATES, {"dee"})
    ann = r["parties"][0]
    bad = bytearray(r["unmasks"][ann.address])
    bad[-1] ^= 1
    r["unmasks"][ann.address] = bytes(bad)
    out = run(r)  # threshold 3 of 4 keyed; bob and cyd alone are too few
    assert out.included == () and out.error is not None
    r = build_round(["ann", "bob", "cyd"], UPDATES, set())
    first = r["parties"][0].address
    bad = bytearray(r["unmasks"][first])
    bad[-1] ^= 1
    r["unmasks"][first] = bytes(bad)
    out = run(r)  # threshold 2 of 3: bob and cyd suffice
    assert out.error is None and out.aggregate.tolist() == [
        rdiv(sum(UPDATES[n][k] for n in ("ann", "bob", "cyd")), 3) for k in range(DIMS)]
    other = r["parties"][1].address
    r["masked"][first], r["masked"][other] = r["masked"][other], r["masked"][first]
    assert run(r).included == ()


def test_a_masked_blob_hides_the_update_and_one_survivor_is_not_unmasked() -> None:
    """[FED-PRIV.3] [FED-PRIV.8] No masked blob, share blob or unmask blob carries a
    participant's update words; the self seed and pair keys revealed for a survivor leave
    its update masked by its pair masks with the other survivors."""
    r = build_round(["ann", "bob", "cyd", "dee"], UPDATES, {"dee"})
    for p in r["parties"]:
        if p.name == "dee":
            continue
        plain = np.array(UPDATES[p.name], dtype=np.int64)
        needles = [plain.astype("<i4").tobytes(), plain.astype("<i8").tobytes()]
        for blob in (*r["masked"].values(), *r["shares"].values(), *r["unmasks"].values()):
            assert not any(n in blob for n in needles)
        words = np.frombuffer(r["masked"][p.address], dtype="<u8", offset=68)
        assert not set(words.view(np.int64).tolist()) & set(UPDATES[p.name]) - {0}


def _vectors() -> dict[str, Any]:
    r = build_round(["ann", "bob", "cyd", "dee"], UPDATES, {"dee"})
    parties = r["parties"]
    a, b = parties[0], parties[1]
    point = ecdh(a.mask_secret, b.keys.mask_key)
    enc_point = ecdh(a.enc_secret, b.keys.enc_key)
    out = run(r)
    return {
        "job_id": JOB.hex(), "round": ROUND, "dims": DIMS, "scale_bits": 16,
        "header": HEADER.format,
        "participants": [{"name": p.name, "address": p.address.hex(),
                          "mask_secret": p.mask_secret.hex(), "mask_key": p.keys.mask_key.hex(),
                          "enc_secret": p.enc_secret.hex(), "enc_key": p.keys.enc_key.hex(),
                          "self_seed": p.self_seed.hex(), "update": UPDATES[p.name],
                          "self_coefficients": [str(c) for c in coefficients(
                              f"self {p.name}", threshold(4) - 1)],
                          "pair_coefficients": [str(c) for c in coefficients(
                              f"pair {p.name}", threshold(4) - 1)]} for p in parties],
        "pair": {"a": a.address.hex(), "b": b.address.hex(), "ecdh_point": point.hex(),
                 "pair_seed": pair_seed(JOB, ROUND, a.address, b.address, point).hex(),
                 "enc_point": enc_point.hex(),
                 "share_key_self": share_key(JOB, ROUND, a.address, b.address, SELF,
                                             enc_point).hex(),
                 "share_key_pair": share_key(JOB, ROUND, a.address, b.address, PAIR,
                                             enc_point).hex()},
        "threshold": threshold(4),
        "dropped": [p.address.hex() for p in parties if p.name == "dee"],
        "share_blobs": {k.hex(): v.hex() for k, v in sorted(r["shares"].items())},
        "masked_blobs": {k.hex(): v.hex() for k, v in sorted(r["masked"].items())},
        "unmask_blobs": {k.hex(): v.hex() for k, v in sorted(r["unmasks"].items())},
        "aggregate": out.aggregate.tolist(),
        "included": [a.hex() for a in out.included],
    }


def test_private_vectors_match_the_committed_file() -> None:
    """[FED-PRIV.6] [FED-PRIV.7] [FED-PRIV.8] [FED-PRIV.9] Recomputed from the rules, the
    vectors equal protocol_spec/vectors/federated_private.json byte for byte."""
    vectors = _vectors()
    assert vectors["aggregate"] == [rdiv(sum(UPDATES[n][k] for n in ("ann", "bob", "cyd")), 3)
                                    for k in range(DIMS)]
    check_vector_file("federated_private.json", vectors)


NAMES = ["ann", "bob", "cyd", "dee", "eve", "fay"]
EXTRA = {"eve": [3, -3, 3, -3, 3], "fay": [-9, 0, 9, 0, -9]}


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 6), st.data())
def test_any_dropouts_and_unmaskers(n: int, data: st.DataObject) -> None:
    """[FED-PRIV.9] [FED-PRIV.5] [FED-PRIV.8] For any keyed set of 2..6, any non-empty set of
    survivors and any subset of them posting unmask blobs: with at least the threshold
    (n // 2 + 1) of unmask blobs the aggregate is exactly the survivors' mean and they are
    the included; with fewer it is the zero vector and nobody is included."""
    names = NAMES[:n]
    survivors = data.draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
    unmaskers = data.draw(st.lists(st.sampled_from(survivors), unique=True))
    updates = {**UPDATES, **EXTRA}
    r = build_round(names, updates, set(names) - set(survivors),
                    silent=set(survivors) - set(unmaskers))
    out = run(r)
    if len(unmaskers) >= threshold(n):
        assert out.error is None
        assert out.aggregate.tolist() == [
            rdiv(sum(updates[s][k] for s in survivors), len(survivors)) for k in range(DIMS)]
        assert len(out.included) == len(survivors)
    else:
        assert out.included == () and out.aggregate.tolist() == [0] * DIMS
