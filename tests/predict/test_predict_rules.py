"""Tries to break each [PRED-*] rule of protocol_spec/predict.md, plus property tests."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.encoding import decode, encode
from chain.errors import FieldError, InvalidTransaction
from chain.predict import params
from chain.predict.agreement import distance, exact_agreement, majority, tolerance_agreement
from chain.predict.answer import answer_commitment, check_values, values_hash
from chain.predict.lottery import candidates, draw, draw_index, lottery_seed
from chain.predict.model import DeployedModel, InputSchema, OutputSchema
from chain.predict.payout import settle
from chain.predict.request import check_request, min_fee
from chain.types import Amount, Hash32
from tests.predict.cases import addr, digits_model, h, labels_request, score_model

POOL = tuple(sorted(addr(f"p{i}") for i in range(20)))


def test_parameters_hang_together() -> None:
    """[PRED-PARAMS.1] k bounds are odd and ordered; the royalty leaves executors at least half;
    the lottery draws in the block after the including one, from the including block's hash,
    which commits to the request itself and so was unknown to the requester (§4)."""
    assert params.MIN_K % 2 == 1 and params.MAX_K % 2 == 1 and 3 <= params.MIN_K < params.MAX_K
    assert params.MAX_ROYALTY_PERMILLE <= 500
    assert params.LOTTERY_DELAY == 1
    assert params.MIN_WINDOW_MS < params.MAX_WINDOW_MS


# --- [PRED-MODEL.1] ------------------------------------------------------------------------

def test_model_rejects_bad_fields_when_built() -> None:
    """[PRED-MODEL.1] A model record cannot be built out of bounds, not only decoded so:
    unknown format, royalty over 500 ‰, a single label, duplicated labels, labels on a
    regression output, a scale above 18; the error names the field and the value."""
    model = digits_model()
    with pytest.raises(FieldError) as e:
        dataclasses.replace(model, format="pickle")
    assert e.value.field == "format" and "pickle" in e.value.got
    with pytest.raises(FieldError) as e:
        dataclasses.replace(model, royalty_permille=501)
    assert e.value.field == "royalty_permille" and e.value.got == "501"
    for bad in [("classes", ("0",), 0, 0), ("classes", ("a", "a"), 0, 0),
                ("regression", ("x",), 1, 0), ("regression", (), 1, 19),
                ("regression", (), 0, 0), ("logits", (), 1, 0)]:
        with pytest.raises(FieldError):
            OutputSchema(*bad)


def test_model_wire_rejects_type_confusion() -> None:
    """[PRED-MODEL.1] A bool where an int goes, a short hash, an empty label, and a
    regression output of the wrong length are bad fields, not coerced."""
    w = digits_model().to_wire()
    for bad in [[*w[:6], True], [w[0][:31], *w[1:]], [*w[:4], ["classes", ["a", ""]], *w[5:]],
                [*w[:4], ["regression", 1], *w[5:]], [*w[:3], ["float32", True], *w[4:]]]:
        with pytest.raises(FieldError):
            DeployedModel.from_wire(decode(encode(bad)))


# --- [PRED-REQ.*] --------------------------------------------------------------------------

def test_request_k_must_be_odd_and_bounded() -> None:
    """[PRED-REQ.2] k = 2, 4, 16, 1 and 17 are refused at construction; 3 and 15 are fine."""
    for k in (1, 2, 4, 16, 17):
        with pytest.raises(FieldError) as e:
            labels_request(k=k)
        assert e.value.field == "k"
    assert labels_request(k=3).k == 3 and labels_request(k=15, fee=10**6).k == 15


def test_request_rows_and_windows_bounded() -> None:
    """[PRED-REQ.3] rows 0 and 4097 are refused. [PRED-REQ.6] windows of 999 ms and over an
    hour are refused."""
    for rows in (0, params.MAX_ROWS + 1):
        with pytest.raises(FieldError):
            labels_request(rows=rows)
    req = labels_request()
    for field_name, value in [("commit_window_ms", 999), ("reveal_window_ms", 3_600_001)]:
        with pytest.raises(FieldError) as e:
            dataclasses.replace(req, **{field_name: value})
        assert e.value.field == field_name


def test_request_tolerance_only_in_values_mode() -> None:
    """[PRED-REQ.1] A tolerance on a labels or ciphertext request is refused."""
    for mode in ("labels", "ciphertext"):
        with pytest.raises(FieldError):
            dataclasses.replace(labels_request(), mode=mode, tolerance=1)
    assert dataclasses.replace(labels_request(), mode="values", tolerance=5).tolerance == 5


def test_request_against_model() -> None:
    """[PRED-REQ.1] unknown model, and every mode that does not fit the output kind."""
    req = labels_request()
    with pytest.raises(InvalidTransaction) as e:
        check_request(req, None, 0)
    assert e.value.code == "unknown_model"
    for mode, model in [("labels", score_model()), ("values", digits_model()),
                        ("ciphertext", digits_model())]:
        with pytest.raises(InvalidTransaction) as e:
            check_request(dataclasses.replace(req, mode=mode), model, 0)
        assert e.value.code == "mode_mismatch"
    check_request(req, digits_model(), 0)
    check_request(dataclasses.replace(req, mode="ciphertext"), score_model(), 0)


def test_fee_must_pay_every_run() -> None:
    """[PRED-REQ.4] One credit short of rows × k is refused; exactly that is accepted."""
    need = min_fee(10, 5)
    assert need == 10 * 5 * params.MIN_FEE_PER_ROW
    with pytest.raises(InvalidTransaction) as e:
        check_request(labels_request(rows=10, k=5, fee=need - 1), digits_model(), 0)
    assert e.value.code == "fee_too_low" and str(need) in e.value.message
    check_request(labels_request(rows=10, k=5, fee=need), digits_model(), 0)


def test_flooding_limits() -> None:
    """[PRED-REQ.5] The 9th open request of one requester is refused; values answers that
    would not fit inline are refused."""
    check_request(labels_request(), digits_model(), params.MAX_OPEN_PER_REQUESTER - 1)
    with pytest.raises(InvalidTransaction) as e:
        check_request(labels_request(), digits_model(), params.MAX_OPEN_PER_REQUESTER)
    assert e.value.code == "too_many_open_requests"
    wide = dataclasses.replace(score_model(),
                               output=OutputSchema("regression", (), 2, 3))
    req = dataclasses.replace(labels_request(rows=2049, fee=10**6), mode="values",
                              model_id=wide.job_id)
    with pytest.raises(InvalidTransaction) as e:
        check_request(req, wide, 0)
    assert e.value.code == "too_many_values"


# --- [PRED-LOTTERY.*] ---------------------------------------------------------------------

def test_seed_depends_on_the_later_block_and_the_request() -> None:
    """[PRED-LOTTERY.1] Another block hash or another request id gives another seed and
    (with 20 candidates) another draw: the requester cannot fix its executors in advance."""
    base = lottery_seed(h("r"), h("b"))
    assert lottery_seed(h("r"), h("b2")) != base and lottery_seed(h("r2"), h("b")) != base
    assert draw(base, POOL, 3) != draw(lottery_seed(h("r"), h("b2")), POOL, 3)


def test_too_few_candidates_and_requester_excluded() -> None:
    """[PRED-LOTTERY.2] The requester is never a candidate; repeats collapse; fewer candidates
    than k is ``too_few_executors``; an unsorted pool is a caller bug."""
    requester = POOL[0]
    pool = candidates([*POOL[:4], requester, POOL[1]], requester)
    assert pool == POOL[1:4]
    assert sorted(draw(h("s"), pool, 3)) == list(pool)
    with pytest.raises(InvalidTransaction) as e:
        draw(h("s"), pool[:2], 3)
    assert e.value.code == "too_few_executors"
    with pytest.raises(ValueError):
        draw(h("s"), list(reversed(POOL)), 3)


def test_draw_index_discards_the_biased_tail() -> None:
    """[PRED-LOTTERY.2] With n = 3, the last value below the limit maps to an index and the
    limit itself is discarded (2^256 is not a multiple of 3)."""
    limit = 2**256 - (2**256 % 3)
    assert draw_index(limit - 1, 3) == (limit - 1) % 3
    assert draw_index(limit, 3) is None and draw_index(2**256 - 1, 3) is None
    assert draw_index(2**256 - 1, 2) == 1  # a power of two: nothing discarded
    with pytest.raises(ValueError):
        draw_index(2**256, 3)


def test_draw_is_uniform_over_many_seeds() -> None:
    """[PRED-LOTTERY.2] Over 3000 fixed seeds drawing 3 of 6, each candidate is drawn about
    half the time (1500 expected; a 4.5-sigma band, deterministic inputs)."""
    pool = POOL[:6]
    counts = dict.fromkeys(pool, 0)
    for i in range(3000):
        for a in draw(lottery_seed(h(f"r{i}"), h("b")), pool, 3):
            counts[a] += 1
    assert all(1380 <= n <= 1620 for n in counts.values()), counts


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.integers(3, 20), st.data())
def test_draw_properties(seed: bytes, n: int, data: st.DataObject) -> None:
    """[PRED-LOTTERY.2] k distinct members of the pool, the same every time, and drawing more
    extends the smaller draw (the counter sequence is shared)."""
    k = data.draw(st.integers(1, n))
    pool = POOL[:n]
    got = draw(seed, pool, k)
    assert len(set(got)) == k and set(got) <= set(pool) and draw(seed, pool, k) == got
    assert draw(seed, pool, n)[:k] == got


# --- [PRED-ANSWER.*] ----------------------------------------------------------------------

def test_copied_commitment_does_not_open_for_the_copier() -> None:
    """[PRED-ANSWER.1] A lazy executor that copies an honest one's commitment cannot open it:
    with its own address the same output and salt give another hash. Salts are 32 bytes."""
    honest, lazy = addr("honest"), addr("lazy")
    c = answer_commitment(h("req"), honest, h("out"), h("salt"))
    assert answer_commitment(h("req"), lazy, h("out"), h("salt")) != c
    assert answer_commitment(h("req2"), honest, h("out"), h("salt")) != c
    with pytest.raises(FieldError):
        answer_commitment(h("req"), honest, h("out"), b"short")


def test_values_answer_shape() -> None:
    """[PRED-ANSWER.2] Wrong count, a bool, a value beyond int64 are refused; the hash is of
    the exact integers."""
    assert check_values([1, -2, 3], 3) == (1, -2, 3)
    for bad, n in [([1, 2], 3), ([1, True, 3], 3), ([2**63], 1), ([0] * 4097, 4097)]:
        with pytest.raises(FieldError):
            check_values(bad, n)
    assert values_hash([1, 2]) != values_hash([2, 1]) != values_hash([1, 2, 0])


# --- [PRED-AGREE.*] -----------------------------------------------------------------------

def test_majority_is_of_the_drawn() -> None:
    """[PRED-AGREE.1] Two matching answers of k = 5 with three no-shows are not a majority;
    three are."""
    drawn = list(POOL[:5])
    assert [majority(k) for k in (3, 5, 15)] == [2, 3, 8]
    two = {drawn[0]: h("x"), drawn[1]: h("x")}
    assert exact_agreement(drawn, two).answer is None
    three = {**two, drawn[2]: h("x")}
    assert exact_agreement(drawn, three).answer == h("x")


def test_answers_from_outside_the_draw_are_refused() -> None:
    """[PRED-AGREE.2] An answer from an executor that was not drawn cannot be counted."""
    with pytest.raises(ValueError):
        exact_agreement(list(POOL[:3]), {POOL[5]: h("x")})
    with pytest.raises(ValueError):
        tolerance_agreement(list(POOL[:3]), {POOL[5]: [1]}, 0)


def test_wrong_labels_are_outvoted() -> None:
    """[PRED-AGREE.2] [PRED-PAY.1] An executor that returns wrong labels is outvoted by the two
    honest ones, is not paid and forfeits."""
    drawn = list(POOL[:3])
    agreed = exact_agreement(drawn, {drawn[0]: h("right"), drawn[1]: h("wrong"),
                                     drawn[2]: h("right")})
    pay = settle(300, 0, agreed)
    assert agreed.answer == h("right") and agreed.disagreeing == (drawn[1],)
    assert drawn[1] not in dict(pay.executors) and pay.forfeit == (drawn[1],)


def test_tolerance_boundary_is_inclusive_and_exact() -> None:
    """[PRED-AGREE.3] A difference equal to the tolerance agrees; one more does not."""
    drawn = list(POOL[:3])
    at = tolerance_agreement(drawn, {drawn[0]: [0], drawn[1]: [10], drawn[2]: [10]}, 10)
    assert len(at.agreeing) == 3
    over = tolerance_agreement(drawn, {drawn[0]: [0], drawn[1]: [11], drawn[2]: [11]}, 10)
    assert over.agreeing == tuple(sorted(drawn[1:])) and over.disagreeing == (drawn[0],)
    assert distance([1, -5], [-2, 5]) == 10


answer_sets = st.integers(1, 7).flatmap(lambda half: st.lists(
    st.one_of(st.none(), st.sampled_from([h("x"), h("y"), h("z")])),
    min_size=2 * half + 1, max_size=2 * half + 1))


@settings(max_examples=150, deadline=None)
@given(answer_sets, st.integers(0, 10**6), st.integers(0, 500))
def test_exact_agreement_and_payout_properties(answers: list[Hash32 | None], fee: int,
                                               royalty: int) -> None:
    """[PRED-AGREE.1] [PRED-AGREE.2] [PRED-PAY.1] [PRED-PAY.2] The three groups partition the
    drawn; an answer exists iff some hash has a majority of k; the payout conserves the fee,
    pays only the agreeing, equally, with dust below their number."""
    drawn = list(POOL[:len(answers)])
    opened = {a: o for a, o in zip(drawn, answers, strict=True) if o is not None}
    agreed = exact_agreement(drawn, opened)
    parts = [*agreed.agreeing, *agreed.disagreeing, *agreed.no_shows]
    assert sorted(parts) == sorted(drawn)
    top = max((answers.count(x) for x in set(answers) if x is not None), default=0)
    assert (agreed.answer is not None) == (top >= majority(len(drawn)))
    pay = settle(fee, royalty, agreed)
    assert sum(n for _, n in pay.executors) + pay.royalty + pay.refund == fee
    if agreed.answer is None:
        assert pay.executors == () and pay.royalty == 0 and pay.refund == fee
        assert pay.forfeit == agreed.no_shows
    else:
        shares = {n for _, n in pay.executors}
        assert len(shares) == 1 and pay.refund < len(pay.executors)
        assert pay.royalty == fee * royalty // 1000
        assert set(pay.forfeit) == set(agreed.disagreeing) | set(agreed.no_shows)


values = st.lists(st.integers(-50, 50), min_size=2, max_size=2)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 4).flatmap(lambda half: st.lists(st.one_of(st.none(), values),
                                                       min_size=2 * half + 1,
                                                       max_size=2 * half + 1)),
       st.integers(0, 30), st.randoms(use_true_random=False))
def test_tolerance_agreement_properties(answers: list[list[int] | None], tol: int,
                                        rnd: object) -> None:
    """[PRED-AGREE.3] Every agreeing answer lies within the tolerance of the agreed one, the
    group holds a majority of k, and the outcome does not depend on the order answers
    arrived in."""
    drawn = list(POOL[:len(answers)])
    opened = {a: v for a, v in zip(drawn, answers, strict=True) if v is not None}
    agreed = tolerance_agreement(drawn, opened, tol)
    items = list(opened.items())
    rnd.shuffle(items)  # type: ignore[attr-defined]
    assert tolerance_agreement(drawn, dict(items), tol) == agreed
    if agreed.answer is not None:
        centre = next(v for v in opened.values() if values_hash(v) == agreed.answer)
        assert len(agreed.agreeing) >= majority(len(drawn))
        assert all(distance(opened[a], centre) <= tol for a in agreed.agreeing)


def test_no_majority_refunds_everything() -> None:
    """[PRED-PAY.2] Three different answers: the requester gets the whole fee back, nobody is
    paid, no royalty, and nobody who answered forfeits."""
    drawn = list(POOL[:3])
    agreed = exact_agreement(drawn, {drawn[0]: h("x"), drawn[1]: h("y")})
    pay = settle(999, 500, agreed)
    assert (pay.executors, pay.royalty, pay.refund, pay.forfeit) == ((), 0, 999, (drawn[2],))


def test_payout_dust_returns_to_requester() -> None:
    """[PRED-PAY.1] fee 1000, royalty 125 ‰, three agreeing: 125 royalty, 291 each, dust 2."""
    drawn = list(POOL[:3])
    pay = settle(1000, 125, exact_agreement(drawn, dict.fromkeys(drawn, h("x"))))
    assert pay.royalty == Amount(125) and {n for _, n in pay.executors} == {291}
    assert pay.refund == 2




def test_ciphertext_mode_needs_a_small_single_output_model() -> None:
    """[PRED-CKKS.1] A ciphertext request on a model with two outputs, or 129 features, is
    ``not_ckks_model``; one output and 128 features is accepted."""
    req = dataclasses.replace(labels_request(), mode="ciphertext")
    two = dataclasses.replace(score_model(), output=OutputSchema("regression", (), 2, 0))
    wide = dataclasses.replace(score_model(), input=InputSchema("float64", 129))
    for model in (two, wide):
        with pytest.raises(InvalidTransaction) as e:
            check_request(req, model, 0)
        assert e.value.code == "not_ckks_model"
    check_request(req, dataclasses.replace(score_model(), input=InputSchema("float64", 128)), 0)
