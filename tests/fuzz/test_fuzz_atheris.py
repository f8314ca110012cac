"""Runs each atheris target (``atheris_fuzz.py``) for a bounded number of inputs.

Seeded with valid encodings of every object (the hypothesis suite's samples),
so the mutations start from deep inside the formats. ``LC_ATHERIS_RUNS``
sets the inputs per target (CI: 50,000, seconds each; ``make fuzz``: 2,000,000). A failure
leaves the crashing input in ``test-artifacts/atheris/``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz.test_fuzz_decoders import SAMPLES

ROOT = Path(__file__).resolve().parents[2]
RUNS = int(os.environ.get("LC_ATHERIS_RUNS", "50000"))
ARTIFACTS = ROOT / "test-artifacts" / "atheris"


@pytest.mark.parametrize("target", ["canonical", "transaction", "block", "consensus", "frame"])
def test_atheris_target_finds_no_crash(target: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, sample in enumerate(SAMPLES):
        (corpus / f"seed-{i}").write_bytes(sample)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.atheris_fuzz", target, f"-runs={RUNS}",
         "-max_len=8192", "-timeout=10", "-rss_limit_mb=2048", "-seed=1",
         f"-artifact_prefix={ARTIFACTS}/{target}-", str(corpus)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    tail = done.stderr[-3000:]
    assert done.returncode == 0, f"atheris found a problem in {target}:\n{tail}"
    assert f"Done {RUNS} runs" in done.stderr, tail
