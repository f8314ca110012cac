"""Fixed-point numbers of federated jobs [FED-QUANT.1-4].

A model or update coordinate is an integer ``q`` standing for ``q / 2**scale_bits``.
Every rule divides with one rounding, ``rdiv`` (nearest, ties to even), and every
vector coordinate stays in ``[-Q_MAX, Q_MAX]``: the range of a little-endian int32
without ``-2**31``, so negating any coordinate (a sign flip) never leaves the range.
Python ints never overflow; the widths a second implementation needs are in
protocol_spec/federated.md [FED-QUANT.4] and ``WIDTHS`` below.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from fractions import Fraction

from chain.federated.errors import FederatedError

Q_MAX = (1 << 31) - 1
"""[FED-QUANT.3] Largest magnitude of any coordinate; ``-2**31`` is not a valid coordinate."""
SCALE_BITS_MIN = 8
SCALE_BITS_MAX = 24
"""[FED-QUANT.1] A job's scale is ``2**scale_bits`` with scale_bits in 8..24 (2**16: a step
of 1.5e-5 and a range of ±32768; 2**20: 9.5e-7 and ±2048)."""
MAX_DIMS = 1 << 24
"""[FED-QUANT.4] At most 16,777,216 coordinates per model (a 64 MiB blob)."""
MAX_ROUND_PARTICIPANTS = 256
"""[FED-QUANT.4] At most 256 updates enter one round's aggregate."""

WIDTHS: dict[str, int] = {
    "coordinate": 32,          # |v| <= 2**31 - 1
    "coordinate_sum": 40,      # sum of 256 coordinates: < 2**39, signed
    "square_norm": 86,         # sum of 2**24 squares of < 2**31: < 2**86, unsigned
    "dot": 87,                 # |sum of 2**24 products| < 2**86, signed
    "norm_product": 172,       # square_norm * square_norm < 2**172, unsigned (one per update)
    "trust_quotient": 204,     # 2**32 * dot**2 < 2**204, unsigned (one per update)
    "norm_factor_quotient": 150,  # 2**64 * square_norm < 2**150, unsigned (one per update)
    "norm_factor": 75,         # floor(2**32 * |g0| / |gi|) < 2**75 (|gi|**2 >= 1), unsigned
    "scaled_coordinate": 107,  # |v| * factor < 2**106, signed
    "weighted_sum": 56,        # 256 * 2**16 * (2**31 - 1) < 2**55, signed
    "krum_distance": 88,       # [FED-AGG.9] 2**24 * (2 * (2**31 - 1))**2 < 2**88, unsigned
    "krum_score": 96,          # [FED-AGG.9] sum of <= 254 distances < 2**96, unsigned
    "reward_product": 127,     # amount (< 2**63) * weight (< 2**64), unsigned
}
"""[FED-QUANT.4] Bits (with sign where signed) each intermediate needs at the bounds of
``MAX_DIMS`` and ``MAX_ROUND_PARTICIPANTS``: a C implementation uses int64 for sums,
(u)int128 for norms, dot products and scaled coordinates, and a bignum (or 256-bit
integers) for the two per-update quotients."""


def rdiv(n: int, d: int) -> int:
    """[FED-QUANT.2] ``n / d`` rounded to the nearest integer, ties to the even one.

    The one rounding of every rule. Why ties to even: it is symmetric
    (``rdiv(-n, d) == -rdiv(n, d)``, so a sign-flipped update aggregates to exactly the
    negated result) and unbiased over many divisions, and it is IEEE-754's and numpy
    ``rint``'s default, so a float reference computation agrees on ties."""
    if d <= 0:
        raise FederatedError("bad_divisor", f"rdiv needs a positive divisor, got {d}", d=d)
    q, r = divmod(n, d)  # floor division: 0 <= r < d
    twice = 2 * r
    if twice > d or (twice == d and q & 1):
        return q + 1
    return q


def clamp(v: int) -> int:
    """[FED-QUANT.3] Saturate to ``[-Q_MAX, Q_MAX]``."""
    return Q_MAX if v > Q_MAX else -Q_MAX if v < -Q_MAX else v


def check_scale_bits(scale_bits: int) -> int:
    if isinstance(scale_bits, bool) or not isinstance(scale_bits, int) \
            or not SCALE_BITS_MIN <= scale_bits <= SCALE_BITS_MAX:
        raise FederatedError("bad_scale", f"scale_bits must be an int in "
                             f"{SCALE_BITS_MIN}..{SCALE_BITS_MAX}, got {scale_bits!r}",
                             scale_bits=scale_bits)
    return scale_bits


def quantise(x: int | float | Fraction, scale_bits: int) -> int:
    """[FED-QUANT.2] The coordinate of the real ``x``: ``clamp(rdiv(x * 2**s))`` computed on
    the exact value of ``x`` (a float64 is converted exactly, never multiplied in floating
    point). NaN and infinities are refused: an update that holds one is broken, not large.

    For a finite float64 this equals ``clip(numpy.rint(x * 2.0**s), -Q_MAX, Q_MAX)``
    (multiplying by a power of two is exact, ``rint`` rounds ties to even), which is how a
    participant quantises a million coordinates quickly."""
    check_scale_bits(scale_bits)
    if isinstance(x, float) and not math.isfinite(x):
        raise FederatedError("not_finite", f"cannot quantise {x!r}", value=x)
    if isinstance(x, bool) or not isinstance(x, int | float | Fraction):
        raise FederatedError("bad_value", f"cannot quantise {type(x).__name__}", value=x)
    exact = Fraction(x) * (1 << scale_bits)
    return clamp(rdiv(exact.numerator, exact.denominator))


def quantise_vector(xs: Iterable[int | float | Fraction], scale_bits: int) -> tuple[int, ...]:
    return tuple(quantise(x, scale_bits) for x in xs)


def dequantise(q: int, scale_bits: int) -> Fraction:
    """The exact real a coordinate stands for: ``q / 2**scale_bits``."""
    check_scale_bits(scale_bits)
    return Fraction(q, 1 << scale_bits)


def check_vector(v: Iterable[int], name: str, dims: int | None = None) -> tuple[int, ...]:
    """[FED-QUANT.3] A vector every rule accepts: ints in ``[-Q_MAX, Q_MAX]``, 1..MAX_DIMS of
    them (``dims`` of them when given)."""
    out = tuple(v)
    if not 1 <= len(out) <= MAX_DIMS or (dims is not None and len(out) != dims):
        raise FederatedError("bad_dims", f"{name} has {len(out)} coordinates, expected "
                             f"{dims if dims is not None else f'1..{MAX_DIMS}'}",
                             name=name, dims=len(out), expected=dims)
    for j, x in enumerate(out):
        if isinstance(x, bool) or not isinstance(x, int) or not -Q_MAX <= x <= Q_MAX:
            raise FederatedError("bad_coordinate", f"{name}[{j}] = {x!r} is not an int in "
                                 f"[-{Q_MAX}, {Q_MAX}]", name=name, index=j, value=x)
    return out
