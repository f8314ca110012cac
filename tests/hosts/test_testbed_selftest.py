"""The test bed checks itself before nodes run on it: links delay and slow what they carry,
cuts cut and heal, a NATted host dials out but is never dialled, a clock offset shows,
and afterwards nothing the test bed made is left on the machine.

Timing is compared, never asserted as performance: an emulated delay is a floor (the
relay never delivers early), so "measured >= configured" checks the emulation itself.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.framework.wait import wait_until
from tests.hosts.linkmodel import LinkSpec
from tests.hosts.netns import namespaces, run
from tests.hosts.probes import EchoServer, dial_works, echoes, round_trip
from tests.hosts.testbed import REPO_ROOT, ROOT_PREFIX, TestBed

pytestmark = pytest.mark.serial
log = logging.getLogger(__name__)
PORT = 9000


def test_testbed_links_cuts_nat_clock_and_cleanup(lc_seed: int, tmp_path: Path) -> None:
    log.info("seed %d", lc_seed)
    before = namespaces()
    with TestBed(seed=lc_seed) as bed:
        a = bed.add_host("a")
        b = bed.add_host("b", clock_offset_s=4.0)
        c = bed.add_host("c", nat=True)
        made = {ns for ns in namespaces() - before if bed.id in ns}  # another bed may run
        assert made == {bed.switch, a.ns, b.ns, c.ns, f"lcn-{bed.id}-3"}
        echo_a, echo_b, echo_c = (EchoServer(h, PORT) for h in (a, b, c))

        # Latency: a 80 ms round trip with up to 10 ms of jitter per direction.
        bed.set_link(a, b, LinkSpec.from_rtt(80, jitter_ms=10))
        with a.connect((b.address, PORT)) as sock:
            rtts = [round_trip(sock) for _ in range(8)]
        log.info("a-b round trips (80 ms configured, +0..20 ms jitter): %s ms",
                 [round(r * 1000, 1) for r in rtts])
        assert min(rtts) >= 0.080, rtts  # the delay is a floor
        assert echo_b.peers == [a.address]  # the far side sees the real peer address

        # Capture: the bytes a connection carries across the switch are on record.
        bed.capture(tmp_path / "capture")
        with a.connect((b.address, PORT)) as sock:
            round_trip(sock, b"row 42: secret")
        bed.capture(None)
        captured = {p.name: p.read_bytes() for p in (tmp_path / "capture").iterdir()}
        assert sorted(captured.values()) == [b"row 42: secret"] * 2, captured  # both ways

        # Loss: a lost segment costs its chunk a 200 ms retransmission timeout.
        bed.set_link(a, b, LinkSpec.from_rtt(20, loss=0.3))
        with a.connect((b.address, PORT)) as sock:
            sock.settimeout(60)  # longer than any chunk's wait (linkmodel.MAX_BACKOFFS)
            lossy = [round_trip(sock) for _ in range(20)]
        log.info("a-b round trips at 20 ms, 30 %% loss: %s ms",
                 [round(r * 1000) for r in lossy])
        assert min(lossy) >= 0.020 and max(lossy) >= 0.020 + 0.2  # P(no loss) = 0.49**20

        # Bandwidth: 400 kB over an 8 Mbit/s link take at least 0.4 s (the echo flows
        # back while the rest still goes out, so the round trip's floor is one direction).
        bed.set_link(a, b, LinkSpec(rate_bps=8e6))
        with a.connect((b.address, PORT)) as sock:
            sock.settimeout(30)
            bulk = round_trip(sock, os.urandom(400_000))
        log.info("400 kB echoed over 8 Mbit/s each way: %.2f s (>= 0.4 s)", bulk)
        assert bulk >= 0.4

        # Cut: a live connection stalls and new dials fail; healed, both work again.
        bed.set_link(a, b, LinkSpec())
        live = a.connect((b.address, PORT))
        assert echoes(live, 2)
        bed.cut(a, b)
        assert not dial_works(a, (b.address, PORT))
        assert not echoes(live, 1.0)
        assert dial_works(a, (c.public_address, PORT)) is False  # NAT: never dialled
        assert dial_works(c, (a.address, PORT))  # other links are untouched
        bed.heal(a, b)
        assert dial_works(a, (b.address, PORT))
        live.settimeout(30)
        wait_until(lambda: live.recv(1) == b"x", timeout=30,
                   what="the stalled byte to arrive once healed")  # TCP retransmits it
        live.close()

        # A cut with reset_live aborts the live connections instead of stalling them.
        live = a.connect((b.address, PORT))
        assert echoes(live, 2)
        bed.cut(a, b, reset_live=True)
        live.settimeout(5)
        with pytest.raises((ConnectionError, OSError)):
            if live.recv(1) == b"":
                raise ConnectionError("closed")
        live.close()
        bed.heal(a, b)

        # A partition {a} | {b, c}: nothing crosses it, each side still works.
        bed.split([a])
        assert not dial_works(a, (b.address, PORT)) and not dial_works(c, (a.address, PORT))
        assert dial_works(b, (c.public_address, PORT)) is False  # (NAT, as ever)
        assert dial_works(c, (b.address, PORT))
        bed.heal_all()
        assert dial_works(a, (b.address, PORT)) and dial_works(c, (a.address, PORT))

        # NAT: c dials out and is seen as its router's address; nobody dials c.
        assert dial_works(c, (b.address, PORT))
        assert echo_b.peers[-1] == c.public_address != c.address
        assert not dial_works(a, (c.address, PORT))  # its private address: no route
        assert not dial_works(b, (c.public_address, PORT))  # its router: no way in
        assert echo_c.peers == []

        # Clock: b's processes see the wall clock 4 s ahead; monotonic time is the machine's.
        theirs = b.python("import time; print(time.time(), time.monotonic())").split()
        wall, mono = float(theirs[0]) - time.time(), float(theirs[1]) - time.monotonic()
        log.info("host b: wall clock %+.2f s, monotonic %+.2f s", wall, mono)
        assert 3.0 < wall < 5.0
        assert abs(mono) < 1.0
        assert abs(float(a.python("import time; print(time.time())")) - time.time()) < 1.0

        stats = bed.relay_stats()
        log.info("relay: %s", stats)
        for echo in (echo_a, echo_b, echo_c):
            echo.close()
    assert not any(bed.id in ns for ns in namespaces())
    assert not any(bed.id in line for line in run("ip", "-o", "link").splitlines())
    assert "10.213." not in run("iptables-save")
    assert not os.path.exists(bed.root)


def test_testbed_of_a_dead_owner_is_swept(lc_seed: int) -> None:
    """A test process killed mid-run leaves namespaces; the next sweep removes them, and
    leaves a live test bed alone."""
    log.info("seed %d", lc_seed)
    code = ("import time; from tests.hosts.testbed import TestBed\n"
            "bed = TestBed(); bed.add_host(); bed.add_host(nat=True)\n"
            "print(bed.id, flush=True); time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout is not None
    bed_id = proc.stdout.readline().strip()
    orphans = {f"lcsw-{bed_id}", f"lch-{bed_id}-1", f"lch-{bed_id}-2", f"lcn-{bed_id}-2"}
    try:
        with TestBed(seed=lc_seed) as bed:  # sweeps too: the other owner is still alive
            bed.add_host()
            assert orphans <= namespaces()
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            TestBed.sweep_orphans()  # (a test bed starting elsewhere may sweep them first)
            assert not orphans & namespaces()
            assert {bed.switch, bed.hosts[0].ns} <= namespaces()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not any(bed_id in ns or bed.id in ns for ns in namespaces())
    assert not os.path.exists(f"{ROOT_PREFIX}{bed_id}")
