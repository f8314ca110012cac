"""The federated job owner's CLI on a real node (a solo node and its HTTP API on 127.0.0.1,
timed blocks; the CLI through click, a saved-image tar so no Docker):
``job submit DIR --federated …`` posts a federated/v1 job [FED-SPEC.1] and names the public
part after the split [TX-FED.7]; ``federated show JOB`` prints rounds, participants, trust
weights and rewards [API-FED.2]; ``federated part JOB hidden`` is refused outside its
window with the ledger's code.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chain.content import blob_id_of_bytes
from chain.federated.blobs import ModelBlob, UpdateBlob
from chain.federated.open.reads import update_bodies
from chain.types import Hash32
from client.api.http_client import ApiClient
from client.cli.common import send
from tests.client.api.test_api_support import ApiThread, check_schema, response_schema
from tests.client.cli.test_cli_chain import key_file, run
from tests.client.cli.test_cli_job import saved_image
from tests.client.test_holdout_cli import v3_job_dir
from tests.framework.wait import wait_until

FED_TERMS = ["--federated", "--initial-model", "digits:4", "--rounds", "2",
            "--min-participants", "2", "--max-participants", "3", "--rule", "trimmed_mean",
            "--trim", "0", "--target-accuracy", "0.9", "--round-commit-window", "20s",
            "--round-reveal-window", "10s", "--aggregate-window", "10s",
            "--loo-permille", "400", "--bounty", "60", "--expires-in", "10m"]
"""A federated job's terms, without saying who may send updates [FED-SPEC.4]."""
FED_ARGS = [*FED_TERMS, "--any-member"]


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[ApiThread]:
    with ApiThread(tmp_path, validators=1, block_interval=0.1) as api:
        yield api


def submit(chain: ApiThread, tmp_path: Path, folder: Path, *args: str, code: int = 0
           ) -> Any:
    tar, _ = saved_image(tmp_path)
    owner = key_file(tmp_path, chain.keys["submitter"], "submitter")
    result = run(["job", "submit", str(folder), "--image-tar", str(tar), "--voter-reward",
                  "2", *owner, *args], chain, code=code)
    return json.loads(result.stdout) if code == 0 and "--json" in args else result


def test_submit_federated_posts_the_terms_and_names_the_public_part(
        chain: ApiThread, tmp_path: Path) -> None:
    """[FED-SPEC.1] [TX-FED.1] [TX-FED.7] [API-FED.2] [FED-DEPOSIT.1] ``job submit
    --federated`` posts federated/v1 with every option's term, the initial model blob on
    the node and no data blob uploaded; after the split it names the public part. A member
    commits; ``federated show`` prints the terms and the round with the commitment, its
    JSON is the node's /federated/{id}."""
    folder = v3_job_dir(tmp_path)
    posted = submit(chain, tmp_path, folder, *FED_ARGS, "--json")
    api = ApiClient(chain.url)
    job_id = posted["job_id"]
    fed = api.federated_job(job_id)
    spec = fed["spec"]
    assert fed["status"] == "federated" and fed["phase"] == "commit" and fed["round"] == 1
    assert (spec["rounds"], spec["min_participants"], spec["max_participants"]) == (2, 2, 3)
    assert (spec["rule"], spec["trim"], spec["target_accuracy_ppm"]) == ("trimmed_mean", 0,
                                                                        900_000)
    assert (spec["commit_window_ms"], spec["reveal_window_ms"],
            spec["aggregate_window_ms"], spec["loo_permille"]) == (20_000, 10_000, 10_000, 400)
    assert spec["privacy"] == "open" and spec["holdout"]["finalists"] == 1
    assert spec["holdout"]["root"] == posted["federated"]["secret"].rsplit("/", 1)[1][:-5]
    assert fed["bounty"] == 60
    # The initial model: the digits template MLP 64-4-10, on the node under its id.
    assert spec["dims"] == 64 * 4 + 4 + 4 * 10 + 10 == posted["federated"]["dims"]
    initial = tmp_path / "initial.blob"
    api.download_blob(spec["initial_model"], initial)
    assert blob_id_of_bytes(initial.read_bytes()).hex() == spec["initial_model"]
    assert ModelBlob.from_bytes(initial.read_bytes()).dims == spec["dims"]
    # No data blob went up (the template's train.csv stays with the owner).
    assert posted["data"] == {}
    # The public part is named (after the split) and on the node.
    assert fed["seed"] is not None and fed["public"] is not None
    assert fed["public"]["blob"] == posted["federated"]["public_part"]["blob"]
    assert api.has_blob(bytes.fromhex(fed["public"]["blob"]))

    # A member commits an update; show lists it, committed, no weight yet.
    alice = chain.keys["alice"]
    blob = UpdateBlob(Hash32(bytes.fromhex(job_id)), 1, alice.address, 16,
                      (0,) * spec["dims"]).to_bytes()
    bodies = update_bodies(bytes.fromhex(job_id), 1, alice.address, blob, b"\x05" * 32)
    send(api, alice, bodies.commit, wait=True, what="fed_commit")
    shown = run(["federated", "show", job_id], chain).stdout
    print(shown)
    assert f"job {job_id}: federated, phase commit, round 1 of 2" in shown
    assert "trimmed_mean k=0, 2..3 participants, privacy open, bounty 60" in shown
    assert "target 90.0%" in shown and "leave-one-out 400‰" in shown
    assert "round 1: running (commit)" in shown
    assert "committed, trust weight -" in shown
    assert "cohort: none; any admitted member may commit, and one member may join " \
        "through several addresses [FED-SPEC.4]" in shown
    as_json = json.loads(run(["federated", "show", job_id, "--json"], chain).stdout)
    current = api.federated_job(job_id)
    assert as_json["job_id"] == job_id and as_json["rounds"] == current["rounds"]
    assert posted["federated"]["deposit"] == 7 and posted["federated"]["rule"] == "trimmed_mean"


