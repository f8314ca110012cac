"""Data blobs: packed deterministically, unpacked bounded and safe [JOB-DATA.2], job.toml's
``[data]`` [JOB-FILE.1]. No Docker: the mounts are tried in test_template.py."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from chain.content import blob_id_of_file
from sandbox.data_blob import DataBlobError, pack_data, unpack_data
from sandbox.errors import JobDirError
from sandbox.eval_env import FIXED_TIME
from sandbox.job_file import JOB_FILE, load_job_file
from sandbox.job_template import init_job
from sandbox.output import MAX_ENTRIES
from tests.framework.template_v2 import make_v2


def _tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "a.csv").write_text("label,x\n1,2\n")
    (root / "sub" / "b.bin").write_bytes(os.urandom(3000))
    return root


def test_job_data_2_packing_is_deterministic_and_round_trips(tmp_path: Path) -> None:
    """[JOB-DATA.2] Same files, same bytes and blob id, whatever their times and modes;
    unpacked: the same content, modes 0644/0755, times 2000-01-01 [EVAL-ENV.4]."""
    src = _tree(tmp_path / "src")
    first = pack_data(src, tmp_path / "1.tar")
    os.utime(src / "a.csv", (1, 1))
    (src / "a.csv").chmod(0o600)
    second = pack_data(src, tmp_path / "2.tar")
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.blob_id == second.blob_id == blob_id_of_file(first.path)
    assert first.size == first.path.stat().st_size and first.files == 2
    out = unpack_data(first.path, tmp_path / "out", first.size)
    assert (out / "a.csv").read_text() == "label,x\n1,2\n"
    assert (out / "sub" / "b.bin").read_bytes() == (src / "sub" / "b.bin").read_bytes()
    for path in (out, out / "sub", out / "a.csv", out / "sub" / "b.bin"):
        st = path.lstat()
        assert stat.S_IMODE(st.st_mode) == (0o755 if path.is_dir() else 0o644)
        assert st.st_mtime == FIXED_TIME
    one = pack_data(src / "a.csv", tmp_path / "one.tar")
    assert sorted(p.name for p in unpack_data(one.path, tmp_path / "one", one.size).iterdir()) \
        == ["a.csv"]


def test_job_data_2_packing_refuses_links(tmp_path: Path) -> None:
    """[JOB-DATA.2] A data folder holds regular files and folders only."""
    src = _tree(tmp_path / "src")
    (src / "link").symlink_to("/etc/passwd")
    with pytest.raises(DataBlobError):
        pack_data(src, tmp_path / "x.tar")
    with pytest.raises(DataBlobError):
        pack_data(src / "link", tmp_path / "y.tar")


def _tar(tmp_path: Path, build: Callable[[tarfile.TarFile], None], fmt: int = tarfile.PAX_FORMAT
         ) -> Path:
    path = tmp_path / "hostile.tar"
    with tarfile.open(path, "w", format=fmt) as tar:
        build(tar)
    return path


def _file(tar: tarfile.TarFile, name: str, data: bytes = b"x") -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _special(kind: bytes, name: str, link: str = "") -> Callable[[tarfile.TarFile], None]:
    def build(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = link
        tar.addfile(info)
    return build


HOSTILE: dict[str, Callable[[tarfile.TarFile], None]] = {
    "symlink": _special(tarfile.SYMTYPE, "data/x", "/etc/passwd"),
    "hardlink": _special(tarfile.LNKTYPE, "data/x", "/etc/passwd"),
    "device": _special(tarfile.CHRTYPE, "data/tty"),
    "fifo": _special(tarfile.FIFOTYPE, "data/fifo"),
    "dotdot": lambda t: _file(t, "data/../escape"),
    "absolute": lambda t: _file(t, "/data/abs"),
    "outside_root": lambda t: _file(t, "other/x"),
    "duplicate": lambda t: (_file(t, "data/a"), _file(t, "data/a")),
    "below_a_file": lambda t: (_file(t, "data/a"), _file(t, "data/a/b")),
    "too_many_entries": lambda t: [_file(t, f"data/{i}", b"") for i in range(MAX_ENTRIES + 1)],
    "long_name": lambda t: _file(t, "data/" + "n" * 300),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_job_data_2_hostile_data_tars_are_refused_and_leave_nothing(tmp_path: Path,
                                                                    case: str) -> None:
    """[JOB-DATA.2] Links, devices, FIFOs, escapes, duplicates, too many entries or too long
    names: the blob is refused and no folder is left behind."""
    blob = _tar(tmp_path, HOSTILE[case])
    with pytest.raises(DataBlobError):
        unpack_data(blob, tmp_path / "out", blob.stat().st_size)
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["hostile.tar"]


def test_job_data_2_content_beyond_the_declared_size_is_never_written(tmp_path: Path) -> None:
    """[JOB-DATA.2] A blob of another size than declared is refused before it is opened; a
    header claiming more than the blob holds fails (the stream is cut at the size)."""
    blob = _tar(tmp_path, lambda t: _file(t, "data/a", b"y" * 5000))
    size = blob.stat().st_size
    with pytest.raises(DataBlobError, match="declared"):
        unpack_data(blob, tmp_path / "out", size - 1)
    raw = bytearray(blob.read_bytes())
    lying = tarfile.TarInfo("data/a")
    lying.size = 10 * size  # the header claims far more than follows
    header = lying.tobuf(format=tarfile.USTAR_FORMAT)
    index = raw.find(b"data/a")
    raw[index:index + 512] = header
    blob.write_bytes(bytes(raw))
    with pytest.raises(DataBlobError):
        unpack_data(blob, tmp_path / "out", size)
    assert not (tmp_path / "out").exists()


def test_job_data_2_compressed_or_garbage_blobs_are_refused(tmp_path: Path) -> None:
    """[JOB-DATA.2] A plain tar only: gzip or random bytes are malformed."""
    import gzip

    plain = _tar(tmp_path, lambda t: _file(t, "data/a"))
    gz = tmp_path / "x.tar.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    junk = tmp_path / "junk"
    junk.write_bytes(os.urandom(20_000))
    for blob in (gz, junk):
        with pytest.raises(DataBlobError):
            unpack_data(blob, tmp_path / "out", blob.stat().st_size)


# -- job.toml [data] ---------------------------------------------------------------------------


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    """The template as a train/v2 job (``job init`` writes a train/v3 one)."""
    init_job(tmp_path / "job")
    make_v2(tmp_path / "job")
    return tmp_path / "job"


def _edit(job_dir: Path, old: str, new: str) -> None:
    path = job_dir / JOB_FILE
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))


def test_job_file_1_template_names_its_data_and_the_paths_resolve(job_dir: Path) -> None:
    """[JOB-FILE.1] The template as train/v2: [data] names train and valid inside the folder."""
    job = load_job_file(job_dir)
    assert job.kind == "train/v2"
    paths = job.data_paths(job_dir)
    assert paths == {"train": job_dir / "data/train.csv", "valid": job_dir / "data/valid.csv"}


@pytest.mark.parametrize("old, new, message", [
    ('valid = "data/valid.csv"', "", "missing required key [data] valid"),
    ('train = "data/train.csv"', 'Train = "data/train.csv"', "bad data role 'Train'"),
    ('train = "data/train.csv"', 'train = "/etc/passwd"', "relative"),
    ('kind = "train/v2"', 'kind = "train/v1"', "[data] is for kind 'train/v2'"),
    ('[data]', '[dta]', "unknown table [dta]; did you mean [data]?"),
])
def test_job_file_2_bad_data_tables_are_named(job_dir: Path, old: str, new: str,
                                              message: str) -> None:
    """[JOB-FILE.2] A missing role, a bad role name, an absolute path, [data] on a v1 job,
    a misspelt table: each an error naming it."""
    _edit(job_dir, old, new)
    with pytest.raises(JobDirError) as caught:
        load_job_file(job_dir)
    assert message in str(caught.value), str(caught.value)


def test_job_file_1_a_data_path_may_not_leave_the_job_folder(job_dir: Path) -> None:
    """[JOB-FILE.1] ``../`` out of the job folder is refused when the paths are resolved."""
    _edit(job_dir, 'train = "data/train.csv"', 'train = "../elsewhere.csv"')
    (job_dir.parent / "elsewhere.csv").write_text("x\n")
    with pytest.raises(ValueError, match="leaves the job folder"):
        load_job_file(job_dir).data_paths(job_dir)
