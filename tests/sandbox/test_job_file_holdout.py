"""[JOB-FILE.4] A train/v3 job.toml: ``[holdout]`` names the evaluation pool and its terms.

Each case edits the real template's ``job.toml`` text into a v3 file, as a submitter
would, and reads it with ``load_job_file``: a typo is named with the closest key, a
``[data] valid`` is refused (the pool's public part is the validation data), and the
parsed terms are what the chain's ``Holdout`` needs once the pool is committed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chain.train.holdout.split import public_count
from sandbox.errors import JobDirError
from sandbox.holdout_config import HoldoutConfig, HoldoutTerms, duration_ms
from sandbox.holdout_pool import make_pool
from sandbox.job_file import JOB_FILE, JobKeyError, load_job_file
from sandbox.job_template import init_job
from tests.framework.template_v2 import make_v2

HOLDOUT = """
[holdout]
pool = "holdout/samples"
public_permille = 400
finalists = 3
deposit = 50
reveal_window = "10m"
tie_tolerance = 0.002
"""


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    """The template turned into a train/v3 job with a pool of 20 shard files."""
    job = tmp_path / "job"
    init_job(job)
    make_v2(job)  # the template's own [holdout] out of the way: this test writes its own
    path = job / JOB_FILE
    text = path.read_text()
    text = text.replace('kind = "train/v2"', 'kind = "train/v3"')
    text = text.replace('valid = "data/valid.csv"', "")
    path.write_text(text + HOLDOUT)
    samples = job / "holdout" / "samples"
    samples.mkdir(parents=True)
    rows = (job / "data" / "valid.csv").read_text().splitlines()
    for k in range(20):
        (samples / f"valid-{k:02d}.csv").write_text("\n".join(rows[k::20]) + "\n")
    return job


def edit(job_dir: Path, old: str, new: str) -> None:
    path = job_dir / JOB_FILE
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))


def load_error(job_dir: Path) -> Exception:
    with pytest.raises(JobDirError) as caught:
        load_job_file(job_dir)
    assert str(caught.value).startswith(f"{job_dir / JOB_FILE}: ")
    assert caught.value.__cause__ is not None
    return caught.value.__cause__


def test_job_file_4_a_v3_file_gives_the_holdout_terms(job_dir: Path) -> None:
    """[JOB-FILE.4] Parsed values, the pool folder checked, and with the committed pool's
    root and size the terms in the chain's field order."""
    job = load_job_file(job_dir)
    assert job.kind == "train/v3"
    assert job.data == (("train", "data/train.csv"),)
    assert job.holdout == HoldoutConfig(pool="holdout/samples", public_permille=400,
                                        finalists=3, deposit=50, reveal_window_ms=600_000,
                                        tie_tolerance=0.002)
    folder = job.holdout.pool_path(job_dir)
    secret = make_pool(folder)
    terms = job.holdout.terms(secret.root, secret.pool)
    assert terms == HoldoutTerms(secret.root, 20, 400, 3, 50, 600_000, 0.002)
    assert public_count(terms.pool, terms.public_permille) == 8


@pytest.mark.parametrize("old, new, expected", [
    ("public_permille = 400", "public_permile = 400",
     "unknown key [holdout] public_permile; did you mean public_permille?"),
    ("reveal_window = \"10m\"", "reveal_windw = \"10m\"",
     "unknown key [holdout] reveal_windw; did you mean reveal_window?"),
    ("tie_tolerance = 0.002", "tie_tolerence = 0.002",
     "unknown key [holdout] tie_tolerence; did you mean tie_tolerance?"),
    ("finalists = 3\n", "", "missing required key [holdout] finalists"),
    ("[holdout]", "[holdouts]", "unknown table [holdouts]; did you mean [holdout]?"),
])
def test_job_file_4_holdout_typos_are_named(job_dir: Path, old: str, new: str,
                                            expected: str) -> None:
    """[JOB-FILE.4] [JOB-FILE.2] A typo in [holdout] never leaves a default in force."""
    edit(job_dir, old, new)
    error = load_error(job_dir)
    assert isinstance(error, JobKeyError)
    assert str(error).startswith(expected), str(error)


