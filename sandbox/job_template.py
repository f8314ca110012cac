"""``job init`` and ``job build``: a working job from the template, built offline.

The template trains a small PyTorch MLP on the UCI handwritten digits that
ship inside scikit-learn. The data file is copied out of the installed
package at init time, so the job image needs no scikit-learn and no
network. The data is split once, by row index, into training data (posted
as a data blob by ``job submit``, never in the image [JOB-DATA.*]), a
validation pool and a held-out test split that stays in the job folder, so
a demo can score the winning model on data no worker saw. The job is
``train/v3``: the validation rows are a hidden-test-set pool of CSV shards
(``holdout/pool``, [HOLDOUT-BLOB.1]); a block after the post picks the
public half, the other half decides the winner (ledger.md §5b).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import importlib.util
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import docker

from sandbox.base_image import BASE_TAG, build_image, ensure_base_image
from sandbox.errors import JobDirError, SandboxError
from sandbox.host_packages import (
    HostDist,
    HostPackageError,
    build_layer,
    check_host_python,
    host_dist,
)
from sandbox.job_file import load_job_file
from sandbox.job_sources import IMAGE_FILE, job_sources

TEMPLATE_PACKAGE = "sandbox.templates.digits"
# (template file, file written in the job folder, mode)
TEMPLATE_FILES = (
    ("Dockerfile", "Dockerfile", 0o644),
    ("dockerignore.txt", ".dockerignore", 0o644),
    ("job.toml", "job.toml", 0o644),
    ("README.md", "README.md", 0o644),
    ("lcdata.py.tmpl", "lcdata.py", 0o644),
    ("lcjob.py.tmpl", "lcjob.py", 0o644),
    ("train.py.tmpl", "train", 0o755),
    ("evaluate.py.tmpl", "evaluate", 0o755),
    ("federate.py.tmpl", "federate", 0o755),  # a federated job's local round [JOB-FED.1]
)
HOLDOUT_EVERY = 5
"""Row i is held-out test data when i % 5 == 0, validation when i % 5 == 1, else training."""
POOL_DIR = "holdout/pool"
"""The validation rows as the hidden-test-set pool (job.toml ``[holdout] pool``)."""
SHARD_ROWS = 12
"""Validation rows per pool shard: 360 rows make 30 shards, 15 public and 15 hidden (the
template's figures of [HOLDOUT-SIZE.1])."""
LOCAL_SEED = hashlib.sha256(b"learningchain/local-split").digest()
"""The split seed of a local run (``template_data``): no chain draws one there."""

Log = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class DataSplit:
    train: int
    valid: int
    """Validation rows: the pool's, in ``shards`` files."""
    test: int
    shards: int = 0


@dataclass(frozen=True, slots=True)
class BuiltJob:
    image_id: str
    """``sha256:<hex>``: the job's digest, checked by every worker that loads it [JOB-IMAGE.3]."""
    tag: str


EXPORT_FORMATS = ("safetensors-mlp", "onnx")
"""[JOB-EXPORT.1] What the template's train can write as /output/model.pt."""
ONNX_PACKAGES = ("onnx", "protobuf", "ml_dtypes", "onnxruntime")
"""Host distributions an ONNX-exporting template job copies into its image [JOB-IMAGE.12]:
torch.onnx's exporter needs ``onnx``; evaluate runs the file with ``onnxruntime``."""


def init_job(job_dir: Path, name: str = "digits-mlp", export: str = "safetensors-mlp"
             ) -> DataSplit:
    """Write the template job into ``job_dir`` (created; must be empty if it exists);
    ``export`` is the format train writes /output/model.pt in [JOB-EXPORT.1]."""
    if export not in EXPORT_FORMATS:
        raise JobDirError(f"export format {export!r}: one of {', '.join(EXPORT_FORMATS)}")
    if job_dir.exists() and (not job_dir.is_dir() or any(job_dir.iterdir())):
        raise JobDirError(f"{job_dir} exists and is not an empty folder")
    rows = _digits_rows()
    job_dir.mkdir(parents=True, exist_ok=True)
    job_dir.chmod(0o755)
    template = resources.files(TEMPLATE_PACKAGE)
    for source, target, mode in TEMPLATE_FILES:
        text = template.joinpath(source).read_text(encoding="utf-8")
        if source.endswith(".tmpl"):  # Python: its f-strings have braces of their own
            text = text.replace('EXPORT_FORMAT = "{export_format}"',
                                f"EXPORT_FORMAT = {json.dumps(export)}")
        else:
            text = text.replace("{base_tag}", BASE_TAG).replace("{name}", name)
        if target == "job.toml":
            text = text.replace('name = "digits-mlp"', f"name = {json.dumps(name)}")
            if export == "onnx":
                text += ("\n# train writes /output/model.pt as ONNX (job init --export onnx):"
                         "\n# torch.onnx needs onnx, evaluate runs the file with onnxruntime"
                         "\n[python]\npackages = " + json.dumps(list(ONNX_PACKAGES)) + "\n")
        path = job_dir / target
        path.write_text(text, encoding="utf-8")
        path.chmod(mode)
    splits: dict[str, list[list[str]]] = {"train": [], "valid": [], "test": []}
    for i, row in enumerate(rows):
        bucket = {0: "test", 1: "valid"}.get(i % HOLDOUT_EVERY, "train")
        splits[bucket].append(row)
    _write_csv(job_dir / "data" / "train.csv", splits["train"])
    # Each shard keeps the header: a sample file reads alone, in either part.
    valid = splits["valid"]
    shards = range(0, len(valid), SHARD_ROWS)
    for k, start in enumerate(shards):
        _write_csv(job_dir / POOL_DIR / f"shard-{k:03d}.csv", valid[start:start + SHARD_ROWS])
    _write_csv(job_dir / "holdout" / "test.csv", splits["test"])
    # The evaluate entry point reads eval.csv from its input folder when given one.
    _write_csv(job_dir / "holdout" / "eval.csv", splits["test"])
    return DataSplit(len(splits["train"]), len(valid), len(splits["test"]), len(shards))


def build_job(client: docker.DockerClient, job_dir: Path, log: Log = print) -> BuiltJob:
    """``docker build --network none`` the job folder; record and return its image id."""
    job = load_job_file(job_dir)
    if not (job_dir / "Dockerfile").is_file():
        raise JobDirError(f"{job_dir}: no Dockerfile")
    ensure_base_image(client, log=log)
    tag = f"learningchain/job-{_tag_safe(job.name)}:latest"
    sources = job_sources(job_dir)  # what this build reads, fingerprinted before it runs
    dists = _host_dists(job.packages)  # refused before any build when one is missing
    image_id = build_image(client, job_dir, tag, log)
    record: dict[str, object] = {"image_id": image_id, "tag": tag,
                                 "sources": sources.to_json()}
    if dists:
        # [JOB-IMAGE.12] One more layer, FROM the job's own image, with the host's files.
        files = [item for dist in dists for item in dist.files]
        log(f"  adding {', '.join(f'{d.name} {d.version}' for d in dists)} from the host "
            f"({sum(host.stat().st_size for _, host in files) / 1e6:.0f} MB)")
        try:
            image_id = build_layer(client, image_id, files, tag, log)
        except SandboxError as e:
            raise SandboxError(f"{job_dir}: adding [python] packages failed: {e}") from e
        record["image_id"] = image_id
        record["packages"] = [{"name": d.name, "version": d.version} for d in dists]
    (job_dir / IMAGE_FILE).write_text(json.dumps(record) + "\n")
    return BuiltJob(image_id, tag)


def _host_dists(names: tuple[str, ...]) -> list[HostDist]:
    """[JOB-IMAGE.12] The host's installed distributions a job's ``[python] packages`` names."""
    if not names:
        return []
    try:
        check_host_python()
        return [host_dist(name) for name in names]
    except HostPackageError as e:
        raise JobDirError(f"[python] packages: {e}") from e


def template_data(job_dir: Path, work: Path, part: str = "public") -> dict[str, Path]:
    """Each data role of the job folder packed [JOB-DATA.2] and unpacked into ``work``: the
    folders a node mounts at ``/data/<role>`` [JOB-DATA.3] (for running the job locally).

    A train/v3 job names no ``valid`` data: its validation data is one part of its pool.
    Locally there is no chain to draw the split, so the pool is committed here and split
    by ``LOCAL_SEED``; ``part`` (public or hidden) is packed and opened exactly as a node
    does [HOLDOUT-BLOB.3] [HOLDOUT-BLOB.5] and mounted as ``valid`` [HOLDOUT-BLOB.6]."""
    from sandbox.data_blob import pack_data, unpack_data
    from sandbox.holdout_blob import open_part, pack_part
    from sandbox.holdout_pool import make_pool

    work.mkdir(parents=True, exist_ok=True)
    job = load_job_file(job_dir)
    out = {}
    for role, path in job.data_paths(job_dir).items():
        packed = pack_data(path, work / f"{role}.tar")
        out[role] = unpack_data(packed.path, work / role, packed.size)
    if job.holdout is not None:
        try:
            pool = job.holdout.pool_path(job_dir)
        except ValueError as e:
            raise JobDirError(f"{job_dir / 'job.toml'}: {e}") from None
        secret = make_pool(pool)
        permille = job.holdout.public_permille
        packed = pack_part(secret, pool, LOCAL_SEED, permille, part, work / "valid.tar")
        open_part(packed.path, packed.size, work / "valid", secret.root, secret.pool, permille,
                  LOCAL_SEED, part)
        out["valid"] = work / "valid"
    return out


def _digits_rows() -> list[list[str]]:
    """The 1797 digits rows (64 pixels 0..16, then the label) from the installed sklearn."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise SandboxError("scikit-learn is not installed; it ships the template's dataset")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"
    with gzip.open(path, "rt", newline="") as f:
        rows = [row for row in csv.reader(f) if row]
    if len(rows) != 1797 or any(len(r) != 65 for r in rows):
        raise SandboxError(f"{path} is not the expected 1797x65 digits table")
    return [[str(int(float(r[64])))] + [str(int(float(v))) for v in r[:64]] for r in rows]


def _write_csv(path: Path, rows: list[list[str]]) -> None:
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["label", *[f"p{i}" for i in range(64)]])
    writer.writerows(rows)
    path.write_text(out.getvalue(), encoding="utf-8")
    path.chmod(0o644)


def _tag_safe(name: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name.lower()).strip("-.")
    return safe or "job"
