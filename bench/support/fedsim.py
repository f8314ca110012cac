"""One federated job under attack, through the chain's own round, replay and payout code
(bench/fedpoison.py, issue 49 §3).

Local training is bench/federated.py's (full-batch multinomial logistic regression in
numpy, quantised at 2**16 [FED-QUANT.2]); everything after quantisation is the
project's: ``chain.federated.fast.aggregate_round`` [FED-AGG.*], the model step
[FED-MODEL.3], ``fast.replay`` for the leave-one-out models [FED-REWARD.2] and
``rewards.payout`` [FED-REWARD.5]. Experimental rules (harness-side callables) run
through the same loop so that parameters can be compared before they enter the spec.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from bench.federated import SCALE_BITS, dirichlet_shards, evaluate, local_update
from bench.support.fedattacks import Family, RoundView
from chain.federated import fast, rounds
from chain.federated.fixed import Q_MAX
from chain.federated.job_copies import copy_counts_array, credited_losses
from chain.federated.rewards import copy_discount, job_outliers, norm_outliers, payout
from chain.federated.rounds import Aggregation, RoundInput
from chain.federated.spec import cohort_admits

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Split = tuple[Floats, npt.NDArray[np.int64]]

BOUNTY = 1_000_000
LOO_PERMILLE = 500
"""The CLI's default (client/cli/job/federated.py ``--loo-permille``)."""
N_TEST_PERMILLE = 300
N_ROOT = 60
ALPHA = 0.3
MIN_SHARD = 10
"""Dirichlet(0.3) can leave an owner almost empty; a draw is redone (seeded) until every
owner holds at least this many rows, so every owner can train."""
TRIGGER = (0, 8, 16, 24)
"""Pixels (left edge, rows 0-3 of the 8×8 image) that are blank in every digits image:
the backdoor's trigger sets them to full ink (16)."""
TARGET = 0
"""The backdoor's target class."""
MAX_COPIES = 8
"""Addresses one owner may send through (sybil runs use up to 5)."""
JOB_COPIES = True
"""Whether the end's losses are credited as members vote them from protocol version 5
[FED-REWARD.14] (False: the version-4 votes, for a before-and-after)."""
CENTERED_CLIP: str | None = getattr(rounds, "CENTERED_CLIP", None)
"""The centered-clipping rule once chain/federated has it [FED-AGG.10]; None before."""


# ---------------------------------------------------------------- data

@dataclass(frozen=True)
class Data:
    """One seed's split of the digits: owners' shards, the job owner's root set, the test
    part (accuracy and the voted losses' stand-in) and its triggered copy."""

    d: int
    k: int
    shards: list[Split]
    root: Split
    test: Split
    triggered: Split
    """Test rows whose class is not ``TARGET``, stamped with the trigger."""
    trigger_value: Floats

    def stamp(self, x: Floats) -> Floats:
        """The rows with the trigger set (standardised value of raw 16)."""
        return _stamp(x, self.trigger_value)


def _stamp(x: Floats, value: Floats) -> Floats:
    out = x.copy()
    out[:, list(TRIGGER)] = value
    return out


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[Floats, npt.NDArray[np.int64]]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return x.astype(np.float64), y.astype(np.int64)


def load(seed: int, owners: int) -> Data:
    """Digits standardised (std floored at 1, so the blank trigger pixels stay finite),
    shuffled by ``seed``: 30 % test, 60 root rows, the rest over ``owners`` by
    Dirichlet(0.3) label shares."""
    raw, y = _digits()
    mean, std = raw.mean(axis=0), np.maximum(raw.std(axis=0), 1.0)
    x = (raw - mean) / std
    rng = np.random.default_rng([seed, 49])
    order = rng.permutation(len(y))
    x, y = x[order], y[order]
    n_test = len(y) * N_TEST_PERMILLE // 1000
    test, root = (x[:n_test], y[:n_test]), (x[n_test:n_test + N_ROOT], y[n_test:n_test + N_ROOT])
    rx, ry = x[n_test + N_ROOT:], y[n_test + N_ROOT:]
    for _ in range(1000):
        shards = dirichlet_shards(ry, owners, ALPHA, rng)
        if min(len(s) for s in shards) >= MIN_SHARD:
            break
    else:
        raise RuntimeError(f"no Dirichlet({ALPHA}) draw gave {owners} owners {MIN_SHARD} rows")
    trigger_value = (16.0 - mean[list(TRIGGER)]) / std[list(TRIGGER)]
    keep = test[1] != TARGET
    return Data(x.shape[1], int(y.max()) + 1, [(rx[s], ry[s]) for s in shards], root, test,
                (_stamp(test[0][keep], trigger_value), test[1][keep]), trigger_value)