def test_job_file_4_a_holdout_key_at_the_top_level_says_where_it_belongs(
        job_dir: Path) -> None:
    """[JOB-FILE.4] ``finalists`` written before the first table is named with its table."""
    edit(job_dir, "expiry_s = 3600", "expiry_s = 3600\nfinalists = 3")
    error = load_error(job_dir)
    assert str(error) == "unknown key finalists (finalists belongs in [holdout])"


@pytest.mark.parametrize("old, new, expected", [
    ("public_permille = 400", "public_permille = 0",
     "public_permille must be a whole number > 0, got 0"),
    ("public_permille = 400", "public_permille = 1000", "must be 1..999, got 1000"),
    ("finalists = 3", "finalists = 0", "finalists must be a whole number > 0, got 0"),
    ("finalists = 3", "finalists = 2.5", "finalists must be a whole number > 0, got 2.5"),
    ("deposit = 50", "deposit = true", "deposit must be a whole number > 0, got True"),
    ("reveal_window = \"10m\"", "reveal_window = \"soon\"", "reveal_window must be a duration"),
    ("reveal_window = \"10m\"", "reveal_window = \"0s\"", "must be a positive duration"),
    ("tie_tolerance = 0.002", "tie_tolerance = -0.1", "tie_tolerance must be a finite"),
    ("tie_tolerance = 0.002", "tie_tolerance = nan", "tie_tolerance must be a finite"),
    ("pool = \"holdout/samples\"", "pool = \"/etc\"", "pool must be a folder relative"),
    ('train = "data/train.csv"', 'train = "data/train.csv"\nvalid = "data/valid.csv"',
     "[data] valid: a train/v3 job's validation data is the public part"),
])
def test_job_file_4_bad_holdout_values_are_refused(job_dir: Path, old: str, new: str,
                                                   expected: str) -> None:
    """[JOB-FILE.4] Out-of-range or mistyped values, and a ``[data] valid`` in a v3 job."""
    edit(job_dir, old, new)
    assert expected in str(load_error(job_dir))


def test_job_file_4_holdout_only_in_v3_and_required_there(job_dir: Path) -> None:
    """[JOB-FILE.4] [holdout] in a v2 file is an error; a v3 file without it is too."""
    edit(job_dir, 'kind = "train/v3"', 'kind = "train/v2"')
    edit(job_dir, 'train = "data/train.csv"', 'train = "data/train.csv"\nvalid = "x.csv"')
    assert "[holdout] is for kind 'train/v3' jobs" in str(load_error(job_dir))
    edit(job_dir, 'kind = "train/v2"', 'kind = "train/v3"')
    edit(job_dir, 'valid = "x.csv"', "")
    text = (job_dir / JOB_FILE).read_text()
    (job_dir / JOB_FILE).write_text(text[:text.index("[holdout]")])
    error = load_error(job_dir)
    assert isinstance(error, JobKeyError)
    assert str(error).startswith("missing required key [holdout]")


def test_job_file_4_the_pool_folder_must_lie_inside_the_job(job_dir: Path,
                                                            tmp_path: Path) -> None:
    """[JOB-FILE.4] ``pool`` may not leave the job folder, and must exist; both parts need
    a sample for the pool's size."""
    (tmp_path / "outside").mkdir()
    edit(job_dir, 'pool = "holdout/samples"', 'pool = "../outside"')
    job = load_job_file(job_dir)
    assert job.holdout is not None
    with pytest.raises(ValueError, match="leaves the job folder"):
        job.holdout.pool_path(job_dir)
    edit(job_dir, 'pool = "../outside"', 'pool = "nowhere"')
    job = load_job_file(job_dir)
    assert job.holdout is not None
    with pytest.raises(ValueError, match="no such folder"):
        job.holdout.pool_path(job_dir)
    with pytest.raises(ValueError, match="makes 0 public: both parts need a sample"):
        job.holdout.terms(b"\0" * 32, 2)


@pytest.mark.parametrize("text, ms", [("90s", 90_000), ("10m", 600_000), ("2h", 7_200_000),
                                      ("1d", 86_400_000), ("1500ms", 1500), (30, 30_000),
                                      ("1.5s", 1500)])
def test_job_file_4_reveal_window_reads_like_the_cli_durations(text: object, ms: int) -> None:
    """[JOB-FILE.4] The same spellings as the CLI's duration options."""
    assert duration_ms(text, "reveal_window") == ms
