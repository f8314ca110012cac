"""The build-context fingerprint that keeps `job submit` from posting a stale image (issue 15).

Pure file-system checks; the Docker path (build, edit, submit, rebuilt) is
``tests/client/cli/test_cli_job_docker.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

from sandbox.job_sources import Recorded, changed_files, job_sources, read_record, why_rebuild


def job_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "job"
    (folder / "data").mkdir(parents=True)
    (folder / "Dockerfile").write_text("FROM scratch\n")
    (folder / "train").write_text("print('train')\n")
    (folder / "data" / "train.csv").write_text("a,b\n1,2\n")
    (folder / ".dockerignore").write_text("holdout\n")
    (folder / "holdout").mkdir()
    (folder / "holdout" / "test.csv").write_text("x\n")
    return folder


def test_an_edit_a_mode_change_or_a_new_file_changes_the_fingerprint(tmp_path: Path) -> None:
    folder = job_folder(tmp_path)
    before = job_sources(folder)
    (folder / "train").write_text("print('changed')\n")
    edited = job_sources(folder)
    assert edited.digest != before.digest and changed_files(before, edited) == ["train"]
    (folder / "train").chmod(0o755)
    moded = job_sources(folder)
    assert moded.files["train"].endswith("+x") and changed_files(edited, moded) == ["train"]
    (folder / "data" / "extra.csv").write_text("1\n")
    assert changed_files(moded, job_sources(folder)) == ["data/extra.csv"]


def test_ignored_files_and_image_json_do_not_count(tmp_path: Path) -> None:
    """What docker does not send (.dockerignore) and the record itself are not sources."""
    folder = job_folder(tmp_path)
    before = job_sources(folder)
    (folder / "holdout" / "test.csv").write_text("changed\n")
    (folder / "image.json").write_text("{}\n")
    assert job_sources(folder).digest == before.digest
    assert "holdout/test.csv" not in before.files and "image.json" not in before.files


def test_why_rebuild_names_the_reason(tmp_path: Path) -> None:
    folder = job_folder(tmp_path)
    current = job_sources(folder)
    image = "sha256:" + "ab" * 32
    assert why_rebuild(None, current, False) == "no image built yet"
    assert "no longer in the engine" in str(why_rebuild(Recorded(image, "t", current), current,
                                                        False))
    assert why_rebuild(Recorded(image, "t", current), current, True) is None
    older = Recorded(image, "t", None)  # an image.json written before sources were recorded
    assert "does not say which sources" in str(why_rebuild(older, current, True))
    (folder / "train").write_text("print('changed')\n")
    reason = why_rebuild(Recorded(image, "t", current), job_sources(folder), True)
    assert reason is not None and "(train); rebuilding" in reason


def test_a_damaged_image_json_reads_as_no_record(tmp_path: Path) -> None:
    folder = job_folder(tmp_path)
    for text in ("not json", "[]", json.dumps({"image_id": 5})):
        (folder / "image.json").write_text(text)
        assert read_record(folder) is None
    (folder / "image.json").write_text(json.dumps({"image_id": "sha256:" + "cd" * 32,
                                                   "sources": {"digest": 7}}))
    record = read_record(folder)
    assert record is not None and record.sources is None
