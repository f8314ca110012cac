"""DP-SGD's host side without Docker: the privacy report's parser [JOB-FED.7] (and its
vector file), the participant's composition over rounds, and ``[python] packages`` in
job.toml [JOB-FILE.6] [JOB-IMAGE.12]."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opacus.accountants import RDPAccountant

from client.federated.participant.dp_accounting import DpLedger, compose_epsilon
from sandbox.errors import JobDirError
from sandbox.host_packages import host_dist
from sandbox.job_file import parse_job
from sandbox.job_template import _host_dists
from sandbox.privacy_report import (
    MAX_PRIVACY_BYTES,
    PrivacyReport,
    PrivacyReportError,
    parse_privacy,
)
from tests.ledger.vector_files import check_vector_file

GOOD = {"mechanism": "dp-sgd", "accountant": "rdp", "noise_multiplier": 1.1,
        "max_grad_norm": 1.0, "sample_rate": 0.0625, "steps": 80, "delta": 1e-5,
        "epsilon": 4.57}


def _text(doc: dict[str, Any], **change: Any) -> str:
    return json.dumps({**doc, **change})


REFUSED = {
    "too_long": " " * (MAX_PRIVACY_BYTES + 1 - len(_text(GOOD))) + _text(GOOD),
    "not_json": "{epsilon: 1}",
    "nan": _text(GOOD).replace("4.57", "NaN"),
    "infinity": _text(GOOD).replace("4.57", "Infinity"),
    "overflow": _text(GOOD).replace("4.57", "1e400"),
    "extra_key": _text(GOOD, note="hi"),
    "missing_key": json.dumps({k: v for k, v in GOOD.items() if k != "delta"}),
    "a_list": "[1, 2]",
    "other_mechanism": _text(GOOD, mechanism="laplace"),
    "other_accountant": _text(GOOD, accountant="prv"),
    "steps_float": _text(GOOD, steps=80.0),
    "steps_zero": _text(GOOD, steps=0),
    "steps_bool": _text(GOOD, steps=True),
    "negative_epsilon": _text(GOOD, epsilon=-1.0),
    "zero_noise": _text(GOOD, noise_multiplier=0),
    "rate_above_one": _text(GOOD, sample_rate=1.5),
    "delta_one": _text(GOOD, delta=1.0),
    "string_number": _text(GOOD, epsilon="4.57"),
}
ACCEPTED = {
    "template_round": _text(GOOD),
    "zero_epsilon_full_batch": _text(GOOD, epsilon=0, sample_rate=1.0),
    "exactly_max_bytes": " " * (MAX_PRIVACY_BYTES - len(_text(GOOD))) + _text(GOOD),
}


def test_privacy_report_vectors() -> None:
    """[JOB-FED.7] Each refused report names why; each accepted one parses to its numbers.
    The cases are protocol_spec/vectors/privacy_report.json (LC_WRITE_VECTORS=1 rewrites)."""
    vectors: dict[str, Any] = {"accept": {}, "refuse": {}}
    for name, text in REFUSED.items():
        with pytest.raises(PrivacyReportError) as caught:
            parse_privacy(text.encode())
        message = str(caught.value)
        assert message.startswith("privacy.json [JOB-FED.7]: ")
        vectors["refuse"][name] = {"text": text if len(text) < 200 else
                                   {"spaces": len(text) - len(text.lstrip()),
                                    "then": text.lstrip()}, "error": message}
    for name, text in ACCEPTED.items():
        report = parse_privacy(text.encode())
        assert report.to_json() == {k: float(v) if k not in ("steps", "mechanism", "accountant")
                                    else v for k, v in json.loads(text).items()}
        vectors["accept"][name] = {"text": text if len(text) < 200 else
                                   {"spaces": len(text) - len(text.lstrip()),
                                    "then": text.lstrip()}, "report": report.to_json()}
    check_vector_file("privacy_report.json", vectors)


@settings(max_examples=12, deadline=None)
@given(st.lists(st.tuples(st.floats(0.5, 5.0), st.floats(0.001, 1.0), st.integers(1, 2000)),
                max_size=6),
       st.sampled_from([1e-5, 1e-6, 1e-3]))
def test_composition_equals_opacus_accountant_fed_the_same_history(
        rounds: list[tuple[float, float, int]], delta: float) -> None:
    """[JOB-FED.7] The participant's job-so-far epsilon is exactly opacus' RDPAccountant's
    after the same steps (fed one ``step`` at a time, as training does)."""
    accountant = RDPAccountant()
    for sigma, q, steps in rounds:
        for _ in range(min(steps, 50)):
            accountant.step(noise_multiplier=sigma, sample_rate=q)
    history = [(sigma, q, min(steps, 50)) for sigma, q, steps in rounds]
    expected = accountant.get_epsilon(delta) if rounds else 0.0
    assert math.isclose(compose_epsilon(history, delta), expected, rel_tol=1e-12)


def test_ledger_composes_rounds_and_a_retried_round_replaces_its_own(tmp_path: Path) -> None:
    """[JOB-FED.7] Rounds compose (epsilon grows), a retried round counts once, and a new
    ledger on the same folder (a restarted node) sees the same history."""
    ledger = DpLedger(tmp_path)
    report = PrivacyReport(1.0, 1.0, 0.25, 20, 1e-5, 1.0)
    first = ledger.record(1, report)
    second = ledger.record(2, report)
    assert first.epsilon_round == first.epsilon_total == second.epsilon_round
    assert second.epsilon_total > first.epsilon_total
    again = ledger.record(2, report)
    assert again.epsilon_total == second.epsilon_total
    assert [r for r, _ in DpLedger(tmp_path).history()] == [1, 2]
    assert math.isclose(second.epsilon_total,
                        compose_epsilon([(1.0, 0.25, 40)], 1e-5), rel_tol=1e-12)
    assert second.line().startswith("round 2: dp-sgd epsilon this round ")
    assert "job so far" in second.line() and "at delta 1e-05" in second.line()


def _job(python: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "kind": "train/v1", "name": "x", "bounty": 1, "expiry_s": 60, "loss_tolerance": 0.0,
        "entry_points": {"train": ["/t"], "evaluate": ["/e"]},
        "limits": {"memory_mb": 64, "cpu_millis": 1000, "time_s": 10, "disk_mb": 8},
        "search_space": []}
    if python is not None:
        raw["python"] = python
    return raw


def test_python_packages_table() -> None:
    """[JOB-FILE.6] ``[python] packages`` is optional; names are distribution names (no
    versions), not repeated (``opt_einsum`` is ``opt-einsum``), not the base image's own;
    every error carries the bad value."""
    assert parse_job(_job(None)).packages == ()
    names = ["opacus", "scipy", "opt-einsum"]
    assert parse_job(_job({"packages": names})).packages == tuple(names)
    for bad, needle in (({"packages": ["opacus==1.6.0"]}, "'opacus==1.6.0'"),
                        ({"packages": ["opt-einsum", "opt_einsum"]}, "'opt_einsum' repeats"),
                        ({"packages": ["Torch"]}, "'Torch' is in the base image"),
                        ({"packages": []}, "got []"),
                        ({"packages": "opacus"}, "got 'opacus'"),
                        ({"packages": [3]}, "3 is not a distribution name"),
                        ({"pakages": ["x"]}, "did you mean packages?"),
                        ("opacus", "got 'opacus'")):
        with pytest.raises(ValueError, match="python") as caught:
            parse_job(_job(bad))
        assert needle in str(caught.value), caught.value


def test_a_package_not_installed_on_the_host_is_refused_before_any_build() -> None:
    """[JOB-IMAGE.12] ``job build`` copies the host's installed versions; a name the host
    lacks is refused with the name (before Docker is asked for anything)."""
    with pytest.raises(JobDirError, match="no-such-dist-lc is not installed on the host"):
        _host_dists(("opacus", "no-such-dist-lc"))
    opacus = host_dist("opacus")
    assert opacus.version == "1.6.0" and any(rel.startswith("opacus/") for rel, _ in
                                             opacus.files)
