"""The job file (``job.toml``) a submitter writes next to the job's code [JOB-FILE.*].

Its fields mirror ``chain.jobspec.JobSpec`` (kind, entry points, limits,
search space, bounty, expiry, loss tolerance, data, a train/v3 job's hidden
test set) so the node can turn it into a posted job; the sandbox reads the
limits and the search space from it.
"""

from __future__ import annotations

import difflib
import math
import random
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chain.jobspec import MAX_GPUS, MAX_MB
from chain.jobspec import ResourceLimits as SpecLimits
from sandbox.errors import JobDirError, SandboxError
from sandbox.holdout_config import HOLDOUT_KEYS, HoldoutConfig, duration_ms
from sandbox.limits import ResourceLimits, Scalar, TrainParams

if TYPE_CHECKING:
    from sandbox.image_check import ImageSizes

JOB_FILE = "job.toml"
JOB_KINDS = ("train/v1", "train/v2", "train/v3")
DATA_KIND = "train/v2"
"""[JOB-FILE.1] The kind whose job.toml names its data in ``[data]`` [JOB-DATA.1]."""
HOLDOUT_KIND = "train/v3"
"""[JOB-FILE.4] The kind with a hidden test set: ``[holdout]``, and ``[data]`` without ``valid``."""
DATA_KINDS = (DATA_KIND, HOLDOUT_KIND)
PARAM_KINDS = ("choice", "uniform", "log_uniform", "int")
TOP_KEYS = {"kind": "key", "name": "key", "description": "key", "bounty": "key",
            "expiry_s": "key", "loss_tolerance": "key", "entry_points": "table",
            "limits": "table", "search_space": "array", "data": "table",
            "holdout": "table", "python": "table"}
"""[JOB-FILE.2] Every name job.toml may hold at its top level, and what it is."""
TOP_REQUIRED = ("kind", "name", "bounty", "expiry_s", "loss_tolerance", "entry_points",
                "limits", "search_space")
LIMIT_REQUIRED = ("memory_mb", "cpu_millis", "time_s", "disk_mb")
PARAM_KEYS = ("name", "kind", "values")
PYTHON_KEYS = ("packages",)
"""[JOB-FILE.6] The keys of ``[python]``."""
MAX_PACKAGES = 32
BASE_DISTRIBUTIONS = ("torch", "numpy")
"""[JOB-FILE.6] What the base image already has [JOB-IMAGE.1]: a job cannot replace them."""
_DIST_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
"""A distribution name as PEP 508 spells one (no version: the host's installed one is used)."""


class JobKeyError(SandboxError, ValueError):
    """[JOB-FILE.2] A key of job.toml that is not one, or a required one left out.

    Carries the key, its table (``""`` for the top level) and the closest valid
    name, so a typo is fixed from the message alone. A ``ValueError`` too, like every
    other check of ``parse_job``, so its callers catch it as they did.
    """

    def __init__(self, problem: str, table: str, key: str, suggestion: str | None = None,
                 hint: str = "") -> None:
        where = f"{table} {key}" if table else key
        text = f"{problem} {where}"
        if suggestion is not None:
            text += f"; did you mean {suggestion}?"
        super().__init__(text + (f" ({hint})" if hint else ""))
        self.problem = problem
        self.table = table
        self.key = key
        self.suggestion = suggestion


@dataclass(frozen=True, slots=True)
class ParamRange:
    """One search-space dimension: a list of choices or a numeric range [JOB-FILE.3]."""

    name: str
    kind: str
    values: tuple[Scalar, ...]
    """choice: the options; uniform, log_uniform, int: (low, high), both included."""

    def sample(self, rng: random.Random) -> Scalar:
        if self.kind == "choice":
            return rng.choice(self.values)
        low, high = self.values
        if self.kind == "int":
            return rng.randint(int(low), int(high))
        if self.kind == "log_uniform":
            return math.exp(rng.uniform(math.log(float(low)), math.log(float(high))))
        return rng.uniform(float(low), float(high))


