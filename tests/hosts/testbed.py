"""A test bed of emulated hosts on one machine, joined by an emulated switch.

Why: a graph on 127.0.0.1 shares one clock, one address and zero latency; real
machines do not. Each host here is a network namespace with an address of its own, an
optional clock offset for its processes and an optional private Docker engine, and
every TCP connection between two hosts crosses a link with the latency, jitter, loss,
bandwidth and cuts the test sets.

Topology (``<id>``: 6 hex digits per test bed, so two runs never clash)::

    lch-<id>-1  eth0 10.213.1.2 ---- h1 10.213.1.1 \\
    lch-<id>-2  eth0 10.213.2.2 ---- h2 10.213.2.1  }  lcsw-<id>  (switch + relay)
    lch-<id>-3  eth0 10.214.3.2 -- lan0 lcn-<id>-3 up0 10.213.3.2 ---- h3 10.213.3.1 /
                                    (NAT router: masquerades, never lets a dial in)

- Every veth is created straight into the namespaces (``ip -n lcsw-<id> link add h1
  type veth peer name eth0 netns lch-<id>-1``): nothing is ever added to the machine's
  own namespace, no route or rule leads out of the test bed, and the switch forwards
  nothing (``ip_forward=0``): a host reaches another only through the relay.
- Links (``tests.hosts.relay``, ``tests.hosts.linkmodel``): this kernel has no netem
  qdisc, so the switch redirects every TCP connection to a relay that delays, jitters,
  slows and "loses" (an RTO's delay) each chunk in user space, and dials the far host
  with the caller's address (``IP_TRANSPARENT``), so a node sees its real peer. Only
  TCP crosses the switch, which is all a node speaks.
- A cut is two iptables drops in the switch (chain ``LCCUT``): packets vanish both
  ways, live connections stall as on a real cut; ``reset_live=True`` also aborts them.
- ``capture(dir)``: the relay records the bytes of each new connection per direction,
  as they cross the switch (what a tap would see, minus TCP/IP headers).
- ``add_host(engine=True)``: a private dockerd (``tests.framework.dockerd``) started
  inside the host's namespace; it has no networking of its own (``--bridge=none``).
- Clock offsets: a host's processes run under libfaketime (Debian's ``faketime``,
  installed by scripts/setup_system.sh) with ``FAKETIME=+4s``: ``time.time()`` moves,
  and ``DONT_FAKE_MONOTONIC=1`` keeps ``time.monotonic()`` the machine's (libfaketime
  would otherwise shift it too); timers and timeouts run at real speed, wall time is off.
- ``close()`` kills what runs in its namespaces, deletes them (which removes their
  veths and iptables rules) and checks that none is left; ``sweep_orphans()`` does the
  same for test beds whose owning process died (``/tmp/lctb-<id>/owner.pid``).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from tests.framework.dockerd import PrivateDockerd
from tests.framework.wait import wait_until
from tests.hosts.linkmodel import LinkSpec
from tests.hosts.netns import (
    Forward,
    NetnsError,
    connect_in,
    enter,
    in_ns,
    listen_in,
    namespaces,
    pids_in,
    popen_in,
    run,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
ROOT_PREFIX = "/tmp/lctb-"
OWNER_FILE = "owner.pid"
PREFIX = "10.213."
NAT_PREFIX = "10.214."
RELAY_PORT = 7000
FAKETIME_LIB = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")
CUT_CHAIN = "LCCUT"
CLOCK_SITE = Path(__file__).resolve().parent / "clock_site"


class TestBedError(RuntimeError):
    """The test bed could not be built or left something behind."""


def require_root_and_tools(clock_offsets: bool) -> None:
    """Fails with what is missing: a test on the test bed never skips."""
    if os.geteuid() != 0:
        raise TestBedError("the host test bed needs root (network namespaces, iptables)")
    for tool in ("ip", "iptables", "nsenter"):
        if shutil.which(tool) is None:
            raise TestBedError(f"{tool} is missing: run scripts/setup_system.sh")
    if clock_offsets and not FAKETIME_LIB.exists():
        raise TestBedError(f"{FAKETIME_LIB} is missing: scripts/setup_system.sh installs "
                           "Debian's faketime package")


def clock_command(offset_s: float, argv: Sequence[str]) -> list[str]:
    """``argv`` with its wall clock ``offset_s`` ahead: ``env LD_PRELOAD=libfaketime
    FAKETIME=+4s DONT_FAKE_MONOTONIC=1 PYTHONPATH=clock_site``; the last makes a Python
    process's ``time.sleep`` work under this libfaketime (``clock_site/sitecustomize.py``)."""
    if not offset_s:
        return list(argv)
    path = os.pathsep.join(p for p in (str(CLOCK_SITE), os.environ.get("PYTHONPATH")) if p)
    return ["env", f"LD_PRELOAD={FAKETIME_LIB}", f"FAKETIME={offset_s:+.3f}s",
            "DONT_FAKE_MONOTONIC=1", f"PYTHONPATH={path}", *argv]


