"""Where a machine's CPU goes while a command runs, by process kind (docs/testing.md).

    python3 scripts/cpu_by_process.py [--interval 0.5] [--json OUT] -- COMMAND...

Runs COMMAND and reads every process's user + system time from /proc each ``--interval``
seconds, billing it to a kind taken from its command line: ``pytest`` (a command line that
names pytest or a pytest temp dir: the suite's node and CLI subprocesses too), ``xdist``
(pytest-xdist's workers and their in-process nodes), ``runsc:<comm>`` (gVisor: its ``exe``
is the sandbox running a job), the Docker daemons by name, ``python:<script and args>``,
else the process's own name. A process that execs another program is billed to each in
turn. Processes that live less than one interval are missed; the busy and idle totals from
/proc/stat show how much. Prints the kinds by CPU seconds, largest first; exits with
COMMAND's status.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass

DAEMONS = frozenset({"dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v2",
                     "docker-proxy", "runc"})


@dataclass
class Seen:
    kind: str
    comm: str
    first_ticks: int
    ticks: int


def kind_of(pid: int, comm: str) -> str | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return None
    words = [a.decode(errors="replace") for a in argv if a]
    line = " ".join(words)
    if "sys.stdin.readline" in line or "execnet" in line:
        return "xdist"
    if "pytest" in line:
        return "pytest"
    if comm == "exe" or "runsc" in line:
        return f"runsc:{comm}"
    if comm in DAEMONS:
        return comm
    if words and "python" in os.path.basename(words[0]):
        if words[1:2] == ["-c"]:
            return "python:-c " + (words[2].strip().splitlines() or [""])[0][:40]
        args = [w.rsplit("/", 1)[-1] for w in words[1:] if not w.startswith("-")][:3]
        return "python:" + " ".join(args)[:50]
    return comm


def cpu_ticks() -> tuple[int, int]:
    """Busy and idle (idle + iowait) ticks of the whole machine."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, idle


def sample(seen: dict[tuple[int, str], Seen], first: bool, retired: list[Seen]) -> None:
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        ticks, key = int(fields[11]) + int(fields[12]), (pid, fields[19])
        entry = seen.get(key)
        if entry is None or entry.comm != comm:
            kind = kind_of(pid, comm)
            if kind is None:
                continue
            if entry is None:
                # a process alive at the start is billed from then, a new one from its birth
                entry = seen[key] = Seen(kind, comm, ticks if first else 0, ticks)
            else:  # it exec'd: what it used before goes to what it was
                retired.append(Seen(entry.kind, entry.comm, entry.first_ticks, entry.ticks))
                entry.kind, entry.comm, entry.first_ticks = kind, comm, entry.ticks
        entry.ticks = ticks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--json", help="also write the totals to this file")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no COMMAND given")
    tick = os.sysconf("SC_CLK_TCK")
    seen: dict[tuple[int, str], Seen] = {}
    retired: list[Seen] = []
    busy0, idle0 = cpu_ticks()
    started = time.monotonic()
    sample(seen, True, retired)
    child = subprocess.Popen(command)
    while child.poll() is None:
        time.sleep(args.interval)
        sample(seen, False, retired)
    busy1, idle1 = cpu_ticks()
    totals: collections.Counter[str] = collections.Counter()
    for entry in [*seen.values(), *retired]:
        totals[entry.kind] += entry.ticks - entry.first_ticks
    wall = time.monotonic() - started
    report = {"wall_s": round(wall, 1), "busy_core_s": (busy1 - busy0) / tick,
              "idle_core_s": (idle1 - idle0) / tick,
              "by_kind_core_s": {k: v / tick for k, v in totals.most_common() if v}}
    print(f"wall {wall:.1f} s, busy {report['busy_core_s']:.1f} core-s, "
          f"idle {report['idle_core_s']:.1f} core-s", file=sys.stderr)
    for kind, value in totals.most_common(40):
        if not value:
            break
        print(f"{value / tick:9.1f}  {kind}", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return child.returncode


if __name__ == "__main__":
    sys.exit(main())