def address(owner: int, copy: int = 0) -> bytes:
    """An owner's 20-byte address; ``copy`` > 0: its extra (sybil) addresses."""
    tag = f"owner{owner}" if copy == 0 else f"owner{owner}/{copy}"
    return hashlib.sha256(tag.encode()).digest()[:20]


def quantise(v: Floats) -> Ints:
    """[FED-QUANT.2] clip(rint(x · 2**16)) as int64."""
    return np.clip(np.rint(v * (1 << SCALE_BITS)), -Q_MAX, Q_MAX).astype(np.int64)


def train(model: Ints, data: Split, d: int, k: int) -> Floats:
    """bench/federated.py's local update from the global model."""
    return cast(Floats, local_update(tuple(model.tolist()), data, d, k))


def score(model: Ints, data: Split, d: int, k: int) -> tuple[float, int]:
    """(accuracy, cross-entropy × 10**6 as an int: the loss the members vote)."""
    return evaluate(tuple(model.tolist()), data, d, k)


# ---------------------------------------------------------------- rules

RoundFn = Callable[[Mapping[bytes, Ints], Ints, int, Ints], tuple[Ints, dict[bytes, int]]]
"""An experimental rule: (updates, reference, dims, center) -> (aggregate, weights)."""
Reweigh = Callable[[Mapping[bytes, Ints], Ints, dict[bytes, int]], dict[bytes, int]]
"""Experimental round weights: (updates, reference, the rule's weights) -> weights."""


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    return name in inspect.signature(fn).parameters


_CENTERS = _accepts(fast.aggregate_round, "center")
"""Whether fast.aggregate_round takes centered clipping's center (and fast.replay keeps it)."""
_REPLAYS = _accepts(fast.aggregate_round, "earlier") and hasattr(fast, "replay_rows")
"""Whether chain/federated leaves replays of earlier updates out [FED-REWARD.10]."""
_HISTORY = _accepts(fast.aggregate_round, "history")
"""Whether near-copies are also judged on running sums [FED-REWARD.11]."""
LATEST_RULES = _accepts(fast.aggregate_round, "latest")
"""Whether stale copies earn nothing and weights are capped at the median
[FED-REWARD.12] [FED-REWARD.13] (given each address's latest earlier update)."""
JOB_OWNER = hashlib.sha256(b"job owner").digest()[:20]
"""The address the owner's FLTrust reference is revealed under (one of ``latest``)."""


