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
import dataclasses
import gzip
import hashlib
import importlib.util
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath

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
from sandbox.import_check_cache import cache_root, check_key, recall, remember
from sandbox.job_file import JobFile, load_job_file
from sandbox.job_sources import IMAGE_FILE, job_sources
from sandbox.package_closure import Closure, PackageClosureError, resolve_closure

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


def build_job(client: docker.DockerClient, job_dir: Path, log: Log = print, *,
              check_imports: bool = True) -> BuiltJob:
    """``docker build --network none`` the job folder; record and return its image id.

    ``[python] packages`` and what they require are copied from the host [JOB-IMAGE.12];
    then, unless ``check_imports`` is False, the modules the job's entry points import are
    imported in the built image, in the sandbox [JOB-IMAGE.15]. A refusal of either is a
    ``JobDirError`` before anything is recorded (so ``job submit`` posts nothing)."""
    job = load_job_file(job_dir)
    if not (job_dir / "Dockerfile").is_file():
        raise JobDirError(f"{job_dir}: no Dockerfile")
    ensure_base_image(client, log=log)
    tag = f"learningchain/job-{_tag_safe(job.name)}:latest"
    sources = job_sources(job_dir)  # what this build reads, fingerprinted before it runs
    closure, dists = _host_dists(job.packages)  # refused before any build when one is missing
    image_id = build_image(client, job_dir, tag, log)
    record: dict[str, object] = {"image_id": image_id, "tag": tag,
                                 "sources": sources.to_json()}
    if dists:
        # [JOB-IMAGE.12] One more layer, FROM the job's own image, with the host's files.
        files = [item for dist in dists for item in dist.files]
        log(f"  adding {', '.join(f'{d.name} {d.version}' for d in dists)} from the host "
            f"({sum(host.stat().st_size for _, host in files) / 1e6:.0f} MB)")
        if closure.added:
            log("  as dependencies: " + ", ".join(
                f"{d.name} (required by {', '.join(d.required_by)})" for d in closure.added))
        for mismatch in closure.mismatches:
            log(f"  warning: {mismatch}; copied as installed")
        try:
            image_id = build_layer(client, image_id, files, tag, log)
        except SandboxError as e:
            raise SandboxError(f"{job_dir}: adding [python] packages failed: {e}") from e
        record["image_id"] = image_id
        record["packages"] = [{"name": d.name, "version": d.version,
                               "required_by": list(d.required_by)} for d in closure.dists]
    if check_imports:
        check_imports_in_image(client, image_id, job, log)
    (job_dir / IMAGE_FILE).write_text(json.dumps(record) + "\n")
    return BuiltJob(image_id, tag)


def _host_dists(names: tuple[str, ...]) -> tuple[Closure, list[HostDist]]:
    """[JOB-IMAGE.12] The closure of a job's ``[python] packages`` on the host (the named
    distributions and what they require, less the base image's) and each one's files."""
    if not names:
        return Closure((), ()), []
    try:
        check_host_python()
        closure = resolve_closure(names)
        return closure, [host_dist(d.name) for d in closure.dists]
    except (HostPackageError, PackageClosureError) as e:
        raise JobDirError(f"[python] packages: {e}") from e


