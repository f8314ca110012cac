"""Sandbox overhead: the template's training in a container versus as a plain host process.

Runs the same train script on the same data and parameters (one thread, as
the template fixes) as a host process and in the hardened sandbox, and
times an empty entry point (``true``) for the container's own cost. Each
measurement is repeated and the best taken, since the machine is shared.

    sandbox_s           entry point wall time inside the container
    host_s              the same script as a host subprocess
    ratio               sandbox_s / host_s                  target <= 1.10
    sandbox_total_s     the whole runner.train call, container start and teardown included
    start_teardown_s    create + start + exec + copy-out + remove of `true`
                                                             target <= 1.5 s
Last line: one JSON object with these figures (keys ``JSON_KEYS``).

    .venv/bin/python bench/sandbox.py [--repeats 4] [--epochs 400] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support.cli import emit, parse_args
from sandbox.base_image import ensure_base_image
from sandbox.engine import connect
from sandbox.job_template import build_job, init_job, template_data
from sandbox.limits import MIB, ResourceLimits, TrainParams
from sandbox.runner import SandboxRunner

JSON_KEYS = ("host_s", "sandbox_s", "ratio", "sandbox_total_s", "ratio_with_start_teardown",
             "start_teardown_s", "start_teardown_median_s", "repeats", "targets_met")
"""Keys of the last line (tests/test_bench_quick.py)."""
NEEDS_DOCKER = True
"""Builds a job image and runs containers on the host engine: CI runs it serially."""
QUICK = {"repeats": 1, "epochs": 5}


def train_params(epochs: int) -> TrainParams:
    return TrainParams(seed=1, hyperparameters={"learning_rate": 0.005, "hidden_size": 128,
                                                "epochs": epochs})


LIMITS = ResourceLimits(memory_bytes=1024 * MIB, nano_cpus=2_000_000_000, pids=64,
                        wall_time_s=300.0, tmp_bytes=16 * MIB, output_bytes=16 * MIB,
                        model_bytes=8 * MIB)


def host_train(job_dir: Path, scratch: Path, data_root: Path, params: TrainParams) -> float:
    """The train script as a host process, reading the same unpacked data folders
    (``LC_DATA``: the root holding one folder per role, as ``/data`` in the sandbox)."""
    out = Path(tempfile.mkdtemp(dir=scratch))
    env = {**os.environ, "LC_PARAMS": params.to_json(), "LC_OUTPUT": str(out),
           "LC_DATA": str(data_root)}
    started = time.monotonic()
    subprocess.run([sys.executable, str(job_dir / "train")], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def sandbox_train(runner: SandboxRunner, image_id: str, scratch: Path,
                  data: dict[str, Path], params: TrainParams) -> tuple[float, float]:
    out = Path(tempfile.mkdtemp(dir=scratch)) / "out"
    started = time.monotonic()
    result = runner.train(image_id, params, LIMITS, None, out, job_id="bench", data=data)
    total = time.monotonic() - started
    if not result.ok:
        raise SystemExit(f"sandbox train failed: {result.reason} {result.detail}")
    return result.seconds, total


def start_teardown(runner: SandboxRunner, image_id: str, scratch: Path) -> float:
    out = Path(tempfile.mkdtemp(dir=scratch)) / "out"
    started = time.monotonic()
    result = runner.run_entry(image_id, "noop", ["true"], {}, LIMITS, out, job_id="bench")
    elapsed = time.monotonic() - started
    if not result.ok:
        raise SystemExit(f"empty entry point failed: {result.reason} {result.detail}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=4, help="runs of each (best taken)")
    parser.add_argument("--epochs", type=int, default=400, help="the template's epochs")
    args = parse_args(parser, QUICK)
    params = train_params(args.epochs)
    client = connect()
    base = ensure_base_image(client, log=lambda m: print(m, file=sys.stderr))
    print(f"base image {base.tag} ({'built' if base.built else 'present'}, {base.seconds:.1f} s)")
    runner = SandboxRunner(client, node_id="bench")
    with tempfile.TemporaryDirectory(prefix="lc-bench-") as tmp:
        scratch = Path(tmp)
        job_dir = scratch / "job"
        init_job(job_dir, name="bench-digits")
        image_id = build_job(client, job_dir, log=lambda m: None).image_id
        data_root = scratch / "data"
        # the blobs a node would mount [JOB-DATA.3]; valid: the public part of the template's
        # hidden-test-set pool, split locally (train/v3 [HOLDOUT-BLOB.6])
        data = template_data(job_dir, data_root)
        host, inside, total, empty = [], [], [], []
        for i in range(args.repeats):
            host.append(host_train(job_dir, scratch, data_root, params))
            sandbox_s, sandbox_total = sandbox_train(runner, image_id, scratch, data, params)
            inside.append(sandbox_s)
            total.append(sandbox_total)
            empty.append(start_teardown(runner, image_id, scratch))
            print(f"run {i + 1}: host {host[-1]:.2f} s, sandbox {inside[-1]:.2f} s "
                  f"(whole call {total[-1]:.2f} s), empty container {empty[-1]:.2f} s")
    figures = {
        "host_s": round(min(host), 3),
        "sandbox_s": round(min(inside), 3),
        "ratio": round(min(inside) / min(host), 3),
        "sandbox_total_s": round(min(total), 3),
        "ratio_with_start_teardown": round(min(total) / min(host), 3),
        "start_teardown_s": round(min(empty), 3),
        "start_teardown_median_s": round(statistics.median(empty), 3),
        "repeats": args.repeats,
    }
    figures["targets_met"] = figures["ratio"] <= 1.10 and figures["start_teardown_s"] <= 1.5
    emit(figures, JSON_KEYS)


if __name__ == "__main__":
    main()
