"""[WORK-FED.2] A data owner's and a member's round files on a full disk: nothing is sent
that could not be kept, nothing is trained twice, and the round goes on once there is room.

Each case mounts a tmpfs of its own under ``tmp_path`` and fills it (tests/framework/
disk_fill.py); the chain is the ledger harness's (tests/federated/fed_ledger_story.py), the
node of the blob store case a ``SoloNode`` with a real blob store. Before: a participant
whose update could not be stored lost it (the store's ``put`` raised out of the step), trained
the round again at every step until its bound of runs gave the round up, and left a partial
temporary file; its reveal wrote a second copy of the update, so a disk that filled up after
the commitment burnt the reveal deposit; every model a node posted or voted left a copy in
the job's folder for good. Needs root (the mounts), as CI runs.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from chain.content import blob_id_of_bytes
from chain.federated.open.reads import fed_rounds
from chain.federated.open.records import FedPhase
from chain.transactions import SignedTransaction
from client.federated.member.duties import Member, VoteStore
from client.federated.participant.node_loop import NodePorts
from client.federated.participant.rounds import Participant, RoundStore
from tests.federated.fed_ledger_story import INITIAL, PARTICIPANTS, FedStory
from tests.federated.test_federated_join import HarnessPorts, _trainer
from tests.federated.test_federated_member import FixedEvaluator, Network
from tests.framework.disk_fill import fill, tmpfs
from tests.framework.solo import SoloNode
from tests.ledger.harness import make_genesis

if os.geteuid() != 0:
    if os.environ.get("CI"):
        raise RuntimeError("tests/federated/test_federated_disk_full.py needs root in CI")
    pytestmark = pytest.mark.skip(reason="mounting a tmpfs needs root")

TMPFS = "2m"
ROOM = 16 * 1024
"""What the blob store case leaves free: room for a manifest, not for a copy."""


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs of this test's own, unmounted (with whatever is on it) at the end."""
    with tmpfs(tmp_path / "small", TMPFS) as folder:
        yield folder


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


def test_work_fed_2_a_participant_keeps_its_update_until_the_disk_has_room(
        tmp_path: Path, small_disk: Path) -> None:
    """alice's round folder is on a full disk when her update is trained: she sends no
    commitment, keeps the update (trained once, however many steps), leaves no partial
    file, and says why once; freed, she commits it. Her reveal on a disk full again
    needs no room, and the round is accepted with her weight."""
    story = FedStory()
    story.post()
    story.publish()
    blobs = {blob_id_of_bytes(INITIAL.to_bytes()): INITIAL.to_bytes()}
    mempool: list[SignedTransaction] = []
    ports = {n: HarnessPorts(story, n, blobs, mempool) for n in PARTICIPANTS}
    calls: dict[str, list[int]] = {n: [] for n in PARTICIPANTS}
    said: list[str] = []
    folders = {n: (small_disk / n if n == "alice" else tmp_path / n) for n in PARTICIPANTS}
    loops = {n: Participant(story.job_id, story.chain.addr(n), ports[n],
                            _trainer(story, n, calls[n]), RoundStore(folders[n]),
                            log=said.append if n == "alice" else lambda _m: None)
             for n in PARTICIPANTS}
    filler = fill(small_disk)
    assert [loops["alice"].step() for _ in range(3)] == ["cannot_store"] * 3
    assert calls["alice"] == [1] and ports["alice"].sent == []
    assert _files(folders["alice"]) == [], "a partial round file was left behind"
    told = [m for m in said if "nothing sent" in m]
    assert len(told) == 1 and told[0].startswith("cannot keep round 1's update: "), said
    assert "No space left on device" in str(loops["alice"].disk_problem)
    assert {n: loops[n].step() for n in ("bob", "carol")} == dict.fromkeys(("bob", "carol"),
                                                                          "committed")
    filler.unlink()
    assert loops["alice"].step() == "committed"
    assert calls["alice"] == [1] and ports["alice"].sent == ["commit"]
    assert _files(folders["alice"]) == ["round-1.blob", "round-1.json"]
    story.chain.block(*mempool)
    mempool.clear()
    story.until_deadline()
    assert story.fed.phase == FedPhase.REVEAL
    filler = fill(small_disk)
    assert {n: p.step() for n, p in loops.items()} == dict.fromkeys(PARTICIPANTS, "revealed")
    assert loops["alice"].disk_problem is None
    story.chain.block(*mempool)
    mempool.clear()
    story.until_deadline()
    blob, _ = story.honest()
    blobs[blob_id_of_bytes(blob)] = blob
    story.accept_round(700_001)
    rounds = fed_rounds(story.chain.state, story.job_id)
    assert rounds[0].outcome == "accepted"
    assert dict(rounds[0].weights)[story.chain.addr("alice")] > 0
    filler.unlink()