IMPORT_CHECK_TIME_S = 120.0
"""[JOB-IMAGE.15] Wall time of the import check (torch alone takes a few seconds)."""
IMPORT_CHECK_ENTRY = "imports"
"""The entry name the check's container is labelled with (never ``evaluate``: it runs under
the node's training runtime)."""
FAILED, WARNED, CHECKED = "LC-IMPORT-FAILED", "LC-IMPORT-WARNING", "LC-IMPORT-CHECKED"
IMPORT_SCRIPT = f"""\
import ast, importlib.util, os, sys
FAILED, WARNED, CHECKED = {FAILED!r}, {WARNED!r}, {CHECKED!r}
def say(*fields):
    print("\\t".join(" ".join(str(f).split())[:300] for f in fields), flush=True)
def python_file(path):
    with open(path, "rb") as f:
        first = f.readline(256)
    return path.endswith(".py") or (first.startswith(b"#!") and b"python" in first)
def own(folder, name):
    top = os.path.join(folder, name.split(".")[0]) if folder else ""
    return bool(top) and (os.path.isfile(top + ".py") or os.path.isdir(top))
files = statements = 0
for arg in sys.argv[1:]:
    kind, _, value = arg.partition(":")
    folder = ""
    if kind == "module":
        try:
            spec = importlib.util.find_spec(value)
        except BaseException as e:
            spec, error = None, type(e).__name__ + ": " + str(e)
        else:
            error = "ModuleNotFoundError: No module named " + repr(value)
        if spec is None:
            say(FAILED, "-m " + value, "python3 -m " + value, error)
            continue
        path = spec.origin or ""
    else:
        path = value
        if not os.path.isfile(path) or not python_file(path):
            continue
        folder = os.path.dirname(path)
        if folder not in sys.path:
            sys.path.insert(0, folder)
    if not path.endswith(".py") and kind == "module":
        continue
    with open(path, "rb") as f:
        source = f.read()
    files += 1
    try:
        tree = ast.parse(source, path)
    except SyntaxError as e:
        say(FAILED, path, "(parse)", "SyntaxError: " + str(e))
        continue
    for node in tree.body:
        if not isinstance(node, (ast.Import, ast.ImportFrom)) or getattr(node, "level", 0):
            continue
        statements += 1
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
        where = path + ":" + str(node.lineno)
        try:
            exec(compile(ast.Module([node], []), path, "exec"), {{"__name__": "lc_check"}})
        except BaseException as e:
            imported = isinstance(e, ImportError) or not any(own(folder, n) for n in names)
            say(FAILED if imported else WARNED, where, ast.unparse(node),
                type(e).__name__ + ": " + str(e))
say(CHECKED, files, statements)
"""
"""[JOB-IMAGE.15] Run in the built image by the base image's ``python3``: each argument is
``file:PATH`` (an entry point's file) or ``module:NAME`` (``python -m NAME``); every
absolute import statement of the module body of each Python file found is executed, on
its own, with the file's folder first on ``sys.path`` as when it runs; one tab-separated
line per failure, then ``CHECKED`` with the counts."""


def import_targets(job: JobFile) -> tuple[str, ...]:
    """[JOB-IMAGE.15] What the import check reads in the image, from the entry points' argv:
    ``file:PATH`` for each absolute path, ``module:NAME`` for ``-m NAME``; sorted, once."""
    out: set[str] = set()
    for _entry, argv in job.entry_points:
        for i, arg in enumerate(argv):
            if arg == "-m" and i + 1 < len(argv):
                out.add(f"module:{argv[i + 1]}")
            elif arg.startswith("/") and (i == 0 or argv[i - 1] != "-m"):
                out.add(f"file:{PurePosixPath(arg)}")
    return tuple(sorted(out))


@dataclass(frozen=True, slots=True)
class ImportCheck:
    """What ``check_imports_in_image`` found: the failures refuse the job."""

    files: int
    statements: int
    failed: tuple[tuple[str, str, str], ...]
    """(where, statement, error) for each import that failed."""
    warnings: tuple[tuple[str, str, str], ...]
    """The job's own module failing with an error that is not an ImportError (it may need
    the data or parameters of a real run): not a refusal."""
    seconds: float


def parse_import_check(logs: str, seconds: float) -> ImportCheck | None:
    """The script's report in ``logs``; None when it did not finish (no ``CHECKED`` line)."""
    failed: list[tuple[str, str, str]] = []
    warned: list[tuple[str, str, str]] = []
    counts = None
    for line in logs.splitlines():
        fields = line.split("\t")
        if fields[0] in (FAILED, WARNED) and len(fields) == 4:
            (failed if fields[0] == FAILED else warned).append((fields[1], fields[2], fields[3]))
        elif fields[0] == CHECKED and len(fields) == 3:
            counts = (int(fields[1]), int(fields[2]))
    if counts is None:
        return None
    return ImportCheck(counts[0], counts[1], tuple(failed), tuple(warned), seconds)