def test_submit_federated_refuses_bad_terms_before_posting(
        chain: ApiThread, tmp_path: Path) -> None:
    """[FED-SPEC.1] [FED-SPEC.2] Each mistake is a clear error, exit 1, nothing posted: no
    initial model, a model file that is not a model blob, digits:0, a trimmed mean whose
    k needs more participants, a folder without [holdout]."""
    folder = v3_job_dir(tmp_path)
    base = [a for a in FED_ARGS if a not in ("--initial-model", "digits:4")]
    cases = [
        (base, "needs --initial-model"),
        ([*base, "--initial-model", str(folder / "job.toml")], "not a model blob"),
        ([*base, "--initial-model", "digits:0"], "1 <= H <= 4096"),
        ([*FED_ARGS, "--trim", "1"], "refused"),
    ]
    for args, message in cases:
        result = submit(chain, tmp_path, folder, *args, code=1)
        assert message in result.output, (args, result.output)
    plain = tmp_path / "plain"
    plain.mkdir()
    toml = (folder / "job.toml").read_text()
    (plain / "job.toml").write_text(toml.replace('kind = "train/v3"', 'kind = "train/v1"')
                                    .split("[data]")[0] + "[limits]" +
                                    toml.split("[limits]")[1])
    result = submit(chain, tmp_path, plain, *FED_ARGS, code=1)
    assert "needs [holdout]" in result.output, result.output
    assert ApiClient(chain.url).federated_jobs()["jobs"] == []


def test_part_hidden_outside_its_window_is_refused_with_the_ledger_code(
        chain: ApiThread, tmp_path: Path) -> None:
    """[TX-FED.7] ``federated part JOB hidden`` packs the hidden part from the kept secret
    and sends ``fed_part``; in round 1's commit phase the ledger refuses it
    (``not_in_hidden_window``), the error says so, exit 1."""
    folder = v3_job_dir(tmp_path)
    posted = submit(chain, tmp_path, folder, *FED_ARGS, "--json")
    owner = key_file(tmp_path, chain.keys["submitter"], "submitter")
    result = run(["federated", "part", posted["job_id"], "hidden", "--job-dir", str(folder),
                  *owner], chain, code=1)
    assert "not_in_hidden_window" in result.output, result.output
    wait_until(lambda: ApiClient(chain.url).federated_job(posted["job_id"])["phase"] ==
               "commit", timeout=5)


