"""protocol_spec/vectors/predict.json: the [PRED-*] rules on fixed inputs.

A second implementation decodes each wire form, re-derives each lottery draw, each
agreement and each payout from the listed inputs, and must get the listed outputs.
``LC_WRITE_VECTORS=1`` regenerates the file after a deliberate change.
"""

from __future__ import annotations

from typing import Any

from chain.encoding import decode, encode
from chain.errors import DecodeError
from chain.predict.agreement import Agreement, exact_agreement, tolerance_agreement
from chain.predict.answer import answer_commitment, values_hash
from chain.predict.io import (
    INVALID_REASONS,
    decode_rows,
    encode_rows,
    invalid_blob,
    labels_blob,
    output_hash,
)
from chain.predict.lottery import candidates, draw, lottery_seed
from chain.predict.model import DeployedModel, InputSchema
from chain.predict.payout import settle
from chain.predict.request import PredictionRequest
from chain.types import Hash32
from tests.ledger.vector_files import check_vector_file
from tests.predict.cases import addr, digits_model, h, labels_request, score_model

NAMES = [f"m{i}" for i in range(12)]


def _rejected(decoder: Any, wire: list[Any]) -> str:
    try:
        decoder(decode(encode(wire)))
    except DecodeError as e:
        return e.code
    raise AssertionError(f"accepted: {wire}")


def _agreement_json(a: Agreement) -> dict[str, Any]:
    return {"answer": a.answer.hex() if a.answer else None,
            "agreeing": [x.hex() for x in a.agreeing],
            "disagreeing": [x.hex() for x in a.disagreeing],
            "no_shows": [x.hex() for x in a.no_shows]}


def lottery_cases() -> list[dict[str, Any]]:
    out = []
    for n, k, label in [(3, 3, "a"), (5, 3, "b"), (12, 3, "c"), (12, 7, "d"), (15, 15, "e")]:
        members = [addr(x) for x in [*NAMES, "n12", "n13", "n14"]][:n]
        requester = addr("requester")
        pool = candidates([*members, requester, members[0]], requester)
        seed = lottery_seed(h(f"request:{label}"), h(f"block:{label}"))
        out.append({"request_id": h(f"request:{label}").hex(),
                    "block_hash": h(f"block:{label}").hex(), "seed": seed.hex(),
                    "candidates": [a.hex() for a in pool], "k": k,
                    "drawn": [a.hex() for a in draw(seed, pool, k)]})
    return out


def exact_cases() -> list[dict[str, Any]]:
    """(name, k, answers by executor index: output label or None for a no-show)."""
    x, y, z = h("out:x"), h("out:y"), h("out:z")
    table: list[tuple[str, list[Hash32 | None]]] = [
        ("unanimous", [x, x, x]),
        ("one_liar", [x, y, x]),
        ("one_no_show", [x, None, x]),
        ("three_way_split", [x, y, z]),
        ("two_no_shows", [x, None, None]),
        ("k5_two_two_one_tie", [x, x, y, y, z]),
        ("k5_three_of_five", [y, x, y, z, y]),
        ("k5_majority_of_drawn_not_of_opened", [x, x, None, None, None]),
    ]
    out = []
    for name, answers in table:
        drawn = [addr(n) for n in NAMES[:len(answers)]]
        opened = {a: o for a, o in zip(drawn, answers, strict=True) if o is not None}
        result = exact_agreement(drawn, opened)
        out.append({"name": name, "drawn": [a.hex() for a in drawn],
                    "answers": {a.hex(): o.hex() for a, o in opened.items()},
                    "agreement": _agreement_json(result)})
    return out


