"""Private mode's masked sums and seed shares, tried to break [FED-PRIV.*].

The masks cancel exactly with any set of survivors and dropouts; a wrong or
missing seed is caught; a single masked update is a pad of the update; a seed
split with threshold t is rebuilt from any t shares and not from fewer.
"""

from __future__ import annotations

import hashlib
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.federated.errors import BlobError, FederatedError
from chain.federated.fixed import Q_MAX
from chain.federated.private.masking import (
    RING,
    MaskedBlob,
    from_ring,
    mask,
    mask_update,
    private_aggregate,
    to_ring,
    unmask_sum,
)
from chain.federated.private.shamir import PRIME, recover, split
from chain.federated.robust import trimmed_mean

JOB = hashlib.sha256(b"private job").digest()
seeds = st.binary(min_size=32, max_size=32)


def h(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def pair_seed(a: bytes, b: bytes) -> bytes:
    lo, hi = sorted((a, b))
    return h(f"pair {lo.hex()} {hi.hex()}")


def masked_round(updates: dict[bytes, tuple[int, ...]], dropped: set[bytes],
                 rnd: int = 1) -> tuple[dict[bytes, tuple[int, ...]], dict[bytes, bytes],
                                        dict[bytes, dict[bytes, bytes]]]:
    everyone = sorted(updates)
    masked = {a: mask_update(updates[a], a, h(f"self {a.hex()}"),
                             {b: pair_seed(a, b) for b in everyone if b != a}, JOB, rnd)
              for a in everyone if a not in dropped}
    selfs = {a: h(f"self {a.hex()}") for a in masked}
    lost = {d: {a: pair_seed(a, d) for a in masked} for d in dropped}
    return masked, selfs, lost


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(*[st.integers(-Q_MAX, Q_MAX)] * 3), min_size=2, max_size=6),
       st.data())
def test_masks_cancel_to_the_exact_sum_with_dropouts(ups: list[tuple[int, ...]],
                                                     data: st.DataObject) -> None:
    """[FED-PRIV.3] [FED-PRIV.4] With any participants dropped after the masks were made
    (at least one survivor), the unmasked sum is exactly the survivors' sum and the private
    aggregate is their plain mean [FED-AGG.2]."""
    addrs = [bytes([i + 1]) * 20 for i in range(len(ups))]
    updates = dict(zip(addrs, ups, strict=True))
    dropped = set(data.draw(st.lists(st.sampled_from(addrs), max_size=len(addrs) - 1,
                                     unique=True)))
    masked, selfs, lost = masked_round(updates, dropped)
    total = unmask_sum(masked, selfs, lost, JOB, 1, 3)
    survivors = [updates[a] for a in sorted(masked)]
    assert total == tuple(sum(col) for col in zip(*survivors, strict=True))
    assert private_aggregate(total, len(survivors)) == trimmed_mean(survivors, 0)


def test_a_wrong_or_missing_seed_is_caught() -> None:
    """[FED-PRIV.4] A wrong self seed, a missing pair seed of a dropped participant, a
    dropped participant that also sent, or a missing self seed: bad_unmask."""
    updates = {bytes([i]) * 20: (i, -i, 1000 * i) for i in range(1, 5)}
    gone = bytes([4]) * 20
    masked, selfs, lost = masked_round(updates, {gone})
    first = bytes([1]) * 20
    cases = [
        (masked, {**selfs, first: h("wrong")}, lost),
        (masked, selfs, {gone: {a: s for a, s in lost[gone].items() if a != first}}),
        (masked, selfs, {}),
        (masked, {a: s for a, s in selfs.items() if a != first}, lost),
        ({**masked, gone: masked[first]}, {**selfs, gone: h("x")}, lost),
    ]
    for m, s, d in cases:
        with pytest.raises(FederatedError) as e:
            unmask_sum(m, s, d, JOB, 1, 3)
        assert e.value.code == "bad_unmask"


def test_a_masked_update_is_a_pad_of_the_update() -> None:
    """[FED-PRIV.3] [FED-PRIV.2] Masked updates of two different updates under the same
    seeds differ by exactly their difference (a shift by a pseudorandom pad); the masked
    words look uniform (top bits balanced) whether the update is zero or large, and no
    plaintext coordinate appears among them; another round or job gives other masks."""
    me, other = b"\x01" * 20, b"\x02" * 20
    x = tuple(range(-1000, 1000))
    z = (0,) * 2000
    mx = mask_update(x, me, h("s"), {other: h("p")}, JOB, 1)
    mz = mask_update(z, me, h("s"), {other: h("p")}, JOB, 1)
    assert all((a - b) % RING == to_ring(v) for a, b, v in zip(mx, mz, x, strict=True))
    for words in (mx, mz):
        top = sum(w >> 63 for w in words)
        assert 900 < top < 1100
    assert not {to_ring(v) for v in x} & set(mx)
    assert mask("pair", h("p"), JOB, 2, 8) != mask("pair", h("p"), JOB, 1, 8)
    assert mask("pair", h("p"), h("other job"), 1, 8) != mask("pair", h("p"), JOB, 1, 8)
    assert mask("self", h("p"), JOB, 1, 8) != mask("pair", h("p"), JOB, 1, 8)
    for bad in (("both", h("p"), JOB, 1, 8), ("pair", b"short", JOB, 1, 8),
                ("pair", h("p"), JOB, 1, 0)):
        with pytest.raises(FederatedError):
            mask(*bad)
    with pytest.raises(FederatedError):
        mask_update((1,), me, h("s"), {me: h("p")}, JOB, 1)