def test_the_owner_of_an_open_job_is_told_that_splitting_pays_there() -> None:
    """[FED-SPEC.4] A job posted without a cohort is open to every admitted member, where a
    member joining through several addresses is paid for each (docs/federated.md,
    "Splitting"): its owner's next steps say so and name ``--cohort``; with a cohort, they
    do not."""
    from chain.crypto import PrivateKey
    from client.cli.job.federated import OPEN_JOB_NOTE, next_steps
    from tests.federated.fed_ledger_story import fed_job_spec

    published = {"blob": "ab" * 32, "size": 10, "height": 3}
    open_steps = next_steps("cd" * 32, fed_job_spec(), published)
    assert open_steps[1] == OPEN_JOB_NOTE and "--cohort" in OPEN_JOB_NOTE
    assert "several addresses and be paid for each" in OPEN_JOB_NOTE
    members = tuple(sorted(PrivateKey.generate().address for _ in range(2)))
    closed = next_steps("cd" * 32, fed_job_spec(cohort=members), published)
    assert OPEN_JOB_NOTE not in closed and closed == [open_steps[0], *open_steps[2:]]


def test_show_prints_weights_slashes_and_rewards_of_a_finished_job() -> None:
    """[API-FED.2] [API-FED.3] [FED-END.4] ``federated show``'s lines for a finished job (the
    ledger story through real blocks, rendered by the API's own JSON form): every round's
    participants with their trust weights, the slashed aggregator, the end ballot, each
    participant's reward and the refund; the rewards add up to the bounty. The slashed
    aggregator is a participant, banned: its reward alone is marked burned (``burned`` in
    the JSON, in its OpenAPI schema; "(burned: banned)" and the burned sum in the text)."""
    from chain.federated.open.reads import fed_rounds
    from client.api.federated.routes import banned_payees, fed_detail_json
    from client.api.openapi import openapi_document
    from client.federated.cli import show_lines
    from tests.federated.fed_ledger_story import BOUNTY
    from tests.federated.open.test_federated_ledger import two_rounds_with_a_cheat

    story, cheat = two_rounds_with_a_cheat()
    state = story.chain.state
    rounds = fed_rounds(state, story.job_id)
    fed = json.loads(json.dumps(fed_detail_json(story.chain.job(story.job_id), story.fed,
                                                rounds, banned_payees(state, story.fed,
                                                                      rounds))))
    text = "\n".join(show_lines(fed))
    print(text)
    assert "federated, phase done" not in text and ": paid, phase done, round 2 of 2" in text
    assert text.count("round 1: accepted") == 1 and text.count("round 2: accepted") == 1
    assert f"slashed: {fed['rounds'][1]['slashed'][0]}" in text
    assert story.chain.addr(cheat).hex() in fed["rounds"][1]["slashed"][0]
    weights = [p["weight"] for r in fed["rounds"] for p in r["participants"]]
    assert len(weights) == 6 and all(w is not None for w in weights)
    for r in fed["rounds"]:
        for p in r["participants"]:
            assert f"{p['address']}: revealed, trust weight {p['weight'] / 65536:.3f}" in text
    paid = {p["address"]: int(p["amount"]) for p in fed["payout"]["paid"]}
    # the slashed aggregator is a participant: banned, its share burned [FED-END.4]
    cheat_text = next(a for a in paid if story.chain.addr(cheat).hex() in a)
    assert [p["address"] for p in fed["payout"]["paid"] if p["burned"]] == [cheat_text]
    assert paid[cheat_text] > 0 and story.chain.balance(cheat) == 0
    for address, amount in paid.items():
        mark = " (burned: banned)" if address == cheat_text else ""
        assert f"reward {address}: {amount}{mark}\n" in text + "\n"
    assert text.count("burned: banned") == 1
    assert f"paid {sum(paid.values())} ({paid[cheat_text]} of it burned), refund " \
           f"{fed['payout']['refund']}" in text
    assert sum(paid.values()) + int(fed["payout"]["refund"]) == BOUNTY
    assert "end ballot: 3 participants, deposit returned" in text
    doc = openapi_document()
    check_schema(fed, response_schema(doc, "GET", "/federated/{job_id}", 200), doc)


