"""[CONS-WAL.1] / [CONS-WAL.2] The write-ahead log and restart without double signing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chain.consensus.core import Broadcast, PersistSigned
from chain.consensus.errors import WalError
from chain.consensus.messages import PRECOMMIT, PREVOTE, Vote
from chain.consensus.timeouts import Timeout, TimeoutKind
from chain.consensus.wal import SignedRecord, WriteAheadLog, frame
from chain.crypto import sha256
from chain.types import Height, Round, TimeMs
from tests.consensus.helpers import KEYS, T0, make_core, non_proposer, proposal_for, vote

NOW = T0 + 1000


def records(n: int) -> list[SignedRecord]:
    return [SignedRecord(vote(KEYS[0], PREVOTE, 1, r, sha256(b"%d" % r))) for r in range(n)]


def run_actions(wal: WriteAheadLog, actions: list[Any]) -> list[Any]:
    """A minimal driver: persist (fsync) before anything later; collect broadcasts."""
    sent = []
    for a in actions:
        if isinstance(a, PersistSigned):
            wal.append(a.record)
        elif isinstance(a, Broadcast):
            sent.append(a.message)
    return sent


def test_wal_append_and_replay(tmp_path: Path) -> None:
    wal, replayed = WriteAheadLog.open(tmp_path / "wal")
    assert replayed == []
    for r in records(3):
        wal.append(r)
    wal.close()
    _, replayed = WriteAheadLog.open(tmp_path / "wal")
    assert replayed == records(3)


def test_wal_record_with_locked_block_roundtrips(tmp_path: Path) -> None:
    r = SignedRecord(vote(KEYS[0], PRECOMMIT, 2, 1, sha256(b"b")), b"block", TimeMs(T0))
    wal, _ = WriteAheadLog.open(tmp_path / "wal")
    wal.append(r)
    wal.close()
    assert WriteAheadLog.open(tmp_path / "wal")[1] == [r]


@pytest.mark.parametrize("cut", [1, 4, 8, 20])
def test_wal_torn_tail_is_cut(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "wal"
    good = b"".join(frame(r) for r in records(2))
    path.write_bytes(good + frame(records(3)[2])[:cut])
    wal, replayed = WriteAheadLog.open(path)
    assert replayed == records(2)
    assert path.read_bytes() == good
    wal.append(records(3)[2])
    wal.close()
    assert WriteAheadLog.open(path)[1] == records(3)


def test_wal_torn_last_record_with_bad_checksum_is_cut(tmp_path: Path) -> None:
    path = tmp_path / "wal"
    last = bytearray(frame(records(2)[1]))
    last[-1] ^= 0xFF
    path.write_bytes(frame(records(1)[0]) + bytes(last))
    assert WriteAheadLog.open(path)[1] == records(1)


def test_wal_corruption_in_the_middle_refuses_to_start(tmp_path: Path) -> None:
    path = tmp_path / "wal"
    first = bytearray(frame(records(1)[0]))
    first[-1] ^= 0xFF
    path.write_bytes(bytes(first) + frame(records(2)[1]))
    with pytest.raises(WalError):
        WriteAheadLog.open(path)


def test_wal_prune_keeps_undecided_heights(tmp_path: Path) -> None:
    wal, _ = WriteAheadLog.open(tmp_path / "wal")
    rs = [SignedRecord(vote(KEYS[0], PREVOTE, h, 0, None)) for h in (1, 2, 3)]
    for r in rs:
        wal.append(r)
    wal.prune(2)
    wal.append(SignedRecord(vote(KEYS[0], PRECOMMIT, 3, 0, None)))
    wal.close()
    assert [
        (r.message.height, r.message.kind) for r in WriteAheadLog.open(tmp_path / "wal")[1]
    ] == [
        (2, PREVOTE),
        (3, PREVOTE),
        (3, PRECOMMIT),
    ]


def test_cons_wal_2_restart_reuses_prevote_instead_of_signing_another(tmp_path: Path) -> None:
    me = non_proposer(1, 0)
    wal, _ = WriteAheadLog.open(tmp_path / "wal")
    core = make_core(me)
    run_actions(wal, core.start(NOW))
    p = proposal_for(core, 0)
    first = [m for m in run_actions(wal, core.on_message(p, NOW, b"x")) if isinstance(m, Vote)]
    assert [v.block_hash for v in first] == [p.block_hash]
    wal.close()  # crash

    wal, replayed = WriteAheadLog.open(tmp_path / "wal")
    again = make_core(me, history=replayed)
    sent = run_actions(wal, again.start(NOW + 10))
    # the proposal never arrives this time: the propose timeout would prevote nil ...
    sent += run_actions(
        wal, again.on_timeout(Timeout(TimeoutKind.PROPOSE, Height(1), Round(0)), NOW + 5000)
    )
    prevotes = [m for m in sent if isinstance(m, Vote) and m.kind == PREVOTE and m.round == 0]
    # ... but it re-sends exactly what it signed before the crash
    assert prevotes == first


def test_cons_wal_2_restart_restores_the_lock(tmp_path: Path) -> None:
    me = non_proposer(1, 0)
    wal, _ = WriteAheadLog.open(tmp_path / "wal")
    core = make_core(me)
    run_actions(wal, core.start(NOW))
    p = proposal_for(core, 0)
    others = [k for k in KEYS if k is not me][:3]
    msgs = [p, *(vote(k, PREVOTE, 1, 0, p.block_hash) for k in others)]
    for m in msgs:
        run_actions(wal, core.on_message(m, NOW, b"x"))
    assert core.locked_hash == p.block_hash
    wal.close()

    _, replayed = WriteAheadLog.open(tmp_path / "wal")
    again = make_core(me, history=replayed)
    again.start(NOW + 10)
    assert (again.locked_round, again.locked_hash) == (0, p.block_hash)
    assert again.valid_value is not None and again.valid_value[1] == p.block


def test_cons_wal_1_crash_between_persist_and_broadcast_is_safe(tmp_path: Path) -> None:
    """The record is durable, the signature never left: on restart the same vote is re-sent."""
    me = non_proposer(1, 0)
    wal, _ = WriteAheadLog.open(tmp_path / "wal")
    core = make_core(me)
    run_actions(wal, core.start(NOW))
    actions = core.on_message(proposal_for(core, 0), NOW, b"x")
    persist = [a for a in actions if isinstance(a, PersistSigned)]
    wal.append(persist[0].record)  # crash right after the fsync
    wal.close()
    _, replayed = WriteAheadLog.open(tmp_path / "wal")
    again = make_core(me, history=replayed)
    out = again.start(NOW + 1)
    out += again.on_timeout(Timeout(TimeoutKind.PROPOSE, Height(1), Round(0)), NOW + 5000)
    sent = [a.message for a in out if isinstance(a, Broadcast)]
    assert persist[0].record.message in sent
    assert not any(isinstance(a, PersistSigned) and a.record.message.kind == PREVOTE for a in out)  # type: ignore[union-attr]


FULL_DISK_CHILD = """
import os, resource, signal, sys
from pathlib import Path
from chain.consensus.wal import WriteAheadLog, frame
from tests.consensus.test_wal import records

path = Path(sys.argv[1])
wal, _ = WriteAheadLog.open(path)
for r in records(3):
    wal.append(r)
size = path.stat().st_size
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (size + len(frame(records(4)[3])) // 2, hard))
try:
    wal.append(records(4)[3])
except OSError as e:
    print("refused", e.errno, path.stat().st_size - size)
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
wal.append(records(4)[3])
wal.close()
"""


def test_cons_wal_3_a_refused_append_leaves_the_log_as_it_was(tmp_path: Path) -> None:
    """[CONS-WAL.3] The kernel refuses the write half-way (the file size limit stands in
    for a full disk: the first half of the record is written, then ``EFBIG``): the log is
    cut back to its three records, the same record is appended once there is room, and the
    log reads back whole (before, the half record stayed in front of the next append, a
    bad record in the middle: the node would refuse to start, [CONS-WAL.1])."""
    import errno
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", FULL_DISK_CHILD, str(tmp_path / "wal")],
                          capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.stdout.split() == ["refused", str(errno.EFBIG), "0"], done.stdout + done.stderr
    _, replayed = WriteAheadLog.open(tmp_path / "wal")
    assert replayed == records(4)
