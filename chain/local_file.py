"""A file a user names to a command, read with a size bound and never blocking [NODE-READ.1].

``Path.read_bytes`` trusts the path to be a plain file: on a link to ``/dev/zero`` it reads
until memory runs out, and on a FIFO with no writer its ``open`` never returns. Here the path
is opened with ``O_NONBLOCK`` (so the open of a FIFO returns at once), the *opened* file is
judged with ``fstat`` (what a link points to, after it was followed: no race with a swap
between a ``stat`` and the ``open``), anything but a regular file is refused naming its type,
and at most ``max_bytes + 1`` bytes are read, whatever the file's size says.

Symbolic links are followed: the path is the user's own, on the user's own machine. Every
file a command reads for its user goes through ``read_local_file`` (protocol_spec/node.md
§5c): the genesis of ``node init --genesis FILE`` [NODE-INIT.6], ``model check FILE``, key,
passphrase and input files.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from chain.errors import ChainError

READ_CHUNK = 1024 * 1024
"""Bytes asked of one ``read``: a bound on what one call can return, not on the file."""
MAX_SECRET_FILE_BYTES = 64 * 1024
"""[NODE-READ.1] A key file, passphrase file or raw secret: a few hundred bytes when real."""
MAX_CONFIG_FILE_BYTES = 1024 * 1024
"""[NODE-READ.1] A node's ``config.toml``."""

_KINDS = ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO (named pipe)"),
          (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
          (stat.S_ISSOCK, "socket"), (stat.S_ISLNK, "symbolic link"))


class LocalFileError(ChainError):
    """[NODE-READ.1] A named file that is missing, unreadable, not a regular file, or over
    its bound. ``code`` is ``no_file``, ``unreadable``, ``not_regular_file`` or
    ``file_too_large``; ``kind`` the file's type and ``read`` the bytes read when known."""

    code = "bad_local_file"

    def __init__(self, path: Path | str, message: str, *, code: str, kind: str | None = None,
                 read: int | None = None, bound: int | None = None) -> None:
        super().__init__(f"{path}: {message}", code=code)
        self.path, self.kind, self.read, self.bound = str(path), kind, read, bound


def file_kind(mode: int) -> str:
    """``regular file``, ``directory``, ``FIFO (named pipe)``, ``character device``… of a
    ``st_mode``."""
    if stat.S_ISREG(mode):
        return "regular file"
    return next((name for test, name in _KINDS if test(mode)), f"file of mode {mode:o}")


def _refuse_special(path: Path | str, mode: int, what: str) -> None:
    if not stat.S_ISREG(mode):
        kind = file_kind(mode)
        raise LocalFileError(path, f"is a {kind}, not a regular file: a {what} is read only "
                                   "from a regular file (a FIFO, a device such as /dev/zero, "
                                   "a socket or a directory is refused)",
                             code="not_regular_file", kind=kind)


def read_local_file(path: Path | str, max_bytes: int, *, what: str = "file") -> bytes:
    """[NODE-READ.1] The bytes of the regular file at ``path`` (links followed), at most
    ``max_bytes`` of them; ``LocalFileError`` for anything else, naming the path, its type or
    the bytes read and the bound. ``what`` names the file in messages (``model file``)."""
    try:  # refused before opening when it already is special: some devices act on open
        _refuse_special(path, os.stat(path).st_mode, what)
    except FileNotFoundError:
        raise LocalFileError(path, f"no such {what}", code="no_file") from None
    except OSError as e:
        raise LocalFileError(path, f"cannot read the {what}: {e.strerror}",
                             code="unreadable") from None
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as e:  # swapped since the stat: a socket's open is ENXIO
        raise LocalFileError(path, f"cannot open the {what}: {e.strerror}",
                             code="unreadable") from None
    try:
        info = os.fstat(fd)
        _refuse_special(path, info.st_mode, what)
        return _read_bounded(fd, path, max_bytes, what, info.st_size)
    except OSError as e:
        raise LocalFileError(path, f"cannot read the {what}: {e.strerror}",
                             code="unreadable") from None
    finally:
        os.close(fd)


def read_local_text(path: Path | str, max_bytes: int, *, what: str = "file") -> str:
    """[NODE-READ.1] ``read_local_file`` as UTF-8 text; bytes that are not UTF-8 are refused
    (``not_text``) naming the path and the offset."""
    data = read_local_file(path, max_bytes, what=what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise LocalFileError(path, f"the {what} is not UTF-8 text (byte {e.start}: "
                                   f"{data[e.start:e.start + 4]!r})", code="not_text") from None


def _read_bounded(fd: int, path: Path | str, max_bytes: int, what: str, size: int) -> bytes:
    """At most ``max_bytes + 1`` bytes from ``fd``; over ``max_bytes`` is refused. ``size``
    (what ``fstat`` says) only sizes the first read, so a file read whole is one buffer."""
    chunks: list[bytes] = []
    total = 0
    ask = max(size, 0) + 1
    while total <= max_bytes:
        chunk = os.read(fd, min(ask, max_bytes + 1 - total))
        ask = READ_CHUNK
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    if total > max_bytes:
        raise LocalFileError(path, f"more than {max_bytes} bytes ({total} read before "
                                   f"stopping): a {what} is at most {max_bytes} bytes",
                             code="file_too_large", read=total, bound=max_bytes)
    return b"".join(chunks)
