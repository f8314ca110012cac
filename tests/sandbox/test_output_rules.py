"""Output extraction rules without Docker [JOB-OUT.1-4], [JOB-EXIT.5].

The archive is what a job's image's ``tar`` printed: anything. Each case is
refused as the job's fault (``OutputRejected``) before the host's own
limits are reached; the host writes nothing beyond the declared caps.
"""

from __future__ import annotations

import errno
import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.output import (
    MAX_ENTRIES,
    ArchiveSourceBroken,
    OutputHostError,
    OutputRejected,
    extract_output,
)


def _archive(entries: list[tuple[str, bytes | None, bytes]]) -> bytes:
    """(name, data or None for a folder, type) entries under ``output/``."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data, kind in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            if data is not None:
                info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def _chunks(data: bytes, size: int = 10_000) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


def _extract(tmp_path: Path, data: bytes, cap: int = 1 << 20,
             file_caps: dict[str, int] | None = None) -> None:
    dest = tmp_path / "dest"
    dest.mkdir(exist_ok=True)
    extract_output(_chunks(data), dest, cap, file_caps)


REG, DIR, FIFO = tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.FIFOTYPE


@pytest.mark.parametrize(("entries", "words"), [
    ([("output/" + "/".join(["d" * 200] * 40) + "/leaf", b"x", REG)], "deep"),
    ([("output/" + "/".join(["d" * 250] * 20) + "/leaf", b"x", REG)], "longer than 1024"),
    ([("output/" + "n" * 300, b"x", REG)], "longer than 255"),
    ([("output/model.pt", b"a", REG), ("output/model.pt", b"b", REG)], "twice"),
    ([("output/a", b"a", REG), ("output/a/b", b"b", REG)], "below a file"),
    ([("output/a", b"a", REG), ("output/a", None, DIR)], "both a file and a folder"),
    ([("output/p", b"", FIFO)], "not a regular file"),
    ([("../output/x", b"", REG)], "outside"),
    ([("etc/passwd", b"", REG)], "outside"),
])
def test_job_out_2_3_entries_the_host_must_not_take_are_the_jobs_fault(
        tmp_path: Path, entries: list[tuple[str, bytes | None, bytes]], words: str) -> None:
    with pytest.raises(OutputRejected, match=words) as refused:
        _extract(tmp_path, _archive(entries))
    assert refused.value.reason == "bad_entry"


def test_job_out_3_too_many_entries(tmp_path: Path) -> None:
    entries = [(f"output/f{i}", b"", REG) for i in range(MAX_ENTRIES + 1)]
    with pytest.raises(OutputRejected, match="more than 4096 entries"):
        _extract(tmp_path, _archive(entries))


@pytest.mark.parametrize("data", [b"", b"garbage" * 1000, _archive([("output/m", b"x" * 5000,
                                                                      REG)])[:1500]])
def test_job_out_2_malformed_or_truncated_archive_is_bad_output(tmp_path: Path,
                                                                 data: bytes) -> None:
    with pytest.raises(OutputRejected) as refused:
        _extract(tmp_path, data)
    assert refused.value.reason == "bad_entry"


def test_job_out_4_caps_are_checked_from_the_header_before_writing(tmp_path: Path) -> None:
    data = _archive([("output/model.pt", b"m" * 100_000, REG)])
    with pytest.raises(OutputRejected) as refused:
        _extract(tmp_path, data, file_caps={"model.pt": 99_999})
    assert (refused.value.reason, refused.value.name) == ("file_too_large", "model.pt")
    assert not (tmp_path / "dest" / "model.pt").exists()
    with pytest.raises(OutputRejected) as whole:
        _extract(tmp_path, data, cap=50_000)
    assert whole.value.reason == "too_large"
    assert not (tmp_path / "dest" / "model.pt").exists()


@pytest.mark.parametrize("kind", [tarfile.XHDTYPE, tarfile.GNUTYPE_LONGNAME])
def test_job_out_3_a_huge_metadata_header_is_refused_before_it_is_read(
        tmp_path: Path, kind: bytes) -> None:
    """tarfile reads a pax or long-name header into memory whole: 1 GiB of it is refused."""
    read = 0

    def endless() -> Iterator[bytes]:
        nonlocal read
        header = tarfile.TarInfo("output/x")
        header.type = kind
        header.size = 1 << 30
        yield header.tobuf(format=tarfile.GNU_FORMAT)
        while True:
            read += 65536
            yield b"\0" * 65536

    with pytest.raises(OutputRejected, match="metadata header"):
        extract_output(endless(), tmp_path, 1 << 30)
    assert read < 1 << 20


def test_job_out_1_good_output_is_extracted(tmp_path: Path) -> None:
    data = _archive([("output", None, DIR), ("output/a", None, DIR),
                     ("output/a/x", b"one", REG), ("output/model.pt", b"m" * 10, REG)])
    dest = tmp_path / "dest"
    dest.mkdir()
    summary = extract_output(_chunks(data, 7), dest, 1000, {"model.pt": 10})
    assert (summary.files, summary.total_bytes) == (2, 13)
    assert (dest / "a" / "x").read_bytes() == b"one"


@pytest.mark.parametrize(("code", "error"), [(errno.ENOSPC, OutputHostError),
                                               (errno.EIO, OutputHostError),
                                               (errno.ENAMETOOLONG, OutputRejected),
                                               (errno.EEXIST, OutputRejected)])
def test_job_exit_5_host_disk_errors_are_the_hosts_name_errors_the_jobs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, error: type) -> None:
    """A fake write failure (the host's disk cannot be filled safely in a test)."""
    from sandbox import output

    def failing(*_args: object) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(output, "_copy_exactly", failing)
    with pytest.raises(error):
        _extract(tmp_path, _archive([("output/model.pt", b"m", REG)]))


def test_job_exit_5_a_broken_engine_stream_is_never_the_jobs_fault(tmp_path: Path) -> None:
    """[JOB-EXIT.5] The engine stopped while the output streamed ('Connection aborted', an
    OSError): the extractor passes it on as ``ArchiveSourceBroken`` for the runner to ask
    the engine, instead of calling it a bad entry (which used up the job's attempt)."""
    good = _archive([("model.pt", b"m" * 1000, tarfile.REGTYPE)])

    def stream() -> Iterator[bytes]:
        yield good[:512]
        raise ArchiveSourceBroken("reading the output from the engine failed: "
                                  "('Connection aborted.', FileNotFoundError(2))")

    with pytest.raises(ArchiveSourceBroken):
        extract_output(stream(), tmp_path / "out", 1 << 20)