def check_imports_in_image(client: docker.DockerClient, image_id: str, job: JobFile,
                           log: Log = print) -> ImportCheck:
    """[JOB-IMAGE.15] Execute the module-level imports of the job's entry files in
    ``image_id`` (``IMPORT_SCRIPT``), in a sandbox container exactly as a worker runs an
    entry point (``SandboxRunner``: network none, the job's user, the seccomp launcher, the
    node's default runtime, the job's memory and CPU; ``IMPORT_CHECK_TIME_S``, no GPU).
    ``JobDirError`` names each import that fails and its error."""
    import tempfile

    from sandbox.results import is_job_fault
    from sandbox.runner import SandboxRunner
    from sandbox.runtime import resolve

    limits = dataclasses.replace(job.limits, wall_time_s=IMPORT_CHECK_TIME_S, gpu_count=0,
                                 gpu_memory_mb=0)
    runtime, targets = resolve(client).name, import_targets(job)
    key = check_key(image_id, runtime, targets, IMPORT_SCRIPT,
                    (job.limits.memory_bytes, job.limits.nano_cpus))
    passed = _recalled(key)
    if passed is not None:
        for where, statement, error in passed.warnings:
            log(f"  warning: {where}: {statement}: {error} (the job's own module; not checked)")
        log(f"  imports checked in the image: {passed.statements} import statements of "
            f"{passed.files} Python entry files (passed in this image before, remembered "
            f"in {cache_root()})")
        return passed
    runner = SandboxRunner(client, node_id="job-build", runtime=runtime)
    with tempfile.TemporaryDirectory(prefix="lc-imports-") as tmp:
        result = runner.run_entry(image_id, IMPORT_CHECK_ENTRY,
                                  ("python3", "-c", IMPORT_SCRIPT, *targets), {},
                                  limits, Path(tmp) / "output", collect=())
    logs = result.logs.decode("utf-8", "replace")
    check = parse_import_check(logs, result.seconds)
    if check is None:
        why = f"{result.reason}: {result.detail}; {logs.strip()[-500:]}"
        if result.ok or is_job_fault(result.reason):
            raise JobDirError(f"importing the job's modules in the built image failed "
                              f"[JOB-IMAGE.15]: {why}")
        raise SandboxError(f"the import check of the built image could not run: {why}")
    for where, statement, error in check.warnings:
        log(f"  warning: {where}: {statement}: {error} (the job's own module; not checked)")
    if check.failed:
        raise JobDirError(
            "the job's code imports what its image lacks [JOB-IMAGE.15]: "
            + "; ".join(f"{where}: {statement}: {error}" for where, statement, error
                        in check.failed)
            + ". List the distribution that provides it under [python] packages in job.toml "
            "(installed on this host), or install it in the job's Dockerfile")
    log(f"  imports checked in the image: {check.statements} import statements of "
        f"{check.files} Python entry files, {check.seconds:.1f} s")
    remember(key, {"files": check.files, "statements": check.statements,
                   "warnings": [list(w) for w in check.warnings], "seconds": check.seconds})
    return check


def _recalled(key: str) -> ImportCheck | None:
    """A remembered passed check (``sandbox.import_check_cache``), or None."""
    found = recall(key)
    if found is None:
        return None
    try:
        warnings = tuple((str(a), str(b), str(c)) for a, b, c in found["warnings"])
        return ImportCheck(int(found["files"]), int(found["statements"]), (), warnings,
                           float(found["seconds"]))
    except (KeyError, TypeError, ValueError):
        return None  # a report of another form: check again


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
