"""The API's JSON forms of private mode's transactions [API-FED.4] [TX-FED.8-10]."""

from __future__ import annotations

from chain.federated.open.records import FedPhase
from client.api.federated.routes import participants_of
from client.api.json_forms import body_json
from client.api.openapi import openapi_document
from tests.client.api.test_api_support import check_schema
from tests.federated.fed_private_story import OWNERS, PrivateStory, private_job_spec
from tests.federated.private.test_federated_ledger_private import private_story


def test_private_bodies_json_in_their_schema() -> None:
    """[API-FED.4] [TX-FED.8] [TX-FED.9] [TX-FED.10] Every fed_keys, fed_shares and
    fed_unmask of the private story renders with its fields and fits its TxBody schema;
    a private round's participants are listed in its shares and unmask phases too."""
    s = private_story()
    doc = openapi_document()
    seen = set()
    for block in s.chain.blocks:
        for tx in block.txs:
            if tx.body.TAG in ("fed_keys", "fed_shares", "fed_unmask"):
                out = body_json(tx.body)
                assert set(out) > {"type", "job_id", "round"}
                check_schema(out, doc["components"]["schemas"]["TxBody"], doc)
                seen.add(tx.body.TAG)
    assert seen == {"fed_keys", "fed_shares", "fed_unmask"}
    mid = PrivateStory()
    mid.post(private_job_spec())
    mid.publish()
    mid.commit_keys()
    assert mid.fed.phase == FedPhase.SHARES
    assert participants_of(mid.fed, []) == sorted(bytes(mid.chain.addr(n)) for n in OWNERS)
