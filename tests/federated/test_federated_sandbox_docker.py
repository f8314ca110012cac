"""A federated local round in real containers [JOB-FED.1-6] (Docker engine; run under the lock).

The template's ``federate`` on an owner's data folder gives the update the host's own
run of the same code gives, quantised into the round's blob; a hostile ``federate``
(wrong shape, NaN, an oversized file, a pickle, no file, junk beside the update, a
probe of the network and of the data mount) never gets past the host's checks, and
the node keeps running.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import docker
import numpy as np
import pytest

from chain.federated.blobs import ModelBlob
from sandbox.base_image import BASE_TAG, build_image, ensure_base_image
from sandbox.cleanup import cleanup_containers
from sandbox.engine import connect
from sandbox.federated import max_file_bytes, quantise_update, run_federate
from sandbox.job_template import build_job, init_job
from sandbox.limits import ResourceLimits
from sandbox.policy import LABEL_NODE
from sandbox.runner import SandboxRunner
from tests.federated import template_code

pytestmark = pytest.mark.docker

NODE = f"pytest-fed-{os.getpid()}"
HIDDEN = 8
JOB = bytes(range(32))
WHO = bytes([9]) * 20
LIMITS = ResourceLimits(nano_cpus=1_000_000_000, wall_time_s=120.0)

HOSTILE = '''#!/usr/bin/env python3
"""A federate entry that misbehaves as LC_PARAMS asks."""
import json, os, pickle, socket, struct, sys
mode = json.loads(os.environ["LC_PARAMS"])["hyperparameters"]["mode"]
dims = int(json.loads(os.environ["LC_PARAMS"])["hyperparameters"]["dims"])
out = "/output/update.safetensors"

def flat(values, name="update", dtype="F32", shape=None):
    body = struct.pack(f"<{len(values)}f", *values)
    head = json.dumps({name: {"dtype": dtype, "shape": shape or [len(values)],
                              "data_offsets": [0, len(body)]}}).encode()
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + body

if mode == "wrong_shape":
    open(out, "wb").write(flat([0.0] * (dims + 3)))
elif mode == "nan":
    open(out, "wb").write(flat([0.0] * (dims - 1) + [float("nan")]))
elif mode == "oversized":
    with open(out, "wb") as f:
        f.write(flat([0.0] * dims))
        f.write(b"\\0" * (8 * 1024 * 1024))
elif mode == "pickle":
    class P:
        def __reduce__(self):
            return (os.system, ("touch /tmp/host-was-here",))
    open(out, "wb").write(pickle.dumps(P()))
elif mode == "missing":
    pass
elif mode == "junk":
    open("/output/junk.bin", "wb").write(b"j" * (4 * 1024 * 1024))
    open(out, "wb").write(flat([0.5] * dims))
elif mode == "probe":
    net = 0.0
    try:
        socket.create_connection(("1.1.1.1", 53), timeout=2).close()
        net = 1.0
    except OSError:
        pass
    wrote = 0.0
    try:
        open("/data/train/new.csv", "w").write("x")
        wrote = 1.0
    except OSError:
        pass
    seen = float(len(os.listdir("/data/train")))
    size = float(os.path.getsize("/input/global.safetensors"))
    open(out, "wb").write(flat([net, wrote, seen, size] + [0.0] * (dims - 4)))
sys.exit(0)
'''


@pytest.fixture(scope="module")
def client() -> Iterator[docker.DockerClient]:
    c = connect()
    ensure_base_image(c, log=lambda _m: None)
    yield c
    c.close()


@pytest.fixture
def runner(client: docker.DockerClient) -> Iterator[SandboxRunner]:
    """[JOB-SANDBOX.4] None of this test's containers may remain."""
    yield SandboxRunner(client, node_id=NODE)
    left = client.containers.list(all=True, ignore_removed=True,
                                  filters={"label": f"{LABEL_NODE}={NODE}"})
    cleanup_containers(client, NODE)
    assert not left, f"containers left behind: {[c.name for c in left]}"