@dataclass(frozen=True, slots=True)
class JobLimits:
    """The ``[limits]`` table as declared, in the job file's units [JOB-FILE.1]."""

    memory_mb: int
    cpu_millis: int
    time_s: int
    disk_mb: int
    model_mb: int
    """Declared, or ``disk_mb`` when the file leaves it out; never more than ``disk_mb``."""
    image_mb: int | None = None
    """Optional in the file; ``job build`` measures it [JOB-IMAGE.5]."""
    image_unpacked_mb: int | None = None
    """Optional in the file; ``job build`` measures it [JOB-IMAGE.5]."""
    gpu_count: int = 0
    """[JOB-FILE.5] GPUs one training run needs, 0..16; optional, 0 (none) when left out."""
    gpu_memory_mb: int = 0
    """[JOB-FILE.5] Least memory of each GPU in MiB; optional, 0 (any); needs ``gpu_count``."""


@dataclass(frozen=True, slots=True)
class JobFile:
    """A parsed and checked job.toml."""

    kind: str
    name: str
    description: str
    bounty: int
    expiry_s: int
    loss_tolerance: float
    entry_points: tuple[tuple[str, tuple[str, ...]], ...]
    limits: ResourceLimits
    search_space: tuple[ParamRange, ...]
    declared: JobLimits
    """The limits as the file declares them; ``spec_limits`` puts them on chain."""
    data: tuple[tuple[str, str], ...] = ()
    """train/v2, v3: sorted (role, path relative to the job folder) of ``[data]`` [JOB-DATA.1]."""
    holdout: HoldoutConfig | None = None
    """train/v3: the ``[holdout]`` table [JOB-FILE.4]; ``None`` for other kinds."""
    packages: tuple[str, ...] = ()
    """[JOB-FILE.6] ``[python] packages``: host distributions ``job build`` copies into one
    layer over the job's image [JOB-IMAGE.12], in the file's order."""

    def data_paths(self, job_dir: Path) -> dict[str, Path]:
        """[JOB-FILE.1] Each role's file or folder, checked to lie inside ``job_dir``."""
        root = job_dir.resolve()
        out = {}
        for role, relative in self.data:
            path = (job_dir / relative).resolve()
            if path != root and root not in path.parents:
                raise ValueError(f"[data] {role} = {relative!r} leaves the job folder")
            if not path.exists():
                raise ValueError(f"[data] {role} = {relative!r}: no such file or folder")
            out[role] = job_dir / relative
        return out

    def spec_limits(self, image: ImageSizes) -> SpecLimits:
        """The chain's ``JobSpec.limits`` of this job with its image measured [JOB-IMAGE.5].

        Every limit of the file reaches the chain: ``model_mb`` included. The
        image sizes are the measured ones unless the file declares larger
        bounds; a declaration smaller than the image is an error (the job
        would be refused by every worker).
        """
        d = self.declared
        image_mb = max(image.image_mb, d.image_mb or 0)
        unpacked_mb = max(image.image_unpacked_mb, d.image_unpacked_mb or 0)
        if d.image_mb is not None and d.image_mb < image.image_mb:
            raise ValueError(f"limits.image_mb {d.image_mb} < the image's {image.image_mb} MiB")
        if d.image_unpacked_mb is not None and d.image_unpacked_mb < image.image_unpacked_mb:
            raise ValueError(f"limits.image_unpacked_mb {d.image_unpacked_mb} < the image's "
                             f"{image.image_unpacked_mb} MiB unpacked")
        return SpecLimits(memory_mb=d.memory_mb, cpu_millis=d.cpu_millis, time_s=d.time_s,
                          disk_mb=d.disk_mb, model_mb=d.model_mb, image_mb=image_mb,
                          image_unpacked_mb=unpacked_mb, gpu_count=d.gpu_count,
                          gpu_memory_mb=d.gpu_memory_mb)

    def entry_point(self, name: str) -> tuple[str, ...]:
        for key, argv in self.entry_points:
            if key == name:
                return argv
        raise KeyError(name)

    def sample_params(self, seed: int) -> TrainParams:
        """Draw one point of the search space from ``seed``: what a worker tries."""
        rng = random.Random(seed)
        return TrainParams(seed, {p.name: p.sample(rng) for p in self.search_space})


def load_job_file(job_dir: Path) -> JobFile:
    path = job_dir / JOB_FILE
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise JobDirError(f"{path}: no job file (run `learningchain job init`)") from e
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise JobDirError(f"{path}: not valid TOML: {e}") from e
    try:
        return parse_job(raw)
    except (KeyError, TypeError, ValueError) as e:
        raise JobDirError(f"{path}: {e}") from e