def tolerance_cases() -> list[dict[str, Any]]:
    table: list[tuple[str, int, list[list[int] | None]]] = [
        ("within", 5, [[100, -200], [103, -198], [96, -204]]),
        ("one_far", 5, [[100, -200], [103, -198], [900, -200]]),
        ("chain_needs_centre", 5, [[0], [5], [10]]),
        ("tie_without_majority", 0, [[1], [2], [3], [1], [2]]),
        ("tie_by_hash", 1, [[0, 0], [1, 0], [0, 1], [1, 1], [9, 9]]),
        ("no_majority", 1, [[0], [10], [20]]),
        ("no_show_breaks_it", 1, [[0], [1], None, None, [40]]),
        ("boundary_equal_is_in", 7, [[0, 0], [7, -7], [0, 8]]),
    ]
    out = []
    for name, tol, answers in table:
        drawn = [addr(n) for n in NAMES[:len(answers)]]
        opened = {a: v for a, v in zip(drawn, answers, strict=True) if v is not None}
        result = tolerance_agreement(drawn, opened, tol)
        out.append({"name": name, "tolerance": tol, "drawn": [a.hex() for a in drawn],
                    "answers": {a.hex(): v for a, v in opened.items()},
                    "answer_hashes": {a.hex(): values_hash(v).hex() for a, v in opened.items()},
                    "agreement": _agreement_json(result)})
    return out


def payout_cases() -> list[dict[str, Any]]:
    x, y = h("out:x"), h("out:y")
    table: list[tuple[str, int, int, list[Hash32 | None]]] = [
        ("even_no_royalty", 900, 0, [x, x, x]),
        ("dust_and_royalty", 1000, 125, [x, x, x]),
        ("minority_forfeits", 1001, 100, [x, y, x]),
        ("no_show_forfeits", 777, 333, [x, x, None]),
        ("no_majority_refunds", 500, 100, [x, y, None]),
        ("k5_max_royalty", 10_007, 500, [x, x, x, y, None]),
    ]
    out = []
    for name, fee, royalty, answers in table:
        drawn = [addr(n) for n in NAMES[:len(answers)]]
        opened = {a: o for a, o in zip(drawn, answers, strict=True) if o is not None}
        pay = settle(fee, royalty, exact_agreement(drawn, opened))
        out.append({"name": name, "fee": fee, "royalty_permille": royalty,
                    "drawn": [a.hex() for a in drawn],
                    "answers": {a.hex(): o.hex() for a, o in opened.items()},
                    "executors": [[a.hex(), n] for a, n in pay.executors],
                    "royalty": pay.royalty, "refund": pay.refund,
                    "forfeit": [a.hex() for a in pay.forfeit]})
    return out


def wire_cases() -> dict[str, Any]:
    model, score = digits_model(), score_model()
    request = labels_request()
    mw, rw = model.to_wire(), request.to_wire()
    bad_models = {
        "format_torch_pickle": [*mw[:2], "torch-pickle", *mw[3:]],
        "royalty_over_half": [*mw[:6], 501],
        "one_label": [*mw[:4], ["classes", ["0"]], *mw[5:]],
        "duplicate_labels": [*mw[:4], ["classes", ["a", "a"]], *mw[5:]],
        "zero_features": [*mw[:3], ["float32", 0], *mw[4:]],
        "float16_input": [*mw[:3], ["float16", 64], *mw[4:]],
        "scale_19": [*mw[:4], ["regression", 1, 19], *mw[5:]],
        "short": mw[:6],
    }
    bad_requests = {
        "k_even": [*rw[:4], 4, *rw[5:]],
        "k_one": [*rw[:4], 1, *rw[5:]],
        "k_17": [*rw[:4], 17, *rw[5:]],
        "rows_zero": [*rw[:2], 0, *rw[3:]],
        "rows_4097": [*rw[:2], 4097, *rw[3:]],
        "tolerance_in_labels_mode": [*rw[:6], 3, *rw[7:]],
        "unknown_mode": [*rw[:5], "logits", *rw[6:]],
        "window_too_short": [*rw[:7], 999, rw[8]],
        "fee_zero": [*rw[:3], 0, *rw[4:]],
    }
    return {
        "model_digits": encode(mw).hex(),
        "model_scores": encode(score.to_wire()).hex(),
        "request_labels": encode(rw).hex(),
        "invalid_models": [{"name": n, "wire": encode(w).hex(),
                            "error": _rejected(DeployedModel.from_wire, w)}
                           for n, w in bad_models.items()],
        "invalid_requests": [{"name": n, "wire": encode(w).hex(),
                              "error": _rejected(PredictionRequest.from_wire, w)}
                             for n, w in bad_requests.items()],
    }