@pytest.fixture(scope="module")
def template(client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[str, Path]:
    """The template job built, and an owner's data folder: 200 of its training rows."""
    job = tmp_path_factory.mktemp("fed") / "job"
    init_job(job, name="pytest-federate")
    image = build_job(client, job, log=lambda _m: None).image_id
    owner = tmp_path_factory.mktemp("owner-data")
    rows = (job / "data" / "train.csv").read_text().splitlines()
    (owner / "mine.csv").write_text("\n".join(rows[:201]) + "\n")
    owner.chmod(0o755)
    (owner / "mine.csv").chmod(0o644)
    return image, owner


@pytest.fixture(scope="module")
def hostile(client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory) -> str:
    context = tmp_path_factory.mktemp("fed-hostile")
    (context / "federate").write_text(HOSTILE)
    (context / "Dockerfile").write_text(textwrap.dedent(f"""\
        FROM {BASE_TAG}
        COPY federate /job/federate
        USER 0:0
        RUN chmod 755 /job/federate
        USER 65534:65534
        """))
    return build_image(client, context, "learningchain/test-fed-hostile:latest",
                       lambda _m: None)


def _global() -> ModelBlob:
    fed = template_code.federate()
    return ModelBlob(16, quantise_update(fed.initial_model(HIDDEN, 5), 16))


def test_template_federate_gives_the_hosts_update_as_the_rounds_blob(
        runner: SandboxRunner, template: tuple[str, Path]) -> None:
    """[JOB-FED.1] [JOB-FED.3] [JOB-FED.5] The template's federate on the owner's folder
    (read-only at /data/train, network off) writes an update that the host quantises into
    the blob of this job, round and address; it matches the host's own run of the same
    code on the same rows (same torch, one thread) to within one quantum per coordinate.
    [JOB-FED.6] With dp_clip the update's norm is at most the clip."""
    image, owner = template
    model = _global()
    hp = {"hidden_size": HIDDEN, "local_epochs": 2}
    result = run_federate(runner, image, model, owner, LIMITS, job_id=JOB, round_no=4,
                          participant=WHO, seed=11, hyperparameters=hp)
    assert result.ok, (result.reason, result.detail, result.run.logs[-2000:])
    assert result.blob is not None
    assert result.blob.check_for(JOB, 4, WHO, model.dims, 16) is result.blob
    lcjob = template_code.lcjob()
    x, y = lcjob.load_csv(owner / "mine.csv")
    host = quantise_update(template_code.federate().local_update(
        (np.asarray(model.values, np.float64) / 65536).astype(np.float32), x, y,
        hidden=HIDDEN, epochs=2, seed=11), 16)
    diff = np.abs(np.asarray(host) - np.asarray(result.blob.values))
    print(f"container vs host: {int((diff == 0).sum())}/{model.dims} coordinates equal, "
          f"max difference {int(diff.max())} quanta; logs: {result.run.logs.decode()[-200:]}")
    assert diff.max() <= 1 and any(result.blob.values)
    clip = 0.05
    dp = run_federate(runner, image, model, owner, LIMITS, job_id=JOB, round_no=4,
                      participant=WHO, seed=11, hyperparameters={**hp, "dp_clip": clip})
    assert dp.ok and dp.blob is not None
    norm = float(np.linalg.norm(np.asarray(dp.blob.values, np.float64) / 65536))
    assert norm <= clip + 1e-3 * clip + model.dims ** 0.5 / 65536


@pytest.mark.parametrize(("mode", "reason", "rule"), [
    ("wrong_shape", "bad_update", "shape"),
    ("nan", "bad_update", "values"),
    ("pickle", "bad_update", "header"),
    ("oversized", "output_too_large", ""),
    ("missing", "update_missing", ""),
])
def test_hostile_federate_outputs_are_refused(runner: SandboxRunner, hostile: str,
                                              tmp_path: Path, mode: str, reason: str,
                                              rule: str) -> None:
    """[JOB-FED.3] [JOB-FED.4] A wrong shape, a NaN, a pickle (never loaded: no file appears
    on the host), a file over 8 + 4096 + 4·dims bytes (refused from its tar header) and no
    file each fail the run with their reason; the runner goes on to the next."""
    model = ModelBlob(16, tuple(range(-50, 50)))
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    (data / "a.csv").write_text("label\n")
    result = run_federate(runner, hostile, model, data, LIMITS, job_id=JOB, round_no=1,
                          participant=WHO, seed=1,
                          hyperparameters={"mode": mode, "dims": model.dims})
    print(mode, result.reason, result.detail)
    assert not result.ok and result.reason == reason and result.blob is None
    if rule:
        assert result.detail.startswith(f"{rule}:")
    if mode == "oversized":
        assert f"limit {max_file_bytes(model.dims)}" in result.detail
    assert not Path("/tmp/host-was-here").exists()


def test_only_the_update_leaves_and_the_data_mount_is_read_only(
        runner: SandboxRunner, hostile: str, tmp_path: Path) -> None:
    """[JOB-FED.1] [JOB-FED.3] Network off (a connection fails), the owner's folder
    read-only and seen as given, the global model at /input; junk written beside the
    update never reaches the host."""
    model = ModelBlob(16, tuple(range(100)))
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    for name in ("a.csv", "b.csv"):
        (data / name).write_text("label\n")
        (data / name).chmod(0o644)
    probe = run_federate(runner, hostile, model, data, LIMITS, job_id=JOB, round_no=1,
                         participant=WHO, seed=1,
                         hyperparameters={"mode": "probe", "dims": model.dims})
    assert probe.ok and probe.blob is not None, probe.detail
    net, wrote, seen, size = (v / 65536 for v in probe.blob.values[:4])
    assert (net, wrote, seen) == (0.0, 0.0, 2.0)
    assert 8 < size - 4 * model.dims <= 8 + 4096
    assert sorted(p.name for p in data.iterdir()) == ["a.csv", "b.csv"]
    junk = run_federate(runner, hostile, model, data, LIMITS, job_id=JOB, round_no=1,
                        participant=WHO, seed=1,
                        hyperparameters={"mode": "junk", "dims": model.dims})
    assert junk.ok and junk.blob is not None and set(junk.blob.values) == {32768}
    assert "1 output files" in junk.run.detail, junk.run.detail  # junk.bin stayed inside