def parse_job(raw: dict[str, Any]) -> JobFile:
    _check_top_level(raw)
    kind = _field(raw, "kind", str)
    if kind not in JOB_KINDS:
        raise ValueError(f"kind must be one of {JOB_KINDS}, got {kind!r}")
    entry_points = tuple(sorted(
        (str(name), tuple(_str_list(argv, f"entry_points.{name}")))
        for name, argv in _field(raw, "entry_points", dict).items()
    ))
    if not {"train", "evaluate"} <= {name for name, _ in entry_points}:
        raise ValueError("entry_points needs train and evaluate")
    lim = _field(raw, "limits", dict)
    _check_keys(lim, "[limits]", tuple(JobLimits.__dataclass_fields__), LIMIT_REQUIRED)
    disk_mb = _positive_int(lim, "disk_mb")
    declared = JobLimits(
        memory_mb=_positive_int(lim, "memory_mb"), cpu_millis=_positive_int(lim, "cpu_millis"),
        time_s=_positive_int(lim, "time_s"), disk_mb=disk_mb,
        model_mb=_positive_int(lim, "model_mb") if "model_mb" in lim else disk_mb,
        image_mb=_positive_int(lim, "image_mb") if "image_mb" in lim else None,
        image_unpacked_mb=(_positive_int(lim, "image_unpacked_mb")
                           if "image_unpacked_mb" in lim else None),
        **_gpus(lim))
    if declared.model_mb > disk_mb:
        raise ValueError(f"limits.model_mb {declared.model_mb} > disk_mb {disk_mb}")
    limits = ResourceLimits.from_job(declared.memory_mb, declared.cpu_millis, declared.time_s,
                                     disk_mb, declared.model_mb, declared.gpu_count,
                                     declared.gpu_memory_mb)
    space = tuple(_param(p, i) for i, p in enumerate(_field(raw, "search_space", list), 1))
    if len({p.name for p in space}) != len(space):
        raise ValueError("search_space has a duplicate name")
    tolerance = float(_field(raw, "loss_tolerance", int | float))
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError("loss_tolerance must be a finite number >= 0")
    data = _data(raw, kind)
    return JobFile(kind=kind, name=_field(raw, "name", str), data=data,
                   holdout=_holdout(raw, kind), packages=_packages(raw),
                   description=str(raw.get("description", "")),
                   bounty=_positive_int(raw, "bounty"), expiry_s=_positive_int(raw, "expiry_s"),
                   loss_tolerance=tolerance, entry_points=entry_points, limits=limits,
                   search_space=space, declared=declared)


def _gpus(lim: dict[str, Any]) -> dict[str, int]:
    """[JOB-FILE.5] ``gpu_count`` 0..16 and ``gpu_memory_mb`` 0..2^20 (MiB per GPU), the
    bounds of the chain's limits [JOB-GPU.1]; a memory without a count is an error."""
    out = {}
    for key, most in (("gpu_count", MAX_GPUS), ("gpu_memory_mb", MAX_MB)):
        if key not in lim:
            continue
        value = lim[key]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= most:
            raise ValueError(f"limits.{key} must be a whole number in 0..{most}, got {value!r}")
        out[key] = value
    if out.get("gpu_memory_mb", 0) and not out.get("gpu_count", 0):
        raise ValueError(f"limits.gpu_memory_mb {out['gpu_memory_mb']} needs gpu_count >= 1 "
                         f"(the memory is per GPU requested)")
    return out