def test_ring_values_are_twos_complement() -> None:
    """[FED-PRIV.1] to_ring/from_ring are inverse on signed 64-bit values."""
    for v in (0, 1, -1, Q_MAX, -Q_MAX, (1 << 63) - 1, -(1 << 63)):
        assert from_ring(to_ring(v)) == v and 0 <= to_ring(v) < RING


def test_masked_blob_round_trips_and_is_strict() -> None:
    """[FED-PRIV.1] 68-byte header with magic LCFX, then uint64 words: exact length, and
    a wrong magic, header field or length is refused."""
    blob = MaskedBlob(JOB, 3, b"\x05" * 20, 16, (0, RING - 1, 12345))
    raw = blob.to_bytes()
    assert len(raw) == 68 + 24 and MaskedBlob.from_bytes(raw) == blob
    for bad, code in ((b"LCFU" + raw[4:], "bad_magic"), (raw[:-1], "bad_length"),
                      (raw[:4] + b"\x02" + raw[5:], "bad_header"), (raw[:50], "truncated"),
                      (raw[:40] + bytes(4) + raw[44:], "bad_header")):
        with pytest.raises(BlobError) as e:
            MaskedBlob.from_bytes(bad)
        assert e.value.code == code


@settings(max_examples=40, deadline=None)
@given(seeds, st.integers(1, 6), st.integers(0, 3), st.data())
def test_any_t_shares_rebuild_the_seed(seed: bytes, t: int, extra: int,
                                       data: st.DataObject) -> None:
    """[FED-PRIV.5] Split with threshold t among n = t + extra: every t-subset of the
    shares (in any order) rebuilds the seed."""
    n = t + extra
    coeffs = data.draw(st.lists(st.integers(0, PRIME - 1), min_size=t - 1, max_size=t - 1))
    shares = split(seed, coeffs, n)
    for subset in itertools.islice(itertools.combinations(shares, t), 20):
        assert recover(list(reversed(subset)), t) == seed


def test_fewer_or_bad_shares_do_not_rebuild() -> None:
    """[FED-PRIV.5] t - 1 shares are refused; a tampered share rebuilds no seed (refused,
    or a different seed that unmasking rejects); duplicate x and bad parameters are
    refused."""
    seed = h("secret")
    shares = split(seed, [h("c1")[0] + 7, 123456789], 5)
    with pytest.raises(FederatedError):
        recover(shares[:2], 3)
    tampered = [shares[0], shares[1], (shares[2][0], (shares[2][1] + 1) % PRIME)]
    try:
        assert recover(tampered, 3) != seed
    except FederatedError as e:
        assert e.code == "bad_share"
    with pytest.raises(FederatedError):
        recover([shares[0], shares[0], shares[1]], 3)
    for args in ((b"short", [], 3), (seed, [1, 2, 3], 3), (seed, [PRIME], 3)):
        with pytest.raises(FederatedError):
            split(*args)


def test_a_dropout_is_recovered_from_shares() -> None:
    """[FED-PRIV.4] [FED-PRIV.5] Five participants, threshold 3: one drops after masking;
    three survivors' shares rebuild its pair seeds, and the sum of the four survivors'
    updates comes out exactly."""
    addrs = [bytes([i]) * 20 for i in range(1, 6)]
    updates = {a: (i * 1000, -i, 7) for i, a in enumerate(addrs)}
    gone = addrs[2]
    masked, selfs, _ = masked_round(updates, {gone})
    shared = {a: split(pair_seed(a, gone), [11 * i + 1, 13 * i + 2], 5)
              for i, a in enumerate(addrs) if a != gone}
    rebuilt = {a: recover([s for k, s in enumerate(shares) if k in (0, 3, 4)], 3)
               for a, shares in shared.items()}
    total = unmask_sum(masked, selfs, {gone: rebuilt}, JOB, 1, 3)
    assert total == tuple(sum(updates[a][j] for a in addrs if a != gone) for j in range(3))
