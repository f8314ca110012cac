"""A host's clock offset as its processes see it: the wall clock ahead, waits unharmed.

Why: the +4 s host of tests/hosts/test_job_on_hosts.py runs its node under libfaketime,
and with Debian 12's libfaketime 0.9.10 every ``time.sleep`` of Python 3.11 raised
``OSError: [Errno 22]`` there (its sandbox runner's evaluations failed, and a train/v3 job
settled ``broken``). ``clock_command`` is what every process on such a host runs under;
no namespace is needed to check it, so this runs the command on the test's own machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from tests.hosts.testbed import clock_command, require_root_and_tools

PROBE = r"""
import json, subprocess, threading, time
out = {"time": time.time()}
t0 = time.monotonic()
time.sleep(0.2)
out["slept"] = time.monotonic() - t0
proc = subprocess.Popen(["sleep", "5"])
try:
    proc.wait(timeout=0.1)
    out["wait"] = "exited"
except subprocess.TimeoutExpired:
    out["wait"] = "timeout"
proc.kill(); proc.wait()
t0 = time.monotonic()
threading.Event().wait(0.2)
out["event"] = time.monotonic() - t0
print(json.dumps(out))
"""


def test_a_clock_4_s_ahead_moves_the_wall_clock_and_keeps_sleep_and_waits_working() -> None:
    require_root_and_tools(clock_offsets=True)
    before = time.time()
    done = subprocess.run(clock_command(4.0, [sys.executable, "-c", PROBE]),
                          capture_output=True, text=True, timeout=60, check=False)
    after = time.time()
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert before + 4.0 <= seen["time"] <= after + 4.0, (before, seen, after)
    assert seen["slept"] >= 0.2, seen  # a real sleep, not OSError(22) nor zero
    assert seen["wait"] == "timeout", seen
    assert seen["event"] >= 0.2, seen
