"""An executor's answer: its commitment and its output hash [PRED-ANSWER.1] [PRED-ANSWER.2].

Commit first, reveal after the commit window: an executor that has not run the model
cannot copy an answer it has not seen, and cannot copy a commitment either, because the
commitment binds the executor's own address.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from chain.encoding import INT_MIN, encode
from chain.errors import FieldError
from chain.predict.params import MAX_INLINE_VALUES
from chain.types import DOMAIN, Address, Hash32

SALT_LEN = 32
INT64_MAX = 2**63 - 1


def answer_commitment(request_id: bytes, executor: Address, output_hash: bytes,
                      salt: bytes) -> Hash32:
    """[PRED-ANSWER.1] ``SHA-256(encode([domain, "predict-commitment", request_id, executor,
    output_hash, salt]))``; ``salt`` is 32 bytes."""
    if len(salt) != SALT_LEN:
        raise FieldError("salt", f"{SALT_LEN} bytes", salt)
    return Hash32(hashlib.sha256(encode([DOMAIN, "predict-commitment", request_id, executor,
                                         output_hash, salt])).digest())


def check_values(values: Sequence[int], expected: int) -> tuple[int, ...]:
    """[PRED-ANSWER.2] A ``values`` answer: exactly rows × outputs signed 64-bit integers
    (at most 4096), row-major."""
    if len(values) != expected or expected > MAX_INLINE_VALUES:
        raise FieldError("values", f"{expected} values (at most {MAX_INLINE_VALUES})",
                         f"{len(values)} values")
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, int) or not INT_MIN <= v <= INT64_MAX:
            raise FieldError(f"values[{i}]", "int64", v)
    return tuple(values)


def values_hash(values: Sequence[int]) -> Hash32:
    """[PRED-ANSWER.2] The output hash of a ``values`` answer:
    ``SHA-256(encode([domain, "predict-values", values]))``."""
    return Hash32(hashlib.sha256(encode([DOMAIN, "predict-values", list(values)])).digest())
