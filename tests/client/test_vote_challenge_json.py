"""The API shows a vote's challenge answer [VOTE-CHALLENGE.1]: in the job's votes and in a
``vote_reveal`` transaction body, matching the OpenAPI document [API-DOC.1]."""

from __future__ import annotations

from chain.crypto import PrivateKey
from chain.records import VoteRecord
from chain.train.bodies import VoteReveal
from chain.train.holdout.bodies import HoldoutVoteReveal
from chain.transactions import sign_transaction
from chain.types import Hash32
from client.api.json_forms import body_json, tx_json, vote_json
from client.api.openapi import openapi_document
from tests.client.api.test_api_support import check_schema

DOC = openapi_document()
VOTER = PrivateKey.from_seed(b"voter").address
CLAIMER = PrivateKey.from_seed(b"claimer").address


def test_an_opened_vote_shows_its_challenge_answer() -> None:
    opened = VoteRecord(VOTER, Hash32(b"\x01" * 32), True, True, 0.31, challenge_loss=0.29)
    shown = vote_json(opened)
    assert shown["challenge_loss"] == 0.29 and shown["measured_loss"] == 0.31
    check_schema(shown, {"$ref": "#/components/schemas/Vote"}, DOC)


def test_an_unopened_vote_or_one_without_an_answer_shows_null() -> None:
    hidden = VoteRecord(VOTER, Hash32(b"\x01" * 32), challenge_loss=0.29)
    assert vote_json(hidden)["challenge_loss"] is None  # not opened: nothing shown
    old_form = VoteRecord(VOTER, Hash32(b"\x01" * 32), True, True, 0.31)
    assert vote_json(old_form)["challenge_loss"] is None
    for record in (hidden, old_form):
        check_schema(vote_json(record), {"$ref": "#/components/schemas/Vote"}, DOC)


def test_a_vote_reveal_body_carries_its_challenge_answer() -> None:
    for answer in (0.27, None):
        body = VoteReveal(Hash32(b"\x02" * 32), CLAIMER, True, 0.3, b"\x03" * 32, answer)
        assert body_json(body)["challenge_loss"] == answer
        tx = sign_transaction(PrivateKey.from_seed(b"voter"), "c", 0, body)
        check_schema(tx_json(tx), {"$ref": "#/components/schemas/Transaction"}, DOC)


def test_a_holdout_vote_shows_both_answers() -> None:
    """[HOLDOUT-CHALLENGE.1] An opened holdout vote and a ``holdout_vote_reveal`` body show
    the answers on the hidden and the public part (null when absent)."""
    opened = VoteRecord(VOTER, Hash32(b"\x01" * 32), True, True, 0.31, True, 0.35, 0.33, 0.29)
    shown = vote_json(opened)
    assert (shown["hidden_challenge_loss"], shown["challenge_loss"]) == (0.33, 0.29)
    check_schema(shown, {"$ref": "#/components/schemas/Vote"}, DOC)
    for hidden, public in ((0.33, 0.29), (0.33, None), (None, None)):
        body = HoldoutVoteReveal(Hash32(b"\x02" * 32), CLAIMER, True, 0.3, True, 0.35,
                                 b"\x03" * 32, hidden, public)
        assert (body_json(body)["hidden_challenge_loss"], body_json(body)["challenge_loss"]) \
            == (hidden, public)
        tx = sign_transaction(PrivateKey.from_seed(b"voter"), "c", 0, body)
        check_schema(tx_json(tx), {"$ref": "#/components/schemas/Transaction"}, DOC)