def test_work_fed_2_a_node_reveals_by_link_and_keeps_no_copies(small_disk: Path) -> None:
    """On a node whose data folder has 16 KiB left, a kept 64 KiB round file still goes
    into the blob store (a hard link and a manifest of a few hundred bytes: before, the
    reveal wrote a copy of the update first, which did not fit); a blob from memory is
    refused with the disk's own error and leaves no temporary file, and once there is
    room it is stored and its temporary copy removed."""
    genesis, keys = make_genesis()
    node = SoloNode(genesis, keys["alice"], small_disk / "node")
    folder = small_disk / "node" / "federated" / "job"
    folder.mkdir(parents=True)
    ports = NodePorts(node, b"\x01" * 32, folder)
    store = RoundStore(folder)
    update = os.urandom(64 * 1024)
    kept = store.blob_path(1)
    kept.write_bytes(update)
    filler = fill(small_disk)
    os.truncate(filler, filler.stat().st_size - ROOM)
    with pytest.raises(OSError):  # what the reveal used to write first
        (folder / "copy").write_bytes(update)
    (folder / "copy").unlink()
    blob = ports.put_blob(update, kept)
    assert blob == blob_id_of_bytes(update) and node.blob_path(blob) is not None
    model = os.urandom(256 * 1024)
    with pytest.raises(OSError) as e:
        ports.put_blob(model)
    assert e.value.errno == errno.ENOSPC
    assert _files(folder) == ["round-1.blob"]
    filler.unlink()
    stored = ports.put_blob(model)
    assert node.blob_path(stored) is not None and node.blob_path(stored).read_bytes() == model
    assert _files(folder) == ["round-1.blob"], "the temporary copy was not removed"


def test_work_fed_2_a_member_on_a_full_disk_votes_once_there_is_room(
        tmp_path: Path, small_disk: Path) -> None:
    """A member whose vote folder is full sends no vote commitment (``disk_full``, said
    once), leaves no partial vote file, and commits the same round's vote once freed;
    the round is accepted."""
    net = Network(tmp_path)
    story = net.story
    net.participants_round()
    assert story.fed.phase == FedPhase.AGGREGATE
    aggregator = story.name(story.fed.aggregator)
    voter = next(n for n in sorted(net.members) if n != aggregator)
    said: list[str] = []
    net.members[voter] = Member(story.chain.addr(voter), net.ports[voter], FixedEvaluator(),
                                VoteStore(small_disk / voter), log=said.append)
    filler = fill(small_disk)
    steps = net.run(lambda: "aggregate" in net.sent(aggregator) and
                    net.members[voter].disk_problem is not None, blocks=10)
    for _ in range(3):
        assert net.members[voter].step(story.job_id) == "disk_full"
    assert "vote_commit" not in net.sent(voter), steps
    assert _files(small_disk / voter) == [], "a partial vote file was left behind"
    assert len([m for m in said if "nothing sent" in m]) == 1, said
    filler.unlink()
    net.run(lambda: len(fed_rounds(story.chain.state, story.job_id)) >= 1)
    assert "vote_commit" in net.sent(voter) and "vote_reveal" in net.sent(voter)
    assert fed_rounds(story.chain.state, story.job_id)[0].outcome == "accepted"
    assert net.members[voter].disk_problem is None
