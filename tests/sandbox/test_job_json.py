"""Bounded, total parsing of what a job writes [JOB-JSON.*], [JOB-EVAL.2] (issue 13 §3).

No Docker: the parser and ``read_metrics`` alone. The runner-level tests
(the same bombs written by a real evaluate) are in ``test_job_faults.py``.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.job_json import (
    MAX_DEPTH,
    MAX_JSON_BYTES,
    JobJsonError,
    parse_json,
    parse_metrics,
)
from sandbox.runner import read_metrics

BOMBS: list[tuple[str, bytes, str]] = [
    ("400-digit integer", b'{"loss": ' + b"9" * 400 + b"}", "JOB-JSON.3"),
    ("1e400", b'{"loss": 1e400}', "JOB-JSON.3"),
    ("-1e400", b'{"loss": -1e400}', "JOB-JSON.3"),
    ("NaN", b'{"loss": NaN}', "JOB-JSON.3"),
    ("Infinity", b'{"loss": Infinity}', "JOB-JSON.3"),
    ("-Infinity", b'{"loss": -Infinity}', "JOB-JSON.3"),
    ("deep arrays", b'{"loss": 1, "x": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",
     "JOB-JSON.2"),
    ("deep objects", b'{"a":' * 8_000 + b"1" + b"}" * 8_000, "JOB-JSON.2"),
    ("deep and large", b"[" * 100_000 + b"]" * 100_000, "JOB-JSON.1"),
    ("duplicate key", b'{"loss": 0.1, "loss": 9.0}', "JOB-JSON.4"),
    ("duplicate other key", b'{"loss": 0.1, "acc": 1, "acc": 2}', "JOB-JSON.4"),
    ("too large", b'{"loss": 1, "pad": "' + b"x" * MAX_JSON_BYTES + b'"}', "JOB-JSON.1"),
    ("not UTF-8", b'{"loss": 1, "\xff": 2}', "JOB-JSON.1"),
    ("not JSON", b'{"loss": 1,', "JOB-JSON.0"),
    ("empty", b"", "JOB-JSON.0"),
    ("an array", b"[1, 2]", "JOB-EVAL.2a"),
    ("a number", b"0.5", "JOB-EVAL.2a"),
    ("too many metrics", json.dumps({f"m{i}": i for i in range(65)} | {"loss": 1}).encode(),
     "JOB-EVAL.2b"),
    ("bad name", b'{"loss": 1, "\\u001b[2J": 2}', "JOB-EVAL.2c"),
    ("lone surrogate name", b'{"loss": 1, "\\ud800": 2}', "JOB-EVAL.2c"),
    ("boolean loss", b'{"loss": true}', "JOB-EVAL.2d"),
    ("string loss", b'{"loss": "0.1"}', "JOB-EVAL.2d"),
    ("null loss", b'{"loss": null}', "JOB-EVAL.2d"),
    ("nested value", b'{"loss": [0.1]}', "JOB-JSON.2"),
    ("no loss", b'{"accuracy": 0.9}', "JOB-EVAL.2e"),
]


@pytest.mark.parametrize(("case", "data", "rule"), BOMBS, ids=[b[0] for b in BOMBS])
def test_job_json_every_bad_shape_is_refused_naming_its_rule(case: str, data: bytes,
                                                            rule: str) -> None:
    """[JOB-JSON.0-4] bounds and [JOB-EVAL.2a-e] shapes: each bomb is refused by its rule."""
    with pytest.raises(JobJsonError) as refused:
        parse_metrics(data)
    assert refused.value.rule == rule, (case, str(refused.value))
    assert f"[{rule}]" in str(refused.value)


@pytest.mark.parametrize(("case", "data", "rule"), BOMBS, ids=[b[0] for b in BOMBS])
def test_job_eval_2_read_metrics_never_raises_and_says_why(tmp_path: Path, case: str,
                                                          data: bytes, rule: str) -> None:
    path = tmp_path / "metrics.json"
    path.write_bytes(data)
    metrics, detail = read_metrics(path)
    assert metrics is None
    assert f"[{rule}]" in detail, (case, detail)


def test_job_json_3_errors_carry_the_bad_bytes() -> None:
    with pytest.raises(JobJsonError) as refused:
        parse_metrics(b'{"loss": ' + b"9" * 400 + b"}")
    assert refused.value.excerpt.startswith("'9999") and "400 chars" in refused.value.excerpt
    with pytest.raises(JobJsonError) as dup:
        parse_metrics(b'{"loss": 0.1, "loss": 9.0}')
    assert dup.value.excerpt == "'loss'"


def test_job_eval_2_good_metrics_keep_the_exact_double() -> None:
    loss = 0.1 + 0.2  # 0.30000000000000004: the shortest repr round-trips the bits
    metrics = parse_metrics(json.dumps({"loss": loss, "accuracy": 0.5, "examples": 360}).encode())
    assert metrics == {"loss": loss, "accuracy": 0.5, "examples": 360.0}
    assert parse_metrics(b'{"loss": -0.0}')["loss"] == 0.0
    assert parse_metrics(b'{"loss": 1e-400}')["loss"] == 0.0  # underflow is finite
    assert parse_metrics(b'{"loss": 12345678901234567890}')["loss"] == 1.2345678901234567e19


def test_job_json_2_depth_bound_counts_brackets_outside_strings_only() -> None:
    inside = b'{"loss": 1, "s": "' + b"[" * 10_000 + b'\\"' + b'"}'
    assert parse_json(inside)["loss"] == 1
    assert parse_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None
    with pytest.raises(JobJsonError):
        parse_json(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1))


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=2048))
def test_job_json_parser_is_total_on_arbitrary_bytes(data: bytes) -> None:
    """Whatever the bytes: a value or ``JobJsonError``, never another exception."""
    for parse in (parse_json, parse_metrics):
        with contextlib.suppress(JobJsonError):
            parse(data)


JSONISH = st.recursive(
    st.sampled_from(["0", "-1", "1e400", "NaN", "-Infinity", "9" * 60, "1.5", "true", "null",
                     '"loss"', '"a\\\\"', '"\\ud800"', '"x"']),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda xs: "[" + ",".join(xs) + "]"),
        st.lists(st.tuples(st.sampled_from(['"loss"', '"a"', '"loss"']), inner), max_size=4)
        .map(lambda kv: "{" + ",".join(f"{k}:{v}" for k, v in kv) + "}"),
        st.integers(1, 3000).map(lambda n: "[" * n + "]" * n),
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(JSONISH, st.binary(max_size=8))
def test_job_json_parser_is_total_on_json_like_text(text: str, noise: bytes) -> None:
    for data in (text.encode(), text.encode() + noise, noise + text.encode()):
        for parse in (parse_json, parse_metrics):
            with contextlib.suppress(JobJsonError):
                parse(data)
