"""The API's ``winner_model_hash`` names the paid winner's model, which on a train/v3 job is
the hidden ranking's pick, not the first finalist verified on the public claim."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from chain.jobspec import TRAIN_V3, DataRef
from chain.records import JobStatus, Outcome, Verdict
from chain.train.bodies import PostJob
from chain.types import Address, Hash32, TimeMs
from client.api.http_client import ApiClient
from client.api.json_forms import job_json
from tests.client.api.test_api_support import ApiThread, future_spec
from tests.client.cli.test_cli_job import send
from tests.client.test_holdout_api import chain, v3_terms

__all__ = ["chain"]  # the fixture, used by name

PUBLIC_BEST, HIDDEN_BEST = Address(b"\x01" * 20), Address(b"\x02" * 20)
MODEL_OF = {PUBLIC_BEST: Hash32(b"\x11" * 32), HIDDEN_BEST: Hash32(b"\x22" * 32)}


def _valid(claimer: Address, at: int) -> Verdict:
    return Verdict(claimer, Outcome.VALID, 3, 0, 3, TimeMs(at), MODEL_OF[claimer], 0.1)


def test_winner_model_is_the_hidden_winners_not_the_first_valid_finalists(
        chain: ApiThread, tmp_path: Path) -> None:
    """[HOLDOUT-WINNER.1] [API-HOLDOUT.1] Both finalists verified on their public claims; the
    second wins on the hidden set and is paid: its model is the one served as the winner's
    (``job fetch-model`` and the demo fetch that one). Before a v3 winner is named, none is."""
    client = ApiClient(chain.url)
    spec = dataclasses.replace(future_spec(int(client.status()["time_ms"])), kind=TRAIN_V3,
                               holdout=v3_terms(tmp_path),
                               data=(("train", DataRef(Hash32(b"\xaa" * 32), 10)),))
    job_id = send(client, chain.keys["submitter"], PostJob(spec))
    job = chain.in_loop(lambda: chain.node.state.job(job_id))  # type: ignore[union-attr]
    assert job is not None
    verdicts = (_valid(PUBLIC_BEST, 1), _valid(HIDDEN_BEST, 2))
    judged = dataclasses.replace(job, verdicts=verdicts, status=JobStatus.HOLDOUT)
    assert job_json(judged)["winner_model_hash"] is None
    paid = dataclasses.replace(judged, status=JobStatus.PAID, winner=HIDDEN_BEST)
    assert job_json(paid)["winner_model_hash"] == MODEL_OF[HIDDEN_BEST].hex()


def test_winner_model_of_a_v2_job_is_its_valid_verdicts(chain: ApiThread) -> None:
    """[JOB-TURN.1] A train/v1-v2 job pays the claim its valid verdict verified: that model is
    the winner's, named as soon as the verdict is in."""
    client = ApiClient(chain.url)
    job_id = send(client, chain.keys["submitter"],
                  PostJob(future_spec(int(client.status()["time_ms"]))))
    job = chain.in_loop(lambda: chain.node.state.job(job_id))  # type: ignore[union-attr]
    assert job is not None and job.spec.holdout is None
    judged = dataclasses.replace(job, verdicts=(_valid(PUBLIC_BEST, 1),))
    assert job_json(judged)["winner_model_hash"] == MODEL_OF[PUBLIC_BEST].hex()
