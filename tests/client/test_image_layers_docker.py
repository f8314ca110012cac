"""A job image travels by layer between two nodes to a worker on an engine of its own
[JOB-IMAGE.6-8].

The worker (node0) runs its jobs on a private dockerd holding only the base image;
the submitter posts the template job to node1 with ``job submit``. The job's
config and own layer (a few KB) are all that reaches node0 (its
``blob_fetched_bytes``); the base's gigabyte never moves, and the job trains and
claims.
"""

from __future__ import annotations

import time
from pathlib import Path

from client.api.http_client import ApiClient
from client.devnet.processes import down
from sandbox.base_image import BASE_TAG
from sandbox.engine import connect
from tests.client.image_layers_graph import (
    SUBMIT_NODE,
    cli,
    fetched_bytes,
    node_log,
    start_graph,
    submit,
    wait_training,
)
from tests.framework.dockerd import PrivateDockerd
from tests.framework.ports import free_base_port
from tests.framework.wait import scaled


def test_job_image_8_a_worker_on_its_own_engine_fetches_only_the_jobs_layers_and_trains(
        tmp_path: Path, private_dockerd: PrivateDockerd) -> None:
    """[JOB-IMAGE.8] [JOB-IMAGE.9] The worker's engine holds the canonical base (loaded from
    the same image, not rebuilt: the same layer ids): only the job's own layer and config
    reach it, the image loads with its id unchanged, and it trains and claims."""
    engine = private_dockerd.client()
    base_layers = connect().images.get(BASE_TAG).attrs["RootFS"]["Layers"]
    root = tmp_path / "graph"
    layout = start_graph(root, private_dockerd.host, free_base_port(2))
    try:
        job_dir = tmp_path / "job"
        cli("job", "init", str(job_dir))
        before = fetched_bytes(layout)
        posted = submit(layout, job_dir)  # the default cache of the image's split

        info = posted.info
        assert info["image_by_layer"] is True
        job_id = info["job_id"]
        wait_training(engine, job_id, scaled(120))
        api = ApiClient(layout.nodes[SUBMIT_NODE].api_url)
        deadline = time.monotonic() + scaled(120)
        while not api.job(job_id)["claims"]:
            assert time.monotonic() < deadline, "the worker never claimed"
            time.sleep(0.5)
        moved = fetched_bytes(layout) - before
        log = node_log(layout)
    finally:
        down(root)
    image = engine.images.get(info["image_id"])
    assert image.id == info["image_id"], "loaded with the job's image id [JOB-IMAGE.3]"
    own = len(image.attrs["RootFS"]["Layers"]) - len(base_layers)
    assert image.attrs["RootFS"]["Layers"][:len(base_layers)] == base_layers
    assert (f"the engine holds {len(base_layers)} of {len(base_layers) + own} layers; "
            f"fetching {own} layer blob(s)") in log
    data = sum(int(d["size"]) for d in info["data"].values())
    image_bytes = moved - data
    assert 0 < image_bytes < 1_000_000, f"{image_bytes} image bytes reached the worker"
    assert "image layers" in log and "loaded" in log