@dataclass(frozen=True)
class Rule:
    """A rule under test: a project rule (``agg``, through chain.federated) or an
    experimental harness-side ``variant``."""

    name: str
    agg: Aggregation | None = None
    variant: RoundFn | None = None
    bound: str = ""
    """The attackers the rule claims to bear (the table's 4-of-10 column)."""
    reweigh: Reweigh | None = None
    """Replaces each round's weights after the rule has computed them (an experiment of
    bench/fedsplit.py ``--round-weights``); the aggregate is the rule's."""
    uses_center: bool = field(init=False, default=False)
    """Whether the rule takes the previous step as its center (centered clipping, and
    variants, which get it whether they use it or not)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "uses_center", self.variant is not None or (
            self.agg is not None and self.agg.uses_center))

    def aggregate(self, updates: Mapping[bytes, Ints], reference: Ints, dims: int,
                  center: Ints, earlier: Ints | None = None,
                  sums: Mapping[bytes, Ints] | None = None,
                  latest: Mapping[bytes, Ints] | None = None
                  ) -> tuple[Ints, dict[bytes, int]]:
        """One round: the aggregate and the round weight [FED-AGG.7] of each address the
        round names; replays of ``earlier`` updates (every update and reference revealed
        in an earlier round) are left out and not named [FED-REWARD.10] once
        chain/federated has that rule."""
        vec, weights = self._aggregate(updates, reference, dims, center, earlier, sums, latest)
        if self.reweigh is not None:
            weights = self.reweigh(updates, reference, weights)
        return vec, weights

    def _aggregate(self, updates: Mapping[bytes, Ints], reference: Ints, dims: int,
                   center: Ints, earlier: Ints | None, sums: Mapping[bytes, Ints] | None,
                   latest: Mapping[bytes, Ints] | None) -> tuple[Ints, dict[bytes, int]]:
        if self.variant is not None:
            if earlier is not None and _REPLAYS:
                addrs = sorted(updates)
                m = np.stack([updates[a] for a in addrs])
                gone = {addrs[i] for i in fast.replay_rows(m, earlier)}
                updates = {a: v for a, v in updates.items() if a not in gone}
            return self.variant(updates, reference, dims, center)
        assert self.agg is not None
        ups = cast(Mapping[bytes, Sequence[int]], updates)
        extra: dict[str, Any] = {}
        if self.uses_center:
            extra["center"] = center
        if _REPLAYS and earlier is not None:
            extra["earlier"] = earlier
        if _HISTORY and sums:
            extra["history"] = dict(sums)
        if LATEST_RULES and latest is not None:
            extra["latest"] = dict(latest)
        if self.uses_center and not _CENTERS:  # fast path not there yet: the reference
            result = rounds.aggregate_round(self.agg, ups, tuple(reference.tolist()), dims,
                                            center=tuple(center.tolist()))
        else:
            result = fast.aggregate_round(self.agg, ups, reference, dims, **extra)
        return np.array(result.aggregate, dtype=np.int64), dict(result.weights)

    def replay(self, initial: Ints, inputs: Sequence[RoundInput],
               without: bytes | None) -> Ints:
        """[FED-REWARD.2] The model replayed from ``initial`` (without ``without``'s
        updates): ``fast.replay`` for project rules (it keeps centered clipping's center
        itself), the same loop here for variants."""
        if self.agg is not None and (not self.uses_center or _CENTERS):
            return np.array(fast.replay(self.agg, initial, inputs, without=without),
                            dtype=np.int64)
        model, center = initial.copy(), np.zeros_like(initial)
        for r in inputs:
            ups = {a: cast(Ints, v) for a, v in r.updates.items() if a != without}
            ref = cast(Ints, r.reference)
            vec = self.aggregate(ups, ref, len(model), center)[0] if ups else \
                np.zeros_like(model)
            new = fast.apply_aggregate_array(model, vec)
            center, model = fast.clamp(new - model), new
        return model


def project_rules(cc_f: int) -> dict[str, Rule]:
    """The project's rules at the issue's parameters; ``centered_clip`` when it exists."""
    out = {
        "mean": Rule("mean", Aggregation(rounds.TRIMMED_MEAN, 0), bound="none"),
        "trimmed_mean": Rule("trimmed_mean", Aggregation(rounds.TRIMMED_MEAN, 2),
                             bound="k = 2"),
        "median": Rule("median", Aggregation(rounds.MEDIAN), bound="< n/2 (IID)"),
        "multi_krum": Rule("multi_krum", Aggregation(rounds.MULTI_KRUM, 3), bound="f = 3"),
        "fltrust": Rule("fltrust", Aggregation(rounds.FLTRUST), bound="root set"),
        **({"fltrust_clip": Rule("fltrust_clip", Aggregation(rounds.FLTRUST, 1),
                                 bound="root set, then centered clipping")}
           if rounds.PARAMETER_MAX[rounds.FLTRUST] >= 1 else {}),
    }
    if CENTERED_CLIP is not None and CENTERED_CLIP in rounds.RULES:
        f = cc_f if rounds.PARAMETER_MAX[CENTERED_CLIP] else 0  # [FED-AGG.10]: no parameter
        out["centered_clip"] = Rule("centered_clip", Aggregation(CENTERED_CLIP, f),
                                    bound="majority agreeing with the last step")
    return out


def parse_rule(spec: str, known: Mapping[str, Rule],
               variants: Mapping[str, RoundFn]) -> Rule:
    """``name`` (a known rule or a variant) or ``rule:param`` for a project rule with
    another parameter (``trimmed_mean:1``, ``centered_clip:2``)."""
    if spec in known:
        return known[spec]
    if spec in variants:
        return Rule(spec, variant=variants[spec], bound="experimental")
    base, _, param = spec.partition(":")
    if base in known and param.isdigit() and known[base].agg is not None:
        agg = known[base].agg
        assert agg is not None
        return Rule(spec, Aggregation(agg.rule, int(param)), bound=f"param {param}")
    raise SystemExit(f"unknown rule {spec!r}: known {sorted(known)}, variants "
                     f"{sorted(variants)}, or rule:param")


def standard_weights(m: Ints, aggregate: Ints) -> list[int]:
    """[FED-AGG.7] [FED-REWARD.7] [FED-REWARD.8] For variants: each row's trust against the
    aggregate, norm outliers zeroed, near-copies sharing one weight, as the chain's
    non-FLTrust rules weigh."""
    ws = fast.trusts_against(m, aggregate)
    n2s = fast.square_norms(m)
    ws = norm_outliers(ws, n2s)
    return copy_discount(ws, lambda i, j: fast.trusts_against(m[i][None, :], m[j])[0])


# ---------------------------------------------------------------- one job

@dataclass
class JobResult:
    """One (rule, family, attackers, seed) run."""

    accuracy: float
    backdoor: float
    """Fraction of triggered test rows (class != target) classified as the target."""
    paid: dict[int, int] | None
    """Per owner, the total paid to its addresses (None: payments not computed)."""
    agg_s: float
    rounds: int
    round_accuracy: list[float]


def _distinct(sent: dict[bytes, Ints], mine: Sequence[bytes], rng: np.random.Generator) -> None:
    """Dithers the attackers' vectors by ±1 quantum until none equals another vector of
    the round: an exact copy would be excluded [FED-AGG.8], and attackers know it."""
    for a in mine:
        while any(b != a and np.array_equal(sent[a], v) for b, v in sent.items()):
            sent[a] = fast.clamp(sent[a] + rng.integers(-1, 2, size=sent[a].shape))


def _rng(seed: int, name: str, attackers: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode()), attackers])


def run_job(data: Data, rule: Rule, family: Family | None, attackers: tuple[int, ...],
            n_rounds: int, seed: int, pay: bool,
            observe: Callable[[Mapping[bytes, Ints]], None] | None = None,
            cohort: bool = False) -> JobResult:
    """A job of ``n_rounds`` rounds from the zero model: every honest owner trains and
    sends its quantised update, the coalition sends what ``family`` computes, the round is
    aggregated by ``rule``; with ``pay``, the bounty is split as the chain splits it.
    ``observe`` sees each round's revealed updates, by address. ``cohort``: the job names
    each owner's one address [FED-SPEC.4], so an extra (sybil) address is refused before
    it commits; else any address may commit."""
    d, k = data.d, data.k
    dims = d * k + k
    rng = _rng(seed, family.name if family else "clean", len(attackers))
    initial = np.zeros(dims, dtype=np.int64)
    model, center = initial.copy(), initial.copy()
    owners = len(data.shards)
    attacking = family is not None and bool(attackers)
    named = frozenset(address(i) for i in range(owners)) if cohort else frozenset()
    previous: Floats | None = None
    inputs: list[RoundInput] = []
    weights: list[dict[bytes, int]] = []
    round_acc: list[float] = []
    history: list[Ints] = []
    sums: dict[bytes, Ints] = {}
    latest: dict[bytes, Ints] = {}
    agg_s = 0.0
    for r in range(n_rounds):
        honest = np.stack([train(model, shard, d, k) for shard in data.shards])
        reference = quantise(train(model, data.root, d, k))
        sent = {address(i): quantise(honest[i]) for i in range(owners)
                if not (attacking and i in attackers)}
        if attacking:
            assert family is not None
            poisoned = None
            if family.needs_poison:
                poisoned = np.stack([train(model, _poison(data, i), d, k) for i in attackers])
            view = RoundView(honest, attackers, r, n_rounds, previous, poisoned)
            mine = []
            for i, vectors in zip(attackers, family.attack(view, rng), strict=True):
                for c, v in enumerate(vectors):
                    sent[address(i, c)] = quantise(v)
                    mine.append(address(i, c))
            _distinct(sent, mine, rng)
            if cohort:  # the chain's own test: an address outside the cohort never commits
                sent = {a: v for a, v in sent.items() if cohort_admits(named, a, JOB_OWNER)}
        zero = np.zeros(dims, dtype=np.int64)
        previous = np.stack([sent.get(address(i), zero) for i in range(owners)]) / (
            1 << SCALE_BITS)
        earlier = np.stack(history) if history else None
        if observe is not None:
            observe(sent)
        t0 = time.perf_counter()
        vec, w = rule.aggregate(sent, reference, dims, center, earlier, sums, latest)
        agg_s += time.perf_counter() - t0
        new = fast.apply_aggregate_array(model, vec)
        center, model = fast.clamp(new - model), new
        weights.append(w)
        named = {a: v for a, v in sent.items() if a in w}  # as the ledger records a round
        inputs.append(RoundInput(cast(Mapping[bytes, Sequence[int]], named),
                                 cast(Sequence[int], reference)))
        history += [*sent.values(), reference]
        latest.update(sent)  # [FED-REWARD.12] each address's latest revealed update
        latest[JOB_OWNER] = reference
        for who, q in sent.items():  # [FED-REWARD.11] each address's earlier updates, summed
            sums[who] = sums[who] + q if who in sums else q.astype(np.int64)
        round_acc.append(score(model, data.test, d, k)[0])
    paid = _payments(data, rule, initial, model, inputs, weights) if pay else None
    return JobResult(round_acc[-1], _hits(model, data), paid, agg_s / n_rounds, n_rounds,
                     round_acc)


def _poison(data: Data, owner: int) -> Split:
    """The attacker's rows plus trigger-stamped copies labelled ``TARGET``."""
    x, y = data.shards[owner]
    return (np.concatenate([x, data.stamp(x)]),
            np.concatenate([y, np.full(len(y), TARGET, dtype=y.dtype)]))


