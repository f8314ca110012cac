"""CLI commands, the engine connection and the leftover-container cleanup."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from pathlib import Path

import docker
import pytest
from click.testing import CliRunner

from client.cli.main import cli
from sandbox import policy
from sandbox.cleanup import cleanup_containers
from sandbox.engine import connect
from sandbox.errors import EngineUnavailable
from sandbox.limits import MIB, ResourceLimits
from tests.sandbox.conftest import NODE_ID


def test_no_engine_gives_one_line_saying_how_to_start_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(EngineUnavailable) as missing:
        connect(timeout_s=2)
    message = str(missing.value)
    assert "\n" not in message
    assert "apt-get install -y docker.io" in message and "dockerd" in message
    result = CliRunner().invoke(cli, ["sandbox", "base-image"])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "dockerd" in result.output


def test_job_init_writes_a_job_and_refuses_a_used_folder(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["job", "init", str(tmp_path / "job"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["test"] == 360
    for name in ("Dockerfile", "job.toml", "train", "evaluate", "data/train.csv"):
        assert (tmp_path / "job" / name).is_file()
    again = CliRunner().invoke(cli, ["job", "init", str(tmp_path / "job")])
    assert again.exit_code == 1 and "not an empty folder" in again.output


@pytest.mark.docker
def test_base_image_second_call_returns_at_once(base_image: str) -> None:
    started = time.monotonic()
    result = subprocess.run([".venv/bin/learningchain", "sandbox", "base-image", "--json"],
                            capture_output=True, text=True, check=False,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["image_id"] == base_image and out["built"] is False
    assert time.monotonic() - started < 10


@pytest.mark.docker
def test_job_build_prints_the_digest(base_image: str, tmp_path: Path,
                                     docker_client: docker.DockerClient) -> None:
    job_dir = tmp_path / "job"
    assert CliRunner().invoke(cli, ["job", "init", str(job_dir), "--name", "cli test"]
                              ).exit_code == 0
    result = CliRunner().invoke(cli, ["job", "build", str(job_dir), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output.strip().splitlines()[-1])
    assert out["tag"] == "learningchain/job-cli-test:latest"
    assert docker_client.images.get(out["tag"]).id == out["image_id"]
    recorded = json.loads((job_dir / "image.json").read_text())
    assert recorded["image_id"] == out["image_id"]
    plain = CliRunner().invoke(cli, ["job", "build", str(job_dir)])
    assert plain.output.strip().splitlines()[-1] == out["image_id"]


@pytest.mark.docker
def test_job_sandbox_4_cleanup_removes_only_this_nodes_leftovers(
        docker_client: docker.DockerClient, base_image: str) -> None:
    limits = ResourceLimits(memory_bytes=64 * MIB, pids=8)
    made = []
    for node in ("crashed-node", "other-node"):
        kwargs = policy.container_kwargs(base_image, limits,
                                         policy.labels_for("job1", node, "train"), {})
        made.append(docker_client.containers.create(**kwargs))
    made[0].start()
    try:
        removed = cleanup_containers(docker_client, "crashed-node")
        assert removed == [made[0].id]
        assert docker_client.containers.get(made[1].id).status == "created"
        assert cleanup_containers(docker_client, "other-node") == [made[1].id]
        assert not docker_client.containers.list(
            ignore_removed=True, all=True, filters={"id": [c.id for c in made]})
    finally:
        for container in made:
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True, v=True)


@pytest.mark.docker
def test_job_image_4_job_build_runs_with_no_network(
        base_image: str, tmp_path: Path, docker_client: docker.DockerClient) -> None:
    """[JOB-IMAGE.4] ``job build``'s RUN steps see only a loopback interface and resolve no
    name; the image id is recorded in image.json."""
    job_dir = tmp_path / "job"
    assert CliRunner().invoke(cli, ["job", "init", str(job_dir), "--name", "offline probe"]
                              ).exit_code == 0
    with (job_dir / "Dockerfile").open("a") as dockerfile:
        dockerfile.write("\nUSER 0:0\nRUN ls /sys/class/net > /job/build-ifaces && "
                         "(getent hosts deb.debian.org || echo unresolved) > /job/build-dns\n"
                         "USER 65534:65534\n")
    result = CliRunner().invoke(cli, ["job", "build", str(job_dir), "--json"])
    assert result.exit_code == 0, result.output
    built = json.loads((job_dir / "image.json").read_text())
    try:
        seen = docker_client.containers.run(
            built["image_id"], ["cat", "/job/build-ifaces", "/job/build-dns"], remove=True,
            network_mode="none", labels={policy.LABEL_NODE: NODE_ID})
        assert seen == b"lo\nunresolved\n"
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(built["image_id"], force=True)
