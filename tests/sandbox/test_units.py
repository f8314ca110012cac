"""Fast checks of the sandbox's pure parts: limits, parameters, job file, output, policy."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from chain.train.holdout.rules import min_deposit
from sandbox import policy
from sandbox.job_file import load_job_file, parse_job
from sandbox.job_template import init_job
from sandbox.limits import MIB, ResourceLimits, TrainParams
from sandbox.output import OutputRejected, extract_output
from sandbox.runner import read_metrics
from sandbox.seccomp import build_profile, profile_text


def test_job_limits_1_invalid_limits_are_rejected_with_value_error() -> None:
    with pytest.raises(ValueError, match="memory_bytes"):
        ResourceLimits(memory_bytes=0)
    with pytest.raises(ValueError, match="wall_time_s"):
        ResourceLimits(wall_time_s=float("inf"))
    with pytest.raises(ValueError, match="pids"):
        ResourceLimits(pids=True)


def test_job_limits_1_job_limits_map_onto_container_limits() -> None:
    limits = ResourceLimits.from_job(memory_mb=512, cpu_millis=1500, time_s=60, disk_mb=64,
                                     model_mb=4)
    assert limits.memory_bytes == 512 * MIB
    assert limits.nano_cpus == 1_500_000_000
    assert limits.tmp_bytes + limits.output_bytes == 64 * MIB
    assert limits.model_bytes == 4 * MIB


def test_job_train_2_params_are_canonical_json() -> None:
    params = TrainParams(seed=3, hyperparameters={"b": 1, "a": 0.5})
    assert params.to_json() == '{"hyperparameters":{"a":0.5,"b":1},"seed":3}'
    with pytest.raises(TypeError):
        params.hyperparameters["c"] = 1  # type: ignore[index]
    with pytest.raises(ValueError):
        TrainParams(seed=-1)
    with pytest.raises(ValueError):
        TrainParams(seed=1, hyperparameters={"x": float("nan")})


def test_job_file_1_template_job_file_parses(tmp_path: Path) -> None:
    """[JOB-FILE.1] [JOB-FILE.4] The template is a train/v3 job: its training data in
    [data], its validation rows the [holdout] pool, with the template's figures of
    [HOLDOUT-SIZE.1] (half of 30 shards public, a tie tolerance of 0.05); its deposit
    passes [HOLDOUT-POST.1] with `job submit`'s default voter reward (bounty / 20) and max
    turns (3), and with the demo's voter reward of 10."""
    init_job(tmp_path / "job")
    job = load_job_file(tmp_path / "job")
    assert job.kind == "train/v3" and job.bounty > 0 and job.expiry_s > 0
    assert job.data == (("train", "data/train.csv"),)
    assert job.holdout is not None and job.holdout.pool == "holdout/pool"
    assert (job.holdout.public_permille, job.holdout.finalists, job.holdout.tie_tolerance) == (
        500, 2, 0.05)
    assert job.holdout.deposit > 0 and job.holdout.reveal_window_ms > 0
    assert job.holdout.deposit >= min_deposit(max(1, job.bounty // 20), 3)
    assert job.holdout.deposit >= min_deposit(10, 3)  # client/devnet/demo.py
    assert job.entry_point("train") == ("/job/train",)
    assert {p.name for p in job.search_space} == {"learning_rate", "hidden_size", "epochs"}
    params = job.sample_params(42)
    assert params == job.sample_params(42)
    assert 0.0005 <= float(params.hyperparameters["learning_rate"]) <= 0.05
    assert params.hyperparameters["hidden_size"] in (32, 64, 128)


def test_job_file_1_template_data_split_keeps_test_rows_apart(tmp_path: Path) -> None:
    """[HOLDOUT-BLOB.1] The validation rows are 30 pool shards of 12 rows, each with the
    CSV header (a shard reads alone, in either part); no row is in two splits."""
    split = init_job(tmp_path / "job")
    assert (split.train, split.valid, split.test, split.shards) == (1077, 360, 360, 30)
    job = tmp_path / "job"
    rows = {name: set((job / name).read_text().splitlines()[1:])
            for name in ("data/train.csv", "holdout/test.csv")}
    shards = sorted((job / "holdout" / "pool").iterdir())
    assert [p.name for p in shards] == [f"shard-{k:03d}.csv" for k in range(30)]
    header = (job / "data" / "train.csv").read_text().splitlines()[0]
    valid: list[str] = []
    for shard in shards:
        lines = shard.read_text().splitlines()
        assert lines[0] == header and len(lines) == 13, shard
        valid += lines[1:]
    assert len(valid) == 360
    assert not rows["holdout/test.csv"] & set(valid)
    assert not rows["data/train.csv"] & set(valid)
    assert "holdout" in (job / ".dockerignore").read_text()


@pytest.mark.parametrize("change, message", [
    ({"kind": "mine/v9"}, "kind"),
    ({"bounty": -1}, "bounty"),
    ({"entry_points": {"train": ["/job/train"]}}, "evaluate"),
    ({"search_space": [{"name": "lr", "kind": "log_uniform", "values": [0, 1]}]}, "low"),
    ({"search_space": [{"name": "n", "kind": "int", "values": [1.5, 3]}]}, "int"),
    ({"loss_tolerance": float("nan")}, "loss_tolerance"),
])
def test_job_file_2_bad_job_files_are_rejected(tmp_path: Path, change: dict[str, Any],
                                               message: str) -> None:
    import tomllib

    init_job(tmp_path / "job")
    raw = tomllib.loads((tmp_path / "job" / "job.toml").read_text())
    raw.update(change)
    with pytest.raises(ValueError, match=message):
        parse_job(raw)


def _tar(entries: list[tarfile.TarInfo], payloads: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info in entries:
            data = (payloads or {}).get(info.name)
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


def test_job_out_1_output_is_extracted(tmp_path: Path) -> None:
    data = _tar([_entry("output", tarfile.DIRTYPE), _entry("output/sub", tarfile.DIRTYPE),
                 _entry("output/sub/model.pt")], {"output/sub/model.pt": b"weights"})
    summary = extract_output([data], tmp_path, 1024)
    assert (summary.files, summary.total_bytes) == (1, 7)
    assert (tmp_path / "sub" / "model.pt").read_bytes() == b"weights"


@pytest.mark.parametrize("entry", [
    _entry("output/link", tarfile.SYMTYPE, "/etc/passwd"),
    _entry("output/hard", tarfile.LNKTYPE, "output/x"),
    _entry("output/dev", tarfile.CHRTYPE),
    _entry("output/../escape"),
    _entry("/abs"),
    _entry("elsewhere/file"),
], ids=["symlink", "hardlink", "device", "dotdot", "absolute", "outside"])
def test_job_out_2_links_devices_and_escapes_are_rejected(tmp_path: Path,
                                                          entry: tarfile.TarInfo) -> None:
    with pytest.raises(OutputRejected) as rejected:
        extract_output([_tar([entry])], tmp_path / "dest", 1024)
    assert rejected.value.reason == "bad_entry"
    assert not (tmp_path / "escape").exists()


def test_job_out_2_output_over_the_limit_is_rejected(tmp_path: Path) -> None:
    data = _tar([_entry("output/big")], {"output/big": b"x" * 2000})
    with pytest.raises(OutputRejected) as rejected:
        extract_output([data], tmp_path, 1000)
    assert rejected.value.reason == "too_large"


@pytest.mark.parametrize("content, ok", [
    ('{"loss": 0.25, "accuracy": 0.9}', True),
    ('{"loss": NaN}', False),
    ('{"loss": "0.1"}', False),
    ("[1, 2]", False),
    ("not json", False),
])
def test_job_eval_2_metrics_need_a_finite_loss(tmp_path: Path, content: str, ok: bool) -> None:
    path = tmp_path / "metrics.json"
    path.write_text(content)
    metrics, problem = read_metrics(path)
    assert (metrics is not None) == ok, problem
    if ok:
        assert metrics == json.loads(content)


def test_job_sandbox_1_every_hardening_setting_is_in_the_policy() -> None:
    kwargs = policy.container_kwargs("img", ResourceLimits(memory_bytes=64 * MIB, pids=20),
                                     policy.labels_for("j", "n", "train"),
                                     {"/input": Path("/srv/in")})
    assert kwargs["network_mode"] == "none"
    assert kwargs["read_only"] is True
    assert kwargs["cap_drop"] == ["ALL"]
    assert kwargs["security_opt"][0] == "no-new-privileges:true"
    # [JOB-SECCOMP.1] the project's own profile, never unconfined, never the engine's default
    assert kwargs["security_opt"][1:] == [f"seccomp={profile_text()}"]
    assert json.loads(profile_text()) == build_profile()
    assert kwargs["hostname"] == "lc-job"
    assert kwargs["user"] == "65533:65533"  # PID 1; the entry point runs as 65534 [JOB-SANDBOX.5]
    assert kwargs["mem_limit"] == kwargs["memswap_limit"] == 64 * MIB
    assert kwargs["pids_limit"] == 20
    binds = [m for m in kwargs["mounts"] if m["Type"] == "bind"]
    assert all(m["ReadOnly"] for m in binds)
    assert [m["Target"] for m in binds] == ["/input"]
    # [JOB-OUT.6] /tmp and /output are tmpfs volumes the engine's archive API can read
    volumes = [m for m in kwargs["mounts"] if m["Type"] == "volume"]
    assert sorted(m["Target"] for m in volumes) == ["/output", "/tmp"]
    assert "tmpfs" not in kwargs
    for mount in volumes:
        options = mount["VolumeOptions"]
        assert mount["Source"] is None and options["NoCopy"] is True
        assert options["DriverConfig"]["Options"]["type"] == "tmpfs"
        spec = options["DriverConfig"]["Options"]["o"]
        assert {"noexec", "nosuid", "nodev"} <= set(spec.split(","))
        assert "size=" in spec
    assert kwargs["labels"][policy.LABEL_MANAGED] == "1"


def test_job_file_3_search_space_kinds_are_drawn_within_their_bounds_from_a_seed() -> None:
    """[JOB-FILE.3] choice (numbers or strings), uniform, log_uniform, int (both ends
    included); ``sample_params`` is a function of the seed; bad ranges are refused."""
    import tomllib

    raw = tomllib.loads((Path(__file__).resolve().parents[2] / "sandbox" / "templates"
                         / "digits" / "job.toml").read_text())
    raw["search_space"] = [
        {"name": "act", "kind": "choice", "values": ["relu", "tanh", 3]},
        {"name": "dropout", "kind": "uniform", "values": [0.1, 0.2]},
        {"name": "lr", "kind": "log_uniform", "values": [1e-4, 1e-2]},
        {"name": "layers", "kind": "int", "values": [1, 2]},
    ]
    job = parse_job(raw)
    draws = [job.sample_params(seed) for seed in range(200)]
    assert draws[17] == job.sample_params(17) and draws[17].seed == 17
    assert len({d.to_json() for d in draws}) == 200
    values = {name: [d.hyperparameters[name] for d in draws]
              for name in ("act", "dropout", "lr", "layers")}
    assert set(values["act"]) == {"relu", "tanh", 3}
    assert all(isinstance(v, float) and 0.1 <= v <= 0.2 for v in values["dropout"])
    assert all(isinstance(v, float) and 1e-4 <= v <= 1e-2 for v in values["lr"])
    below = sum(float(v) < 1e-3 for v in values["lr"])
    assert 60 < below < 140  # log-uniform: half below the geometric mean, not 9 %
    assert set(values["layers"]) == {1, 2} and all(type(v) is int for v in values["layers"])
    assert all(set(d.hyperparameters) == set(values) for d in draws)  # one value per entry
    for bad in ({"name": "x", "kind": "uniform", "values": [2.0, 1.0]},
                {"name": "x", "kind": "uniform", "values": [1.0]},
                {"name": "x", "kind": "choice", "values": []},
                {"name": "x", "kind": "choice", "values": [True]},
                {"name": "x", "kind": "normal", "values": [0, 1]},
                {"values": [0, 1], "kind": "int"}):
        with pytest.raises(ValueError):
            parse_job({**raw, "search_space": [bad]})
