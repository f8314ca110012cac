"""Job start: from ``job submit`` to training started, for a worker on an engine of its own.

A graph of two validators (``tests/client/image_layers_graph.py``): node0 works on
a private dockerd that holds the base image only (loaded, as a worker that had the
canonical base [JOB-IMAGE.9]); the submitter posts the template job to node1 from
the host engine. Two runs of the same job:

- **by layer** (the default of ``job submit`` [JOB-IMAGE.6-8]): the template's
  split into layer blobs is made first into an empty cache (``seconds_split_once``:
  one ``docker save``), then a variant of the job is built and split with the base's
  layers cached (``seconds_split_new_image``: what the first submit of a new build
  pays once; later submits read the cache) and the base's layer blobs are put on
  node1 (a graph that ran a job before holds them), then ``job submit`` is timed
  to the training container on the worker's engine;
- **whole image** (``--whole-image``, the form of today): the saved tar is
  exported, uploaded and fetched whole; the job image is first removed from the
  worker's engine so that it is really loaded again.

The manifest is v2 (``job submit``'s default [JOB-IMAGE.10]): the config travels
inside it, compressed. ``bytes_moved_per_own_layer_byte`` is the figure of issue 17
(target <= 1.1): ``bytes_moved`` over the *uncompressed* size of the job's own
layers (those the worker's engine lacked). ``own_layers_deflated_bytes`` says how
far compressing the layers too (not done: layer blobs stay their ``diff_id``)
would go; ``v1_manifest_and_config_bytes`` is what v1 moved besides the layers.

``bytes_moved``: image bytes that reached the worker's node from its peer (its
``blob_fetched_bytes`` counter, less the job's data blobs and a train/v3 job's
public part, which travel the same in both runs). ``seconds_to_image_loaded``: from
``job submit`` to the worker's "image ... loaded" log line; ``seconds_to_training``
also holds a train/v3 job's wait for its public part, named a block or two after
the post (``waited_for_public_part``: the worker looked too early and retries
later). Needs root (a private dockerd) and the host engine's base image
(``make setup``). Last line: one JSON object (keys ``JSON_KEYS``).

``--quick`` (or ``LC_BENCH_QUICK=1``) times the by-layer run only: the whole-image run
(a gigabyte exported, uploaded and fetched) is skipped and its figures are ``null``; so is
the first split of all (``--no-split-once``): the base's layer files come from this
machine's own split cache (``job submit``'s, hard-linked) when it holds them all, so only
the variant is built and split (one ``docker save`` of the base's gigabyte, skipped
unread); and the bench does not wait for the worker to finish training (the private
engine is removed with it). It still loads the base into the worker's engine (a
gigabyte): about 45 s here, not seconds.

    .venv/bin/python bench/jobstart.py [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
import zlib
from datetime import datetime
from pathlib import Path
from typing import Any

import docker.errors

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support.cli import emit, parse_args
from client.api.http_client import ApiClient
from client.devnet.processes import down
from sandbox.base_image import BASE_TAG
from sandbox.engine import connect
from sandbox.image_publish import LayerCache, default_cache
from sandbox.job_sources import read_record
from tests.client.image_layers_graph import (
    SUBMIT_NODE,
    cli,
    fetched_bytes,
    node_log,
    start_graph,
    submit,
    wait_idle,
    wait_training,
)
from tests.framework.dockerd import PrivateDockerd
from tests.framework.ports import free_base_port

JSON_KEYS = ("bytes_moved", "seconds_to_training", "seconds_to_image_loaded",
             "waited_for_public_part", "seconds_to_image_loaded_whole_image",
             "bytes_moved_whole_image", "seconds_to_training_whole_image",
             "job_own_layer_bytes", "bytes_moved_per_own_layer_byte", "manifest_version",
             "config_bytes", "manifest_bytes", "v1_manifest_and_config_bytes",
             "own_layers_deflated_bytes", "image_total_bytes", "bytes_uploaded",
             "bytes_uploaded_whole_image", "seconds_submit", "seconds_submit_whole_image",
             "seconds_split_once", "seconds_split_new_image", "seconds_seed_base_upload",
             "seconds_build")
"""Keys of the last line (tests/test_bench_quick.py); ``--quick`` leaves the
``*_whole_image`` ones ``null``."""
NEEDS_DOCKER = True
"""Builds images on the host engine, starts a private dockerd (root) and 2 node
processes: CI runs it serially, with the Docker and multi-process tests."""
QUICK = {"whole_image": False, "split_once": False}


def link_base_layers(host: Any, cache: Path) -> bool:
    """Puts the base's layer files of this machine's own split cache (``job submit``'s
    default, ``LC_IMAGE_CACHE``) into ``cache``, as hard links (copies across file systems);
    True when every base layer was there (else ``cache`` is left as it was)."""
    machine, ours = LayerCache(default_cache()), LayerCache(cache)
    diff_ids = host.images.get(BASE_TAG).attrs["RootFS"]["Layers"]
    if any(machine.layer_ref(diff_id) is None for diff_id in diff_ids):
        return False
    ours.layers.mkdir(parents=True, exist_ok=True)
    for diff_id in diff_ids:
        for suffix in (".tar", ".ref", ".unpacked"):
            source = machine.layer_path(diff_id).with_suffix(suffix)
            target = ours.layer_path(diff_id).with_suffix(suffix)
            if source.is_file() and not target.exists():
                try:
                    os.link(source, target)
                except OSError:
                    shutil.copyfile(source, target)
    return True


def run(tmp: Path, whole_image: bool = True, split_once: bool = True,
        quick: bool = False) -> dict[str, object]:
    host = connect(600)
    job_dir = tmp / "job"
    cli("job", "init", str(job_dir))
    cache = tmp / "image-cache"  # empty: the base's layers are split too, as on a first submit
    build_s: float | None = None
    split_s: float | None = None
    if split_once or not link_base_layers(host, cache):
        t = time.monotonic()
        cli("job", "build", str(job_dir))
        build_s = time.monotonic() - t
        record = read_record(job_dir)
        assert record is not None
        t = time.monotonic()
        LayerCache(cache).publish(host, record.image_id)
        split_s = time.monotonic() - t
    # A newly built job on the same base (its own name, so no shared tag moves): what a
    # first submit of a new build pays, the base's layers in the cache already.
    toml = job_dir / "job.toml"
    toml.write_text(toml.read_text().replace('name = "digits-mlp"', 'name = "bench-jobstart"'))
    with open(job_dir / "train", "a") as f:
        f.write(f"# bench variant {time.time_ns()}\n")
    t = time.monotonic()
    cli("job", "build", str(job_dir))
    build_s = build_s if build_s is not None else time.monotonic() - t
    record = read_record(job_dir)
    assert record is not None
    image_id = record.image_id
    t = time.monotonic()
    published = LayerCache(cache).publish(host, image_id)
    split_new_s = time.monotonic() - t
    base_layers = len(host.images.get(BASE_TAG).attrs["RootFS"]["Layers"])
    own = published.manifest.layers[base_layers:]
    own_bytes = sum(layer.size for layer in own)
    deflated = sum(len(zlib.compress(cache.joinpath("layers", layer.diff_id[7:] + ".tar")
                                     .read_bytes(), 9)) for layer in own)
    config = published.manifest.config or b""
    v1 = published.manifest.as_version(1, config)
    v1_bytes = len(v1.to_bytes()) + v1.config_size
    print(f"image {image_id[:19]}: {len(published.manifest.layers)} layers, "
          f"{published.manifest.total_size} bytes; the job's own {len(own)} layer(s): "
          f"{own_bytes} bytes ({deflated} deflated), config {published.manifest.config_size} "
          f"bytes, manifest v{published.manifest.version} {published.manifest_file.size} bytes "
          f"with the config in it (v1: {v1_bytes} bytes for manifest and config); split in "
          f"{split_new_s:.1f} s with the base's layers cached" + (
              f" (the first split of all: {split_s:.1f} s)" if split_s is not None else
              " (this machine's split cache's; the first split of all not timed)"))
    with PrivateDockerd(log_file=tmp / "private-dockerd.log") as engine:
        t = time.monotonic()
        engine.load_from_host(host, BASE_TAG)
        print(f"worker engine: base image loaded in {time.monotonic() - t:.1f} s")
        worker_engine = engine.client(timeout=600)
        root = tmp / "graph"
        layout = start_graph(root, engine.host, free_base_port(2))
        try:
            # The graph holds the canonical base already (an earlier job brought it), as
            # in steady state: its layer blobs go to the submitter's node before timing.
            t = time.monotonic()
            api = ApiClient(layout.nodes[SUBMIT_NODE].api_url, timeout=600)
            for part in published.parts:
                if part.what.startswith("layer") and part.size > own_bytes:
                    api.upload_blob(part.path)
            seed_s = time.monotonic() - t
            print(f"the graph's node1 holds the base's layers ({seed_s:.1f} s to upload)")
            results: dict[str, dict[str, Any]] = {}
            forms: list[tuple[str, tuple[str, ...]]] = [("layers", ())]
            if whole_image:
                forms.append(("whole", ("--whole-image",)))
            for form, extra in forms:
                if form == "whole":
                    worker_engine.images.remove(image_id, force=True)
                before = fetched_bytes(layout)
                wall = time.time()
                posted = submit(layout, job_dir, *extra, env={"LC_IMAGE_CACHE": str(cache)})
                job_id = posted.info["job_id"]
                started = wait_training(worker_engine, job_id, 600)
                seconds = started - posted.started
                data = sum(int(d["size"]) for d in posted.info["data"].values())
                public = (posted.info.get("holdout") or {}).get("published") or {}
                data += int(public.get("size", 0))  # train/v3: the public part is data too
                moved = fetched_bytes(layout) - before - data
                log = node_log(layout)
                ready = logged_at(log, f"job {job_id[:12]}: image ", " loaded") - wall
                waited = f"job {job_id[:12]}: image not available: the public part" in log
                results[form] = {"seconds": seconds, "moved": moved, "submit_s": posted.submit_s,
                                 "uploaded": posted.info["image_uploaded_bytes"],
                                 "ready": ready, "waited": waited}
                print(f"{form}: training started {seconds:.1f} s after job submit "
                      f"(submit itself {posted.submit_s:.1f} s, uploaded "
                      f"{posted.info['image_uploaded_bytes']} image bytes); {moved} image bytes "
                      f"reached the worker's node; the image was loaded {ready:.1f} s after "
                      f"job submit" + ("; the worker waited for the train/v3 public part"
                                       if waited else ""))
                if form != forms[-1][0] or not quick:
                    # the next run starts from an idle worker; after the last one, in quick
                    # mode, the private engine is removed with whatever it still runs
                    wait_idle(worker_engine, job_id, 600)
        finally:
            down(root)
            with contextlib.suppress(docker.errors.DockerException):
                host.images.remove(image_id, force=True)  # the variant this bench built
    lay = results["layers"]
    whole = results.get("whole", dict.fromkeys(lay))

    def num(value: Any) -> float | None:
        return None if value is None else round(float(value), 2)

    return {
        "bytes_moved": lay["moved"],
        "seconds_to_training": round(float(lay["seconds"]), 2),
        "seconds_to_image_loaded": round(float(lay["ready"]), 2),
        "waited_for_public_part": lay["waited"],
        "seconds_to_image_loaded_whole_image": num(whole["ready"]),
        "bytes_moved_whole_image": whole["moved"],
        "seconds_to_training_whole_image": num(whole["seconds"]),
        "job_own_layer_bytes": own_bytes,
        "bytes_moved_per_own_layer_byte": round(lay["moved"] / own_bytes, 3),
        "manifest_version": published.manifest.version,
        "config_bytes": published.manifest.config_size,
        "manifest_bytes": published.manifest_file.size,
        "v1_manifest_and_config_bytes": v1_bytes,
        "own_layers_deflated_bytes": deflated,
        "image_total_bytes": published.manifest.total_size,
        "bytes_uploaded": lay["uploaded"],
        "bytes_uploaded_whole_image": whole["uploaded"],
        "seconds_submit": round(float(lay["submit_s"]), 2),
        "seconds_submit_whole_image": num(whole["submit_s"]),
        "seconds_split_once": num(split_s),
        "seconds_split_new_image": round(split_new_s, 2),
        "seconds_seed_base_upload": round(seed_s, 2),
        "seconds_build": num(build_s),
    }


def logged_at(log: str, prefix: str, suffix: str) -> float:
    """Wall-clock time (epoch seconds) of the first node log line holding ``prefix`` and
    ending in ``suffix`` (the node logs local time with milliseconds)."""
    for line in log.splitlines():
        if prefix in line and line.rstrip().endswith(suffix):
            stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
            return stamp.timestamp()
    raise RuntimeError(f"no log line with {prefix!r} ... {suffix!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-whole-image", dest="whole_image", action="store_false",
                        help="skip the whole-image run (its figures: null)")
    parser.add_argument("--no-split-once", dest="split_once", action="store_false",
                        help="do not time the first split of all (its figure: null): the "
                             "base's layers come from this machine's split cache when it "
                             "holds them all")
    args = parse_args(parser, QUICK)
    tmp = Path(tempfile.mkdtemp(prefix="lc-jobstart-"))
    try:
        result = run(tmp, args.whole_image, args.split_once, args.quick)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    emit(result, JSON_KEYS)


if __name__ == "__main__":
    main()
