"""A member fetches a private round's blobs as soon as they are named [FED-PRIV.9]: on a real
graph a participant that drops out after sharing (tests/federated/test_federated_graph_private.py)
is gone when the aggregator is drawn, and its share blob would be on no other node."""

from __future__ import annotations

from pathlib import Path

from chain.federated.open.records import FedPhase
from client.federated.member.duties import Member, VoteStore
from tests.federated.fed_private_story import OWNERS, PrivateStory, private_job_spec
from tests.federated.test_federated_member import FixedEvaluator


class RecordingPorts:
    """A member's ports that have no blob yet and record every blob asked for."""

    def __init__(self, story: PrivateStory) -> None:
        self.story = story
        self.asked: list[bytes] = []

    def state(self):  # type: ignore[no-untyped-def]
        return self.story.chain.state

    def now_ms(self) -> int:
        return self.story.chain.now

    def submit(self, body: object, what: str) -> bool:
        raise AssertionError(f"nothing to send before the aggregate window: {what}")

    def read_blob(self, blob_id: bytes) -> bytes | None:
        self.asked.append(bytes(blob_id))
        return None

    def put_blob(self, data: bytes, source: Path | None = None) -> bytes:
        raise AssertionError("nothing to store")


def test_member_fetches_share_blobs_in_the_reveal_window(tmp_path: Path) -> None:
    """[FED-PRIV.9] [FED-PRIV.10] After the share exchange, before any reveal, a member's step
    asks for every share blob of the mask set (and the model): while the sharers are still
    online. Before the share exchange it asks for nothing it could not know."""
    story = PrivateStory()
    story.post(private_job_spec())
    story.publish()
    story.commit_keys()
    ports = RecordingPorts(story)
    member = Member(story.chain.addr(sorted(story.chain.keys)[0]), ports, FixedEvaluator(),
                    VoteStore(tmp_path / "votes"))
    assert story.fed.phase == FedPhase.SHARES
    member.step(story.job_id)
    assert set(ports.asked) == {bytes(story.fed.model_blob)}
    story.post_shares()
    assert story.fed.phase == FedPhase.REVEAL
    ports.asked.clear()
    assert member.step(story.job_id) == "wait"
    shares = {bytes(b) for _, b, _ in story.rec.shares}
    assert len(shares) == len(OWNERS)
    assert set(ports.asked) == shares | {bytes(story.fed.model_blob)}
