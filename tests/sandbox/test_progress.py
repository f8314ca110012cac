"""The progress file [JOB-PROGRESS.*] against hostile content, and its vectors.

The file is written by the job's untrusted code: these tests feed the parser and the
file reader what a hostile job could write (a huge file, garbage, NaN, negative values,
a symbolic link, a FIFO, duplicate keys, deep nesting) and check each is refused with
the rule it broke, never raised past the reader. ``protocol_spec/vectors/progress.json``
lists the accepted and refused cases for a second implementation; regenerate with
``LC_WRITE_VECTORS=1``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from sandbox.errors import SandboxError
from sandbox.progress import (
    MAX_PROGRESS_BYTES,
    Progress,
    ProgressError,
    parse_progress,
    read_progress_file,
)
from tests.ledger.vector_files import check_vector_file

ACCEPTED: list[tuple[str, bytes]] = [
    ("minimal", b'{"fraction": 0, "step": 0}'),
    ("template", b'{"fraction": 0.35, "step": 7, "metric": 0.4123, '
                 b'"metric_name": "train_loss", "checkpoint_step": 7}'),
    ("done", b'{"fraction": 1, "step": 20, "metric": null}'),
    ("negative metric", b'{"fraction": 0.5, "step": 3, "metric": -12.5, "metric_name": "ll"}'),
    ("largest step", b'{"fraction": 1.0, "step": 9007199254740992}'),
    ("older checkpoint", b'{"fraction": 0.9, "step": 9, "checkpoint_step": 8}'),
]

REFUSED: list[tuple[str, bytes, str]] = [
    ("empty", b"", "JOB-JSON.0"),
    ("garbage", b"\x89PNG\r\n\x1a\n garbage", "JOB-JSON.1"),
    ("not json", b"fraction=0.5", "JOB-JSON.0"),
    ("over 1 KiB", b'{"fraction": 0.5, "step": 1, "metric_name": "' + b"a" * 1100 + b'"}',
     "JOB-JSON.1"),
    ("NaN fraction", b'{"fraction": NaN, "step": 1}', "JOB-JSON.3"),
    ("Infinity metric", b'{"fraction": 0.5, "step": 1, "metric": Infinity}', "JOB-JSON.3"),
    ("huge number", b'{"fraction": 0.5, "step": 1' + b"0" * 400 + b"}", "JOB-JSON.3"),
    ("duplicate key", b'{"fraction": 0.1, "fraction": 0.9, "step": 1}', "JOB-JSON.4"),
    ("nested", b'{"fraction": 0.5, "step": 1, "metric": [1]}', "JOB-JSON.2"),
    ("an array", b"[0.5, 1]", "JOB-PROGRESS.3"),
    ("a number", b"0.5", "JOB-PROGRESS.3"),
    ("negative fraction", b'{"fraction": -0.1, "step": 1}', "JOB-PROGRESS.3"),
    ("fraction over 1", b'{"fraction": 1.5, "step": 1}', "JOB-PROGRESS.3"),
    ("fraction a string", b'{"fraction": "50%", "step": 1}', "JOB-PROGRESS.3"),
    ("fraction a bool", b'{"fraction": true, "step": 1}', "JOB-PROGRESS.3"),
    ("no fraction", b'{"step": 1}', "JOB-PROGRESS.3"),
    ("no step", b'{"fraction": 0.5}', "JOB-PROGRESS.3"),
    ("negative step", b'{"fraction": 0.5, "step": -1}', "JOB-PROGRESS.3"),
    ("fractional step", b'{"fraction": 0.5, "step": 1.5}', "JOB-PROGRESS.3"),
    ("step past 2**53", b'{"fraction": 0.5, "step": 9007199254740993}', "JOB-PROGRESS.3"),
    ("unknown key", b'{"fraction": 0.5, "step": 1, "eta": 3}', "JOB-PROGRESS.3"),
    ("metric a string", b'{"fraction": 0.5, "step": 1, "metric": "low"}', "JOB-PROGRESS.3"),
    ("metric name with escapes", b'{"fraction": 0.5, "step": 1, "metric_name": "\\u001b[31m"}',
     "JOB-PROGRESS.3"),
    ("checkpoint after step", b'{"fraction": 0.5, "step": 1, "checkpoint_step": 2}',
     "JOB-PROGRESS.3"),
]


def build_vectors() -> dict[str, Any]:
    accepted = []
    for name, data in ACCEPTED:
        accepted.append({"name": name, "file": data.decode(),
                         "progress": parse_progress(data).to_json()})
    refused = []
    for name, data, _rule in REFUSED:
        with pytest.raises(ProgressError) as caught:
            parse_progress(data)
        refused.append({"name": name, "file_hex": data.hex(), "rule": caught.value.rule})
    return {"about": "progress.json files [JOB-PROGRESS.2-3]: accepted with what they mean, "
                     "refused with the rule they break", "max_bytes": MAX_PROGRESS_BYTES,
            "accepted": accepted, "refused": refused}


def test_progress_vectors_match_the_committed_file() -> None:
    """[JOB-PROGRESS.2] [JOB-PROGRESS.3] Accepted and refused progress files, recomputed,
    equal protocol_spec/vectors/progress.json byte for byte."""
    check_vector_file("progress.json", build_vectors())


@pytest.mark.parametrize(("name", "data", "rule"), REFUSED, ids=[r[0] for r in REFUSED])
def test_hostile_progress_is_refused_with_its_rule(name: str, data: bytes, rule: str) -> None:
    """[JOB-PROGRESS.2] [JOB-PROGRESS.3] Each hostile file raises only ``ProgressError``
    (a SandboxError) naming the rule it broke."""
    with pytest.raises(ProgressError) as caught:
        parse_progress(data)
    assert caught.value.rule == rule, (name, str(caught.value))
    assert isinstance(caught.value, SandboxError)


def test_accepted_progress_means_what_it_says() -> None:
    """[JOB-PROGRESS.3] The template's file parses to its values; null metric is no metric."""
    assert parse_progress(ACCEPTED[1][1]) == Progress(0.35, 7, 0.4123, "train_loss", 7)
    assert parse_progress(ACCEPTED[2][1]).metric is None


