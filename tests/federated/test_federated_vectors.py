"""Vectors for federated jobs: protocol_spec/vectors/federated.json.

Inputs and outputs of every pure rule of protocol_spec/federated.md, small enough
to check by hand and chosen at the edges: quantisation ties and clamps [FED-QUANT.*],
update and model blobs with their hashes and a commitment [FED-QUANT.5]
[FED-MODEL.1-2] [FED-COMMIT.1], refused blobs with their error codes; each
aggregation rule on small inputs with ties, outliers, copies and a sign-flipped
attacker [FED-AGG.*]; model steps [FED-MODEL.3]; splits with dust and one toy
job from updates to payout [FED-REWARD.*]; the ``federated/v1`` fields of an open
and a private spec and refused ones [FED-SPEC.*]; a mask, a masked round with a
dropout, and Shamir shares of a seed [FED-PRIV.*]. A second implementation reproduces
every value from the spec alone. Regenerate with ``LC_WRITE_VECTORS=1`` after a
deliberate change and commit the diff.
"""

from __future__ import annotations

import hashlib
from fractions import Fraction
from typing import Any

from chain.encoding import decode, encode
from chain.errors import DecodeError
from chain.federated.blobs import ModelBlob, UpdateBlob, update_commitment, update_hash
from chain.federated.centered import (
    FAR_SQ,
    agreeing,
    centered_clip,
    model_step,
)
from chain.federated.errors import BlobError
from chain.federated.fixed import Q_MAX, quantise, rdiv
from chain.federated.fltrust import norm_factor, normalise, square_norm, trust
from chain.federated.open.steps import end_participants
from chain.federated.private.masking import (
    MaskedBlob,
    mask,
    mask_update,
    private_aggregate,
    unmask_sum,
)
from chain.federated.private.shamir import recover
from chain.federated.private.shamir import split as shamir_split
from chain.federated.rewards import (
    COPY_TRUST,
    NORM_OUTLIER_SQ,
    job_outliers,
    lower_median,
    norm_outliers,
    payout,
    split,
)
from chain.federated.robust import krum_scores, krum_selected, median, multi_krum, trimmed_mean
from chain.federated.rounds import (
    CENTERED_CLIP,
    FLTRUST,
    MEDIAN,
    MULTI_KRUM,
    TRIMMED_MEAN,
    Aggregation,
    aggregate_round,
    apply_aggregate,
)
from chain.federated.spec import PRIVATE, FederatedSpec
from chain.jobspec import Holdout
from chain.types import Amount, Hash32
from tests.federated import toy
from tests.federated.test_job_copies import job_copy_vectors
from tests.ledger.vector_files import check_vector_file