@dataclass
class Host:
    """One emulated machine: a namespace, an address, a clock, maybe an engine."""

    bed: TestBed
    index: int
    name: str
    ns: str
    address: str
    """Its own address (on ``eth0``); behind NAT a private one nobody else can reach."""
    public_address: str
    """Where its connections come from as the other hosts see them."""
    nat: bool = False
    clock_offset_s: float = 0.0
    engine: PrivateDockerd | None = None
    directory: Path = field(default_factory=Path)

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """The environment of a process on this host (its Docker engine, if any)."""
        env = dict(os.environ if base is None else base)
        if self.engine is not None:
            env["DOCKER_HOST"] = self.engine.host
        return env

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` under this host's clock (``clock_command``)."""
        return clock_command(self.clock_offset_s, argv)

    def popen(self, argv: Sequence[str], *, env: dict[str, str] | None = None,
              log: Path | None = None, cwd: Path = REPO_ROOT) -> subprocess.Popen[bytes]:
        """Starts a process on this host; the test bed stops it in ``close()``."""
        proc = popen_in(self.ns, self.command(argv), env=self.env(env), cwd=cwd, log=log)
        self.bed.processes.append(proc)
        return proc

    def python(self, code: str) -> str:
        """Runs a short Python snippet on this host (its clock included), returns stdout."""
        return in_ns(self.ns, *self.command([sys.executable, "-c", code]))

    def connect(self, address: tuple[str, int], timeout: float = 5.0) -> socket.socket:
        return connect_in(self.ns, address, timeout)

    def listen(self, port: int) -> socket.socket:
        return listen_in(self.ns, ("0.0.0.0", port))

    def forward(self, port: int) -> Forward:
        """127.0.0.1:<n> in the test's namespace -> 127.0.0.1:``port`` on this host."""
        forward = Forward(self.ns, port)
        self.bed.forwards.append(forward)
        return forward


class TestBed:
    """``with TestBed(seed=...) as bed: a = bed.add_host(); ...``"""

    __test__ = False  # not a pytest class

    def __init__(self, *, seed: int = 0, default_link: LinkSpec | None = None) -> None:
        require_root_and_tools(clock_offsets=False)
        TestBed.sweep_orphans()
        self.id = secrets.token_hex(3)
        self.root = Path(f"{ROOT_PREFIX}{self.id}")
        self.root.mkdir(mode=0o700)
        (self.root / OWNER_FILE).write_text(f"{os.getpid()}\n")
        self.switch = f"lcsw-{self.id}"
        self.hosts: list[Host] = []
        self.made: list[str] = []
        """Namespaces in the order they were made: ``close()`` deletes exactly these."""
        self.processes: list[subprocess.Popen[bytes]] = []
        self.forwards: list[Forward] = []
        self.control = self.root / "relay.sock"
        self.seed = seed
        try:
            self._make_switch()
            if default_link is not None:
                self.set_default_link(default_link)
        except BaseException:
            self.close()
            raise

    # -- building ----------------------------------------------------------------------

    def _add_ns(self, name: str) -> str:
        run("ip", "netns", "add", name)
        self.made.append(name)
        run("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def _make_switch(self) -> None:
        sw = self._add_ns(self.switch)
        in_ns(sw, "sysctl", "-qw", "net.ipv4.ip_forward=0")
        in_ns(sw, "iptables", "-t", "nat", "-A", "PREROUTING", "-p", "tcp", "-j",
              "REDIRECT", "--to-ports", str(RELAY_PORT))
        # the relay's transparent dials: answers to a caller's address are delivered here
        in_ns(sw, "iptables", "-t", "mangle", "-A", "PREROUTING", "-p", "tcp", "-m",
              "socket", "--transparent", "-j", "MARK", "--set-mark", "1")
        run("ip", "-n", sw, "rule", "add", "fwmark", "1", "lookup", "100")
        run("ip", "-n", sw, "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "100")
        in_ns(sw, "iptables", "-N", CUT_CHAIN)
        in_ns(sw, "iptables", "-A", "INPUT", "-j", CUT_CHAIN)
        relay = popen_in(sw, [sys.executable, "-m", "tests.hosts.relay", "--port",
                              str(RELAY_PORT), "--control", str(self.control), "--prefix",
                              PREFIX, "--seed", str(self.seed)],
                         cwd=REPO_ROOT, log=self.root / "relay.log")
        self.processes.append(relay)

        def answers() -> bool:
            if relay.poll() is not None:
                raise TestBedError(f"the relay exited: {self._relay_log()}")
            try:
                return bool(self._ask({"op": "stats"}).get("ok"))
            except OSError:
                return False

        wait_until(answers, timeout=20, step=0.1, what="the switch's relay to answer",
                   detail=self._relay_log)

    def _relay_log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.root / "relay.log").read_text()[-2000:]
        return "(no relay log)"

    def add_host(self, name: str | None = None, *, nat: bool = False,
                 clock_offset_s: float = 0.0, engine: bool = False) -> Host:
        """A new host on the switch; ``nat``: behind a masquerading router of its own."""
        require_root_and_tools(clock_offsets=bool(clock_offset_s))
        n = len(self.hosts) + 1
        ns = self._add_ns(f"lch-{self.id}-{n}")
        public = f"{PREFIX}{n}.2"
        if nat:
            router = self._add_ns(f"lcn-{self.id}-{n}")
            self._veth(self.switch, f"h{n}", f"{PREFIX}{n}.1", router, "up0", public)
            self._veth(router, "lan0", f"{NAT_PREFIX}{n}.1", ns, "eth0", f"{NAT_PREFIX}{n}.2")
            run("ip", "-n", router, "route", "add", "default", "via", f"{PREFIX}{n}.1")
            run("ip", "-n", ns, "route", "add", "default", "via", f"{NAT_PREFIX}{n}.1")
            in_ns(router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            for rule in (["-t", "nat", "-A", "POSTROUTING", "-o", "up0", "-j", "MASQUERADE"],
                         ["-A", "FORWARD", "-i", "lan0", "-o", "up0", "-j", "ACCEPT"],
                         ["-A", "FORWARD", "-i", "up0", "-m", "conntrack", "--ctstate",
                          "ESTABLISHED,RELATED", "-j", "ACCEPT"],
                         ["-P", "FORWARD", "DROP"]):
                in_ns(router, "iptables", *rule)
            address = f"{NAT_PREFIX}{n}.2"
        else:
            self._veth(self.switch, f"h{n}", f"{PREFIX}{n}.1", ns, "eth0", public)
            run("ip", "-n", ns, "route", "add", "default", "via", f"{PREFIX}{n}.1")
            address = public
        directory = self.root / f"host{n}"
        directory.mkdir()
        host = Host(self, n, name or f"host{n}", ns, address, public, nat, clock_offset_s,
                    directory=directory)
        self.hosts.append(host)
        if engine:
            host.engine = HostDockerd(ns)
            host.engine.start()
        return host

    @staticmethod
    def _veth(ns_a: str, if_a: str, addr_a: str, ns_b: str, if_b: str, addr_b: str) -> None:
        run("ip", "-n", ns_a, "link", "add", if_a, "type", "veth", "peer", "name", if_b,
            "netns", ns_b)
        for ns, iface, addr in ((ns_a, if_a, addr_a), (ns_b, if_b, addr_b)):
            run("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", iface)
            run("ip", "-n", ns, "link", "set", iface, "up")

    # -- links -------------------------------------------------------------------------

    def _ask(self, request: dict[str, object]) -> dict[str, object]:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(str(self.control))
            sock.sendall(json.dumps(request).encode() + b"\n")
            answer: dict[str, object] = json.loads(sock.makefile("rb").readline())
        if not answer.get("ok"):
            raise TestBedError(f"relay refused {request}: {answer}")
        return answer

    def set_default_link(self, spec: LinkSpec) -> None:
        """Every link without a setting of its own behaves as ``spec``."""
        self._ask({"op": "link", "spec": spec.to_json()})

    def set_link(self, a: Host, b: Host, spec: LinkSpec) -> None:
        """Both directions of the link a-b behave as ``spec`` (changeable while running)."""
        self._ask({"op": "link", "a": a.index, "b": b.index, "spec": spec.to_json()})

    def set_wan_links(self, hosts: Sequence[Host], rng: random.Random, *,
                      rtt_ms: tuple[float, float] = (50.0, 150.0), jitter_ms: float = 10.0,
                      loss: float = 0.01) -> dict[tuple[str, str], float]:
        """Every link between two of ``hosts`` a wide-area one: a round trip drawn uniformly
        from ``rtt_ms`` (pairs in order, one draw each), ``jitter_ms`` each way, ``loss`` per
        segment. Returns each pair's round trip in ms (for the log)."""
        drawn: dict[tuple[str, str], float] = {}
        for i, a in enumerate(hosts):
            for b in hosts[i + 1:]:
                rtt = rng.uniform(*rtt_ms)
                self.set_link(a, b, LinkSpec.from_rtt(rtt, jitter_ms=jitter_ms, loss=loss))
                drawn[a.name, b.name] = rtt
        return drawn

    def relay_stats(self) -> dict[str, int]:
        stats = self._ask({"op": "stats"})["stats"]
        assert isinstance(stats, dict)
        return stats

    def capture(self, directory: Path | None) -> None:
        """Records every byte of every connection opened from now on between two hosts
        under ``directory`` (one file per connection and direction); None stops."""
        self._ask({"op": "capture", "dir": None if directory is None else str(directory)})

    def _cut_rules(self, a: Host, b: Host) -> list[list[str]]:
        rules = []
        for x, y in ((a, b), (b, a)):
            rules.append(["-s", x.public_address, "-d", y.public_address, "-j", "DROP"])
            rules.append(["-s", x.public_address, "-m", "conntrack", "--ctorigdst",
                          y.public_address, "-j", "DROP"])
        return rules

    def cut(self, a: Host, b: Host, *, reset_live: bool = False) -> None:
        """Packets between a and b vanish (new dials time out, live ones stall)."""
        for rule in self._cut_rules(a, b):
            in_ns(self.switch, "iptables", "-A", CUT_CHAIN, *rule)
        if reset_live:
            self._ask({"op": "reset", "a": a.index, "b": b.index})

    def heal(self, a: Host, b: Host) -> None:
        for rule in self._cut_rules(a, b):
            in_ns(self.switch, "iptables", "-D", CUT_CHAIN, *rule)

    def split(self, side: Iterable[Host], *, reset_live: bool = False) -> None:
        """Cuts every link between ``side`` and the other hosts (a partition; the hosts on
        each side still reach each other)."""
        inside = list(side)
        for a in inside:
            for b in self.hosts:
                if b not in inside:
                    self.cut(a, b, reset_live=reset_live)

    def isolate(self, host: Host, *, reset_live: bool = False) -> None:
        """Cuts ``host`` from every other host."""
        self.split([host], reset_live=reset_live)

    def heal_all(self) -> None:
        in_ns(self.switch, "iptables", "-F", CUT_CHAIN)

    # -- teardown ----------------------------------------------------------------------

    def close(self) -> None:
        """Stops every process, engine and forward it started, deletes its namespaces, and
        raises ``TestBedError`` if any of them is still there."""
        for forward in self.forwards:
            forward.close()
        for host in self.hosts:
            if host.engine is not None:
                with contextlib.suppress(Exception):
                    host.engine.close()
        _stop(self.processes)
        _remove(self.made)
        shutil.rmtree(self.root, ignore_errors=True)
        left = set(self.made) & namespaces()
        if left:
            raise TestBedError(f"namespaces left behind: {sorted(left)}")

    def __enter__(self) -> TestBed:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @classmethod
    def sweep_orphans(cls) -> list[str]:
        """Removes the namespaces and directories of test beds whose owner died."""
        removed: list[str] = []
        for root in Path(ROOT_PREFIX).parent.glob(Path(ROOT_PREFIX).name + "*"):
            try:
                owner = int((root / OWNER_FILE).read_text())
            except (OSError, ValueError):
                continue
            if _alive(owner):
                continue
            bed_id = root.name.removeprefix(Path(ROOT_PREFIX).name)
            ours = sorted(ns for ns in namespaces() if ns == f"lcsw-{bed_id}"
                          or ns.startswith((f"lch-{bed_id}-", f"lcn-{bed_id}-")))
            _remove(ours)
            shutil.rmtree(root, ignore_errors=True)
            removed += ours
        PrivateDockerd.sweep_orphans()  # the engines of hosts (their processes are gone)
        return removed


class HostDockerd(PrivateDockerd):
    """A private Docker engine started inside a host's namespace (it has no networking
    of its own: ``--bridge=none``), so its host's node reaches it as on a real machine.

    Its root is a fresh ``/tmp/lcd-<hex>`` as any private engine's (a unique name: it
    is also the engine's containerd namespace and cgroup; a short path: containerd's
    sockets live below it), owned by this process, so ``PrivateDockerd.sweep_orphans``
    (which ``TestBed.sweep_orphans`` calls) removes what a killed run left."""

    def __init__(self, ns: str) -> None:
        super().__init__()
        self.ns = ns

    def argv(self) -> list[str]:
        return [*enter(self.ns), *super().argv()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop(processes: Iterable[subprocess.Popen[bytes]], timeout: float = 15.0) -> None:
    procs = [p for p in processes if p.poll() is None]
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _remove(names: Iterable[str]) -> None:
    """Kills what still runs in these namespaces (only processes a test bed started can
    be there), then deletes them; their veths and iptables rules go with them."""
    names = list(names)
    for ns in names:
        for pid in pids_in(ns):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    for ns in reversed(names):
        for _ in range(50):
            try:
                run("ip", "netns", "del", ns)
                break
            except NetnsError:
                if ns not in namespaces():
                    break
                time.sleep(0.1)
