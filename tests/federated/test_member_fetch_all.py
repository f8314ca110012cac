"""A member drawn to aggregate, or voting on an aggregate, asks for every update blob it lacks
in one step, so that they are fetched side by side.

Stopping at the first missing blob made a round's blobs arrive one per step; on a graph at
rest a member steps once a second [CONS-PACE.1], 6 owners' updates took about 10 s, the
whole of an attempt's window, and in ``make demo-federated`` (2026-11-29) every first
attempt went unvoted: the drawn cheater was never voted down, the next attempt's aggregator
was accepted. The graph is ``tests/federated/test_federated_graph.py`` (``make
test-slow``).
"""

from __future__ import annotations

from pathlib import Path

from chain.content import blob_id_of_bytes
from chain.federated.open.records import FedPhase
from client.federated.member.duties import Member, VoteStore
from tests.federated.fed_ledger_story import INITIAL, PARTICIPANTS, FedStory
from tests.federated.test_federated_member import FixedEvaluator
from tests.federated.test_member_prefetch import RecordingPorts


class AskingPorts(RecordingPorts):
    """``RecordingPorts`` that hold round 1's model, so only the updates are asked for."""

    def read_blob(self, blob_id: bytes) -> bytes | None:
        if bytes(blob_id) == bytes(self.story.fed.model_blob):
            return INITIAL.to_bytes()
        return super().read_blob(blob_id)


def test_a_drawn_aggregator_asks_for_every_update_in_one_step(tmp_path: Path) -> None:
    story = FedStory()
    story.post()
    story.publish()
    story.commit_and_reveal()
    assert story.fed.phase == FedPhase.AGGREGATE and story.fed.aggregator is not None
    ports = AskingPorts(story)
    member = Member(story.fed.aggregator, ports, FixedEvaluator(),
                    VoteStore(tmp_path / "votes"))
    assert member.step(story.job_id) == "fetching"
    updates = {blob_id_of_bytes(story.update_blob(n, 1)) for n in PARTICIPANTS}
    assert len(updates) == len(PARTICIPANTS) > 1
    assert set(ports.asked) == updates, "one step asks for every update it lacks"
