"""The federated routes on a real solo node over 127.0.0.1 [API-FED.1-4]: a federated/v1
job driven through real transactions (tests/client/test_fed_api_support.py) — commits,
reveals, two accepted aggregates, the end ballot, the payout — each answer checked against
the OpenAPI document and against what the story sent and the ledger credited."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from chain.crypto import address_to_text
from tests.client.api.test_api_routes import call
from tests.client.api.test_api_support import running_api
from tests.client.test_fed_api_support import ACCURACY, PARTICIPANTS, FedDriver

ROUTE = "/federated/{job_id}"


async def test_federated_job_through_its_rounds_and_payout(tmp_path: Path) -> None:
    """[API-FED.1] the list: owner, status, rule, rounds done of total, participants;
    [API-FED.2] every round: phase, participants with commitments then reveals, the
    aggregator, model hash, trust weights, agreed accuracy, verdict; [API-FED.3] the end
    ballot's participants and the payout per participant (with the refund, the bounty);
    [API-FED.4] every federated body's fields in /txs, in its TxBody schema."""
    async with running_api(tmp_path) as api, aiohttp.ClientSession() as s:
        node, keys = api.node, api.keys
        text = {n: address_to_text(k.address) for n, k in keys.items()}
        assert (await call(s, api, "GET", "/federated"))["jobs"] == []
        d = FedDriver(node, keys)
        await d.post()
        job = d.run.job_id.hex()
        await d.commit()
        rec = await call(s, api, "GET", f"/federated/{job}", ROUTE)
        assert rec["status"] == "federated" and rec["phase"] == "commit"
        assert rec["owner"] == text["submitter"] and rec["spec"]["rule"] == "trimmed_mean"
        (running,) = rec["rounds"]
        assert running["round"] == 1 and running["verdict"] is None
        by = {p["address"]: p for p in running["participants"]}
        for n in PARTICIPANTS:
            assert by[text[n]]["commitment"] == d.run.commitments[(1, n)].hex()
            assert by[text[n]]["revealed"] is False and by[text[n]]["weight"] is None
        await d.reveal()
        rec = await call(s, api, "GET", f"/federated/{job}", ROUTE)
        running = rec["rounds"][0]
        assert rec["phase"] == "aggregate" and running["aggregator"] is not None
        assert all(p["revealed"] and p["blob"] for p in running["participants"])
        await d.aggregate_and_vote()
        before = {n: node.state.account(keys[n].address).balance for n in keys}
        await d.commit()
        await d.reveal()
        await d.aggregate_and_vote()
        summary = (await call(s, api, "GET", "/federated"))["jobs"]
        assert [(j["job_id"], j["rounds_done"], j["rounds_total"], j["participants"],
                 j["phase"]) for j in summary] == [(job, 2, 2, 3, "hidden")]
        await d.end()

        rec = await call(s, api, "GET", f"/federated/{job}", ROUTE)
        assert rec["status"] == "paid" and rec["phase"] == "done" and rec["deadline_ms"] is None
        assert [r["round"] for r in rec["rounds"]] == [1, 2]
        for r in rec["rounds"]:
            n = r["round"]
            assert r["verdict"] == "accepted" and r["accuracy_ppm"] == ACCURACY[n]
            assert r["aggregator"] == address_to_text(d.run.aggregators[n])
            assert r["model_hash"] == d.run.model_hashes[n].hex()
            want = {address_to_text(a): w for a, w in d.run.weights[n].items()}
            assert {w["address"]: w["weight"] for w in r["weights"]} == want
            assert {p["address"]: (p["weight"], p["commitment"]) for p in r["participants"]} \
                == {text[p]: (want[text[p]], d.run.commitments[(n, p)].hex())
                    for p in PARTICIPANTS}
        assert rec["accuracy_ppm"] == ACCURACY[2]
        assert rec["end"]["participants"] == sorted(text[n] for n in PARTICIPANTS)
        assert rec["end"]["deposit"] == "returned"
        paid = {p["address"]: p["amount"] for p in rec["payout"]["paid"]}
        assert set(paid) == {text[n] for n in PARTICIPANTS} and min(paid.values()) > 0
        assert sum(paid.values()) + rec["payout"]["refund"] == rec["bounty"] == 300
        after = {n: node.state.account(keys[n].address).balance for n in keys}
        for n in PARTICIPANTS:  # + their voter rewards (they are verifiers)
            gained = after[n] - before[n]
            assert gained >= paid[text[n]] > 0, (n, gained, paid)
        listed = (await call(s, api, "GET", "/federated"))["jobs"][0]
        assert (listed["status"], listed["rounds_done"]) == ("paid", 2)

        # [API-FED.4] each federated body in its documented shape in /txs
        shown = {}
        for h in d.run.txs.values():
            tx = await call(s, api, "GET", f"/txs/{h.hex()}", "/txs/{hash}")
            shown[tx["tx"]["type"]] = tx["tx"]["body"]
        assert set(shown) == {"fed_part", "fed_commit", "fed_reveal", "fed_aggregate",
                              "fed_vote_commit", "fed_vote_reveal"}
        assert shown["fed_aggregate"]["weights"] == rec["rounds"][0]["weights"]
        assert shown["fed_commit"]["commitment"] in {
            c.hex() for (r, _n), c in d.run.commitments.items() if r == 1}
        assert shown["fed_vote_reveal"]["accuracy_ppm"] == ACCURACY[1]
        assert shown["fed_part"]["which"] == "public"
        await call(s, api, "GET", f"/federated/{'00' * 32}", ROUTE, expect=404)
        await call(s, api, "GET", "/federated/zz", ROUTE, expect=400)


async def test_a_void_round_and_a_job_that_pays_nobody(tmp_path: Path) -> None:
    """[API-FED.2] a round with fewer revealed participants than ``min_participants`` is
    shown void [FED-ROUND.2]: no aggregator, no weights, no accuracy, its one participant
    weight 0; [API-FED.3] with nobody weighted there is no end ballot [FED-END.1]: the
    payout pays nobody and refunds the bounty, the deposit returned."""
    async with running_api(tmp_path) as api, aiohttp.ClientSession() as s:
        d = FedDriver(api.node, api.keys)
        await d.post(rounds=1)
        await d.commit(("alice",))
        await d.reveal(("alice",))
        rec = await call(s, api, "GET", f"/federated/{d.run.job_id.hex()}", ROUTE)
        assert (rec["status"], rec["phase"], rec["rounds_done"]) == ("refunded", "done", 1)
        (void,) = rec["rounds"]
        assert (void["verdict"], void["aggregator"], void["weights"], void["accuracy_ppm"],
                void["model_hash"]) == ("void", None, [], None, None)
        assert [(p["address"], p["weight"], p["revealed"]) for p in void["participants"]] == [
            (address_to_text(api.keys["alice"].address), 0, True)]
        assert rec["end"] == {"participants": [], "deposit": "returned", "voters": [],
                              "votes": []}
        assert rec["payout"] == {"paid": [{"address": address_to_text(
            api.keys["alice"].address), "amount": 0, "burned": False}], "refund": 300}