def test_reader_refuses_a_huge_file_without_reading_it(tmp_path: Path) -> None:
    """[JOB-PROGRESS.2] [JOB-PROGRESS.4] A 64 MiB sparse file is refused from its size."""
    path = tmp_path / "progress.json"
    with open(path, "wb") as f:
        f.truncate(64 * 1024 * 1024)
    progress, why = read_progress_file(path)
    assert progress is None and "JOB-PROGRESS.2" in why and "67108864 bytes" in why


def test_reader_refuses_a_symlink_without_following_it(tmp_path: Path) -> None:
    """[JOB-PROGRESS.4] A link to a valid file is refused: never followed."""
    good = tmp_path / "elsewhere.json"
    good.write_bytes(b'{"fraction": 0.5, "step": 1}')
    link = tmp_path / "progress.json"
    link.symlink_to(good)
    progress, why = read_progress_file(link)
    assert progress is None and "JOB-PROGRESS.4" in why


def test_reader_refuses_a_fifo_and_a_folder_without_blocking(tmp_path: Path) -> None:
    """[JOB-PROGRESS.4] A FIFO (nobody writes it) and a folder are not regular files."""
    fifo = tmp_path / "progress.json"
    os.mkfifo(fifo)
    progress, why = read_progress_file(fifo)
    assert progress is None and "not a regular file" in why
    folder = tmp_path / "d" / "progress.json"
    folder.mkdir(parents=True)
    assert read_progress_file(folder)[0] is None


def test_reader_never_raises_on_garbage_and_reads_a_good_file(tmp_path: Path) -> None:
    """[JOB-PROGRESS.4] Garbage gives None and a line naming the rule; a good file parses;
    a missing file is 'not yet', not an error."""
    path = tmp_path / "progress.json"
    assert read_progress_file(path) == (None, "no progress.json yet")
    path.write_bytes(os.urandom(900))
    progress, why = read_progress_file(path)
    assert progress is None and why.startswith("progress.json: [JOB-")
    path.write_bytes(b'{"fraction": 0.25, "step": 5, "metric": 1.5, "metric_name": "loss"}')
    assert read_progress_file(path) == (Progress(0.25, 5, 1.5, "loss", None), "")


def test_checkpoint_folder_is_carved_out_of_the_disk_limit() -> None:
    """[JOB-CHECKPOINT.1] ⌊disk_mb/4⌋ MiB, taken from /output's share: scratch + checkpoint +
    output stay within disk_mb; under 4 MiB of disk there is no checkpoint folder."""
    from sandbox.checkpoints import train_split
    from sandbox.limits import MIB, ResourceLimits

    limits = ResourceLimits.from_job(1024, 2000, 120, 64, 4)
    split, size = train_split(limits, 64)
    assert size == 16 * MIB and split.output_bytes == 32 * MIB and split.tmp_bytes == 16 * MIB
    assert split.tmp_bytes + size + split.output_bytes == 64 * MIB
    assert split.model_bytes == 4 * MIB
    tiny = ResourceLimits.from_job(1024, 2000, 120, 3, 3)
    assert train_split(tiny, 3) == (tiny, 0)
    five = ResourceLimits.from_job(1024, 2000, 120, 5, 5)
    split, size = train_split(five, 5)
    assert size == MIB and split.output_bytes == 3 * MIB and split.model_bytes == 3 * MIB


def test_only_a_complete_kept_copy_counts_and_time_spent_is_counted(tmp_path: Path) -> None:
    """[JOB-CHECKPOINT.2] [JOB-CHECKPOINT.4] A copy without meta.json (a crash mid-copy) or
    with a broken one is passed over for the older complete one; a resumed run's wall limit
    is time_s minus the seconds spent up to its checkpoint, none when under 1 s is left."""
    from sandbox.checkpoints import KeptCheckpoint, kept_checkpoint, resumed_wall_time

    assert kept_checkpoint(tmp_path / "none") is None
    for name, meta in (("v3", '{"step": 3, "seconds": 12.5}'), ("v5", None),
                       ("v9", '{"step": "x"}'), (".new-1", '{"step": 7, "seconds": 1}')):
        (tmp_path / name / "files").mkdir(parents=True)
        if meta is not None:
            (tmp_path / name / "meta.json").write_text(meta)
    assert kept_checkpoint(tmp_path) == KeptCheckpoint(tmp_path / "v3" / "files", 3, 12.5)
    kept = KeptCheckpoint(tmp_path, 3, 100.0)
    assert resumed_wall_time(120.0, None) == 120.0
    assert resumed_wall_time(120.0, kept) == 20.0
    assert resumed_wall_time(100.5, kept) is None
