"""DP-SGD with Opacus in a participant's local round, in real containers (Docker; run under
the lock) [JOB-FED.6] [JOB-FED.7] [JOB-IMAGE.12].

One template job is built with ``[python] packages = ["opacus", "scipy", "opt-einsum"]``
(copied from the host into one layer over the job's image) and one without; both images
are made here and removed at the end (an image that already existed is left alone).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import numpy as np
import pytest

from chain.federated.blobs import ModelBlob
from client.federated.participant.dp_accounting import compose_epsilon
from sandbox.base_image import BASE_TAG, build_image, ensure_base_image
from sandbox.cleanup import cleanup_containers
from sandbox.engine import connect
from sandbox.federated import quantise_update, run_federate
from sandbox.job_template import build_job, init_job
from sandbox.limits import ResourceLimits
from sandbox.policy import LABEL_NODE
from sandbox.runner import SandboxRunner
from tests.federated import template_code

pytestmark = pytest.mark.docker

NODE = f"pytest-fed-dp-{os.getpid()}"
HIDDEN = 8
JOB = bytes(range(32))
WHO = bytes([7]) * 20
LIMITS = ResourceLimits(nano_cpus=1_000_000_000, wall_time_s=180.0)
PACKAGES = '\n[python]\npackages = ["opacus", "scipy", "opt-einsum"]\n'
DP = {"hidden_size": HIDDEN, "local_epochs": 2, "dp_sgd": 1, "dp_noise_multiplier": 1.0,
      "dp_max_grad_norm": 1.0, "dp_delta": 1e-5}


def _tag_exists(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


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
def images(client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[str, str, Path, Path]]:
    """(image with opacus, image without, the DP job's folder, an owner's data folder of
    200 training rows); the images are removed at the end if this fixture made them."""
    root = tmp_path_factory.mktemp("fed-dp")
    made = []
    built = {}
    for name, extra in (("pytest-fed-dp-plain", ""), ("pytest-fed-dp-opacus", PACKAGES)):
        job = root / name
        init_job(job, name=name)
        with (job / "job.toml").open("a") as f:
            f.write(extra)
        tag = f"learningchain/job-{name}:latest"
        if not _tag_exists(client, tag):
            made.append(tag)
        start = time.monotonic()
        built[name] = build_job(client, job, log=lambda _m: None).image_id
        print(f"{name}: built in {time.monotonic() - start:.1f} s")
    owner = root / "owner"
    owner.mkdir(mode=0o755)
    rows = (root / "pytest-fed-dp-plain" / "data" / "train.csv").read_text().splitlines()
    (owner / "mine.csv").write_text("\n".join(rows[:201]) + "\n")
    (owner / "mine.csv").chmod(0o644)
    try:
        yield (built["pytest-fed-dp-opacus"], built["pytest-fed-dp-plain"],
               root / "pytest-fed-dp-opacus", owner)
    finally:
        for tag in reversed(made):  # the layered image first, then its own parent prunes
            with contextlib.suppress(docker.errors.NotFound):
                client.images.remove(tag, force=False, noprune=False)


def _global() -> ModelBlob:
    fed = template_code.federate()
    return ModelBlob(16, quantise_update(fed.initial_model(HIDDEN, 5), 16))


def test_dp_sgd_round_reports_the_accountants_epsilon_and_is_deterministic(
        runner: SandboxRunner, client: docker.DockerClient,
        images: tuple[str, str, Path, Path]) -> None:
    """[JOB-IMAGE.12] The packages layer is the job's image (image.json records the host's
    versions) and opacus imports in it. [JOB-FED.6] [JOB-FED.7] dp_sgd=1 trains with
    Opacus and writes privacy.json, whose epsilon is what opacus' RDP accountant on the host
    gives for the reported noise multiplier, sample rate, steps and delta; the update is
    finite, differs from the non-DP run, and the same seed gives the same bytes
    [JOB-DET.1]."""
    import importlib.metadata as md
    import json

    image, _plain, job_dir, owner = images
    record = json.loads((job_dir / "image.json").read_text())
    assert record["image_id"] == image
    assert {d["name"].lower().replace("_", "-"): d["version"] for d in record["packages"]} \
        == {name: md.version(name) for name in ("opacus", "scipy", "opt-einsum")}
    sizes = client.api.history(image)[0]
    print(f"packages layer: {sizes['Size'] / 1e6:.0f} MB ({sizes['CreatedBy'][-60:]})")
    model = _global()
    timed = {}
    start = time.monotonic()
    dp = run_federate(runner, image, model, owner, LIMITS, job_id=JOB, round_no=3,
                      participant=WHO, seed=21, hyperparameters=DP)
    timed["dp"] = time.monotonic() - start
    assert dp.ok, (dp.reason, dp.detail, dp.run.logs[-2000:])
    assert dp.blob is not None and dp.privacy is not None
    p = dp.privacy
    print(f"privacy: {p.to_json()}; logs: {dp.run.logs.decode()[-300:]}")
    assert (p.noise_multiplier, p.max_grad_norm, p.delta) == (1.0, 1.0, 1e-5)
    assert p.sample_rate == 1 / math.ceil(200 / 64) and p.steps > 0
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    accountant.history = [(p.noise_multiplier, p.sample_rate, p.steps)]
    host = accountant.get_epsilon(p.delta)
    assert math.isclose(p.epsilon, host, rel_tol=1e-9), (p.epsilon, host)
    assert math.isclose(compose_epsilon([(1.0, p.sample_rate, p.steps)], 1e-5), host,
                        rel_tol=1e-12)
    again = run_federate(runner, image, model, owner, LIMITS, job_id=JOB, round_no=3,
                         participant=WHO, seed=21, hyperparameters=DP)
    assert again.ok and again.blob is not None
    assert again.blob.to_bytes() == dp.blob.to_bytes()
    assert again.privacy == p
    start = time.monotonic()
    plain = run_federate(runner, image, model, owner, LIMITS, job_id=JOB, round_no=3,
                         participant=WHO, seed=21,
                         hyperparameters={"hidden_size": HIDDEN, "local_epochs": 2})
    timed["plain"] = time.monotonic() - start
    assert plain.ok and plain.blob is not None and plain.privacy is None
    values = np.asarray(dp.blob.values, np.float64) / 65536
    assert np.isfinite(values).all() and np.any(values)
    assert dp.blob.values != plain.blob.values
    print(f"federate run: dp-sgd {timed['dp']:.1f} s, plain {timed['plain']:.1f} s; update "
          f"norm dp {np.linalg.norm(values):.3f}, plain "
          f"{np.linalg.norm(np.asarray(plain.blob.values, np.float64) / 65536):.3f}")


def test_dp_sgd_without_opacus_in_the_image_is_a_bad_params_exit(
        runner: SandboxRunner, images: tuple[str, str, Path, Path]) -> None:
    """[JOB-FED.6] [JOB-IMAGE.12] An image built without ``[python] packages`` has no
    opacus: dp_sgd=1 exits with EXIT_BAD_PARAMS (2) and says what its owner must do."""
    _image, plain, _job, owner = images
    result = run_federate(runner, plain, _global(), owner, LIMITS, job_id=JOB, round_no=1,
                          participant=WHO, seed=1, hyperparameters=DP)
    assert not result.ok and result.reason == "bad_params", (result.reason, result.detail)
    assert result.run.exit_code == template_code.lcjob().EXIT_BAD_PARAMS
    logs = result.run.logs.decode()
    assert "this job image has no opacus" in logs and "[python] packages" in logs, logs


HOSTILE = """#!/usr/bin/env python3
import json, os, struct
hp = json.loads(os.environ["LC_PARAMS"])["hyperparameters"]
body = struct.pack(f"<{hp['dims']}f", *([0.25] * hp["dims"]))
head = json.dumps({"update": {"dtype": "F32", "shape": [hp["dims"]],
                              "data_offsets": [0, len(body)]}}).encode()