def _data(raw: dict[str, Any], kind: str) -> tuple[tuple[str, str], ...]:
    """[JOB-FILE.1] ``[data]``: required for train/v2 (``train``, ``valid``) and train/v3
    (``train``; ``valid`` is refused [JOB-FILE.4]), absent for v1."""
    from chain.errors import DecodeError
    from chain.jobspec import DATA_ROLES_REQUIRED, MAX_DATA_BLOBS, data_role

    if kind not in DATA_KINDS:
        if "data" in raw:
            raise ValueError(f"[data] is for kind {DATA_KIND!r} and {HOLDOUT_KIND!r} jobs; "
                             f"this one is {kind!r}")
        return ()
    table = raw.get("data")
    if not isinstance(table, dict):
        raise JobKeyError("missing required key", "", "[data]",
                          hint=f"a {kind} job names its data: [data] train = "
                               "\"data/train.csv\"" + ("" if kind == HOLDOUT_KIND else
                                                        ", valid = \"data/valid.csv\""))
    if kind == HOLDOUT_KIND and "valid" in table:
        raise ValueError(f"[data] valid: a {HOLDOUT_KIND} job's validation data is the public "
                         "part of its [holdout] pool, published after the split; remove it "
                         "[JOB-FILE.4]")
    if len(table) > MAX_DATA_BLOBS:
        raise ValueError(f"[data] names {len(table)} roles, at most {MAX_DATA_BLOBS}")
    out = []
    for role, path in table.items():
        try:
            data_role(role)
        except DecodeError as e:
            raise ValueError(f"[data] {e}") from None
        if not isinstance(path, str) or not path or Path(path).is_absolute():
            raise ValueError(f"[data] {role} must be a path relative to the job folder")
        out.append((role, path))
    for role in DATA_ROLES_REQUIRED if kind == DATA_KIND else ("train",):
        if role not in table:
            raise JobKeyError("missing required key", "[data]", role)
    return tuple(sorted(out))


def _packages(raw: dict[str, Any]) -> tuple[str, ...]:
    """[JOB-FILE.6] ``[python] packages``: optional; distribution names, no versions, no
    duplicates, not the base image's own."""
    if "python" not in raw:
        return ()
    table = raw["python"]
    if not isinstance(table, dict):
        raise ValueError(f"[python] must be a table, got {table!r}")
    _check_keys(table, "[python]", PYTHON_KEYS, PYTHON_KEYS)
    names = table["packages"]
    if not isinstance(names, list) or not names or len(names) > MAX_PACKAGES:
        raise ValueError(f"[python] packages must be a list of 1..{MAX_PACKAGES} distribution "
                         f"names, got {names!r}")
    seen: dict[str, str] = {}
    for name in names:
        if not isinstance(name, str) or not _DIST_NAME.fullmatch(name):
            raise ValueError(f"[python] packages: {name!r} is not a distribution name (no "
                             "version: the host's installed one is copied)")
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in BASE_DISTRIBUTIONS:
            raise ValueError(f"[python] packages: {name!r} is in the base image already")
        if key in seen:
            raise ValueError(f"[python] packages: {name!r} repeats {seen[key]!r}")
        seen[key] = name
    return tuple(names)


def _holdout(raw: dict[str, Any], kind: str) -> HoldoutConfig | None:
    """[JOB-FILE.4] ``[holdout]``: required for train/v3, refused for the other kinds."""
    if kind != HOLDOUT_KIND:
        if "holdout" in raw:
            raise ValueError(f"[holdout] is for kind {HOLDOUT_KIND!r} jobs; this one is "
                             f"{kind!r}")
        return None
    table = raw.get("holdout")
    if not isinstance(table, dict):
        raise JobKeyError("missing required key", "", "[holdout]",
                          hint=f"a {HOLDOUT_KIND} job names its evaluation pool: [holdout] "
                               "pool = \"holdout/samples\", public_permille, finalists, "
                               "deposit, reveal_window, tie_tolerance")
    _check_keys(table, "[holdout]", HOLDOUT_KEYS, HOLDOUT_KEYS)
    pool = table["pool"]
    if not isinstance(pool, str) or not pool or Path(pool).is_absolute():
        raise ValueError("[holdout] pool must be a folder relative to the job folder")
    permille = _holdout_int(table, "public_permille")
    if not 1 <= permille <= 999:
        raise ValueError(f"[holdout] public_permille must be 1..999, got {permille}")
    tie = table["tie_tolerance"]
    if isinstance(tie, bool) or not isinstance(tie, int | float) or \
            not (math.isfinite(tie) and tie >= 0):
        raise ValueError("[holdout] tie_tolerance must be a finite number >= 0")
    return HoldoutConfig(pool=pool, public_permille=permille,
                         finalists=_holdout_int(table, "finalists"),
                         deposit=_holdout_int(table, "deposit"),
                         reveal_window_ms=duration_ms(table["reveal_window"],
                                                      "[holdout] reveal_window"),
                         tie_tolerance=float(tie))


