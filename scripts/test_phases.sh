#!/usr/bin/env bash
# make test: the whole suite in LC_TEST_PROCESSES processes (default 3; pytest-xdist, --dist
# loadfile). A module's tests run one after another in one process; the modules that start engines, graphs of node
# processes or browsers are handed out first, longest first (tests/conftest.py), and the
# pure tests fill the end. The report gives each phase's time (the PHASE=SECONDS arguments
# and pytest), the 15 longest modules, each lane's summed test time
# (engine: docker, postgres and multi-process modules; pure: the rest); the last line sums
# the run ("tests: N passed, N failed").
# Usage: test_phases.sh PYTEST MARKEXPR [PHASE=SECONDS ...]
# (the phases make test ran before pytest: setup, lint and types; printed in the report)
set -uo pipefail
pytest=$1 markexpr=$2
shift 2
reports=$(mktemp -d)
trap 'rm -rf "$reports"' EXIT
# LC_TEST_REPORT=FILE keeps the run's JUnit XML (every case's time) for a later look.

# The engine tests build and save job images (about 1 GB each) under pytest's /tmp
# directories: say how much room there is before and after, so a full disk reads as one.
free_gib() { df -BG --output=avail "${TMPDIR:-/tmp}" | tail -1 | tr -dc 0-9; }
disk_before=$(free_gib)
echo "== disk: ${disk_before} GiB free in ${TMPDIR:-/tmp}"
if [ "$disk_before" -lt 12 ]; then
  echo "warning: under 12 GiB free; the engine tests may fail with 'no space left on device'" >&2
fi
processes=${LC_TEST_PROCESSES:-3}
start=$SECONDS
echo "== pytest -n $processes --dist loadfile -m \"$markexpr\""
"$pytest" -q -n "$processes" --dist loadfile --durations=25 --junitxml="$reports/run.xml" \
  -o junit_family=xunit1 -m "$markexpr"
rc=$?
if [ -n "${LC_TEST_REPORT:-}" ]; then cp "$reports/run.xml" "$LC_TEST_REPORT" || true; fi
wall=$((SECONDS - start))
echo "== disk: $(free_gib) GiB free after the run (${disk_before} GiB before)"

python3 - "$reports/run.xml" "$wall" "$rc" "$processes" "$@" <<'PY'
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

junit, wall, rc, processes = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
before = [phase.split("=", 1) for phase in sys.argv[5:]]
lanes: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
modules: dict[str, float] = defaultdict(float)
if junit.exists():
    for case in ET.parse(junit).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        lane = lanes[props.get("lane", "pure")]
        seconds = float(case.get("time", 0) or 0)
        lane["seconds"] += seconds
        modules[case.get("file") or case.get("classname", "")] += seconds
        if case.find("skipped") is not None:
            lane["skipped"] += 1
        elif case.find("failure") is not None or case.find("error") is not None:
            lane["failed"] += 1
        else:
            lane["passed"] += 1


def clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes:3d} min {secs:02d} s"


if before:
    print("== make test phases")
    for name, seconds in before:
        print(f"  {name:<15} {clock(float(seconds))}")
    print(f"  {'pytest':<15} {clock(wall)}")
    print(f"  {'total':<15} {clock(wall + sum(float(s) for _, s in before))}")
print(f"== make test lanes ({processes} processes side by side; lane times are summed test times)")
for name in ("engine", "pure"):
    lane = lanes[name]
    print(f"  {name:<7} {clock(lane['seconds'])}   {int(lane['passed'])} passed, "
          f"{int(lane['failed'])} failed, {int(lane['skipped'])} skipped")
print(f"  wall    {clock(wall)}   (pytest exit {rc})")
print("== the 15 longest modules (summed test time)")
for module, seconds in sorted(modules.items(), key=lambda kv: -kv[1])[:15]:
    print(f"  {clock(seconds)}   {module}")
passed = sum(int(lane["passed"]) for lane in lanes.values())
failed = sum(int(lane["failed"]) for lane in lanes.values())
print(f"tests: {passed} passed, {failed} failed")
PY
exit "$rc"
