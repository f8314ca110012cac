"""Runs one selection of tests several times in a row and reports every failure with the
seed that re-runs it, and the time of each run (make test-repeat).

Each run is a fresh pytest process with fresh seeds [tests/framework/seed.py]; a failure's
captured output holds the line ``seed: LC_SEED=N pytest 'NODEID'``, which this report
repeats. The report ends with one JSON object: runs, failures, seconds per run, and each run's
time per phase (``phases``: the graph stories and the rest, summed, and when each xdist
process ended).
``LC_TEST_REPORT_DIR=DIR`` keeps each run's JUnit XML there (runN.xml): every case's time,
start and xdist process (tests/conftest.py), to read a failure against what ran beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

SEED_LINE = re.compile(r"seed: (LC_SEED=\d+ pytest '[^']+')")


def _props(case: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in case.iter("property")}


def beside(cases: list[ET.Element], failed: ET.Element) -> str:
    """The modules that ran in another xdist process while ``failed`` ran, with the seconds
    they overlapped it, longest first (from the ``started`` and ``worker`` properties
    tests/conftest.py records): what loaded the machine when it failed."""
    props = _props(failed)
    if "started" not in props:
        return ""
    start = float(props["started"])
    end = start + float(failed.get("time", 0) or 0)
    overlap: dict[str, float] = {}
    for case in cases:
        other = _props(case)
        if "started" not in other or other.get("worker") == props.get("worker"):
            continue
        begin = float(other["started"])
        finish = begin + float(case.get("time", 0) or 0)
        seconds = min(end, finish) - max(start, begin)
        if seconds > 0:
            module = case.get("classname", "")
            overlap[module] = overlap.get(module, 0.0) + seconds
    ranked = sorted(overlap.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{module} {seconds:.0f} s" for module, seconds in ranked[:6])


def failures_in(junit: Path) -> list[dict[str, str]]:
    """(test id, first line of the error, re-run command, what ran beside it) of each failed
    case."""
    if not junit.exists():
        return [{"test": "(no report)", "error": "pytest wrote no report", "rerun": ""}]
    cases = list(ET.parse(junit).getroot().iter("testcase"))
    found = []
    for case in cases:
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is None:
            continue
        text = " ".join(t.text or "" for t in case.iter() if t.tag in ("system-out", "failure",
                                                                        "error"))
        seed = SEED_LINE.search(text)
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        message = (problem.get("message") or "").splitlines()
        entry = {"test": name, "error": message[0][:300] if message else "",
                 "rerun": seed.group(1) if seed else "(no seed printed)"}
        ran_beside = beside(cases, case)
        if ran_beside:
            entry["beside"] = ran_beside
        found.append(entry)
    return found


def phases(junit: Path) -> dict[str, object]:
    """Where a run's time went: seconds summed over the graph stories (one xdist process
    runs them one after another: tests/conftest.py marks their cases ``unit``
    ``graph-stories``) and over the rest, and when each process ended, from the run's
    start (the ``started`` property)."""
    if not junit.exists():
        return {}
    cases = [(case, _props(case)) for case in ET.parse(junit).getroot().iter("testcase")]
    stories = rest = 0.0
    first = min((float(props["started"]) for _, props in cases if "started" in props),
                default=0.0)
    ends: dict[str, float] = {}
    for case, props in cases:
        seconds = float(case.get("time", 0) or 0)
        if props.get("unit") == "graph-stories":
            stories += seconds
        else:
            rest += seconds
        if "started" in props:
            worker = props.get("worker", "main")
            end = float(props["started"]) - first + seconds
            ends[worker] = max(ends.get(worker, 0.0), end)
    return {"graph_stories_s": round(stories), "rest_s": round(rest),
            "process_end_s": {w: round(e) for w, e in sorted(ends.items())}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("-m", dest="markexpr", required=True, help="pytest -m expression")
    parser.add_argument("paths", nargs="*", help="test paths (default: the whole suite)")
    args = parser.parse_args()
    report: list[dict[str, object]] = []
    # Stopped by hand with SIGINT or SIGTERM: both end in the report below. A run started in
    # the background (`nohup make test-repeat &`) inherits SIGINT ignored, so SIGINT is set
    # back here, and SIGTERM (what `kill` and `pkill` send) is handled the same way.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _stopped_by_hand)
    try:
        run_all(args, report)
    except KeyboardInterrupt:  # stopped by hand (Ctrl-C, SIGINT): report the runs that ended
        print(f"== stopped during run {len(report) + 1}; the report covers runs that ended")
    return print_report(report)


STOP_WAIT_S = 180.0
"""How long a stopped run's pytest gets to tear its fixtures down before it is killed."""


def _stopped_by_hand(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """pytest's own Ctrl-C, so its fixtures tear down what they made (node processes,
    containers, private engines, namespaces); killed if that takes over ``STOP_WAIT_S``."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_all(args: argparse.Namespace, report: list[dict[str, object]]) -> None:
    """Run the suite ``args.runs`` times, appending each ended run to ``report``."""
    with tempfile.TemporaryDirectory(prefix="lc-repeat-") as tmp:
        for run in range(1, args.runs + 1):
            junit = Path(tmp) / f"run{run}.xml"
            start = time.monotonic()
            print(f"== run {run} of {args.runs}", flush=True)
            proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-m", args.markexpr,
                                     "-o", "junit_logging=all", f"--junitxml={junit}",
                                     *args.paths])
            try:
                code = proc.wait()
            except KeyboardInterrupt:
                _stop(proc)
                raise
            seconds = round(time.monotonic() - start)
            failed = failures_in(junit) if code != 0 else []
            if code != 0 and not failed:
                failed = [{"test": "(session)", "error": f"pytest exit {code}", "rerun": ""}]
            report.append({"run": run, "seconds": seconds, "exit": code, "failures": failed,
                           "phases": phases(junit)})
            keep = os.environ.get("LC_TEST_REPORT_DIR")
            if keep and junit.exists():
                Path(keep).mkdir(parents=True, exist_ok=True)
                shutil.copy(junit, Path(keep) / junit.name)
            print(f"== run {run}: {seconds} s, exit {code}, {len(failed)} failed", flush=True)


def print_report(report: list[dict[str, object]]) -> int:
    """Every failure of every ended run with its re-run line, then one JSON line."""
    print("== repeat report")
    for entry in report:
        print(f"run {entry['run']}: {entry['seconds']} s, {len(entry['failures'])} failed"  # type: ignore[arg-type]
              f"{_phase_text(entry.get('phases') or {})}")  # type: ignore[arg-type]
        for f in entry["failures"]:  # type: ignore[attr-defined]
            print(f"  FAILED {f['test']}: {f['error']}\n    re-run: {f['rerun']}")
            if f.get("beside"):
                print(f"    beside it: {f['beside']}")
    total = sum(len(e["failures"]) for e in report)  # type: ignore[arg-type]
    print(json.dumps({"runs": len(report), "failures": total,
                      "seconds_per_run": [e["seconds"] for e in report],
                      "phases_per_run": [e.get("phases") or {} for e in report]}))
    return 1 if total else 0


def _phase_text(phases: dict[str, object]) -> str:
    if not phases:
        return ""
    ends = ", ".join(f"{w} {s} s" for w, s in phases["process_end_s"].items())  # type: ignore[attr-defined]
    return (f" (summed: graph stories {phases['graph_stories_s']} s, the rest "
            f"{phases['rest_s']} s; processes ended at {ends})")


if __name__ == "__main__":
    sys.exit(main())
