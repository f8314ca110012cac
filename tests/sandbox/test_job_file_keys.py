"""[JOB-FILE.2] Unknown, misspelt or missing keys of ``job.toml`` are errors that name them.

A misspelt limit used to be refused without a hint, and a misspelt top-level
key (``bountyy``), table (``[limit]``) or search-space field was ignored or
reported as a different key missing. Each case here edits the real template's
``job.toml`` text, as a submitter would, and reads it with ``load_job_file``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.errors import JobDirError
from sandbox.job_file import JOB_FILE, JobKeyError, load_job_file, parse_job
from sandbox.job_template import init_job
from tests.client.cli.test_cli_chain import run


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    init_job(tmp_path / "job")
    return tmp_path / "job"


def edit(job_dir: Path, old: str, new: str) -> Path:
    path = job_dir / JOB_FILE
    text = path.read_text()
    assert text.count(old) == 1, old  # the template still has the line this test edits
    path.write_text(text.replace(old, new))
    return path


def load_error(job_dir: Path) -> str:
    with pytest.raises(JobDirError) as caught:
        load_job_file(job_dir)
    message = str(caught.value)
    assert message.startswith(f"{job_dir / JOB_FILE}: "), message
    assert isinstance(caught.value.__cause__, JobKeyError)
    return message.split(": ", 1)[1]


@pytest.mark.parametrize("old, new, expected", [
    ("memory_mb = 1024", "max_memroy_mb = 1024",
     "unknown key [limits] max_memroy_mb; did you mean memory_mb?"),
    ("cpu_millis = 2000", "cpu_milis = 2000",
     "unknown key [limits] cpu_milis; did you mean cpu_millis?"),
    ("bounty = 100", "bountyy = 100", "unknown key bountyy; did you mean bounty?"),
    ("loss_tolerance = 1e-4", "loss_tolerence = 1e-4",
     "unknown key loss_tolerence; did you mean loss_tolerance?"),
    ('kind = "choice"', 'knid = "choice"',
     "unknown key [[search_space]] #2 ('hidden_size') knid; did you mean kind?"),
])
def test_job_file_2_misspelt_key_is_named_with_its_table_and_the_closest_key(
        job_dir: Path, old: str, new: str, expected: str) -> None:
    edit(job_dir, old, new)
    assert load_error(job_dir).startswith(expected)


@pytest.mark.parametrize("old, new, expected", [
    ("[limits]", "[limit]", "unknown table [limit]; did you mean [limits]?"),
    ("[entry_points]", "[entrypoints]",
     "unknown table [entrypoints]; did you mean [entry_points]?"),
    ("[[search_space]]", "[[search_spaces]]",
     "unknown array of tables [[search_spaces]]; did you mean [[search_space]]?"),
    ("[limits]", "[gpu]\ncount = 1\n[limits]", "unknown table [gpu] (tables: "),
])
def test_job_file_2_unknown_table_is_named(job_dir: Path, old: str, new: str,
                                           expected: str) -> None:
    text = (job_dir / JOB_FILE).read_text().replace(old, new, 1)
    (job_dir / JOB_FILE).write_text(text)
    assert load_error(job_dir).startswith(expected)


@pytest.mark.parametrize("old, expected", [
    ("bounty = 100", "missing required key bounty"),
    ('name = "digits-mlp"', "missing required key name"),
    ("time_s = 120", "missing required key [limits] time_s"),
    ("values = [32, 64, 128]", "missing required key [[search_space]] #2 ('hidden_size') values"),
])
def test_job_file_2_missing_required_key_is_named(job_dir: Path, old: str,
                                                  expected: str) -> None:
    line = next(x for x in (job_dir / JOB_FILE).read_text().splitlines() if x.startswith(old))
    edit(job_dir, line + "\n", "")
    assert load_error(job_dir) == expected


def test_job_file_2_key_in_the_wrong_table_says_where_it_belongs(job_dir: Path) -> None:
    """TOML puts every key after ``[limits]`` into that table: a top-level key appended at
    the end of the file lands in the last table, and a limit above the first table lands
    at the top level. Both say where the key belongs."""
    path = job_dir / JOB_FILE
    template = path.read_text()
    path.write_text(template + 'description = "appended"\n')
    assert load_error(job_dir) == ("unknown key [[search_space]] #3 ('epochs') description "
                                   "(it belongs at the top level, before the first [table])")
    path.write_text("memory_mb = 512\n" + template)
    assert load_error(job_dir) == "unknown key memory_mb (memory_mb belongs in [limits])"


def test_job_file_2_unknown_key_without_a_close_one_lists_the_valid_ones(job_dir: Path) -> None:
    edit(job_dir, "model_mb = 4", "tpu = 1")
    assert load_error(job_dir) == ("unknown key [limits] tpu (valid: memory_mb, cpu_millis, "
                                   "time_s, disk_mb, model_mb, image_mb, image_unpacked_mb, "
                                   "gpu_count, gpu_memory_mb)")


def test_job_file_2_the_error_carries_the_key_its_table_and_the_suggestion(
        job_dir: Path) -> None:
    import tomllib

    raw = tomllib.loads((job_dir / JOB_FILE).read_text())
    raw["limits"]["disk_bm"] = raw["limits"].pop("disk_mb")
    with pytest.raises(JobKeyError) as caught:
        parse_job(raw)
    assert (caught.value.table, caught.value.key, caught.value.suggestion) == \
        ("[limits]", "disk_bm", "disk_mb")
    assert isinstance(caught.value, ValueError)  # callers that catch ValueError still do


def test_job_file_2_the_template_has_no_unknown_key(job_dir: Path) -> None:
    """The positive control: the template itself, every key of it known, still loads."""
    job = load_job_file(job_dir)
    assert job.name == "digits-mlp" and job.declared.memory_mb == 1024


def test_job_file_2_submit_prints_the_misspelt_key_as_one_error_line(job_dir: Path,
                                                                     tmp_path: Path) -> None:
    """What a submitter sees: ``job submit`` stops before building, on one line."""
    edit(job_dir, "memory_mb = 1024", "max_memroy_mb = 1024")
    result = run(["job", "submit", str(job_dir), "--key", str(tmp_path / "none.key"),
                  "--node", "http://127.0.0.1:9"], code=1)
    assert "unknown key [limits] max_memroy_mb; did you mean memory_mb?" in result.output
