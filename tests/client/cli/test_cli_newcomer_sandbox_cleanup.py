"""``learningchain sandbox cleanup`` beside live nodes (issue 15 §4), on a Docker engine of the
test's own (``tests/framework/dockerd.py``), so no other session's containers are in reach.

Without ``--node`` it removes only what no node can be using (a stopped job container, one
never started) and keeps a running one, whose node may be alive, saying so; ``--node``
removes that node's containers, running ones too. ``--json`` says what went and what stayed.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from sandbox.base_image import ROOTFS_TAG
from sandbox.cleanup import GRACE_S
from sandbox.engine import connect
from sandbox.policy import labels_for
from tests.framework.dockerd import PrivateDockerd
from tests.framework.wait import scaled, wait_until

CLI = str(Path(sys.executable).parent / "learningchain")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[PrivateDockerd]:
    """A private engine holding only the small debootstrap rootfs image (has ``sleep``)."""
    if os.geteuid() != 0:
        pytest.skip("a private dockerd needs root")
    PrivateDockerd.sweep_orphans()
    host = connect()
    try:
        with PrivateDockerd(log_file=tmp_path / "private-dockerd.log") as private:
            private.load_from_host(host, ROOTFS_TAG)
            yield private
    finally:
        host.close()


def cleanup(engine: PrivateDockerd, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([CLI, "sandbox", "cleanup", *args], capture_output=True, text=True,
                          env={**os.environ, "DOCKER_HOST": engine.host},
                          timeout=scaled(120), check=False)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done


def make(client: docker.DockerClient, name: str, node: str | None,
         command: list[str]) -> Any:
    labels = labels_for("job-of-" + name, node, "train") if node is not None else {}
    return client.containers.create(ROOTFS_TAG, command, name=name, labels=labels,
                                    network_mode="none")


def test_sandbox_cleanup_keeps_running_containers_and_removes_leftovers(
        engine: PrivateDockerd) -> None:
    client = engine.client()
    crashed = make(client, "crashed-run", "worker-dead", ["true"])
    crashed.start()
    never_started = make(client, "never-started", "worker-dead", ["sleep", "infinity"])
    live = make(client, "live-run", "worker-alive", ["sleep", "infinity"])
    live.start()
    unlabelled = make(client, "not-ours", None, ["true"])
    unlabelled.start()
    wait_until(lambda: client.containers.get(crashed.id).status == "exited",
               what="the crashed run's container to exit")

    # Within the grace (GRACE_S by default) a stopped container may still be its node's:
    # nothing goes. (The default is 120 s: 10 s ran out under CI's load before this check.)
    assert GRACE_S >= 60
    young = json.loads(cleanup(engine, "--json").stdout)
    assert young["removed"] == []
    assert {c["name"] for c in young["kept"]} == {"crashed-run", "never-started", "live-run"}
    time.sleep(1.1)  # the engine's Created stamp has whole seconds

    # Past the grace (here 1 s, --grace-s) they go; the running one stays.
    done = json.loads(cleanup(engine, "--grace-s", "1", "--json").stdout)
    assert {(c["name"], c["state"], c["node"]) for c in done["removed"]} == {
        ("crashed-run", "exited", "worker-dead"), ("never-started", "created", "worker-dead")}
    assert [(c["name"], c["state"]) for c in done["kept"]] == [("live-run", "running")]
    assert client.containers.get(live.id).status == "running"
    assert client.containers.get(unlabelled.id).status == "exited"  # not a job container
    for gone in (crashed, never_started):
        with pytest.raises(docker.errors.NotFound):
            client.containers.get(gone.id)

    text = cleanup(engine).stdout
    assert text.startswith("removed 0 job container(s)")
    assert "kept live-run" in text and "sandbox cleanup --node worker-alive" in text
    assert client.containers.get(live.id).status == "running"

    # The user knows worker-alive crashed: --node removes its running container.
    named = json.loads(cleanup(engine, "--node", "worker-alive", "--json").stdout)
    assert [c["name"] for c in named["removed"]] == ["live-run"] and named["kept"] == []
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(live.id)
    with contextlib.suppress(docker.errors.NotFound):
        unlabelled.remove(force=True)
