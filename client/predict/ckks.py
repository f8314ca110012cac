"""Requester side of encrypted predictions: keys, encryption, decryption [PRED-CKKS.1].

The requester keeps the secret context; the input blob carries only its public copy and
the column-packed ciphertexts (sandbox/ckks_eval.py explains the packing). Decryption of
the executors' agreed scores blob gives one score per row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tenseal as ts

from chain.encoding import encode
from chain.predict.params import MAX_CKKS_FEATURES
from sandbox.ckks_eval import BATCH_FORMAT, MAX_CKKS_ROWS, scores_ciphertext

POLY_MODULUS_DEGREE = 8192
COEFF_MOD_BIT_SIZES = (60, 40, 40, 60)
GLOBAL_SCALE = 2**40
"""[PRED-CKKS.1] ~128-bit security (SEAL's table for degree 8192 allows 218 bits of modulus;
these use 200); one multiplication level, which w·x + b needs; 40-bit scale for about
6 decimal digits of precision after the product."""


@dataclass(frozen=True)
class CkksKeys:
    """The requester's secret context (never leaves the requester)."""

    context: ts.Context

    @classmethod
    def generate(cls) -> CkksKeys:
        ctx = ts.context(ts.SCHEME_TYPE.CKKS, POLY_MODULUS_DEGREE,
                         coeff_mod_bit_sizes=list(COEFF_MOD_BIT_SIZES))
        ctx.global_scale = GLOBAL_SCALE
        return cls(ctx)

    def public_bytes(self) -> bytes:
        """The context without its secret key: what executors receive."""
        public = self.context.copy()
        public.make_context_public()
        return bytes(public.serialize())

    def encrypt_batch(self, rows: np.ndarray) -> bytes:
        """The input blob for ``rows`` [n, features]: column j encrypted as one ciphertext."""
        x = np.asarray(rows, dtype=np.float64)
        if x.ndim != 2 or not 1 <= x.shape[0] <= MAX_CKKS_ROWS \
                or not 1 <= x.shape[1] <= MAX_CKKS_FEATURES or not np.isfinite(x).all():
            raise ValueError(f"rows must be finite [1..{MAX_CKKS_ROWS}, "
                             f"1..{MAX_CKKS_FEATURES}], got {x.shape}")
        cts = [bytes(ts.ckks_vector(self.context, x[:, j].tolist()).serialize())
               for j in range(x.shape[1])]
        return encode([BATCH_FORMAT, self.public_bytes(), int(x.shape[0]), cts])

    def decrypt_scores(self, scores_blob: bytes, rows: int) -> np.ndarray:
        """The first ``rows`` decrypted scores of an executor's scores blob."""
        vector = ts.ckks_vector_from(self.context, scores_ciphertext(scores_blob))
        return np.asarray(vector.decrypt()[:rows], dtype=np.float64)