head += b" " * (-len(head) % 8)
open("/output/update.safetensors", "wb").write(struct.pack("<Q", len(head)) + head + body)
r = {"mechanism": "dp-sgd", "accountant": "rdp", "noise_multiplier": 1.0,
     "max_grad_norm": 1.0, "sample_rate": 0.25, "steps": 8, "delta": 1e-5, "epsilon": 3.0}
if hp["mode"] == "huge":
    text = " " * 5000 + json.dumps(r)
elif hp["mode"] == "nan":
    text = json.dumps(r).replace("3.0", "NaN")
elif hp["mode"] == "extra":
    text = json.dumps({**r, "note": "hi"})
else:
    text = json.dumps(r)
open("/output/privacy.json", "w").write(text)
"""


def test_a_hostile_privacy_report_is_refused(runner: SandboxRunner, client: docker.DockerClient,
                                             tmp_path: Path) -> None:
    """[JOB-FED.7] A privacy.json over 4 KiB is refused from its tar header; one with NaN
    or an extra key is refused by the host's strict parser; the round's update is then not
    used. A well-formed one comes back beside the update."""
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "federate").write_text(HOSTILE)
    (context / "Dockerfile").write_text(
        f"FROM {BASE_TAG}\nCOPY federate /job/federate\nUSER 0:0\n"
        "RUN chmod 755 /job/federate\nUSER 65534:65534\n")
    tag = "learningchain/test-fed-dp-hostile:latest"
    existed = _tag_exists(client, tag)
    image = build_image(client, context, tag, lambda _m: None)
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    model = ModelBlob(16, tuple(range(100)))
    try:
        for mode, reason, needle in (("huge", "bad_output", "privacy.json"),
                                     ("nan", "bad_privacy", "NaN"),
                                     ("extra", "bad_privacy", "keys must be exactly"),
                                     ("good", "", "")):
            result = run_federate(runner, image, model, data, LIMITS, job_id=JOB,
                                  round_no=1, participant=WHO, seed=1,
                                  hyperparameters={"mode": mode, "dims": model.dims})
            print(mode, result.reason, result.detail)
            assert result.reason == reason and needle in result.detail, result.detail
            assert result.ok == (mode == "good") and (result.blob is None) != result.ok
        assert result.privacy is not None and result.privacy.epsilon == 3.0
    finally:
        if not existed:
            with contextlib.suppress(docker.errors.NotFound):
                client.images.remove(image, force=False, noprune=False)
