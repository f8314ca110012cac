"""A host's own Docker engine: started inside the host's namespace (``add_host(engine=
True)``), reachable by the host's processes through ``DOCKER_HOST``, and gone with the
test bed, as a worker's engine on its own machine."""

from __future__ import annotations

import logging
import os
import sys

import docker
import pytest

from tests.hosts.netns import run
from tests.hosts.testbed import TestBed

pytestmark = [pytest.mark.serial, pytest.mark.docker]
log = logging.getLogger(__name__)


def test_a_host_runs_a_docker_engine_of_its_own(lc_seed: int) -> None:
    log.info("seed %d", lc_seed)
    with TestBed(seed=lc_seed) as bed:
        host = bed.add_host("w0", engine=True)
        engine = host.engine
        assert engine is not None and engine.pid is not None
        assert run("ip", "netns", "identify", str(engine.pid)).strip() == host.ns
        client = docker.DockerClient(base_url=engine.host, timeout=30)
        try:
            assert client.ping()
            log.info("engine %s answers: docker %s", engine.name,
                     client.version()["Version"])
        finally:
            client.close()
        proc = host.popen([sys.executable, "-c", "import os; print(os.environ['DOCKER_HOST'])"],
                          log=host.directory / "env.log")
        assert proc.wait(timeout=30) == 0
        assert (host.directory / "env.log").read_text().strip() == engine.host
        root, pid = engine.root, engine.pid
    assert not root.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
