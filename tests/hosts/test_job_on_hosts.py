"""The template job on 4 hosts across a lossy WAN (issue 31, the main scenario as it fits).

4 validators on 4 hosts, 50-150 ms round trips with 10 ms jitter and 1 % loss. node0 (v0,
on the machine's engine, which built the image) only verifies. w1, w2 and w3 each run a
Docker engine of their own holding only the canonical base image: w1's clock is 4 s
ahead, w2 sits behind a NAT router and is the one that trains; w1 and w3 verify. The job's
image travels by layer to every worker's own engine (each needs it: to train, or to
re-evaluate the model it votes on) [JOB-IMAGE.3] [JOB-IMAGE.8].

The NATted worker [WIRE-PEX.4]: nobody can dial it, every one of its peers is a connection
it opened, and no node hands its endpoint on in peer exchange (asked over the wire with
``getpeers``), yet it fetches the image, trains, claims, reveals (its model blob is
fetched from it by ``getchunk`` over its own outbound connections), is voted valid and is
paid. Every host settles the job identically; credits add up.

On the wire (issue 31 §6): the switch records every connection from its first byte while
the job is posted, trained, revealed and voted on; none of the recordings holds a slice
of the winning model's bytes or of the job's training data, though both crossed the
switch (the model from the NATted worker to every voter, the data to every worker): the
p2p channel is encrypted between machines [WIRE-SECURE.1].

Cut from the issue's "4 validators and 3 workers on 7 hosts":

- the workers are validators here (separate worker machines join as members first,
  tests/hosts/test_newcomer_joins.py); 4 hosts, 3 private engines;
- one worker trains while two verify, so which claim wins is the same for every seed;
- the template is made train/v2 (``make_v2``: a public validation set, no hidden part).
  With train/v3 (first run, seed 4193914001) the +4 s host's evaluation of the model on
  the hidden part failed in its run stage (``container_failed ... run: OSError: [Errno
  22] Invalid argument``; its public evaluation of the same model passed), the three
  other voters measured the same hidden loss (2.13767), and the job settled ``broken``
  ("voters measured the same model differently"). The cause: libfaketime made every
  ``time.sleep`` of that host raise (the runner sleeps before a variant run and while it
  polls a run); ``tests/hosts/clock_site`` now works around it (test_clock_offset.py), and
  tests/hosts/test_seven_hosts.py runs train/v3 with a +4 s verifier: it measures the same
  public and hidden losses as the others.

Job windows follow the machine's speed (``tests.framework.job_windows``).
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import pytest

from chain.crypto import address_from_text
from sandbox.base_image import BASE_TAG, ensure_base_image
from sandbox.engine import connect
from tests.client.test_two_engines_graph import LAYER_LINE
from tests.framework.job_windows import measure_attempt, windows
from tests.framework.seed import rng
from tests.hosts.graph import HostGraph, HostNode
from tests.hosts.probes import assert_not_in_capture, dial_works
from tests.hosts.template_job import (
    BOUNTY,
    CONSENSUS,
    TRAINER,
    USERS,
    WORKER_SETTINGS,
    add_job_hosts,
    post_and_settle,
    template_job,
)
from tests.hosts.testbed import REPO_ROOT, Host, TestBed

pytestmark = [pytest.mark.docker, pytest.mark.serial]
log = logging.getLogger(__name__)


def test_the_template_job_is_trained_behind_nat_verified_and_paid_on_every_host(
        lc_seed: int, tmp_path: Path) -> None:
    log.info("seed %d", lc_seed)
    started = time.monotonic()
    machine = connect()
    ensure_base_image(machine, log=lambda _m: None)
    base_id = str(machine.images.get(BASE_TAG).id)
    with TestBed(seed=lc_seed) as bed:
        hosts = add_job_hosts(bed, machine, rng("links"))
        engines = [h.engine for h in hosts[1:] if h.engine is not None]
        image_id = template_job(tmp_path / "digits")  # made v2: see the module's docstring
        for engine in engines:
            assert _image_ids(engine.client()) == {base_id}, engine.name

        graph = HostGraph.create(bed, tmp_path / "net", hosts, workers=4, users=USERS,
                                 consensus=CONSENSUS, worker_settings=WORKER_SETTINGS)
        capture = tmp_path / "capture"
        bed.capture(capture)  # every connection from its first byte
        graph.start_all(timeout=120)
        log.info("4 hosts at height 1 after %.0f s", time.monotonic() - started)
        try:
            job_id, job = _post_and_settle(graph, tmp_path / "digits", image_id)
            bed.capture(None)
            _check_settled(graph, job_id, job, image_id)
            _check_nat_worker(bed, graph, hosts[TRAINER], job_id)
            _check_capture(capture, graph, job, tmp_path)
        except BaseException:
            for node in graph.nodes:
                print(f"--- {node.name} on {node.host.name} ---\n{node.log_tail(80)}")
            raise
        for node, engine in zip(graph.nodes[1:], engines, strict=True):
            loaded = engine.client().images.get(image_id)  # loaded with its id unchanged
            text = _log(node)
            match = LAYER_LINE.search(text)
            assert match is not None, (node.name, text[-3000:])
            assert f"image {image_id[:19]} loaded" in text, node.name
            log.info("%s: %s; image %s in its own engine", node.name, match.group(0),
                     loaded.id[:19])
        assert set(graph.stop_all().values()) == {0}
    machine.close()
    log.info("whole scenario %.0f s", time.monotonic() - started)


def _post_and_settle(graph: HostGraph, job_dir: Path, image_id: str) -> tuple[str, Any]:
    job_windows = windows(measure_attempt(job_dir))  # this machine, now, the graph running
    log.info("job windows: %s", job_windows)
    job_id, job, _seconds = post_and_settle(graph.nodes[0].api, graph.users["submitter"],
                                            graph.layout, job_dir, image_id, job_windows)
    return job_id, job


def _check_settled(graph: HostGraph, job_id: str, job: Any, image_id: str) -> None:
    trainer = graph.nodes[TRAINER].layout.address
    assert [c["claimer"] for c in job["claims"]] == [trainer], job["claims"]
    assert job["winner"] == trainer and job["paid"] == BOUNTY and job["escrow"] == 0, job
    outcomes = {v["claimer"]: v["outcome"] for v in job["verdicts"]}
    assert outcomes == {trainer: "valid"}, job["verdicts"]
    graph.wait_height(max(graph.heights().values()) + 1, timeout=60)
    for node in graph.nodes:  # every host settles the job identically
        other = node.api.job(job_id)
        assert (other["status"], other["winner"], other["paid"], other["verdicts"],
                other["claims"]) == (job["status"], job["winner"], job["paid"],
                                     job["verdicts"], job["claims"]), node.name
    height, root = graph.same_state()
    log.info("paid to %s (behind NAT); height %d, state root %s on all 4 hosts",
             graph.nodes[TRAINER].name, height, root[:16])


def _check_nat_worker(bed: TestBed, graph: HostGraph, natted: Host, job_id: str) -> None:
    """[WIRE-PEX.4] on the NATted worker: unreachable, never handed on, yet it served."""
    node = graph.nodes[TRAINER]
    port = node.layout.p2p_port
    observer = bed.hosts[0]
    assert not dial_works(observer, (natted.public_address, port))
    assert not dial_works(observer, (natted.address, port))
    peers = node.api.peers()
    assert len(peers) == 3 and all(p["outbound"] for p in peers), peers  # it dialled all
    for other in graph.nodes:
        seen = [p for p in other.api.peers() if p["address"] == node.layout.address]
        assert all(not p["outbound"] for p in seen), (other.name, seen)  # nobody dialled it
    others = [n for n in graph.nodes if n is not node]
    answers = _ask_peers(graph, observer, others)
    hidden = address_from_text(node.layout.address).hex()
    for endpoint, entries in answers.items():
        log.info("%s hands on %s", endpoint, [f"{h}:{p}" for _a, h, p in entries])
        assert entries, f"{endpoint} handed on no peer at all"
        assert all(a != hidden and h != natted.public_address for a, h, _p in entries), (
            endpoint, entries)
    text = _log(node)
    assert "image by layer" in text and "loaded" in text, text[-3000:]
    # every voter measured its model: a blob only it held after its reveal, so the first
    # copy crossed one of the connections the NATted worker opened (getchunk)
    for voter in others:
        measured = re.search(rf"job {job_id[:12]}\S*: (measured|hidden) loss .*", _log(voter))
        assert measured is not None, (voter.name, voter.log_tail(40))
        log.info("%s: %s", voter.name, measured.group(0))


def _check_capture(capture: Path, graph: HostGraph, job: Any, tmp_path: Path) -> None:
    """[WIRE-SECURE.1] Neither the model nor the training data crossed the switch in clear.
    Probes: 48-byte slices at a quarter, half and three quarters of each file."""
    model = tmp_path / "model.bin"
    graph.nodes[0].api.download_blob(job["winner_model_hash"], model)
    secrets = {"model": model.read_bytes()}
    for role, ref in job["spec"]["data"].items():
        data = tmp_path / f"data-{role}.bin"
        graph.nodes[0].api.download_blob(ref["blob"], data)
        secrets[f"data {role}"] = data.read_bytes()
    assert_not_in_capture(capture, secrets)


def _ask_peers(graph: HostGraph, observer: Host, nodes: list[HostNode]
               ) -> dict[str, list[list[Any]]]:
    """Each node's ``peers`` answer to a ``getpeers`` from the submitter's member key."""
    user = graph.users["submitter"]
    endpoints = [f"{n.host.public_address}:{n.layout.p2p_port}" for n in nodes]
    args = [str(user.key_file), str(user.passphrase_file), graph.layout.chain_id, *endpoints]
    out = observer.python(
        f"import sys, asyncio; sys.path.insert(0, {str(REPO_ROOT)!r}); "
        f"from tests.hosts.pex import main; asyncio.run(main({args!r}))")
    answers: dict[str, list[list[Any]]] = json.loads(out.strip().splitlines()[-1])
    return answers


def _image_ids(client: Any) -> set[str]:
    return {str(image.id) for image in client.images.list(all=True)}


def _log(node: HostNode) -> str:
    return (node.layout.directory / "node.log").read_text(errors="replace")
