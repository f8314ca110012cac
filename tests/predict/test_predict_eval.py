"""Plaintext predictions on the executor (sandbox/predict_eval.py) and the blob formats
(chain/predict/io.py): the answer equals what the submitter computes locally, honest
executors write the same bytes, and a bad input gets the fixed invalid answer."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_diabetes, load_digits
from sklearn.linear_model import LinearRegression
from sklearn.neural_network import MLPClassifier

from chain.encoding import decode, encode
from chain.errors import FieldError
from chain.predict.agreement import exact_agreement, tolerance_agreement
from chain.predict.io import (
    INVALID_REASONS,
    decode_rows,
    encode_rows,
    invalid_blob,
    labels_blob,
    output_hash,
)
from chain.predict.model import InputSchema, OutputSchema
from sandbox.model_format import export_mlp, load_model
from sandbox.predict_eval import answer_labels, answer_values
from tests.predict.cases import addr, digits_model, score_model

DIGITS = digits_model()


@pytest.fixture(scope="module")
def digits() -> tuple[MLPClassifier, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=300, random_state=0)
    clf.fit(x[:1500], y[:1500])
    return clf, x[1500:1600]


def _exported(clf: MLPClassifier) -> bytes:
    layers = [(w.T, b) for w, b in zip(clf.coefs_, clf.intercepts_, strict=True)]
    return export_mlp(layers, "float32")


def test_labels_equal_the_submitters_local_predictions(digits) -> None:  # type: ignore[no-untyped-def]
    """[PRED-IO.1] [PRED-IO.2] 100 held-out digits through the exported MLP: the labels in the
    answer blob are scikit-learn's own predictions; three evaluations give one output hash,
    which exact agreement accepts."""
    clf, rows = digits
    model = load_model(_exported(clf), DIGITS.input, DIGITS.output)
    blob = encode_rows("float32", 64, [float(v) for v in rows.ravel()])
    answers = [answer_labels(model, DIGITS, blob, len(rows)) for _ in range(3)]
    wire = decode(answers[0])
    assert wire[0] == "predict-labels/v1"
    local = clf.predict(rows.astype(np.float32))
    assert [int(DIGITS.output.labels[i]) for i in wire[1]] == [int(v) for v in local]
    drawn = [addr("e0"), addr("e1"), addr("e2")]
    agreed = exact_agreement(drawn, {a: output_hash(b) for a, b in zip(drawn, answers,
                                                                         strict=True)})
    assert agreed.answer == output_hash(answers[0]) and len(agreed.agreeing) == 3


def test_bad_inputs_get_the_invalid_answer(digits) -> None:  # type: ignore[no-untyped-def]
    """[PRED-IO.3] Garbage, a pickle, the wrong dtype, the wrong feature count, a row count
    other than the request's, a NaN: each is answered with the one invalid blob for its
    reason, so honest executors still agree on it."""
    clf, rows = digits
    model = load_model(_exported(clf), DIGITS.input, DIGITS.output)
    good = [float(v) for v in rows[:2].ravel()]
    cases = {
        "not_rows": [b"\x80\x04garbage", encode(["predict-rows/v1", "float32", 64, 2, b"x"])],
        "schema": [encode_rows("float64", 64, good), encode_rows("float32", 32, good)],
        "row_count": [encode_rows("float32", 64, good + good)],
        "not_finite": [encode_rows("float32", 64, [float("nan"), *good[1:]])],
    }
    for reason, blobs in cases.items():
        for blob in blobs:
            assert answer_labels(model, DIGITS, blob, 2) == invalid_blob(reason), reason
    with pytest.raises(FieldError):
        invalid_blob("because")


def test_regression_values_and_tolerance(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """[PRED-ANSWER.2] [PRED-AGREE.3] A linear regression answers round(y × 10^6) per row,
    within 1 of scikit-learn's own prediction; a perturbed executor within the tolerance still
    agrees, one beyond it is outvoted; an overflowing scale is the invalid answer."""
    x, y = load_diabetes(return_X_y=True)
    reg = LinearRegression().fit(x[:400], y[:400])
    rows = x[400:420]
    record = dataclasses.replace(score_model(), input=InputSchema("float64", 10))
    model = load_model(export_mlp([(reg.coef_[None, :], np.array([reg.intercept_]))],
                                  "float64"), record.input, record.output)
    blob = encode_rows("float64", 10, [float(v) for v in rows.ravel()])
    values = answer_values(model, record, blob, len(rows))
    assert isinstance(values, tuple)
    want = np.rint(reg.predict(rows) * 1e6)
    assert np.max(np.abs(np.array(values) - want)) <= 1
    drawn = [addr("e0"), addr("e1"), addr("e2")]
    near = tuple(v + 3 for v in values)
    far = tuple(v + 10**6 for v in values)
    agreed = tolerance_agreement(drawn, dict(zip(drawn, [values, near, far], strict=True)), 5)
    assert agreed.disagreeing == (drawn[2],) and len(agreed.agreeing) == 2
    huge = dataclasses.replace(record, output=OutputSchema("regression", (), 1, 18))
    big = load_model(export_mlp([(np.full((1, 10), 1e3), np.array([1e3]))], "float64"),
                     huge.input, huge.output)
    assert answer_values(big, huge, blob, len(rows)) == output_hash(invalid_blob("out_of_range"))


def test_invalid_answers_agree_only_with_themselves() -> None:
    """[PRED-IO.3] [PRED-AGREE.3] In values mode two executors answering `schema` and one
    answering numbers: the invalid answer is the majority; it never joins a numeric group."""
    drawn = [addr("e0"), addr("e1"), addr("e2")]
    bad = output_hash(invalid_blob("schema"))
    agreed = tolerance_agreement(drawn, {drawn[0]: bad, drawn[1]: bad, drawn[2]: (1, 2)}, 10**9)
    assert agreed.answer == bad and agreed.disagreeing == (drawn[2],)


def test_rows_and_labels_blob_bounds() -> None:
    """[PRED-IO.1] [PRED-IO.2] Partial rows, an unknown dtype and label indices outside the
    label list are refused when encoding; decoding checks the model's schema."""
    with pytest.raises(FieldError):
        encode_rows("float32", 3, [1.0, 2.0])
    with pytest.raises(FieldError):
        encode_rows("int8", 1, [1.0])
    with pytest.raises(FieldError):
        labels_blob([0, 10], 10)
    with pytest.raises(FieldError):
        labels_blob([True], 10)
    blob = encode_rows("float64", 2, [1.0, 2.0, 3.0, 4.0])
    parsed = decode_rows(blob, InputSchema("float64", 2), 2)
    assert not isinstance(parsed, str) and parsed.rows == 2 and len(parsed.data) == 32
    assert decode_rows(blob, InputSchema("float64", 2), 4097) == "row_count"


_ROWS = encode_rows("float32", 3, [0.5, -1.0, 2.0, 4.0, 8.0, 16.0])


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.binary(max_size=256),
    st.tuples(st.integers(0, len(_ROWS) - 1), st.integers(0, 255)).map(
        lambda e: _ROWS[:e[0]] + bytes([e[1]]) + _ROWS[e[0] + 1:]),
))
def test_decode_rows_is_total(blob: bytes) -> None:
    """[PRED-IO.1] [PRED-IO.3] Any bytes decode to rows of the schema or to one of the
    invalid reasons, never an exception."""
    got = decode_rows(blob, InputSchema("float32", 3), 2)
    if isinstance(got, str):
        assert got in INVALID_REASONS
    else:
        assert (got.rows, got.features, len(got.data)) == (2, 3, 24)
