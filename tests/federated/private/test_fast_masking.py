"""Private mode's numpy path and the array decoders equal masking.py and blobs.py
bit for bit [FED-PRIV.1] [FED-PRIV.2] [FED-PRIV.3] [FED-PRIV.4] [FED-QUANT.5].

Ring arithmetic in uint64 must wrap exactly as Python's ``% 2**64``; signed reads,
the unmask bound, dropouts and refused blobs must match; the committed private
round of federated.json goes through the fast path unchanged.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.federated.blobs import UpdateBlob
from chain.federated.errors import BlobError, FederatedError
from chain.federated.fixed import Q_MAX
from chain.federated.private.fast import (
    decode_update,
    mask_update_array,
    mask_words,
    masked_blob_bytes,
    masked_words,
    private_aggregate_array,
    unmask_sum_array,
)
from chain.federated.private.masking import (
    MaskedBlob,
    mask,
    mask_update,
    private_aggregate,
    unmask_sum,
)
from chain.types import Address, Hash32

VECTORS = json.loads((Path(__file__).resolve().parents[3] / "protocol_spec" / "vectors"
                      / "federated.json").read_text())
JOB = hashlib.sha256(b"fast masking job").digest()
coords = st.one_of(st.sampled_from([Q_MAX, -Q_MAX, 0, -1, 1]), st.integers(-Q_MAX, Q_MAX))


def seed(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 6), st.integers(1, 9), st.data())
def test_masked_round_fast_equals_reference(n: int, dims: int, data: st.DataObject) -> None:
    """[FED-PRIV.2] [FED-PRIV.3] [FED-PRIV.4] n participants mask extreme updates, some drop:
    each masked update, the unmasked sum and the aggregate equal the reference's, and
    the sum is the survivors' exact sum (the uint64 wrap is Z/2**64's)."""
    addrs = sorted(hashlib.sha256(bytes([i])).digest()[:20] for i in range(n))
    updates = {a: data.draw(st.lists(coords, min_size=dims, max_size=dims)) for a in addrs}
    pair = {frozenset((a, b)): seed(f"{a.hex()}{b.hex()}") for a in addrs for b in addrs
            if a < b}
    selfs = {a: seed(a.hex()) for a in addrs}
    rnd = data.draw(st.integers(1, 1000))
    dropped_set = set(data.draw(st.lists(st.sampled_from(addrs[1:]), max_size=n - 1,
                                         unique=True)))
    masked_fast, masked_ref = {}, {}
    for a in addrs:
        seeds = {b: pair[frozenset((a, b))] for b in addrs if b != a}
        ref = mask_update(updates[a], a, selfs[a], seeds, JOB, rnd)
        fast = mask_update_array(np.array(updates[a], dtype=np.int64), a, selfs[a], seeds,
                                 JOB, rnd)
        assert tuple(fast.tolist()) == ref
        if a not in dropped_set:
            masked_fast[a], masked_ref[a] = fast, ref
    survivors = sorted(masked_ref)
    dropped = {d: {a: pair[frozenset((a, d))] for a in survivors} for d in dropped_set}
    self_seeds = {a: selfs[a] for a in survivors}
    want = unmask_sum(masked_ref, self_seeds, dropped, JOB, rnd, dims)
    got = unmask_sum_array(masked_fast, self_seeds, dropped, JOB, rnd, dims)
    assert tuple(got.tolist()) == want
    assert want == tuple(sum(updates[a][k] for a in survivors) for k in range(dims))
    assert tuple(private_aggregate_array(got, len(survivors)).tolist()) == \
        private_aggregate(want, len(survivors))


def test_wrong_seed_is_refused_by_both() -> None:
    """[FED-PRIV.4] A wrong self seed leaves random words: both paths refuse with
    bad_unmask, and a masked update of the wrong shape or type is refused."""
    a, b = bytes([1]) * 20, bytes([2]) * 20
    ups = {a: [5, -5, 0, 9], b: [1, 2, 3, 4]}
    masked = {x: mask_update(ups[x], x, seed(x.hex()), {y: seed("ab")}, JOB, 3)
              for x, y in ((a, b), (b, a))}
    wrong = {a: seed(a.hex()), b: seed("not b's")}
    with pytest.raises(FederatedError) as e:
        unmask_sum(masked, wrong, {}, JOB, 3, 4)
    assert e.value.code == "bad_unmask"
    arrays = {x: np.array(w, dtype=np.uint64) for x, w in masked.items()}
    with pytest.raises(FederatedError) as e:
        unmask_sum_array(arrays, wrong, {}, JOB, 3, 4)
    assert e.value.code == "bad_unmask"
    right = {x: seed(x.hex()) for x in (a, b)}
    assert unmask_sum_array(arrays, right, {}, JOB, 3, 4).tolist() == [6, -3, 3, 13]
    with pytest.raises(FederatedError) as e:
        unmask_sum_array({**arrays, a: arrays[a].astype(np.int64)}, right, {}, JOB, 3, 4)
    assert e.value.code == "bad_unmask"


def test_committed_private_vectors_pass_through_the_fast_path() -> None:
    """[FED-PRIV.1] [FED-PRIV.2] [FED-PRIV.3] [FED-PRIV.4] federated.json's mask words, the
    masked round with a dropout (masked words, masked blob, unmasked sum, aggregate) come
    out of the fast path unchanged."""
    m = VECTORS["private"]["mask"]
    words = mask_words(m["kind"], bytes.fromhex(m["seed"]), bytes.fromhex(m["job_id"]),
                       m["round"], len(m["words"]))
    assert [str(w) for w in words.tolist()] == m["words"]
    r = VECTORS["private"]["round"]
    job = bytes.fromhex(r["job_id"])
    who = {p["name"]: p for p in r["participants"]}
    addr = {name: bytes.fromhex(p["address"]) for name, p in who.items()}
    pairs = {frozenset((addr[s["a"]], addr[s["b"]])): bytes.fromhex(s["seed"])
             for s in r["pair_seeds"]}
    masked = {}
    for name, p in who.items():
        seeds = {addr[o]: pairs[frozenset((addr[name], addr[o]))] for o in who if o != name}
        y = mask_update_array(np.array(p["update"], dtype=np.int64), addr[name],
                              bytes.fromhex(p["self_seed"]), seeds, job, r["round"])
        if name in r["masked"]:
            assert [str(w) for w in y.tolist()] == r["masked"][name]
            masked[addr[name]] = y
    blob = masked_blob_bytes(job, r["round"], addr["p1"], 16, masked[addr["p1"]])
    assert blob.hex() == r["masked_blob_p1"]
    assert masked_words(blob).tolist() == list(MaskedBlob.from_bytes(blob).words)
    survivors = sorted(masked)
    dropped = {addr[d]: {a: pairs[frozenset((a, addr[d]))] for a in survivors}
               for d in r["dropped"]}
    total = unmask_sum_array(masked, {a: bytes.fromhex(who[n]["self_seed"])
                                      for n, a in addr.items() if a in masked},
                             dropped, job, r["round"], len(r["unmasked_sum"]))
    assert total.tolist() == r["unmasked_sum"]
    assert private_aggregate_array(total, len(survivors)).tolist() == r["aggregate"]


def test_masked_words_refuses_what_the_reference_refuses() -> None:
    """[FED-PRIV.1] Truncated, wrong magic and wrong length masked blobs: the same codes."""
    good = masked_blob_bytes(JOB, 2, bytes(20), 16, np.arange(3, dtype=np.uint64))
    for bad in (good[:60], b"LCFU" + good[4:], good + b"\0", good[:-1]):
        codes = []
        for decode in (MaskedBlob.from_bytes, masked_words):
            with pytest.raises(BlobError) as e:
                decode(bad)
            codes.append(e.value.code)
        assert codes[0] == codes[1]


def test_decode_update_equals_the_reference_decoder() -> None:
    """[FED-QUANT.5] [FED-QUANT.3] A valid blob decodes to the reference's header and values;
    every refused blob of federated.json (update kind) fails with the code it names, and
    -2**31 is refused at its byte offset."""
    blob = UpdateBlob(Hash32(JOB), 7, Address(bytes([9]) * 20), 20, (Q_MAX, -Q_MAX, 0, -1))
    data = blob.to_bytes()
    got = decode_update(data)
    assert (got.job_id, got.round, got.participant, got.scale_bits) == \
        (blob.job_id, blob.round, blob.participant, blob.scale_bits)
    assert tuple(got.values.tolist()) == blob.values
    low = data[:-4] + (-(1 << 31)).to_bytes(4, "little", signed=True)
    with pytest.raises(BlobError) as e:
        decode_update(low)
    assert (e.value.code, e.value.offset) == ("bad_coordinate", 68 + 12)
    cases = [c for c in VECTORS["quantisation"]["invalid_blobs"] if c["kind"] == "update"]
    assert cases
    for c in cases:
        with pytest.raises(BlobError) as e:
            decode_update(bytes.fromhex(c["hex"]))
        assert e.value.code == c["error"], c["name"]


def test_mask_words_equal_reference_mask() -> None:
    """[FED-PRIV.2] Self and pair masks of several lengths: the array is the reference's
    tuple; a bad kind, seed or length is refused by both."""
    for kind in ("self", "pair"):
        for dims in (1, 2, 17):
            assert tuple(mask_words(kind, seed(kind), JOB, 5, dims).tolist()) == \
                mask(kind, seed(kind), JOB, 5, dims)
    for args in (("other", seed("x"), 1), ("self", b"short", 1), ("pair", seed("x"), 0)):
        for fn in (mask, mask_words):
            with pytest.raises(FederatedError) as e:
                fn(args[0], args[1], JOB, 1, args[2])
            assert e.value.code == "bad_mask"
