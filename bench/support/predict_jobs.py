"""Two small train/v2 jobs for ``bench/predict.py``: their paid models get deployed.

- ``digits``: the template (``job init``) as a train/v2 job (its holdout pool joined into
  ``data/valid.csv``), a short search space; its model is a 64-32-10 MLP, answered in
  ``labels`` mode.
- ``zero``: the same data and ``lcjob.py``, but ``train`` fits a *linear* score "is this
  digit a 0" (one layer, one output: logistic-regression logits) and ``evaluate`` reports
  its binary cross-entropy; its model is deployed as a one-output regression and answers
  CKKS-encrypted requests [PRED-CKKS.1].

Both write ``model.pt`` as a safetensors-mlp file with the template's ``lcjob.export_bytes``
[JOB-EXPORT.1], so the winner's model blob deploys as it is [PRED-DEPLOY.1].
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

JOB_TOML = """kind = "train/v2"
name = "{name}"
description = "bench/predict.py: {name}"
bounty = 100
expiry_s = 3600
loss_tolerance = 1e-4

[entry_points]
train = ["/job/train"]
evaluate = ["/job/evaluate"]

[data]
train = "data/train.csv"
valid = "data/valid.csv"

[limits]
memory_mb = 1024
cpu_millis = 2000
time_s = 120
disk_mb = 64
model_mb = 4

[[search_space]]
name = "learning_rate"
kind = "log_uniform"
values = [0.01, 0.02]

[[search_space]]
name = "hidden_size"
kind = "choice"
values = [32]

[[search_space]]
name = "epochs"
kind = "int"
values = [{epochs}]
"""

ZERO_TRAIN = '''#!/usr/bin/env python3
"""A linear "is it a 0" score on the digits (bench/predict.py's encrypted model)."""
import sys

import torch
from torch import nn

import lcjob


def main() -> int:
    seed, hp = lcjob.read_params()
    lr, epochs = float(hp.get("learning_rate", 0.02)), int(hp.get("epochs", 40))
    lcjob.fixed_threads()
    torch.manual_seed(seed)
    x, y = lcjob.load_csv(*lcjob.training_files())
    target = (y == 0).float().unsqueeze(1)
    model = nn.Sequential(nn.Linear(lcjob.FEATURES, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr * 10)
    for epoch in range(epochs):
        optimizer.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(model(x), target)
        loss.backward()
        optimizer.step()
        lcjob.write_progress((epoch + 1) / epochs, epoch + 1, loss.item(), "train_loss")
    (lcjob.OUTPUT_DIR / "model.pt").write_bytes(lcjob.export_bytes(model))
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''

ZERO_EVALUATE = '''#!/usr/bin/env python3
"""Binary cross-entropy of the linear "is it a 0" score on the validation digits."""
import json
import os
import sys
from pathlib import Path

import torch
from torch import nn

import lcjob


def load(path: Path) -> nn.Module:
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    if not 2 <= n <= min(1 << 20, len(data) - 8):
        raise ValueError("not a safetensors file")
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    if set(header) != {"layer0.weight", "layer0.bias"}:
        raise ValueError(f"not a linear model: {sorted(header)}")
    model = nn.Linear(lcjob.FEATURES, 1)
    for name, spec in header.items():
        start, end = (8 + n + int(o) for o in spec["data_offsets"])
        if spec["dtype"] != "F32" or not 8 + n <= start <= end <= len(data):
            raise ValueError(f"{name}: bad dtype or range")
        values = torch.frombuffer(bytearray(data[start:end]), dtype=torch.float32)
        part = getattr(model, name.split(".")[1])
        part.data = values.reshape(part.shape).clone()
    return model


def main() -> int:
    lcjob.fixed_threads()
    try:
        model = load(Path(os.environ.get("LC_MODEL", "/model/model.pt")))
    except Exception as e:
        print(f"invalid model: {type(e).__name__}: {e}", file=sys.stderr)
        return lcjob.EXIT_INVALID_MODEL
    x, y = lcjob.load_csv(*lcjob.validation_files())
    with torch.no_grad():
        loss = nn.functional.binary_cross_entropy_with_logits(
            model(x), (y == 0).float().unsqueeze(1)).item()
    (lcjob.OUTPUT_DIR / "metrics.json").write_text(json.dumps({"loss": loss,
                                                              "examples": len(y)}))
    print(f"loss={loss!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''


def _init_v2(job_dir: Path, name: str, epochs: str) -> Path:
    """``job init``, then train/v2: the holdout pool's shards joined into data/valid.csv;
    returns the template's test digits (``holdout/test.csv``: never trained or validated
    on), the rows the bench asks predictions for."""
    subprocess.run([sys.executable, "-m", "client", "job", "init", str(job_dir)], cwd=REPO,
                   check=True, capture_output=True)
    header, rows = "", []
    pool = job_dir / "holdout" / "pool"
    for shard in sorted(pool.iterdir()):
        lines = shard.read_text().splitlines()
        header, rows = lines[0], rows + lines[1:]
    shutil.rmtree(pool)
    (job_dir / "data" / "valid.csv").write_text("\n".join([header, *rows]) + "\n")
    (job_dir / "job.toml").write_text(JOB_TOML.format(name=name, epochs=epochs))
    return job_dir / "holdout" / "test.csv"


def digits_job(job_dir: Path) -> Path:
    """The template MLP job; returns the held-out test CSV."""
    return _init_v2(job_dir, "bench-digits", "2, 3")


def zero_job(job_dir: Path) -> Path:
    """The linear "is it a 0" job; returns the held-out test CSV."""
    test = _init_v2(job_dir, "bench-zero-linear", "30, 40")
    for name, text in (("train", ZERO_TRAIN), ("evaluate", ZERO_EVALUATE)):
        (job_dir / name).write_text(text)
        (job_dir / name).chmod(0o755)
    return test
