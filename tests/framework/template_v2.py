"""The template job as it was before issue 16 (train/v2), for tests of train/v2 itself.

``job init`` writes a train/v3 job: its validation rows are a hidden-test-set pool of
CSV shards. A test of the plain train/v2 path (``[data] valid`` posted as one blob,
[JOB-DATA.*]) turns that folder back into a v2 job: the shards joined into
``data/valid.csv`` (header once), ``[holdout]`` removed, ``valid`` named in ``[data]``.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

V2_DATA = '[data]\ntrain = "data/train.csv"\nvalid = "data/valid.csv"\n'


def v2_job_toml(text: str) -> str:
    """The template's job.toml text as a train/v2 job's."""
    text = text.replace('kind = "train/v3"', 'kind = "train/v2"', 1)
    text = re.sub(r"(?ms)^(# [^\n]*\n)*\[holdout\]\n.*?(?=^\[)", "", text, count=1)
    text, count = re.subn(r'(?m)^\[data\][^\n]*\ntrain = [^\n]*\n', V2_DATA, text, count=1)
    assert count == 1 and "[holdout]" not in text and 'kind = "train/v2"' in text, text
    return text


def valid_rows(job_dir: Path) -> list[str]:
    """The template's validation rows (the pool's shards in name order), header first."""
    header = ""
    rows: list[str] = []
    for shard in sorted((job_dir / "holdout" / "pool").iterdir()):
        lines = shard.read_text().splitlines()
        header, rows = lines[0], rows + lines[1:]
    return [header, *rows]


def make_v2(job_dir: Path) -> Path:
    """Turn a ``job init`` folder into the train/v2 template job; gives data/valid.csv."""
    valid = job_dir / "data" / "valid.csv"
    valid.write_text("\n".join(valid_rows(job_dir)) + "\n")
    valid.chmod(0o644)
    shutil.rmtree(job_dir / "holdout" / "pool")
    toml = job_dir / "job.toml"
    toml.write_text(v2_job_toml(toml.read_text()))
    return valid
