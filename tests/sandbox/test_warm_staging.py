"""[JOB-WARM.7] The copies of a checkpoint that containerd leaves after each restore: a
restore's own copy (its mark), stale copies of ours (the state file's bytes, the age),
what is never ours or not yet stale, and where containerd puts them. The engine tests are
``test_warm.py``'s ``test_job_warm_7_…`` and ``test_job_warm_4_two_runs_…``."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import pytest

from sandbox import warm_staging
from sandbox.warm_staging import (
    RESTORE_MARK,
    STALE_COPY_S,
    STATE_FILE,
    remove_copies,
    staging_parents,
)


def _later() -> float:
    """A moment at which every folder made so far is stale."""
    return time.time() + STALE_COPY_S + 1


def _checkpoint(folder: Path, state: bytes, pages: bytes = b"p" * 1000,
                mark: str | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / STATE_FILE).write_bytes(state)
    (folder / "pages.img").write_bytes(pages)
    if mark is not None:
        (folder / RESTORE_MARK).write_text(mark)
    return folder


def test_job_warm_7_a_restore_removes_its_own_copy_at_once_and_no_other(tmp_path: Path) -> None:
    """Restores of one checkpoint run at once [JOB-WARM.4]: each removes the copy with its
    container's id the moment the engine answers, and leaves the copies of the others,
    which may still be read, until they are stale."""
    ours = _checkpoint(tmp_path / "cache" / "lc-warm", b"sandbox state " * 100)
    staging = tmp_path / "tmp"
    mine = _checkpoint(staging / "ctrd-checkpoint111", b"sandbox state " * 100, mark="c1")
    theirs = _checkpoint(staging / "ctrd-checkpoint222", b"sandbox state " * 100, mark="c2")
    unmarked = _checkpoint(staging / "ctrd-checkpoint333", b"sandbox state " * 100)
    prefix = _checkpoint(staging / "ctrd-checkpoint444", b"sandbox state " * 100, mark="c1x")

    assert remove_copies(ours, [staging], mark="c1") == [mine]
    for kept in (theirs, unmarked, prefix, ours):
        assert kept.is_dir(), kept
    assert remove_copies(ours, [staging], mark="c2") == [theirs]
    assert remove_copies(ours, [staging]) == []  # the rest are fresh: maybe being read
    assert sorted(remove_copies(ours, [staging], now=_later())) == [unmarked, prefix]
    assert (ours / "pages.img").read_bytes() == b"p" * 1000


def test_job_warm_7_only_copies_of_this_checkpoint_are_removed(tmp_path: Path) -> None:
    ours = _checkpoint(tmp_path / "cache" / "lc-warm", b"sandbox state " * 100)
    staging = tmp_path / "tmp"
    copy_a = _checkpoint(staging / "ctrd-checkpoint111", b"sandbox state " * 100)
    copy_b = _checkpoint(staging / "ctrd-checkpoint222", b"sandbox state " * 100, b"")
    same_size = _checkpoint(staging / "ctrd-checkpoint333", b"sandbox stat! " * 100)
    other_size = _checkpoint(staging / "ctrd-checkpoint444", b"another checkpoint")
    no_state = staging / "ctrd-checkpoint555"
    no_state.mkdir()
    not_containerd = _checkpoint(staging / "my-checkpoint", b"sandbox state " * 100)

    removed = remove_copies(ours, [staging, tmp_path / "missing"], now=_later())

    assert sorted(removed) == [copy_a, copy_b]
    assert not copy_a.exists() and not copy_b.exists()
    for kept in (same_size, other_size, no_state, not_containerd, ours):
        assert kept.is_dir(), kept
    assert (ours / "pages.img").read_bytes() == b"p" * 1000
    assert remove_copies(ours, [staging], now=_later()) == []  # nothing left of ours


def test_job_warm_7_a_checkpoint_without_its_state_file_removes_nothing(tmp_path: Path) -> None:
    staging = tmp_path / "tmp"
    copy = _checkpoint(staging / "ctrd-checkpoint1", b"state")
    empty = tmp_path / "lc-warm"
    empty.mkdir()
    assert remove_copies(empty, [staging], now=_later()) == [] and copy.is_dir()


def test_job_warm_7_a_folder_that_cannot_be_removed_is_named_and_left(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    ours = _checkpoint(tmp_path / "lc-warm", b"state")
    copy = _checkpoint(tmp_path / "tmp" / "ctrd-checkpoint9", b"state")

    def refuse(path: Path) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(shutil, "rmtree", refuse)
    with caplog.at_level(logging.WARNING, logger=warm_staging.__name__):
        assert remove_copies(ours, [tmp_path / "tmp"], now=_later()) == []
    assert copy.is_dir()
    assert str(copy) in caplog.text and "remove it as root" in caplog.text


def _process(proc: Path, pid: int, comm: str, environ: dict[str, str] | None) -> None:
    entry = proc / str(pid)
    entry.mkdir(parents=True)
    (entry / "comm").write_text(comm + "\n")
    if environ is not None:
        (entry / "environ").write_bytes(b"".join(f"{k}={v}".encode() + b"\0"
                                                for k, v in environ.items()))


def test_job_warm_7_containerds_choice_of_folder(tmp_path: Path) -> None:
    """As Go's ``os.MkdirTemp(os.Getenv("XDG_RUNTIME_DIR"), …)`` (containerd 1.5 on) and
    ``os.MkdirTemp("", …)`` (before): that variable and ``TMPDIR``, else ``/tmp``; each
    folder once; other processes ignored."""
    proc = tmp_path / "proc"
    _process(proc, 10, "containerd", {"PATH": "/bin"})
    _process(proc, 11, "containerd", {"TMPDIR": "/srv/tmp", "PATH": "/bin"})
    _process(proc, 12, "containerd", {"TMPDIR": "/srv/tmp", "XDG_RUNTIME_DIR": "/run/user/0"})
    _process(proc, 16, "containerd", {"XDG_RUNTIME_DIR": "/run/user/1000"})
    _process(proc, 13, "containerd", {"TMPDIR": "/srv/tmp"})
    _process(proc, 14, "dockerd", {"TMPDIR": "/elsewhere"})
    _process(proc, 15, "containerd", None)  # environ unreadable (another user's)
    (proc / "self").mkdir()
    assert sorted(staging_parents(proc)) == sorted(
        [Path("/tmp"), Path("/srv/tmp"), Path("/run/user/0"), Path("/run/user/1000")])


def test_job_warm_7_no_containerd_readable_means_tmp(tmp_path: Path) -> None:
    assert staging_parents(tmp_path / "no-proc") == [Path("/tmp")]
    _process(tmp_path / "proc", 20, "bash", {"TMPDIR": "/x"})
    assert staging_parents(tmp_path / "proc") == [Path("/tmp")]