def test_submit_federated_multi_krum_parameter(chain: ApiThread, tmp_path: Path) -> None:
    """[FED-AGG.9] [FED-SPEC.2] ``--rule multi_krum --trim f`` posts ``["multi_krum", f]``
    when ``min_participants`` is at least f + 4 (f + 3 without any one); fewer are refused
    before posting."""
    folder = v3_job_dir(tmp_path)
    base = list(FED_ARGS)
    base[base.index("--min-participants") + 1] = "5"
    base[base.index("--max-participants") + 1] = "6"
    refused = submit(chain, tmp_path, folder, *base, "--rule", "multi_krum", "--trim", "1",
                     "--min-participants", "4", code=1)
    assert "Multi-Krum with f 1 needs at least" in refused.output, refused.output
    posted = submit(chain, tmp_path, folder, *base, "--rule", "multi_krum", "--trim", "1",
                    "--json")
    spec = ApiClient(chain.url).federated_job(posted["job_id"])["spec"]
    assert (spec["rule"], spec["trim"], spec["min_participants"]) == ("multi_krum", 1, 5)


def test_submit_federated_cohort(tmp_path: Path) -> None:
    """[FED-SPEC.4] [TX-FED.2] [TX-FED.12] [API-FED.2] ``--cohort`` (repeated or comma
    separated) posts the ascending addresses; ``federated show`` prints them and the API's
    JSON lists them. A member outside the cohort is refused ``not_in_cohort`` by the node,
    and ``federated join`` refuses to start for it. A mistyped or repeated address, a
    graph older than version 6, a job that names neither a cohort nor ``--any-member``,
    and one that names both are refused before anything is posted."""
    from chain.crypto import address_to_text
    from chain.versions import COHORT_VERSION
    from client.cli.common import UserError
    from client.federated.participant.node_loop import FederatedJoin

    folder = v3_job_dir(tmp_path)
    with ApiThread(tmp_path / "old", block_interval=0.1) as old:
        alice = address_to_text(old.keys["alice"].address)
        refused = submit(old, tmp_path, folder, *FED_TERMS, "--cohort", alice, code=1)
        assert "--cohort needs protocol version 6" in refused.output, refused.output
        refused = submit(old, tmp_path, folder, *FED_TERMS, code=1)
        assert "has no cohorts" in refused.output and "--any-member" in refused.output, \
            refused.output
    with ApiThread(tmp_path / "new", block_interval=0.1,
                   protocol_version=COHORT_VERSION) as chain:
        alice, bob, carol = (address_to_text(chain.keys[n].address)
                             for n in ("alice", "bob", "carol"))
        for args, message in (((alice[:-1] + "0",), "checksum"),
                              ((f"{alice},{alice}",), f"names {alice} twice"),
                              ((alice,), "cannot fill a round of min_participants 2")):
            result = submit(chain, tmp_path, folder, *FED_TERMS, "--cohort", *args, code=1)
            assert message in result.output, (args, result.output)
        for args, message in (((), "names who may send updates: --cohort"),
                              (("--cohort", f"{alice},{bob}", "--any-member"),
                               "--cohort and --any-member exclude each other")):
            result = submit(chain, tmp_path, folder, *FED_TERMS, *args, code=1)
            assert message in result.output, (args, result.output)
        api = ApiClient(chain.url)
        assert api.federated_jobs()["jobs"] == []
        posted = submit(chain, tmp_path, folder, *FED_TERMS, "--cohort", f"{bob},{alice}",
                        "--json")
        job_id = posted["job_id"]
        spec = api.federated_job(job_id)["spec"]
        assert spec["cohort"] == sorted([alice, bob], key=lambda t: t[3:43])
        shown = run(["federated", "show", job_id], chain).stdout
        assert f"cohort: only these 2 addresses may commit: {', '.join(spec['cohort'])}" \
            in shown, shown
        dims, job = spec["dims"], Hash32(bytes.fromhex(job_id))
        for name, ok in (("carol", False), ("alice", True)):
            key = chain.keys[name]
            blob = UpdateBlob(job, 1, key.address, 16, (0,) * dims).to_bytes()
            commit = update_bodies(job, 1, key.address, blob, b"\x05" * 32).commit
            if ok:
                send(api, key, commit, wait=True, what="fed_commit")
                continue
            with pytest.raises(UserError) as e:
                send(api, key, commit, wait=True, what="fed_commit")
            assert "not_in_cohort" in str(e.value), e.value
        fed = api.federated_job(job_id)
        assert [p["address"] for p in fed["rounds"][0]["participants"]] == [alice]
        assert carol not in spec["cohort"]
        node = chain.node
        assert node is not None
        with pytest.raises(ValueError, match="not in the cohort"):
            FederatedJoin(node, bytes.fromhex(job_id), tmp_path)  # v0: not named
