"""The soak's prediction requests (bench/soak.py, issue 48 §6: "jobs of every kind").

The first template job the soak sees paid is deployed (``model deploy``, as its submitter)
and asked for ``ROWS`` digits every ``every_s`` seconds (``predict --k 3``, through v0)
until the soak stops posting: the three worker nodes, which run with ``[worker] predict =
true``, commit, reveal and are paid for each [PRED-*]. Each request is timed from ``predict``
to its settled answer; an unanswered or failed one is counted and its error kept.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from client.api.http_client import ApiClient, ApiError
from client.devnet.network import UserLayout

REPO = Path(__file__).resolve().parents[2]
ROWS = 20
K = 3
WINDOW = "60s"
OFFER_WAIT_S = 120.0
"""How long the workers may take to offer prediction service once the model is deployed."""


@dataclass
class Prediction:
    asked_s: float
    seconds: float | None = None
    status: str = "asked"


def lc(args: list[str], env: dict[str, str], timeout: float) -> str:
    proc = subprocess.run([sys.executable, "-m", "client", *args], cwd=REPO, text=True,
                          capture_output=True, env={**os.environ, **env}, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"learningchain {' '.join(args[:2])}: exit {proc.returncode}: "
                           f"{(proc.stdout + proc.stderr)[-400:]}")
    return proc.stdout


def rows_csv(job_dir: Path, out: Path) -> Path:
    """``ROWS`` digits from the template's data (pixel / 16, as the template scales them),
    features only, one row a line."""
    source = job_dir / "holdout" / "test.csv"
    if not source.exists():
        source = job_dir / "data" / "valid.csv"
    lines = source.read_text().splitlines()[1:ROWS + 1]
    out.write_text("".join(",".join(repr(float(v) / 16.0) for v in ln.split(",")[1:]) + "\n"
                           for ln in lines))
    return out


class PredictStream(threading.Thread):
    """Deploys the first paid job handed by ``paid_job`` and asks it every ``every_s`` until
    ``stop``; at least once, even if the job was paid after ``stop`` (a short run's only job
    settles while the soak drains), unless ``abort`` comes first."""

    def __init__(self, api: ApiClient, submitter: UserLayout, worker_apis: list[ApiClient],
                 job_dir: Path, work: Path, every_s: float, paid_job: Callable[[], str | None],
                 stop: threading.Event, abort: threading.Event,
                 clock: Callable[[], float]) -> None:
        super().__init__(name="predictions", daemon=True)
        self.api, self.worker_apis, self.every_s = api, worker_apis, every_s
        self.paid_job, self.stop, self.abort, self.clock = paid_job, stop, abort, clock
        self.env = {"LC_NODE": api.base_url, "LC_KEY": str(submitter.key_file),
                    "LC_PASSPHRASE": submitter.passphrase_file.read_text().strip()}
        self.rows = rows_csv(job_dir, work / "predict-rows.csv")
        self.model: str | None = None
        self.predictions: list[Prediction] = []
        self.errors: list[str] = []

    def run(self) -> None:
        try:
            self.model = self._deploy()
        except (RuntimeError, subprocess.SubprocessError, OSError) as e:
            self.errors.append(f"{self.clock():.0f} s: deploy: {e}")
            return
        if self.model is None:
            return
        while not self.abort.is_set():
            self._ask(self.model)
            if self.stop.wait(self.every_s):
                return

    def _deploy(self) -> str | None:
        job_id = None
        while job_id is None:
            if self.abort.wait(2.0):
                return None
            job_id = self.paid_job()
        lc(["model", "deploy", job_id, "--features", "64", "--labels",
            ",".join(str(d) for d in range(10)), "--royalty", "50", "--json"], self.env, 300)
        deadline = time.monotonic() + OFFER_WAIT_S
        while not all(self._offering(api) for api in self.worker_apis):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the workers did not offer predictions within "
                                   f"{OFFER_WAIT_S:.0f} s of the deploy")
            if self.abort.wait(2.0):
                return None
        return job_id

    @staticmethod
    def _offering(api: ApiClient) -> bool:
        try:
            return bool((api.status()["worker"].get("executor") or {}).get("offering"))
        except (ApiError, OSError, KeyError, ValueError):
            return False

    def _ask(self, model: str) -> None:
        record = Prediction(self.clock())
        self.predictions.append(record)
        started = time.monotonic()
        try:
            answer = json.loads(lc(["predict", model, "--input", str(self.rows), "--k", str(K),
                                    "--window", WINDOW, "--json"], self.env, 600))
        except (RuntimeError, subprocess.SubprocessError, OSError, ValueError) as e:
            record.status = "failed"
            self.errors.append(f"{record.asked_s:.0f} s: predict: {str(e)[-300:]}")
            return
        record.status = str(answer.get("status"))
        record.seconds = time.monotonic() - started
        if record.status != "agreed" or len(answer.get("labels") or []) != ROWS:
            self.errors.append(f"{record.asked_s:.0f} s: predict: {json.dumps(answer)[:300]}")

    def answered(self) -> list[Prediction]:
        return [p for p in self.predictions if p.status == "agreed"]
