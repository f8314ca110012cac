"""Fixtures for sandbox tests against the real Docker engine.

A missing engine makes the docker tests FAIL (``EngineUnavailable``), never
skip: a sandbox that was not tested is not known to contain anything.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from sandbox.base_image import BASE_TAG, ROOTFS_TAG, build_image, ensure_base_image
from sandbox.cleanup import cleanup_containers
from sandbox.engine import connect
from sandbox.job_template import BuiltJob, build_job, init_job, template_data
from sandbox.policy import LABEL_NODE
from sandbox.runner import SandboxRunner
from sandbox.runtime import resolve as resolve_runtime
from tests.sandbox.hostile_jobs import HOSTILE_SCRIPTS
from tests.sandbox.runtimes import RUNTIMES

NODE_ID = f"pytest-{os.getpid()}"
"""Label of every container these tests start, so leftovers are found and blamed."""


def _quiet(_message: str) -> None:
    pass


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    return connect()


@pytest.fixture(scope="session")
def base_image(docker_client: docker.DockerClient) -> str:
    return ensure_base_image(docker_client, log=_quiet).image_id


@pytest.fixture(scope="session")
def runner(docker_client: docker.DockerClient, base_image: str) -> SandboxRunner:
    return SandboxRunner(docker_client, node_id=NODE_ID)


@pytest.fixture(autouse=True)
def no_leftover_containers(request: pytest.FixtureRequest) -> Iterator[None]:
    """[JOB-SANDBOX.4] After every docker test, none of its containers may remain."""
    if request.node.get_closest_marker("docker") is None:
        yield
        return
    client = request.getfixturevalue("docker_client")
    yield
    left = client.containers.list(all=True, ignore_removed=True,
                                  filters={"label": f"{LABEL_NODE}={NODE_ID}"})
    cleanup_containers(client, NODE_ID)
    assert not left, f"containers left behind: {[c.name for c in left]}"


@pytest.fixture(scope="session")
def template_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    job_dir = tmp_path_factory.mktemp("template") / "job"
    init_job(job_dir, name="pytest-digits")
    return job_dir


@pytest.fixture(scope="session")
def template_data_dirs(template_dir: Path, tmp_path_factory: pytest.TempPathFactory
                       ) -> dict[str, Path]:
    """[JOB-DATA.2] The template's data roles packed as blobs and unpacked as a node does."""
    return template_data(template_dir, tmp_path_factory.mktemp("template-data"))


@pytest.fixture(scope="session")
def template_job(docker_client: docker.DockerClient, base_image: str,
                 template_dir: Path) -> BuiltJob:
    return build_job(docker_client, template_dir, log=_quiet)


HOSTILE_TAG = "learningchain/test-hostile:latest"
IMAGE_ENV = "HOME=/image-home LC_ENTRY=from-the-image LC_OUTPUT=/elsewhere IMAGE_ONLY=kept"
"""The hostile image's own ``ENV``: the contract's variables override it [JOB-ENTRY.2]."""


@pytest.fixture(scope="session")
def hostile_image(docker_client: docker.DockerClient, base_image: str,
                  tmp_path_factory: pytest.TempPathFactory) -> str:
    """One image FROM the base holding every hostile script, a setuid-root python, an ``ENV``."""
    context = tmp_path_factory.mktemp("hostile")
    (context / "hostile").mkdir()
    for name, source in HOSTILE_SCRIPTS.items():
        (context / "hostile" / f"{name}.py").write_text(textwrap.dedent(source))
    (context / "Dockerfile").write_text(textwrap.dedent(f"""\
        FROM {BASE_TAG}
        USER 0:0
        COPY hostile /job/hostile
        RUN cp /usr/bin/python3.11 /job/suid-python && chmod 4755 /job/suid-python \\
            && chmod -R a+rX /job
        USER 65534:65534
        ENV {IMAGE_ENV}
        """))
    return build_image(docker_client, context, HOSTILE_TAG, _quiet)


@pytest.fixture(scope="session")
def small_image(docker_client: docker.DockerClient, base_image: str,
                tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small image FROM the debootstrap rootfs: cheap to save and load as a blob."""
    context = tmp_path_factory.mktemp("small")
    (context / "hello.py").write_text("print('hello from a blob')\n")
    (context / "Dockerfile").write_text(
        f"FROM {ROOTFS_TAG}\nCOPY hello.py /job/hello.py\nUSER 65534:65534\n")
    return build_image(docker_client, context, "learningchain/test-small:latest", _quiet)


FAKE_TAR = '''#!/usr/bin/python3
"""A job image's own ``tar``: what the runner archives /output with is the image's."""
import os, sys, tarfile, io
mode = open("/tmp/tar-mode").read().strip() if os.path.exists("/tmp/tar-mode") else ""
out = sys.stdout.buffer
if mode == "garbage":
    out.write(os.urandom(20000))
elif mode == "huge":
    info = tarfile.TarInfo("output/model.pt")
    info.size = 64 * 1024 * 1024
    out.write(info.tobuf(format=tarfile.GNU_FORMAT))
    block = b"\\0" * (1 << 20)
    for _ in range(64):
        out.write(block)
elif mode == "duplicate":
    with tarfile.open(fileobj=out, mode="w|") as t:
        for _ in range(2):
            info = tarfile.TarInfo("output/model.pt")
            info.size = 1
            t.addfile(info, io.BytesIO(b"x"))
elif mode == "empty":
    pass
else:
    os.execv("/bin/tar", ["tar", *sys.argv[1:]])
'''


@pytest.fixture(scope="session")
def fake_tar_image(docker_client: docker.DockerClient, base_image: str,
                   tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small image whose ``tar`` lies when the job asks it to ([JOB-OUT.*], [JOB-EXIT.5])."""
    context = tmp_path_factory.mktemp("faketar")
    (context / "tar").write_text(FAKE_TAR)
    (context / "Dockerfile").write_text(
        f"FROM {ROOTFS_TAG}\nCOPY tar /usr/local/bin/tar\nUSER 0:0\n"
        "RUN chmod 755 /usr/local/bin/tar\nUSER 65534:65534\n")
    return build_image(docker_client, context, "learningchain/test-faketar:latest", _quiet)


@pytest.fixture(scope="session")
def nosleep_image(docker_client: docker.DockerClient, base_image: str,
                  tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small image without ``sleep``: its container cannot start [JOB-IMAGE.1]."""
    context = tmp_path_factory.mktemp("nosleep")
    (context / "Dockerfile").write_text(
        f"FROM {ROOTFS_TAG}\nUSER 0:0\nRUN rm -f /bin/sleep /usr/bin/sleep\nUSER 65534:65534\n")
    return build_image(docker_client, context, "learningchain/test-nosleep:latest", _quiet)


@pytest.fixture(params=RUNTIMES)
def runtime_runner(request: pytest.FixtureRequest, docker_client: docker.DockerClient,
                   base_image: str) -> SandboxRunner:
    """[JOB-RUNTIME.6] A runner under each runtime of ``RUNTIMES``: the hostile battery and the
    equality of losses run under both. ``runsc`` must be registered with the engine where it
    is installed (``RuntimeUnavailable`` fails the test, never skips it)."""
    choice = resolve_runtime(docker_client, request.param)
    return SandboxRunner(docker_client, node_id=NODE_ID, runtime=choice.name)
