#!/usr/bin/env bash
# make test's two phases, each timed: the pure tests in 2 processes (pytest-xdist), then
# the Docker, PostgreSQL and multi-process tests serially. Both phases always run; the
# script fails if either fails. The last line sums both phases ("N passed, N failed").
# Usage: test_phases.sh PYTEST PARALLEL_MARKEXPR SERIAL_MARKEXPR
set -uo pipefail
pytest=$1 parallel=$2 serial=$3
reports=$(mktemp -d)
trap 'rm -rf "$reports"' EXIT

run_phase() {  # name, junit file, pytest args...
  local name=$1 junit=$2; shift 2
  local start=$SECONDS
  echo "== phase $name: pytest $*"
  "$pytest" -q --junitxml="$junit" "$@"
  local rc=$?
  echo "$name $((SECONDS - start)) $rc" >>"$reports/times"
  return $rc
}

run_phase parallel "$reports/parallel.xml" -n 2 -m "$parallel"; rc1=$?
run_phase serial "$reports/serial.xml" -m "$serial"; rc2=$?

python3 - "$reports" <<'PY'
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

root = Path(sys.argv[1])
totals = {"passed": 0, "failed": 0, "skipped": 0}
print("== make test phases")
for line in (root / "times").read_text().split("\n"):
    if not line:
        continue
    name, seconds, rc = line.split()
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    xml = root / f"{name}.xml"
    if xml.exists():
        for suite in ET.parse(xml).getroot().iter("testsuite"):
            for key in counts:
                counts[key] += int(suite.get(key, 0))
    failed = counts["failures"] + counts["errors"]
    passed = counts["tests"] - failed - counts["skipped"]
    totals["passed"] += passed
    totals["failed"] += failed
    totals["skipped"] += counts["skipped"]
    minutes, secs = divmod(int(seconds), 60)
    print(f"  {name:<9} {minutes:3d} min {secs:02d} s   {passed} passed, {failed} failed, "
          f"{counts['skipped']} skipped   (pytest exit {rc})")
print(f"tests: {totals['passed']} passed, {totals['failed']} failed")
PY
[ "$rc1" -eq 0 ] && [ "$rc2" -eq 0 ]