def _hits(model: Ints, data: Data) -> float:
    """Backdoor success: triggered non-target test rows predicted as ``TARGET``."""
    x, _ = data.triggered
    v = model.astype(np.float64) / (1 << SCALE_BITS)
    w, b = v[:data.d * data.k].reshape(data.d, data.k), v[data.d * data.k:]
    return float(((x @ w + b).argmax(axis=1) == TARGET).mean())


def _payments(data: Data, rule: Rule, initial: Ints, final: Ints,
              inputs: Sequence[RoundInput],
              weights: Sequence[dict[bytes, int]]) -> dict[int, int]:
    """[FED-REWARD.5] The bounty split with the leave-one-out losses on the test part (the
    hidden set's stand-in), per owner (its addresses summed). First the whole job is
    replayed and checked equal to the harness's model: the rounds measured are the ones
    the chain would compute."""
    d, k = data.d, data.k
    if not np.array_equal(rule.replay(initial, inputs, None), final):
        raise RuntimeError(f"{rule.name}: the harness's rounds and the replay differ")
    final_loss = score(final, data.test, d, k)[1]
    addrs = sorted({a for r in inputs for a in r.updates})
    loo = {a: score(rule.replay(initial, inputs, a), data.test, d, k)[1] for a in addrs}
    if JOB_COPIES:  # [FED-REWARD.14] as members vote: over the end ballot's participants
        gone = job_outliers(weights)
        ballot = sorted({a for ws in weights for a, w in ws.items() if w > 0} - gone)
        credited = credited_losses(final_loss, [loo[a] for a in ballot],
                                   copy_counts_array(inputs, ballot))
        loo.update(zip(ballot, credited, strict=True))
    p = payout(BOUNTY, LOO_PERMILLE, weights, final_loss, loo)
    owners = len(data.shards)
    lookup = {address(i, c): i for i in range(owners) for c in range(MAX_COPIES)}
    out = dict.fromkeys(range(owners), 0)
    for a in addrs:
        out[lookup[a]] += p.of(a)
    return out
