"""Issue 30 §5: small deviations from the spec, each refused now.

- [JOB-FILE.6] a ``[python]`` package name with a trailing newline (``$`` matched
  before it); the same full-match now guards every ``^...$`` name check in sandbox/.
- [JOB-DATA.2] a GNU or pax sparse file in a data blob (tarfile counts it as regular).
- [JOB-JSON.4] a duplicate key in ``privacy.json`` (it was last-wins).
"""

from __future__ import annotations

import io
import tarfile
import tomllib
from pathlib import Path

import pytest

from sandbox.data_blob import DataBlobError, unpack_data
from sandbox.image_blob import normalize_image_id
from sandbox.job_file import JOB_FILE, parse_job
from sandbox.job_json import JobJsonError, parse_metrics
from sandbox.job_template import init_job
from sandbox.output import OutputRejected, extract_output
from sandbox.privacy_report import PrivacyReportError, parse_privacy
from sandbox.progress import ProgressError, parse_progress


def _template_raw(tmp_path: Path) -> dict[str, object]:
    init_job(tmp_path / "job")
    return tomllib.loads((tmp_path / "job" / JOB_FILE).read_text())


@pytest.mark.parametrize("name", ["torch\n", "numpy\n", "scipy\r\n", " torch", "torch "])
def test_job_file_6_a_package_name_with_a_newline_is_refused(tmp_path: Path,
                                                             name: str) -> None:
    raw = _template_raw(tmp_path)
    raw["python"] = {"packages": [name]}
    with pytest.raises(ValueError, match="is not a distribution name"):
        parse_job(raw)


def test_job_file_6_a_plain_package_name_still_passes_the_name_check(tmp_path: Path) -> None:
    raw = _template_raw(tmp_path)
    raw["python"] = {"packages": ["some-dist.name_2"]}
    assert parse_job(raw).packages == ("some-dist.name_2",)


def test_names_checked_by_regex_refuse_a_trailing_newline() -> None:
    """The same ``$`` slip elsewhere: an image id, a metric name, a progress metric."""
    good = "sha256:" + "a" * 64
    assert normalize_image_id(good) == good
    with pytest.raises(ValueError):
        normalize_image_id(good + "\n")
    with pytest.raises(JobJsonError):
        parse_metrics(b'{"loss": 1.0, "acc\\n": 2.0}')
    with pytest.raises(ProgressError):
        parse_progress(b'{"fraction": 0.5, "step": 1, "metric_name": "loss\\n"}')


def _sparse_blob(fmt: int) -> bytes:
    """A data blob holding one sparse file, written as GNU tar or tar's pax 1.0 does."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        folder = tarfile.TarInfo("data")
        folder.type = tarfile.DIRTYPE
        archive.addfile(folder)
    data = bytearray(buffer.getvalue()[:512])  # the folder's header, no end blocks
    if fmt == tarfile.GNU_FORMAT:
        info = tarfile.TarInfo("data/holes.bin")
        info.type = tarfile.GNUTYPE_SPARSE
        info.size = 512
        header = bytearray(info.tobuf(format=tarfile.GNU_FORMAT))
        # GNU sparse map at offset 386: one (offset, numbytes) pair, then realsize at 483
        header[386:398] = b"%011o\0" % 0
        header[398:410] = b"%011o\0" % 512
        header[483:495] = b"%011o\0" % (1 << 20)
        header[148:156] = b"        "
        header[148:156] = b"%06o\0 " % sum(header[:512])
        data += header[:512] + b"x" * 512
    else:
        info = tarfile.TarInfo("data/holes.bin")
        info.size = 512
        info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                            "GNU.sparse.name": "data/holes.bin",
                            "GNU.sparse.realsize": str(1 << 20)}
        block = b"1\n0\n512\n".ljust(512, b"\0")
        info.size = 512 + 512
        data += info.tobuf(format=tarfile.PAX_FORMAT) + block + b"x" * 512
    return bytes(data + b"\0" * 1024)


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_job_data_2_a_sparse_file_refuses_the_blob(tmp_path: Path, fmt: int) -> None:
    blob = _sparse_blob(fmt)
    with tarfile.open(fileobj=io.BytesIO(blob)) as archive:
        members = list(archive)
    assert members[-1].issparse() and members[-1].isreg()  # what tarfile would unpack
    with pytest.raises(OutputRejected, match="sparse"):
        extract_output([blob], tmp_path / "unpacked", 1 << 21, root="data")
    assert not (tmp_path / "unpacked" / "holes.bin").exists()
    # through the worker's unpacking: a DataBlobError, which the worker treats as permanent
    (tmp_path / "blob.tar").write_bytes(blob)
    with pytest.raises(DataBlobError, match="sparse"):
        unpack_data(tmp_path / "blob.tar", tmp_path / "data-folder", len(blob))
    assert not (tmp_path / "data-folder").exists()


GOOD = ('{"mechanism": "dp-sgd", "accountant": "rdp", "noise_multiplier": 1.1, '
        '"max_grad_norm": 1.0, "sample_rate": 0.1, "steps": 10, "delta": 1e-5, '
        '"epsilon": 2.0}')


def test_job_json_4_a_duplicate_key_in_privacy_json_is_refused() -> None:
    assert parse_privacy(GOOD.encode()).epsilon == 2.0
    twice = GOOD[:-1] + ', "epsilon": 0.1}'
    with pytest.raises(PrivacyReportError, match=r"JOB-JSON\.4"):
        parse_privacy(twice.encode())
