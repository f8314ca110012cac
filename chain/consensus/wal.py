"""The write-ahead log of what this validator signed [CONS-WAL.*].

[CONS-WAL.1] Before a signature leaves the process, the signed message is
appended to the log and the file is fsynced. The core enforces the order by
emitting ``PersistSigned`` before the ``Broadcast`` that carries the signature;
the driver completes each action before the next.

[CONS-WAL.2] On restart the log is replayed and handed to the core, which
re-uses any message it already signed for a (height, round, kind) instead of
signing a different one, and restores its lock from its last non-nil precommit.
So a crash at any point never yields two conflicting signatures.

File format: a sequence of records ``len (4 bytes, big-endian) || crc32 (4 bytes)
|| payload``, payload the canonical encoding of ``[message wire, block | nil,
time_ms | nil]``. A record cut short or failing its CRC at the end of the file
is a torn write (the crash hit during the append, so its signature never left)
and is cut off; a bad record followed by more data is corruption and raises
``WalError``: the validator must not start and guess.
"""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from chain.encoding import decode, encode
from chain.errors import DecodeError
from chain.types import TimeMs

from .errors import InvalidMessage, WalError
from .messages import MAX_MESSAGE_BYTES, Proposal, Vote, proposal_from_wire, vote_from_wire

_HEADER = struct.Struct(">II")
MAX_RECORD_BYTES = 2 * MAX_MESSAGE_BYTES


@dataclass(frozen=True, slots=True)
class SignedRecord:
    """One message this validator signed, with the block it locks on, if any."""

    message: Proposal | Vote
    block: bytes | None = None
    """For a non-nil precommit: the block it commits to (restores the locked value)."""
    time_ms: TimeMs | None = None
    """For a non-nil precommit: that block's time."""

    def encode(self) -> bytes:
        return encode([self.message.to_wire(), self.block, self.time_ms])

    @classmethod
    def decode(cls, data: bytes) -> SignedRecord:
        fields: Any = decode(data, max_size=MAX_RECORD_BYTES)
        if not isinstance(fields, list) or len(fields) != 3 or not isinstance(fields[0], list):
            raise WalError("WAL record must be [message, block, time]")
        wire = fields[0]
        try:
            message: Proposal | Vote = (
                proposal_from_wire(wire) if wire and wire[0] == "proposal" else vote_from_wire(wire)
            )
        except InvalidMessage as e:
            raise WalError(f"WAL record holds a bad message: {e}") from e
        block, time_ms = fields[1], fields[2]
        if block is not None and not isinstance(block, bytes):
            raise WalError("WAL record block must be bytes or nil")
        if time_ms is not None and not isinstance(time_ms, int):
            raise WalError("WAL record time must be an integer or nil")
        return cls(message, block, None if time_ms is None else TimeMs(time_ms))


def frame(record: SignedRecord) -> bytes:
    payload = record.encode()
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def parse(data: bytes) -> tuple[list[SignedRecord], int]:
    """Records in ``data`` and the length of its good prefix (torn tail excluded)."""
    records: list[SignedRecord] = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < _HEADER.size:
            break  # torn header
        length, crc = _HEADER.unpack_from(data, offset)
        start, end = offset + _HEADER.size, offset + _HEADER.size + length
        if length > MAX_RECORD_BYTES:
            raise WalError(f"WAL record at {offset} claims {length} bytes")
        if end > len(data):
            break  # torn payload
        payload = data[start:end]
        if zlib.crc32(payload) != crc:
            if end == len(data):
                break  # torn last record
            raise WalError(f"WAL record at offset {offset} fails its checksum")
        try:
            records.append(SignedRecord.decode(payload))
        except DecodeError as e:
            raise WalError(f"WAL record at offset {offset} does not decode: {e}") from e
        offset = end
    return records, offset


class WriteAheadLog:
    """An append-only, fsynced file of ``SignedRecord`` [CONS-WAL.1]. Not thread-safe."""

    def __init__(self, path: Path, file: IO[bytes]) -> None:
        self.path = path
        self._file = file

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> tuple[WriteAheadLog, list[SignedRecord]]:
        """Replays the log at ``path`` (creating it if absent), cuts a torn tail, opens it."""
        path = Path(path)
        data = path.read_bytes() if path.exists() else b""
        records, good = parse(data)
        # unbuffered: a failed append leaves nothing behind in a buffer [CONS-WAL.3]
        file = open(path, "r+b" if path.exists() else "w+b", buffering=0)  # noqa: SIM115
        if good != len(data):
            file.truncate(good)
        file.seek(good)
        file.flush()
        os.fsync(file.fileno())
        _fsync_dir(path.parent)
        return cls(path, file), records

    def append(self, record: SignedRecord) -> None:
        """Appends and fsyncs; returns only once the record is durable. [CONS-WAL.3] When
        the write fails (a full disk: ``OSError``), the file is cut back to what it held, so
        the same record can be appended again later and the log stays readable."""
        fd = self._file.fileno()
        start = os.lseek(fd, 0, os.SEEK_END)
        try:
            _write_all(fd, frame(record))
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):  # cutting back frees space: it works when full
                os.ftruncate(fd, start)
                os.lseek(fd, start, os.SEEK_SET)
            raise

    def prune(self, keep_from_height: int) -> None:
        """Drops records below ``keep_from_height`` (decided heights), atomically: a copy
        that cannot be written (a full disk) is removed and the log is left as it was."""
        self._file.seek(0)
        records, _ = parse(self._file.read())
        kept = [r for r in records if r.message.height >= keep_from_height]
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        try:
            with open(tmp, "wb") as out:
                out.write(b"".join(frame(r) for r in kept))
                out.flush()
                os.fsync(out.fileno())
        except OSError:
            tmp.unlink(missing_ok=True)
            self._file.seek(0, os.SEEK_END)
            raise
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)
        self._file.close()
        self._file = open(self.path, "r+b", buffering=0)  # noqa: SIM115
        self._file.seek(0, os.SEEK_END)

    def close(self) -> None:
        self._file.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def records_for_height(records: Iterable[SignedRecord], height: int) -> list[SignedRecord]:
    return [r for r in records if r.message.height == height]
