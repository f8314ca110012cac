"""Every bench's quick mode and last line, the same way in each script.

- ``--quick`` (or ``LC_BENCH_QUICK=1`` in the environment): small sizes and few
  repetitions, a few seconds of work, so that CI runs every bench and none rots
  (tests/test_bench_quick.py). The figures are printed all the same; they only mean
  less. Options given explicitly still win over the quick defaults.
- The last line is one JSON object whose keys are the script's ``JSON_KEYS``: quick or
  full, the same keys, so whatever reads the full run's line reads the quick one's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

QUICK_ENV = "LC_BENCH_QUICK"


def quick_requested(argv: Sequence[str] | None = None) -> bool:
    """``--quick`` among the arguments, or ``LC_BENCH_QUICK`` set to anything but 0."""
    args = sys.argv[1:] if argv is None else argv
    return "--quick" in args or os.environ.get(QUICK_ENV, "") not in ("", "0")


def parse_args(parser: argparse.ArgumentParser, quick: dict[str, Any],
               argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Adds ``--quick`` to ``parser``; in quick mode its defaults become ``quick``."""
    parser.add_argument("--quick", action="store_true",
                        help=f"small sizes, few repetitions: a few seconds (also {QUICK_ENV}=1)"
                             f"; quick defaults: {quick}")
    is_quick = quick_requested(argv)
    if is_quick:
        parser.set_defaults(**quick)
    args = parser.parse_args(argv)
    args.quick = is_quick
    return args


class KeysMismatch(SystemExit):
    """The last line would not carry the documented keys."""


def emit(result: dict[str, Any], keys: Sequence[str], *, sort_keys: bool = False) -> None:
    """Prints ``result`` as the last line, after checking its keys are exactly ``keys``."""
    missing = sorted(set(keys) - set(result))
    extra = sorted(set(result) - set(keys))
    if missing or extra:
        raise KeysMismatch(f"bench result keys differ from JSON_KEYS: missing {missing}, "
                           f"not documented {extra}")
    print(json.dumps(result, sort_keys=sort_keys), flush=True)
