"""Credit totals without replay [API-SUPPLY.1], [BANK.1], through real burns.

A cheating winner is banned and slashed (its balance burned) on a ledger driven
block by block; at every height the totals the API serves add up and equal
sums the test makes itself over the committed state.
"""

from __future__ import annotations

from typing import Any

from chain.records import JobStatus
from chain.train.bodies import PostJob
from client.api.openapi import openapi_document
from client.api.state_routes import supply_json
from tests.client.api.test_api_support import check_schema
from tests.ledger.harness import GENESIS_TIME, Chain, job_spec

DOC = openapi_document()


def own_sums(chain: Chain) -> dict[str, int]:
    t = chain.state.tables
    return {"balances": sum(a.balance for a in t["account"].values()),
            "escrowed": sum(j.escrow for j in t["job"].values()),
            "bonded": sum(t["verifier"].values())}


def checked(chain: Chain) -> dict[str, Any]:
    totals = supply_json(chain.state)
    check_schema(totals, {"$ref": "#/components/schemas/Supply"}, DOC)
    assert {k: totals[k] for k in ("balances", "escrowed", "bonded")} == own_sums(chain)
    assert totals["balances"] + totals["escrowed"] + totals["bonded"] + totals["burned"] \
        == totals["supply"]
    assert totals["conserved"] and totals["height"] == chain.state.height
    return totals


def test_api_supply_1_totals_add_up_through_a_ban_and_its_burn() -> None:
    chain = Chain()
    genesis = checked(chain)
    assert genesis["burned"] == 0 and genesis["escrowed"] == 0
    post = chain.tx("submitter", PostJob(job_spec(100, voter_reward=6, max_turns=3)))
    chain.block(post)
    job_id = post.hash
    assert checked(chain)["escrowed"] == 100 + 6 * 3
    chain.block(chain.claim("alice", job_id, 0.1), chain.claim("bob", job_id, 0.3))
    chain.block(at=GENESIS_TIME + 10_000)
    checked(chain)
    alice_before = chain.balance("alice")
    assert alice_before > 0
    chain.block(chain.reveal("alice", job_id))
    chain.vote_round(job_id, "alice", {"bob": (False, 0.9), "carol": (False, 0.9),
                                       "dave": (False, 0.9), "erin": (False, 0.9)})
    after_ban = checked(chain)
    assert chain.state.account(chain.addr("alice")).banned
    assert after_ban["burned"] >= alice_before, "the cheater's balance is burned"
    assert after_ban["supply"] == genesis["supply"]
    chain.block(chain.reveal("bob", job_id))
    chain.vote_round(job_id, "bob", {"carol": (True, 0.3), "dave": (True, 0.3),
                                     "erin": (True, 0.3)})
    assert chain.job(job_id).status == JobStatus.PAID
    settled = checked(chain)
    assert settled["escrowed"] == 0 and settled["jobs_holding_escrow"] == 0


def test_api_supply_1_a_broken_invariant_is_reported_not_hidden() -> None:
    """``conserved`` is computed, not assumed: a state that lost a credit says false."""
    chain = Chain()
    t = chain.state.tables
    address, account = next(iter(t["account"].items()))
    t["account"][address] = type(account)(account.balance - 1, account.nonce, account.banned)
    assert supply_json(chain.state)["conserved"] is False