def io_cases() -> dict[str, Any]:
    rows32 = encode_rows("float32", 3, [0.5, -1.0, 2.25, 3.0, 0.0, -0.125])
    rows64 = encode_rows("float64", 2, [0.1, 1e300])
    labels = labels_blob([3, 0, 9], 10)
    schema = InputSchema("float32", 3)
    checks = {
        "ok": (rows32, 2),
        "wrong_rows": (rows32, 3),
        "wrong_dtype": (rows64, 1),
        "truncated_data": (encode(["predict-rows/v1", "float32", 3, 2, b"\x00" * 20]), 2),
        "nan": (encode_rows("float32", 3, [float("nan"), 0.0, 0.0]), 1),
        "not_msgpack": (b"\x80\x04\x95", 1),
    }
    decoded = {}
    for name, (blob, rows) in checks.items():
        got = decode_rows(blob, schema, rows)
        decoded[name] = {"blob": blob.hex(), "rows": rows,
                         "result": got if isinstance(got, str) else "ok"}
    return {
        "rows_float32_2x3": rows32.hex(), "rows_float64_1x2": rows64.hex(),
        "decode_against_float32_3": decoded,
        "labels_3_0_9": {"blob": labels.hex(), "output_hash": output_hash(labels).hex()},
        "invalid": {r: {"blob": invalid_blob(r).hex(),
                        "output_hash": output_hash(invalid_blob(r)).hex()}
                    for r in INVALID_REASONS},
    }


def build_vectors() -> dict[str, Any]:
    executor = addr("m0")
    return {
        "about": "prediction requests (protocol_spec/predict.md): model and request wire forms "
                 "with rejected variants, lottery draws, answer commitments, exact and tolerance "
                 "agreement, payouts with royalty and dust, input and answer blobs with their "
                 "output hashes; addresses are SHA-256('addr:<name>')"
                 "[:20]",
        "wire": wire_cases(),
        "lottery": lottery_cases(),
        "commitment": {"request_id": h("request:a").hex(), "executor": executor.hex(),
                       "output_hash": h("out:x").hex(), "salt": h("salt").hex(),
                       "commitment": answer_commitment(h("request:a"), executor, h("out:x"),
                                                       h("salt")).hex()},
        "exact_agreement": exact_cases(),
        "tolerance_agreement": tolerance_cases(),
        "payouts": payout_cases(),
        "io": io_cases(),
    }


def test_predict_vectors_match_committed_file() -> None:
    """[PRED-MODEL.1] [PRED-REQ.1] [PRED-REQ.2] [PRED-REQ.3] [PRED-REQ.6] [PRED-LOTTERY.1]
    [PRED-LOTTERY.2] [PRED-ANSWER.1] [PRED-ANSWER.2] [PRED-AGREE.1] [PRED-AGREE.2]
    [PRED-AGREE.3] [PRED-PAY.1] [PRED-PAY.2] [PRED-IO.1] [PRED-IO.2] [PRED-IO.3] The generated
    vectors are the committed file."""
    check_vector_file("predict.json", build_vectors())


def test_vector_wire_forms_round_trip() -> None:
    """[PRED-MODEL.1] [PRED-REQ.1] Every valid wire form decodes and re-encodes to its bytes;
    every listed invalid one fails as a bad field."""
    vectors = build_vectors()["wire"]
    for key, cls in [("model_digits", DeployedModel), ("model_scores", DeployedModel),
                     ("request_labels", PredictionRequest)]:
        raw = bytes.fromhex(vectors[key])
        assert encode(cls.from_wire(decode(raw)).to_wire()) == raw  # type: ignore[attr-defined]
    for case in vectors["invalid_models"] + vectors["invalid_requests"]:
        assert case["error"] == "bad_field", case["name"]


def test_vector_payouts_conserve_the_fee() -> None:
    """[PRED-PAY.1] [PRED-PAY.2] In every payout vector the fee is fully accounted for."""
    for case in build_vectors()["payouts"]:
        paid = sum(n for _, n in case["executors"])
        assert paid + case["royalty"] + case["refund"] == case["fee"], case["name"]


def test_vector_draws_are_distinct_candidates() -> None:
    """[PRED-LOTTERY.2] Each draw is k distinct candidates, never the requester."""
    requester = addr("requester").hex()
    for case in build_vectors()["lottery"]:
        assert len(set(case["drawn"])) == case["k"] == len(case["drawn"])
        assert set(case["drawn"]) <= set(case["candidates"])
        assert requester not in case["candidates"]
        assert case["candidates"] == sorted(case["candidates"])
