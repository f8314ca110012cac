"""Leak probe: what a hostile job moves to its submitter through a worker's node [THREAT-LEAK.1].

    .venv/bin/python bench/leak_probe.py [--run-s 3600] [--quick]

A job that wants its trained model out before a claim is paid writes a 1,024-byte random
payload through every channel a worker's node serves to anyone (no API token): its progress
file (read by the real reader, kept and served as the real ``Trainer`` does through
``client.worker.progress_view``), what it prints before failing, in ten scripts and encodings
(recorded by the real ``AttemptLog`` and read back as the API serves it), and a file name in
``/output`` that the real output check quotes in the detail line. It prints, per channel, the
payload bits a reader got back and the most the channel budget allows
(``bench/support/leak_channels.budget``, the table of threat_model.md). Last line: one JSON
object. Target: every channel under its budget; before issue 47 the progress file gave back
all 8,192 bits in a minute and the CJK excerpt about 3,400 bits per failed attempt.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.support.cli import emit, parse_args  # noqa: E402
from bench.support.leak_channels import (  # noqa: E402
    SCRIPTS,
    budget,
    decode,
    output_name,
    printed,
    progress_probe,
    random_payload,
    recovered_bits,
    refusal_detail,
    symbols,
    totals,
)
from client.worker.attempt_log import AttemptLog, job_attempts  # noqa: E402
from client.worker.progress_view import ProgressFeed, observe, public_json  # noqa: E402
from sandbox.results import FailureReason  # noqa: E402

NEEDS_DOCKER = False
JSON_KEYS = (
    "run_s", "progress_bits_recovered", "progress_bits_per_s", "progress_bits_budget",
    "excerpt_bits_per_attempt", "excerpt_worst_script", "excerpt_bits_budget",
    "detail_bits_per_attempt", "detail_bits_budget", "budget_bits_per_run",
    "budget_bits_per_job_worker", "budget_bits_per_s",
)
JOB = bytes(range(32))


def served_record(root: Path, output: bytes, detail: str) -> dict[str, Any]:
    """One failed attempt recorded by the real ``AttemptLog`` and read back as
    ``GET /jobs/{id}/logs`` serves it (from disk, bounded, as JSON)."""
    worker = root / "worker" / "lc1probe"
    AttemptLog(worker, "lc1probe").record(
        JOB, attempt=1, run=1, started_ms=0, seconds=1.0, stage="train",
        reason=FailureReason.NONZERO_EXIT, fault="job", exit_code=1, detail=detail,
        output=output)
    record = job_attempts(root / "worker", JOB)[-1]
    served: dict[str, Any] = json.loads(json.dumps(record.to_json()))
    return served


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-s", type=int, default=3600, help="length of the hostile run")
    args = parse_args(parser, {"run_s": 600})
    payload = random_payload()
    rows = budget(args.run_s)
    limit = {row.channel: row.per_run for row in rows}
    with tempfile.TemporaryDirectory(prefix="lc-leak-") as tmp:
        root = Path(tmp)
        feed = [ProgressFeed("lc1probe", 1, None, 0)]

        def deliver(progress: Any, now_ms: int) -> None:
            feed[0] = observe(feed[0], progress, now_ms)

        def read(now_ms: int) -> dict[str, Any] | None:
            view = public_json(feed[0], now_ms)
            return json.loads(json.dumps(view)) if view is not None else None

        progress = progress_probe(payload, args.run_s, root, deliver, read)
        excerpt_bits: dict[str, int] = {}
        detail_bits: dict[str, int] = {}
        for script in SCRIPTS:
            sent = symbols(payload, script.bits)
            folder = root / script.name
            folder.mkdir()
            detail = refusal_detail(output_name(payload, script), folder / "out")
            served = served_record(folder, printed(payload, script), detail)
            excerpt_bits[script.name] = recovered_bits(sent, decode(served["log"], script),
                                                       script.bits)
            detail_bits[script.name] = recovered_bits(sent, decode(served["detail"], script),
                                                      script.bits)
    worst = max(excerpt_bits, key=lambda name: excerpt_bits[name])
    print(f"{'channel':<52} {'got back':>9} {'budget':>9}  (bits per run of {args.run_s} s)")
    print(f"{'progress (public view)':<52} {progress.bits:>9} "
          f"{limit['progress (public view)']:>9.0f}")
    for script in SCRIPTS:
        print(f"{'excerpt, ' + script.name:<52} {excerpt_bits[script.name]:>9} "
              f"{limit['failed-run excerpt']:>9.0f}")
        print(f"{'detail (an /output file name), ' + script.name:<52} "
              f"{detail_bits[script.name]:>9} "
              f"{limit['detail line (file names, metrics.json, self-check)']:>9.0f}")
    for row in rows:
        print(f"budget: {row.channel:<52} {row.per_run:>8.1f}  {row.note}")
    total = totals(rows, args.run_s)
    print(f"budget: per run {total['per_run_bits']:.0f} bits, per job and worker "
          f"{total['per_job_worker_bits']:.0f} bits, {total['bits_per_s']:.3f} bit/s over the run")
    emit({
        "run_s": args.run_s,
        "progress_bits_recovered": progress.bits,
        "progress_bits_per_s": round(progress.bits / args.run_s, 4),
        "progress_bits_budget": round(limit["progress (public view)"], 1),
        "excerpt_bits_per_attempt": excerpt_bits[worst],
        "excerpt_worst_script": worst,
        "excerpt_bits_budget": limit["failed-run excerpt"],
        "detail_bits_per_attempt": max(detail_bits.values()),
        "detail_bits_budget": limit["detail line (file names, metrics.json, self-check)"],
        "budget_bits_per_run": round(total["per_run_bits"], 1),
        "budget_bits_per_job_worker": round(total["per_job_worker_bits"], 1),
        "budget_bits_per_s": round(total["bits_per_s"], 4),
    }, JSON_KEYS)


if __name__ == "__main__":
    main()
