"""Offences are distinct and cost wire.md's points [WIRE-SCORE.2] (pure, no sockets)."""

from __future__ import annotations

from p2p.scoring import PENALTIES, Offence, PeerScore


def test_wire_score_2_every_offence_is_its_own_member_with_its_points() -> None:
    """Offences of equal cost were once aliases, so an unsolicited response was logged and
    counted as a duplicate; each is now its own member, named as it is charged."""
    assert len({o.name for o in Offence}) == len(Offence) == 9
    assert Offence.UNSOLICITED is not Offence.DUPLICATE_FROM_SAME_PEER
    assert Offence.BAD_RESPONSE is not Offence.REJECTED_MESSAGE
    assert Offence.PROTOCOL is not Offence.MALFORMED_FRAME
    assert set(PENALTIES) == set(Offence)
    assert {o.name: o.penalty for o in Offence} == {
        "MALFORMED_FRAME": 25, "OVERSIZED_FRAME": 100, "REJECTED_MESSAGE": 20,
        "DUPLICATE_FROM_SAME_PEER": 5, "FLOOD": 2, "BAD_RESPONSE": 20, "UNSOLICITED": 5,
        "PROTOCOL": 25, "BAD_RECORD": 50}
    score = PeerScore()
    assert score.charge(Offence.UNSOLICITED, now=0.0, decay_per_second=1.0) == -5