def _holdout_int(table: dict[str, Any], key: str) -> int:
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"[holdout] {key} must be a whole number > 0, got {value!r}")
    return value


def _param(raw: Any, number: int) -> ParamRange:
    if not isinstance(raw, dict):
        raise ValueError("each search_space entry is a table")
    label = f"[[search_space]] #{number}"
    if isinstance(raw.get("name"), str):
        label += f" ({raw['name']!r})"
    _check_keys(raw, label, PARAM_KEYS, PARAM_KEYS)
    name = _field(raw, "name", str)
    kind = _field(raw, "kind", str)
    if kind not in PARAM_KINDS:
        raise ValueError(f"search_space {name!r}: kind must be one of {PARAM_KINDS}")
    values = tuple(_field(raw, "values", list))
    if any(isinstance(v, bool) or not isinstance(v, int | float | str) for v in values):
        raise ValueError(f"search_space {name!r}: values are numbers or strings")
    if kind == "choice":
        if not values:
            raise ValueError(f"search_space {name!r}: empty choice")
    else:
        if len(values) != 2 or not all(isinstance(v, int | float) for v in values):
            raise ValueError(f"search_space {name!r}: a range is [low, high]")
        if kind == "int" and not all(isinstance(v, int) for v in values):
            raise ValueError(f"search_space {name!r}: int range needs int bounds")
        if not values[0] < values[1] or (kind == "log_uniform" and float(values[0]) <= 0):
            raise ValueError(f"search_space {name!r}: need 0 < low < high for log, low < high")
    return ParamRange(name, kind, values)


def _check_top_level(raw: dict[str, Any]) -> None:
    """Unknown top-level names first (a typo is then named, not reported as missing)."""
    for key, value in raw.items():
        if key in TOP_KEYS:
            continue
        what = "array of tables" if _is_array_of_tables(value) else \
            "table" if isinstance(value, dict) else "key"
        close = difflib.get_close_matches(key, list(TOP_KEYS), n=1)
        suggestion = _top_name(close[0]) if close else None
        if what == "key":
            hint = _home_of(key) or ("" if close else f"valid: {', '.join(TOP_KEYS)}")
            raise JobKeyError("unknown key", "", key, suggestion, hint)
        shown = f"[[{key}]]" if what == "array of tables" else f"[{key}]"
        raise JobKeyError(f"unknown {what}", "", shown, suggestion,
                          "" if close else "tables: [entry_points], [limits], "
                                           "[[search_space]], [data], [holdout], "
                                           "[python]")
    for key in TOP_REQUIRED:
        if key not in raw:
            raise JobKeyError("missing required key", "", _top_name(key))


def _check_keys(raw: dict[str, Any], table: str, allowed: Sequence[str],
                required: Sequence[str]) -> None:
    """Every key of ``raw`` is in ``allowed`` (else the closest is suggested); every
    ``required`` key is there."""
    for key in raw:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = "" if close else \
                "it belongs at the top level, before the first [table]" if key in TOP_KEYS \
                else f"valid: {', '.join(allowed)}"
            raise JobKeyError("unknown key", table, key, close[0] if close else None, hint)
    for key in required:
        if key not in raw:
            raise JobKeyError("missing required key", table, key)


def _top_name(key: str) -> str:
    kind = TOP_KEYS[key]
    return f"[{key}]" if kind == "table" else f"[[{key}]]" if kind == "array" else key


def _home_of(key: str) -> str:
    if key in JobLimits.__dataclass_fields__:
        return f"{key} belongs in [limits]"
    if key == "values":
        return "values belongs in a [[search_space]] entry"
    if key in HOLDOUT_KEYS:
        return f"{key} belongs in [holdout]"
    return ""


def _is_array_of_tables(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _field(raw: dict[str, Any], key: str, kind: Any) -> Any:
    if key not in raw:
        raise JobKeyError("missing required key", "", key)
    value = raw[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"field {key!r} has the wrong type")
    return value


def _positive_int(raw: dict[str, Any], key: str) -> int:
    value = _field(raw, key, int)
    if value <= 0:
        raise ValueError(f"field {key!r} must be > 0")
    return int(value)


def _str_list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where} must be a non-empty list of strings")
    return list(value)
