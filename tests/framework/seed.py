"""Every random choice a test makes comes from one logged seed; ``LC_SEED`` re-runs it.

Why: a failure that depends on which peer was picked, which account sent what,
or in which order gossip arrived is only debuggable if the same choices can be
made again. As bitcoin's functional tests log ``--randomseed``, each test case
gets a seed (``LC_SEED`` when set, otherwise a fresh one), the module-level
``random`` generator is seeded with it, it is printed with the test's output,
and a failure report ends with the command that re-runs the case.

Helpers that need their own generator (a node's gossip, a bank client) take
``rng(label)``: a ``random.Random`` derived from the case seed and the label,
so adding one generator does not shift the numbers another one draws.
"""

from __future__ import annotations

import os
import random
import secrets

SEED_ENV = "LC_SEED"
_current: int | None = None


def choose_seed() -> int:
    """``LC_SEED`` when set (to re-run a case), otherwise a fresh 32-bit seed."""
    raw = os.environ.get(SEED_ENV)
    if raw is None or raw == "":
        return secrets.randbits(32)
    try:
        return int(raw, 0)
    except ValueError:
        raise ValueError(f"{SEED_ENV}={raw!r} is not an integer") from None


def begin_case(seed: int) -> None:
    """Makes ``seed`` the current case's seed and seeds the module-level generator."""
    global _current
    _current = seed
    random.seed(seed)


def end_case() -> None:
    global _current
    _current = None


def current_seed() -> int:
    """The seed of the test case running now (tests/conftest.py sets one for every case)."""
    if _current is None:
        raise RuntimeError("no test case seed: use the `seed` fixture (tests/conftest.py)")
    return _current


def rng(label: str = "") -> random.Random:
    """A generator of its own for ``label``, determined by the case seed.

    ``random.Random`` seeds a ``str`` through SHA-512, so this is stable across runs
    and Python processes (unlike ``hash()``)."""
    return random.Random(f"{current_seed()}:{label}")


def rerun_hint(seed: int, nodeid: str) -> str:
    return f"{SEED_ENV}={seed} pytest '{nodeid}'"
