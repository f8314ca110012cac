"""A train/v2 job's data blobs on a real worker (SoloNode, real Docker): refusals.

The honest path (data fetched, unpacked, mounted for train, self-check and votes)
is ``test_worker.py::test_honest_worker_claims_reveals_is_verified_and_paid``.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import replace
from pathlib import Path

import docker
import pytest

from chain.jobspec import DataRef
from chain.types import Hash32
from client.worker.worker import Worker
from tests.client.worker import test_worker as base
from tests.client.worker.test_worker import (
    TRAINER,
    TemplateImage,
    job_of,
    post_job,
    put_template,
    runner,
    running,
    template_spec,
    wait_until,
)
from tests.framework.solo import SoloNode
from tests.ledger.harness import make_genesis

pytestmark = pytest.mark.docker
docker_client = base.docker_client
template = base.template
no_leftover_containers = base.no_leftover_containers
worker_logs = base.worker_logs


def _linked_tar(path: Path) -> Path:
    """A data tar holding a link to the host's /etc/passwd: refused by [JOB-DATA.2]."""
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("data/valid.csv")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
        ok = tarfile.TarInfo("data/x")
        ok.size = 1
        tar.addfile(ok, io.BytesIO(b"x"))
    return path


async def test_work_data_1_data_of_another_size_or_with_a_link_is_refused_for_good(
        tmp_path: Path, docker_client: docker.DockerClient, template: TemplateImage) -> None:
    """[WORK-DATA.1] [JOB-DATA.2] [JOB-DATA.4] A job declaring a data size that is not its
    blob's, one whose data tar holds a link, and one whose data blob nobody has: the first
    two are refused for good before any run, the third is retried later; nothing trains."""
    genesis, keys = make_genesis(members=("submitter", "alice"))
    async with SoloNode(genesis, keys["v0"], tmp_path / "node") as node:
        put_template(node, template)
        spec = template_spec(template, node.now_ms(), expiry_s=60)
        train = spec.data_ref("train")
        assert train is not None
        wrong_size = post_job(node, keys["submitter"], replace(spec, data=(
            ("train", DataRef(train.blob, train.size + 1)), *spec.data[1:])))
        linked = _linked_tar(tmp_path / "linked.tar")
        link_blob = Hash32(node.put_blob_file(linked))
        with_link = post_job(node, keys["submitter"], replace(spec, data=(
            spec.data[0], ("valid", DataRef(link_blob, linked.stat().st_size))),
            description="link"))
        absent = post_job(node, keys["submitter"], replace(spec, data=(
            spec.data[0], ("valid", DataRef(Hash32(b"\x66" * 32), 1000))),
            description="absent"))
        alice = Worker(node, TRAINER, runner=runner(docker_client, "alice"), key=keys["alice"])
        async with running(alice):
            refused = await wait_until(
                lambda: len(alice.summary()["refused"]) == 3 and alice.summary()["refused"],  # type: ignore[arg-type]
                90, "the three jobs refused", [alice])
        assert isinstance(refused, dict)
        assert "declared" in refused[wrong_size.hex()] and \
            refused[wrong_size.hex()].startswith("refused:"), refused
        assert "JOB-DATA.2" in refused[with_link.hex()] and \
            refused[with_link.hex()].startswith("refused:"), refused
        assert "could not be fetched" in refused[absent.hex()] and \
            "trying again" in refused[absent.hex()], refused
        for job_id in (wrong_size, with_link, absent):
            assert job_of(node, job_id).claims == ()
        assert alice.summary()["sent"] == {}
        assert not (alice.store.dir / "data" / link_blob.hex()).exists()
