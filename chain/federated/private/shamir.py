"""Shamir secret sharing of 32-byte seeds for private mode's dropouts [FED-PRIV.5].

A participant shares its self seed and its pair seeds' source among the round's
participants before masking; after the round, a threshold of survivors' shares
rebuilds exactly what unmasking needs (self seeds of survivors, pair seeds of the
dropped) and nothing else. Pure arithmetic over the prime field of 2**521 - 1
(every 256-bit seed is an element); the random coefficients are the caller's.
"""

from __future__ import annotations

from collections.abc import Sequence

from chain.federated.errors import FederatedError

PRIME = (1 << 521) - 1
"""[FED-PRIV.5] The field: the Mersenne prime 2**521 - 1."""
SEED_LEN = 32


def split(seed: bytes, coefficients: Sequence[int], n: int) -> tuple[tuple[int, int], ...]:
    """[FED-PRIV.5] Shares ``(x, f(x))`` for x = 1..n of ``f(x) = s + c_1·x + … +
    c_(t-1)·x^(t-1) mod p`` with s the seed read big-endian and t = len(coefficients) + 1;
    any t shares rebuild the seed, fewer say nothing about it."""
    t = len(coefficients) + 1
    if len(seed) != SEED_LEN or not 1 <= t <= n or any(not 0 <= c < PRIME
                                                       for c in coefficients):
        raise FederatedError("bad_share", "a 32-byte seed, coefficients in the field, "
                             "1 <= threshold <= n", seed_len=len(seed), t=t, n=n)
    poly = (int.from_bytes(seed, "big"), *coefficients)
    return tuple((x, sum(c * pow(x, k, PRIME) for k, c in enumerate(poly)) % PRIME)
                 for x in range(1, n + 1))


def recover(shares: Sequence[tuple[int, int]], threshold: int) -> bytes:
    """[FED-PRIV.5] The seed from ``threshold`` shares with distinct x (Lagrange at 0). Only
    the first ``threshold`` are used; a wrong share gives a wrong seed, which unmasking
    then refuses [FED-PRIV.4] (shares carry no proof of their own)."""
    pts = list(shares)[:threshold]
    xs = [x for x, _ in pts]
    if len(pts) < threshold or len(set(xs)) != len(xs) or any(not 0 < x < PRIME for x in xs):
        raise FederatedError("bad_share", f"need {threshold} shares with distinct x in 1..p-1",
                             xs=xs, threshold=threshold)
    secret = 0
    for i, (xi, yi) in enumerate(pts):
        num, den = 1, 1
        for j, (xj, _) in enumerate(pts):
            if i != j:
                num = num * xj % PRIME
                den = den * (xj - xi) % PRIME
        secret = (secret + yi * num * pow(den, -1, PRIME)) % PRIME
    if secret >> (8 * SEED_LEN):
        raise FederatedError("bad_share", "the shares rebuild no 32-byte seed", xs=xs)
    return secret.to_bytes(SEED_LEN, "big")
