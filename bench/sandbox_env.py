"""What the entry point's environment buys: the template's training with and without the
heap and stat settings of [JOB-MALLOC.1] and [JOB-STATCACHE.1], runs interleaved.

    flock /tmp/lc-heavy.lock .venv/bin/python bench/sandbox_env.py [--runtime runsc]
        [--rounds 6] [--epochs 200] [--quick]

Builds the template job, then for each round runs its ``/job/train`` three times through
``SandboxRunner.run_entry``, one variant after the other, so that a machine whose pace
drifts (a shared VM) moves all three alike: ``base`` (the C library's default heap, only
the mapping cache [JOB-MAPCACHE.1] preloaded), ``malloc`` (``GLIBC_TUNABLES`` of
[JOB-MALLOC.1] added) and ``malloc_stat`` (the runner's own environment: the stat cache
preloaded too). Figures: each variant's median and best whole call and the loop the
template prints, and the gains of each step as ratios of medians (``malloc_gain`` =
base / malloc, ``stat_gain`` = malloc / malloc_stat). Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.sandbox import LIMITS, train_params
from bench.support.cli import emit, parse_args
from sandbox import launcher
from sandbox.base_image import ensure_base_image
from sandbox.engine import connect
from sandbox.job_template import build_job, init_job, template_data
from sandbox.runner import SandboxRunner
from sandbox.runtime import RUNSC, registered

JSON_KEYS = ("runtime", "rounds", "epochs", "base_median_s", "malloc_median_s",
             "malloc_stat_median_s", "base_best_s", "malloc_best_s", "malloc_stat_best_s",
             "base_loop_s", "malloc_loop_s", "malloc_stat_loop_s", "malloc_gain", "stat_gain")
"""Keys of the last line (tests/test_bench_quick.py)."""
NEEDS_DOCKER = True
"""Builds a job image and runs containers on the host engine."""
QUICK = {"rounds": 1, "epochs": 1}
LOOP = re.compile(rb"trained epochs \S+ in ([0-9.]+) s")
MAPCACHE_ONLY = f"{launcher.MOUNT}/{launcher.MAPCACHE}"
VARIANTS = {
    "base": {"GLIBC_TUNABLES": "", "LD_PRELOAD": MAPCACHE_ONLY},
    "malloc": {"LD_PRELOAD": MAPCACHE_ONLY},
    "malloc_stat": {},
}
"""What each variant sets over the runner's environment (an empty GLIBC_TUNABLES is
glibc's default)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime", default="", help="runsc where the engine has it, else runc")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=200)
    args = parse_args(parser, QUICK)
    client = connect()
    ensure_base_image(client, log=lambda m: print(m, file=sys.stderr))
    runtime = args.runtime or (RUNSC if RUNSC in registered(client.info()) else "runc")
    runner = SandboxRunner(client, node_id="bench", runtime=runtime)
    params = train_params(args.epochs).to_json()
    wall: dict[str, list[float]] = {name: [] for name in VARIANTS}
    loop: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="lc-bench-env-") as tmp:
        scratch = Path(tmp)
        init_job(scratch / "job", name="bench-env")
        image_id = build_job(client, scratch / "job", log=lambda m: None).image_id
        data = template_data(scratch / "job", scratch / "data")
        for round_ in range(args.rounds):
            for name, env in VARIANTS.items():
                began = time.monotonic()
                result = runner.run_entry(image_id, "train", ["python3", "/job/train"],
                                          {"LC_PARAMS": params, **env}, LIMITS,
                                          scratch / f"out-{round_}-{name}", job_id="bench",
                                          data=data)
                if not result.ok:
                    raise SystemExit(f"{name} failed: {result.reason} {result.detail}")
                wall[name].append(time.monotonic() - began)
                found = LOOP.findall(result.logs)
                loop[name].append(float(found[-1]) if found else 0.0)
                print(f"round {round_ + 1} {name}: {wall[name][-1]:.2f} s "
                      f"(loop {loop[name][-1]:.2f} s)", flush=True)
    median = {name: statistics.median(times) for name, times in wall.items()}
    figures: dict[str, object] = {"runtime": runtime, "rounds": args.rounds,
                                  "epochs": args.epochs}
    for name in VARIANTS:
        figures[f"{name}_median_s"] = round(median[name], 3)
        figures[f"{name}_best_s"] = round(min(wall[name]), 3)
        figures[f"{name}_loop_s"] = round(min(loop[name]), 3)
    figures["malloc_gain"] = round(median["base"] / median["malloc"], 3)
    figures["stat_gain"] = round(median["malloc"] / median["malloc_stat"], 3)
    emit(figures, JSON_KEYS)


if __name__ == "__main__":
    main()