def fixed(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def addr(name: str) -> bytes:
    return fixed(f"address:{name}")[:20]


JOB_ID = fixed("federated vector job")

QUANT_CASES: list[tuple[str, int]] = [
    ("0", 16), ("1", 16), ("-1", 16), ("0.5", 0 + 16), ("1/131072", 16), ("3/131072", 16),
    ("5/131072", 16), ("-1/131072", 16), ("-3/131072", 16), ("1/3", 16), ("-1/3", 16),
    ("1/3", 20), ("32767.99999", 16), ("32768", 16), ("-32768", 16), ("-32769", 16),
    ("1e-30", 24), ("2047.9999999", 20), ("-2048", 20), ("123456789/1000", 8),
]
"""[FED-QUANT.2] Exact rationals: ties (1/2, 3/2, 5/2 steps), thirds, the clamp at ±Q."""

RDIV_CASES = [(7, 2), (5, 2), (-5, 2), (-7, 2), (1, 3), (-2, 3), (10, 4), (14, 4), (-14, 4),
              (0, 5), ((1 << 100) + 1, 2), (-(1 << 100) - 1, 2)]


def _refused(kind: type[UpdateBlob] | type[ModelBlob], raw: bytes) -> str:
    try:
        kind.from_bytes(raw)
    except BlobError as e:
        return e.code
    raise AssertionError(f"accepted {raw.hex()}")


def _bad_blobs() -> list[dict[str, Any]]:
    good = UpdateBlob(JOB_ID, 2, addr("alice"), 16, (1, -2, 3)).to_bytes()
    model = ModelBlob(16, (1, 2)).to_bytes()
    int_min = (-(1 << 31)).to_bytes(4, "little", signed=True)
    cases = {
        "update_bad_magic": (UpdateBlob, b"LCFX" + good[4:]),
        "update_version_2": (UpdateBlob, good[:4] + b"\x02" + good[5:]),
        "update_scale_30": (UpdateBlob, good[:5] + b"\x1e" + good[6:]),
        "update_reserved_set": (UpdateBlob, good[:6] + b"\x01\x00" + good[8:]),
        "update_round_0": (UpdateBlob, good[:40] + bytes(4) + good[44:]),
        "update_dims_0": (UpdateBlob, good[:64] + bytes(4) + good[68:]),
        "update_one_byte_short": (UpdateBlob, good[:-1]),
        "update_trailing_byte": (UpdateBlob, good + b"\x00"),
        "update_int32_min": (UpdateBlob, good[:68] + int_min + good[72:]),
        "update_header_only_67": (UpdateBlob, good[:67]),
        "model_as_update": (UpdateBlob, model),
        "model_trailing_byte": (ModelBlob, model + b"\x00"),
        "model_int32_min": (ModelBlob, model[:12] + int_min + model[16:]),
    }
    return [{"name": name, "kind": "update" if kind is UpdateBlob else "model",
             "hex": raw.hex(), "error": _refused(kind, raw)}
            for name, (kind, raw) in cases.items()]


def _quant_vectors() -> dict[str, Any]:
    update = UpdateBlob(JOB_ID, 2, addr("alice"), 16,
                        (0, 1, -1, 65536, -65536, (1 << 31) - 1, -(1 << 31) + 1))
    raw = update.to_bytes()
    salt = fixed("federated vector salt")
    model = ModelBlob(16, (65536, -32768, 0, 7))
    model_raw = model.to_bytes()
    return {
        "quantise": [{"x": x, "scale_bits": s, "q": quantise(Fraction(x), s)}
                     for x, s in QUANT_CASES],
        "quantise_float64": [{"x_hex": float(x).hex(), "scale_bits": 16,
                              "q": quantise(float(x), 16)}
                             for x in ("0.1", "-0.1", "2.5e-05", "7.62939453125e-06")],
        "rdiv": [{"n": str(n), "d": d, "q": str(rdiv(n, d))} for n, d in RDIV_CASES],
        "update_blob": {"job_id": JOB_ID.hex(), "round": 2, "participant": addr("alice").hex(),
                        "scale_bits": 16, "values": list(update.values), "hex": raw.hex(),
                        "update_hash": update_hash(raw).hex(),
                        "commitment_salt": salt.hex(),
                        "commitment": update_commitment(JOB_ID, 2, addr("alice"),
                                                        update_hash(raw), salt).hex()},
        "model_blob": {"scale_bits": 16, "values": list(model.values), "hex": model_raw.hex(),
                       "model_hash": model.hash().hex()},
        "invalid_blobs": _bad_blobs(),
    }


TRIMMED_CASES = [
    ([(1, 5), (2, 6), (3, 7), (1000, -1000)], 1),
    ([(1, -1), (2, -2)], 0),
    ([(-3, 3), (-2, 2)], 0),
    ([(-9, 0), (1, 0), (1, 1), (2, 1), (9, 0)], 2),
    ([(Q_MAX, -Q_MAX), (Q_MAX, -Q_MAX), (Q_MAX - 1, -Q_MAX + 1)], 0),
]
KRUM_CASES = [
    ([(10, 20), (12, 18), (9, 22), (11, 19), (-400, -800), (600, 0)], 2),
    ([(1, 1), (2, 2), (3, 3), (4, 4)], 1),  # equal scores: ties by index
    ([(0, 0), (1, 0), (0, 1), (Q_MAX, -Q_MAX), (-Q_MAX, Q_MAX)], 0),  # f = 0: the mean
    ([(5, 5, 5), (6, 4, 5), (5, 6, 4), (4, 5, 6), (-5, -5, -5), (50, 50, 50), (5, 5, 6)], 2),
]
CENTERED_CASES = [
    # a zero center: no agreement step; a far update (beyond 3 x the median distance) out
    ([(10, 20), (12, 18), (9, 22), (11, 19), (-4000, -8000)], (0, 0)),
    # a center most agree with: the one pointing against it is out, a far one too
    ([(10, 20), (12, 18), (30, 70), (11, 19), (-40, -80)], (10, 21)),
    # no majority agrees (2 of 4): everyone counts; rdiv ties
    ([(1, 1), (3, -5), (-7, 2), (-2, -2)], (1, 1)),
    # coordinates at +-Q: the differences from the center clamp [FED-QUANT.3]
    ([(Q_MAX, -Q_MAX, 7), (Q_MAX - 1, -Q_MAX, 9), (-Q_MAX, Q_MAX, 8)], (-Q_MAX, Q_MAX, 1)),
    # most equal the center: radius 0, the others clipped to nothing
    ([(5, 5), (5, 5), (6, 5), (5, 6), (100, -100)], (5, 5)),
    # one update
    ([(3, -4)], (1, 1)),
]
"""[FED-AGG.10] (updates, center); the first two rows of case 5 are equal on purpose:
centered_clip itself does not exclude copies (the round does, [FED-AGG.8])."""
MEDIAN_CASES = [
    [(5, 1), (-100, 2), (7, 3)],
    [(1, 2), (2, 3)],
    [(-3, -5), (-2, -4)],
    [(0, 10), (100, 11), (4, -7), (6, 99)],
]


def _vec(v: tuple[int, ...]) -> list[int]:
    return list(v)


def _fltrust_vectors() -> dict[str, Any]:
    ref = (200, -100, 50, 0)
    updates = {
        "honest_a": (180, -90, 60, 10), "honest_b": (220, -120, 40, -5),
        "sign_flipped_x100": (-18000, 9000, -6000, -1000), "scaled_x100": (20000, -9000, 5500, 0),
        "zero": (0, 0, 0, 0), "orthogonal": (0, 0, 0, 7),
    }
    rows = []
    ref_n2 = square_norm(ref)
    for name, u in updates.items():
        n2 = square_norm(u)
        t = trust(u, ref)
        rows.append({"name": name, "update": _vec(u), "square_norm": n2, "trust": t,
                     "norm_factor": str(norm_factor(n2, ref_n2)) if t else None,
                     "normalised": _vec(normalise(u, norm_factor(n2, ref_n2))) if t else None})
    named = {addr(name): u for name, u in updates.items()}
    result = aggregate_round(Aggregation(FLTRUST), named, ref, 4)
    return {"reference": _vec(ref), "reference_square_norm": ref_n2, "updates": rows,
            "round": _round_json(result, updates)}


def _round_json(result: Any, names: dict[str, Any]) -> dict[str, Any]:
    who = {addr(n): n for n in names}
    return {"aggregate": _vec(result.aggregate),
            "weights": [{"name": who[a], "address": a.hex(), "weight": w}
                        for a, w in result.weights],
            "rejected": sorted(who[a] for a in result.rejected),
            "duplicates": sorted(who[a] for a in result.duplicates)}


def _round_vectors() -> list[dict[str, Any]]:
    updates = {"p1": (10, 20, 30, 40), "p2": (12, 18, 33, 41), "p3": (9, 22, 29, 38),
               "p4": (12, 18, 33, 41), "p5": (-500, -900, -1200, -1600), "p6": (0, 0, 0, 0)}
    ref = (11, 19, 31, 40)
    model = (65536, -65536, Q_MAX - 5, 0)
    out = []
    center = (1, -1, 2, 0)
    for agg in (Aggregation(TRIMMED_MEAN, 1), Aggregation(MEDIAN), Aggregation(FLTRUST),
                Aggregation(TRIMMED_MEAN, 0), Aggregation(MULTI_KRUM, 1),
                Aggregation(CENTERED_CLIP, 0), Aggregation(FLTRUST, 1)):
        c = center if agg in (Aggregation(CENTERED_CLIP, 0), Aggregation(FLTRUST, 1)) else None
        result = aggregate_round(agg, {addr(n): u for n, u in updates.items()},
                                 ref if agg.rule == FLTRUST else None, 4, c)
        new = apply_aggregate(model, result.aggregate)
        out.append({"rule": agg.to_wire(), **({"center": _vec(c)} if c else {}),
                    **_round_json(result, updates),
                    "model_before": _vec(model), "model_after": _vec(new),
                    "model_hash_before": ModelBlob(16, model).hash().hex(),
                    "model_hash_after": ModelBlob(16, new).hash().hex()})
    return [{"updates": {n: _vec(u) for n, u in updates.items()}, "reference": _vec(ref)},
            *out]


def _toy_job() -> dict[str, Any]:
    people = {addr("honest_1"): toy.honest([5, -3, 7], 1), addr("honest_2"): toy.honest([2], 2),
              addr("honest_3"): toy.honest([-4, 1], 3), addr("free_rider"): toy.free_rider,
              addr("sign_flipper"): toy.sign_flipper(10)}
    names = {addr(n): n for n in ("honest_1", "honest_2", "honest_3", "free_rider",
                                  "sign_flipper")}
    target = (4000, -2400, 800, 1600)
    run = toy.run(Aggregation(FLTRUST), target, people, 3, 1_000_003, 600)
    return {
        "rule": Aggregation(FLTRUST).to_wire(), "initial_model": [0, 0, 0, 0],
        "target": list(target), "bounty": 1_000_003, "loo_permille": 600,
        "loss": "sum of (model_j - target_j)**2, standing for a voted hidden loss",
        "rounds": [{"reference": _vec(tuple(r.reference or ())),
                    "updates": {names[a]: _vec(tuple(u)) for a, u in sorted(r.updates.items())},
                    "weights": {names[a]: w for a, w in sorted(ws.items())}}
                   for r, ws in zip(run.rounds, run.weights, strict=True)],
        "final_model": _vec(run.final), "final_loss": run.final_loss,
        "loo_losses": {names[a]: v for a, v in sorted(run.loo_losses.items())},
        "payout": {"paid": {names[a]: v for a, v in run.payout.paid},
                   "refund": run.payout.refund, "round_pool": run.payout.round_pool,
                   "loo_pool": run.payout.loo_pool},
    }


def _reward_vectors() -> dict[str, Any]:
    splits = [(10, {"a": 1, "b": 1, "c": 1}), (7, {"a": 1, "b": 2}), (100, {"a": 0, "b": 3}),
              (1_000_000_007, {"a": 65536, "b": 46340, "c": 1, "d": 0}),
              (5, {"a": 2**64 - 1, "b": 2**64 - 1, "c": 1})]
    cases = []
    for total, w in splits:
        shares = split(total, {addr(k): v for k, v in w.items()})
        cases.append({"total": total, "weights": {k: str(v) for k, v in w.items()},
                      "shares": {k: shares[addr(k)] for k in w}})
    payouts = []
    for bounty, lam, weights, final, loo in (
            (100, 0, [{"a": 1, "b": 1}, {"a": 1, "b": 0}, {"a": 1, "c": 0}], None, None),
            (1001, 300, [{"a": 3, "b": 1}], 100, {"a": 100, "b": 150}),
            (1001, 300, [{"a": 3, "b": 1}], 100, {"a": 100, "b": 90}),
            (50, 300, [{"a": 0}], 5, {"a": 1}),
            (90, 1000, [{"a": 1}, {"a": 0, "c": 0}], 10, {"a": 12, "c": 1000})):
        p = payout(bounty, lam, [{addr(k): v for k, v in ws.items()} for ws in weights],
                   final, None if loo is None else {addr(k): v for k, v in loo.items()})
        payouts.append({"bounty": bounty, "loo_permille": lam, "round_weights": weights,
                        "final_loss": final, "loo_losses": loo,
                        "paid": {k: p.of(addr(k)) for k in sorted({k for ws in weights
                                                                   for k in ws})},
                        "refund": p.refund, "round_pool": p.round_pool,
                        "loo_pool": p.loo_pool})
    return {"splits": cases, "payouts": payouts, "toy_job": _toy_job(),
            "weight_steps": _weight_step_vectors()}


def _weight_step_vectors() -> dict[str, Any]:
    """[FED-REWARD.7] [FED-REWARD.8] [FED-REWARD.9] Each step on its own, and one round in
    which both round steps act."""
    norm_cases = [([5, 6, 7, 8], [100, 121, 100, 10**6]), ([5, 6, 7], [100, 100, 10_000]),
                  ([5, 6, 7], [100, 100, 10_001]), ([0, 0, 0, 9, 9], [1, 1, 1, 400, 500])]
    ups = {"a": (1000, 2000, -500), "b": (1010, 1990, -480), "c": (990, 2030, -520),
           "d": (-300, 2000, 900), "e": (100_000, 200_000, -50_000), "f": (0, 0, 0)}
    ref = (1000, 2000, -500)
    result = aggregate_round(Aggregation(FLTRUST), {addr(n): u for n, u in ups.items()}, ref, 3)
    raw = {n: trust(u, ref) for n, u in ups.items()}
    names = sorted(ups)
    pairs = {f"{x}-{y}": trust(ups[x], ups[y]) for i, x in enumerate(names)
             for y in names[i + 1:]}
    job_rounds = [{"a": 100, "b": 80, "c": 60, "d": 30},
                  {"a": 100, "b": 80, "c": 60, "d": 29, "e": 70},
                  {"a": 0, "b": 0, "c": 0, "d": 0, "e": 0}]
    addressed = [{addr(k): v for k, v in ws.items()} for ws in job_rounds]
    p = payout(1000, 500, addressed, 10, {addr(k): 20 for k in "abcde"})
    return {
        "copy_trust": COPY_TRUST, "norm_outlier_square": NORM_OUTLIER_SQ,
        "norm_outliers": [{"weights": w, "square_norms": n, "result": norm_outliers(w, n)}
                          for w, n in norm_cases],
        "round": {"rule": Aggregation(FLTRUST).to_wire(), "reference": _vec(ref),
                  "updates": {n: _vec(u) for n, u in ups.items()},
                  "square_norms": {n: square_norm(u) for n, u in ups.items()},
                  "trusts": raw, "pair_trusts": pairs,
                  "weights": {n: result.weight_of(addr(n)) for n in names}},
        "job": {"round_weights": job_rounds,
                "outliers": sorted(k for k in "abcde" if addr(k) in job_outliers(addressed)),
                "end_ballot": [k for k in "abcde" if addr(k) in end_participants(addressed)],
                "bounty": 1000, "loo_permille": 500, "final_loss": 10, "loo_losses": 20,
                "paid": {k: p.of(addr(k)) for k in "abcde"}, "refund": p.refund},
    }


def _spec_vectors() -> dict[str, Any]:
    holdout = Holdout(Hash32(fixed("federated vector pool")), 100, 300, 1, Amount(50), 60_000,
                      0.0)
    open_spec = FederatedSpec(
        initial_model=Hash32(fixed("federated vector initial model")), dims=650, scale_bits=16,
        rounds=10, min_participants=4, max_participants=6,
        aggregation=Aggregation(TRIMMED_MEAN, 1), target_accuracy_ppm=950_000, holdout=holdout,
        privacy="open", dp_clip=0, dp_noise_permille=0, commit_window_ms=60_000,
        reveal_window_ms=60_000, aggregate_window_ms=30_000, loo_permille=600)
    private = FederatedSpec(**{**{f: getattr(open_spec, f) for f in open_spec.__slots__},
                               "privacy": PRIVATE, "dp_clip": 1 << 20,
                               "dp_noise_permille": 800, "loo_permille": 0,
                               "aggregation": Aggregation(TRIMMED_MEAN, 0),
                               "target_accuracy_ppm": None})
    wire = open_spec.to_wire()
    cohort = sorted(addr(n) for n in ("o1", "o2", "o3", "o4", "o5"))
    named = FederatedSpec(**{**{f: getattr(open_spec, f) for f in open_spec.__slots__},
                             "cohort": tuple(cohort)})  # [FED-SPEC.4]
    invalid = {
        "twelve_elements": wire[:12],
        "trim_2_with_min_4": [*wire[:6], ["trimmed_mean", 2], *wire[7:]],
        "median_with_trim": [*wire[:6], ["median", 1], *wire[7:]],
        "open_with_noise": [*wire[:10], [0, 5], *wire[11:]],
        "private_fltrust": [*private.to_wire()[:6], ["fltrust", 0], *private.to_wire()[7:]],
        "private_with_loo": [*private.to_wire()[:12], 1],
        "two_finalists": [*wire[:8], [*wire[8][:3], 2, *wire[8][4:]], *wire[9:]],
        "scale_bits_25": [*wire[:2], 25, *wire[3:]],
        "accuracy_as_float": [*wire[:7], 0.95, *wire[8:]],
        "cohort_empty": [*wire, []],
        "cohort_unsorted": [*wire, [cohort[1], cohort[0], *cohort[2:]]],
        "cohort_repeated": [*wire, [cohort[0], *cohort[:4]]],
        "cohort_below_min_participants": [*wire, cohort[:3]],
        "cohort_short_address": [*wire, [cohort[0][:19], *cohort[1:]]],
        "fifteen_elements": [*named.to_wire(), 0],
    }
    out = []
    for name, w in invalid.items():
        try:
            FederatedSpec.from_wire(decode(encode(w)))
        except DecodeError as e:
            out.append({"name": name, "wire": encode(w).hex(), "error": e.code})
            continue
        raise AssertionError(f"accepted {name}")
    return {"open": encode(wire).hex(), "private": encode(private.to_wire()).hex(),
            "cohort": {"names": ["o1", "o2", "o3", "o4", "o5"],
                       "spec": encode(named.to_wire()).hex()},
            "invalid": out}


def _private_vectors() -> dict[str, Any]:
    names = ("p1", "p2", "p3")
    updates = {addr("p1"): (100, -7, 0), addr("p2"): (-(1 << 31) + 1, 5, 3),
               addr("p3"): (42, 42, 42)}
    everyone = sorted(updates)

    def pair(a: bytes, b: bytes) -> bytes:
        lo, hi = sorted((a, b))
        return fixed(f"pair seed {lo.hex()} {hi.hex()}")

    gone = addr("p3")
    masked = {a: mask_update(updates[a], a, fixed(f"self seed {a.hex()}"),
                             {b: pair(a, b) for b in everyone if b != a}, JOB_ID, 4)
              for a in everyone if a != gone}
    selfs = {a: fixed(f"self seed {a.hex()}") for a in masked}
    dropped = {gone: {a: pair(a, gone) for a in masked}}
    total = unmask_sum(masked, selfs, dropped, JOB_ID, 4, 3)
    who = {addr(n): n for n in names}
    seed = fixed("shamir vector seed")
    coeffs = [int.from_bytes(fixed("c1"), "big"), int.from_bytes(fixed("c2"), "big")]
    shares = shamir_split(seed, coeffs, 5)
    assert recover([shares[4], shares[0], shares[2]], 3) == seed
    return {
        "mask": {"kind": "pair", "seed": fixed("mask seed").hex(), "job_id": JOB_ID.hex(),
                 "round": 4, "words": [str(w) for w in mask("pair", fixed("mask seed"),
                                                            JOB_ID, 4, 4)]},
        "round": {"job_id": JOB_ID.hex(), "round": 4,
                  "participants": [{"name": who[a], "address": a.hex(),
                                    "update": _vec(updates[a]),
                                    "self_seed": fixed(f"self seed {a.hex()}").hex()}
                                   for a in everyone],
                  "pair_seeds": [{"a": who[a], "b": who[b], "seed": pair(a, b).hex()}
                                 for a, b in ((x, y) for x in everyone for y in everyone
                                              if x < y)],
                  "dropped": ["p3"],
                  "masked": {who[a]: [str(w) for w in m] for a, m in masked.items()},
                  "masked_blob_p1": MaskedBlob(JOB_ID, 4, addr("p1"), 16,
                                               masked[addr("p1")]).to_bytes().hex(),
                  "unmasked_sum": _vec(total),
                  "aggregate": _vec(private_aggregate(total, len(masked)))},
        "shamir": {"seed": seed.hex(), "coefficients": [str(c) for c in coeffs],
                   "shares": [[x, str(y)] for x, y in shares], "threshold": 3},
    }


def _centered_vectors() -> list[dict[str, Any]]:
    """[FED-AGG.10] [FED-AGG.11] Each case with its intermediate values, so a second
    implementation finds the step where it differs; and a model step."""
    out: list[dict[str, Any]] = []
    for ups, center in CENTERED_CASES:
        counted = agreeing(ups, center)
        diffs = {i: tuple(max(-Q_MAX, min(Q_MAX, g - c)) for g, c in zip(ups[i], center,
                                                                       strict=True))
                 for i in counted}
        e2 = {i: square_norm(e) for i, e in diffs.items()}
        near = FAR_SQ * lower_median(list(e2.values()))
        kept = [i for i in counted if e2[i] <= near]
        out.append({"updates": [_vec(u) for u in ups], "center": _vec(center),
                    "counted": counted, "diffs": {str(i): _vec(e) for i, e in diffs.items()},
                    "square_norms": {str(i): str(x) for i, x in e2.items()}, "kept": kept,
                    "radius2": str(lower_median([e2[i] for i in kept])),
                    "aggregate": _vec(centered_clip(ups, center))})
    before, after = (0, Q_MAX, -Q_MAX, 5), (-Q_MAX, -Q_MAX, Q_MAX, 7)
    out.append({"model_before": _vec(before), "model_after": _vec(after),
                "step": _vec(model_step(before, after))})
    return out


def _replay_vectors() -> dict[str, Any]:
    """[FED-REWARD.10] A round of five under the plain mean with three earlier updates:
    r1 repeats one exactly, r2 is within one quantum of another in every coordinate, n2
    is two quanta off in one coordinate (no replay)."""
    earlier = [(100, -40, 7, 9), (55, 60, -70, 80), (-3, 4, 5, -6)]
    updates = {"h1": (90, -35, 10, 12), "h2": (80, -30, 5, 20), "r1": (100, -40, 7, 9),
               "r2": (56, 59, -70, 81), "n2": (-3, 4, 7, -6)}
    result = aggregate_round(Aggregation(TRIMMED_MEAN, 0),
                             {addr(n): u for n, u in updates.items()}, None, 4, None, earlier)
    who = {addr(n): n for n in updates}
    return {"earlier": [_vec(v) for v in earlier],
            "updates": {n: _vec(u) for n, u in updates.items()}, "rule": ["trimmed_mean", 0],
            **_round_json(result, updates), "replays": sorted(who[a] for a in result.replays)}


def _history_vectors() -> dict[str, Any]:
    """[FED-REWARD.11] Three updates of one round whose pairwise trusts are below the
    near-copy bound, but s1's and s2's running sums (with their earlier updates) are near
    copies: s1 and s2 share one weight; h keeps its own."""
    updates = {"s1": (100, 40, -30, 5), "s2": (40, 100, 5, -30), "h": (-20, 90, 60, 10)}
    history = {"s1": (900, 960, 10, 10), "s2": (960, 900, 10, 10), "h": (-300, 500, 400, 0)}
    plain = aggregate_round(Aggregation(TRIMMED_MEAN, 0),
                            {addr(n): u for n, u in updates.items()}, None, 4)
    result = aggregate_round(Aggregation(TRIMMED_MEAN, 0),
                             {addr(n): u for n, u in updates.items()}, None, 4, None, (),
                             {addr(n): h for n, h in history.items()})
    who = {addr(n): n for n in updates}
    return {"updates": {n: _vec(u) for n, u in updates.items()},
            "history": {n: _vec(h) for n, h in history.items()}, "rule": ["trimmed_mean", 0],
            "weights_without_history": {who[a]: w for a, w in plain.weights},
            **_round_json(result, updates)}


def _stale_cap_vectors() -> list[dict[str, Any]]:
    """[FED-REWARD.12] [FED-REWARD.13] Rounds under the plain mean with each address's
    latest earlier update. 1: c resends h1's last update 2 quanta off (a stale copy: 0,
    and h1 is not halved for it); m is the others' mean (capped at the median weight, as
    is h1). 2: r copied h1's update of two rounds back and sends nothing now; h1 is
    nearer its own last update, so it is not stale."""
    cases = [
        ({"h1": (1050, 230, -60, 80), "h2": (-60, 950, 280, 40), "h3": (120, -150, 1040, 310),
          "c": (1002, 200, -100, 50), "m": (370, 343, 420, 143)},
         {"h1": (1000, 200, -100, 50), "h2": (-100, 900, 300, 0), "h3": (100, -200, 1000, 300),
          "c": (0, 0, 0, 1), "owner": (-500, 100, 0, 900)}),
        ({"h1": (1100, 260, -20, 110), "h2": (-20, 1000, 260, 80), "h3": (140, -100, 1080, 320)},
         {"h1": (1050, 230, -60, 80), "r": (1000, 200, -100, 50), "h2": (-60, 950, 280, 40),
          "h3": (120, -150, 1040, 310)}),
    ]
    out = []
    for updates, latest in cases:
        ups = {addr(n): u for n, u in updates.items()}
        rule = Aggregation(TRIMMED_MEAN, 0)
        result = aggregate_round(rule, ups, None, 4, None, (), None,
                                 {addr(n): v for n, v in latest.items()})
        before = aggregate_round(rule, ups, None, 4)
        who = {addr(n): n for n in updates}
        out.append({"updates": {n: _vec(u) for n, u in updates.items()},
                    "latest": {n: _vec(v) for n, v in latest.items()},
                    "rule": ["trimmed_mean", 0],
                    "weights_before_version_4": {who[a]: w for a, w in before.weights},
                    **_round_json(result, updates)})
    return out


def build_vectors() -> dict[str, Any]:
    return {
        "about": "federated jobs (protocol_spec/federated.md): fixed-point quantisation and "
                 "rounding, update and model blobs, hashes, a commitment, refused blobs. "
                 "Rationals are 'p/q' or decimal strings, big integers decimal strings.",
        "quantisation": _quant_vectors(),
        "aggregation": {
            "trimmed_mean": [{"updates": [_vec(u) for u in ups], "trim": k,
                              "aggregate": _vec(trimmed_mean(ups, k))}
                             for ups, k in TRIMMED_CASES],
            "median": [{"updates": [_vec(u) for u in ups], "aggregate": _vec(median(ups))}
                       for ups in MEDIAN_CASES],
            "multi_krum": [{"updates": [_vec(u) for u in ups], "f": f,
                            "scores": [str(x) for x in krum_scores(ups, f)],
                            "selected": krum_selected(krum_scores(ups, f), f),
                            "aggregate": _vec(multi_krum(ups, f))}
                           for ups, f in KRUM_CASES],
            "fltrust": _fltrust_vectors(),
            "centered_clip": _centered_vectors(),
            "replays": _replay_vectors(),
            "history": _history_vectors(),
            "stale_and_cap": _stale_cap_vectors(),
            "rounds": _round_vectors(),
        },
        "rewards": {**_reward_vectors(), "job_copies": job_copy_vectors()},
        "spec": _spec_vectors(),
        "private": _private_vectors(),
    }


def test_federated_vectors_match_the_committed_file() -> None:
    """[FED-QUANT.2] [FED-QUANT.3] [FED-QUANT.5] [FED-MODEL.1] [FED-MODEL.2] [FED-COMMIT.1]
    [FED-AGG.1] [FED-AGG.2] [FED-AGG.3] [FED-AGG.4] [FED-AGG.5] [FED-AGG.6] [FED-AGG.7]
    [FED-AGG.8] [FED-AGG.9] [FED-AGG.10] [FED-AGG.11] [FED-AGG.12] [FED-MODEL.3] [FED-REWARD.1]
    [FED-REWARD.2] [FED-REWARD.3] [FED-REWARD.10] [FED-REWARD.11] [FED-REWARD.12]
    [FED-REWARD.13] [FED-REWARD.14] [FED-REWARD.4] [FED-REWARD.5] [FED-REWARD.7] [FED-REWARD.8]
    [FED-REWARD.9] [FED-END.5]
    [FED-SPEC.1] [FED-SPEC.2] [FED-SPEC.3] [FED-PRIV.1] [FED-PRIV.2] [FED-PRIV.3] [FED-PRIV.4]
    [FED-PRIV.5] Recomputed from the rules, the
    vectors equal protocol_spec/vectors/federated.json byte for byte; each refused blob and
    spec fails with the code the file names; the sign-flipped attacker has trust 0; the toy
    job pays its free-rider and its sign flipper nothing and sums to its bounty."""
    vectors = build_vectors()
    q = {(c["x"], c["scale_bits"]): c["q"] for c in vectors["quantisation"]["quantise"]}
    assert q[("1/131072", 16)] == 0 and q[("3/131072", 16)] == 2  # ties to even
    assert q[("-3/131072", 16)] == -2 and q[("5/131072", 16)] == 2
    assert q[("32768", 16)] == (1 << 31) - 1 and q[("-32769", 16)] == -(1 << 31) + 1
    codes = {c["name"]: c["error"] for c in vectors["quantisation"]["invalid_blobs"]}
    assert codes["update_int32_min"] == "bad_coordinate"
    assert codes["update_trailing_byte"] == "bad_length"
    fl = {r["name"]: r for r in vectors["aggregation"]["fltrust"]["updates"]}
    assert fl["sign_flipped_x100"]["trust"] == fl["zero"]["trust"] == 0
    assert fl["scaled_x100"]["trust"] > 0 and fl["honest_a"]["trust"] > 0
    job = vectors["rewards"]["toy_job"]
    assert job["payout"]["paid"].get("free_rider", 0) == 0
    assert job["payout"]["paid"].get("sign_flipper", 0) == 0
    assert sum(job["payout"]["paid"].values()) == job["bounty"]
    hist = vectors["aggregation"]["history"]
    w = {e["name"]: e["weight"] for e in hist["weights"]}
    assert w["s1"] < hist["weights_without_history"]["s1"]  # shared by history
    assert w["h"] == hist["weights_without_history"]["h"]
    stale = vectors["aggregation"]["stale_and_cap"]
    w = {e["name"]: e["weight"] for e in stale[0]["weights"]}
    old = stale[0]["weights_before_version_4"]
    assert w["c"] == 0 < old["c"] and w["h1"] > old["h1"]  # the copy out, h1 not halved
    assert w["m"] == w["h2"] < old["m"]  # capped at the median weight
    assert all(e["weight"] > 0 for e in stale[1]["weights"])  # h1 not stale for r's copy
    replayed = vectors["aggregation"]["replays"]
    assert replayed["replays"] == ["r1", "r2"]
    assert {w["name"] for w in replayed["weights"]} == {"h1", "h2", "n2"}
    krum = vectors["aggregation"]["multi_krum"]
    assert krum[0]["selected"] == [0, 1, 2, 3] and krum[1]["selected"] == [0, 1, 2]
    steps = vectors["rewards"]["weight_steps"]
    w = steps["round"]["weights"]
    assert w["e"] == w["f"] == 0 and w["d"] > w["a"] // 2  # e: norm outlier; f: zero
    assert 0 < w["a"] <= steps["round"]["trusts"]["a"] // 3  # a, b, c: near-copies
    assert steps["job"]["outliers"] == ["d"] and steps["job"]["paid"]["d"] == 0
    assert steps["job"]["end_ballot"] == ["a", "b", "c", "e"]  # d: the job's outlier
    assert {c["error"] for c in vectors["spec"]["invalid"]} == {"bad_field"}
    named = FederatedSpec.from_wire(decode(bytes.fromhex(vectors["spec"]["cohort"]["spec"])))
    assert list(named.cohort) == sorted(addr(n) for n in vectors["spec"]["cohort"]["names"])
    private = vectors["private"]["round"]
    assert private["unmasked_sum"] == [100 - (1 << 31) + 1, -2, 3]  # p1 + p2; p3 dropped
    check_vector_file("federated.json", vectors)
