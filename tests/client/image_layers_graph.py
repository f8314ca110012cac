"""A graph where a job image really travels: the worker has a Docker engine of its own.

Shared by ``tests/client/test_image_layers_docker.py`` and ``bench/jobstart.py``:
node0 (validator and the only worker) runs its jobs on a private dockerd that
holds the base image only; node1 (validator) is the node the submitter posts to
with ``learningchain job submit`` from the host engine, so every image blob the
worker needs comes to node0 from node1 over p2p [JOB-IMAGE.6-8].
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker

from client.devnet.network import NetworkLayout
from client.devnet.processes import up
from sandbox.policy import LABEL_JOB, LABEL_MANAGED

REPO = Path(__file__).resolve().parents[2]
WORKER, SUBMIT_NODE = 0, 1


@dataclass(frozen=True, slots=True)
class Posted:
    """One ``job submit``: its JSON answer, and when it started (monotonic seconds)."""

    info: dict[str, Any]
    started: float
    submit_s: float


def start_graph(root: Path, engine_host: str, base_port: int) -> NetworkLayout:
    """Two validators; node0 also works, on the engine at ``engine_host``, one attempt per job."""
    return up(root, validators=2, workers=1, base_port=base_port,
              worker_settings={WORKER: {"max_attempts": 1}},
              users={"submitter": 100_000}, consensus={"commit_ms": 200}, timeout=90,
              node_env={WORKER: {"DOCKER_HOST": engine_host}})


def cli(*args: str, env: dict[str, str] | None = None) -> str:
    """``learningchain ARGS``; its stdout, or RuntimeError with its output."""
    import os

    proc = subprocess.run([sys.executable, "-m", "client", *args], cwd=REPO, text=True,
                          capture_output=True, env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise RuntimeError(f"learningchain {' '.join(args)} failed ({proc.returncode}):\n"
                           f"{proc.stdout}{proc.stderr}")
    return proc.stdout


def submit(layout: NetworkLayout, job_dir: Path, *extra: str,
           env: dict[str, str] | None = None) -> Posted:
    """``job submit JOB_DIR --json`` as the submitter, to node1; returns when it is in a block."""
    user = next(u for u in layout.users if u.name == "submitter")
    started = time.monotonic()
    out = cli("job", "submit", str(job_dir), "--bounty", "100", "--expires-in", "10m",
              "--key", str(user.key_file), "--passphrase-file", str(user.passphrase_file),
              "--json", *extra,
              env={"LC_NODE": layout.nodes[SUBMIT_NODE].api_url, **(env or {})})
    return Posted(json.loads(out), started, time.monotonic() - started)


def job_containers(engine: docker.DockerClient, job_id: str) -> list[Any]:
    """The worker's containers for ``job_id`` on its engine (running or not), as the
    engine's list summaries: one call, no per-container inspect, so a short-lived
    container removed between the list and an inspect cannot fail the wait."""
    found = engine.api.containers(all=True, filters={"label": f"{LABEL_MANAGED}=1"})
    return [c for c in found
            if str((c.get("Labels") or {}).get(LABEL_JOB, "")).startswith(job_id[:16])]


def wait_training(engine: docker.DockerClient, job_id: str, timeout_s: float) -> float:
    """Monotonic time when the job's first container (its training) exists on the engine."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if job_containers(engine, job_id):
            return time.monotonic()
        time.sleep(0.05)
    raise TimeoutError(f"no training container for job {job_id[:16]} after {timeout_s:.0f} s")


def wait_idle(engine: docker.DockerClient, job_id: str, timeout_s: float) -> None:
    """Until the worker has no container for the job left (training and self-check done)."""
    deadline = time.monotonic() + timeout_s
    while job_containers(engine, job_id):
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id[:16]} still has containers after {timeout_s} s")
        time.sleep(0.2)


def fetched_bytes(layout: NetworkLayout, index: int = WORKER) -> int:
    """The node's ``blob_fetched_bytes`` counter: verified blob bytes received from peers."""
    with urllib.request.urlopen(layout.nodes[index].api_url + "/metrics", timeout=5) as r:
        text = r.read().decode()
    match = re.search(r"^\w*blob_fetched_bytes(?:_total)?\s+([0-9.e+]+)$", text, re.M)
    if match is None:
        raise RuntimeError("no blob_fetched_bytes in /metrics")
    return int(float(match.group(1)))


def node_log(layout: NetworkLayout, index: int = WORKER) -> str:
    return (layout.nodes[index].directory / "node.log").read_text(errors="replace")
