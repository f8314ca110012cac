"""One test per consensus rule of protocol_spec/consensus.md, on a single core."""

from __future__ import annotations

from typing import Any

import pytest

from chain.consensus.actions import CommitDeferred, CommitStalled
from chain.consensus.certificate import Decision, verify_certificate
from chain.consensus.config import DEFAULT_CLOCK_PRECISION_MS, DEFAULT_MESSAGE_DELAY_MS
from chain.consensus.core import (
    Broadcast,
    Commit,
    PeerMisbehaved,
    PersistSigned,
    ReportEvidence,
    ScheduleTimeout,
    Step,
)
from chain.consensus.evidence import check_evidence
from chain.consensus.messages import PRECOMMIT, PREVOTE, Proposal, Vote
from chain.consensus.timeouts import Timeout, TimeoutConfig, TimeoutKind
from chain.consensus.validators import ValidatorSet
from chain.crypto import PrivateKey
from chain.types import Height, Round
from tests.consensus.helpers import (
    CHAIN,
    KEYS,
    T0,
    FixedApp,
    block,
    make_core,
    non_proposer,
    others,
    proposal_for,
    vote,
    vset,
)

NOW = T0 + 1000


def sent_votes(actions: list[Any], kind: str | None = None) -> list[Vote]:
    return [
        a.message
        for a in actions
        if isinstance(a, Broadcast)
        and isinstance(a.message, Vote)
        and (kind is None or a.message.kind == kind)
    ]


def started(me: PrivateKey | None = None, **kw: Any) -> tuple[Any, PrivateKey]:
    me = me or non_proposer(1, 0)
    core = make_core(me, **kw)
    core.start(NOW)
    return core, me


def feed(core: Any, messages: list[Any], now: int = NOW) -> list[Any]:
    out: list[Any] = []
    for m in messages:
        out.extend(core.on_message(m, now, b"peer"))
    return out


def polka(core: Any, round_: int, value: Any, kind: str = PREVOTE, skip: Any = None) -> list[Vote]:
    """Votes of the three validators other than ``skip`` (default: the core itself)."""
    voters = [k for k in KEYS if k.address != (skip or core.key).address][:3]
    return [vote(k, kind, core.height, round_, value) for k in voters]  # type: ignore[arg-type]


def test_cons_prevote_1_valid_timely_proposal_gets_prevote() -> None:
    core, _ = started()
    p = proposal_for(core, 0)
    out = feed(core, [p])
    assert [v.block_hash for v in sent_votes(out, PREVOTE)] == [p.block_hash]
    assert core.step is Step.PREVOTE


def test_cons_time_2_untimely_proposal_gets_nil_prevote() -> None:
    core, _ = started()
    oldest = NOW - DEFAULT_CLOCK_PRECISION_MS - DEFAULT_MESSAGE_DELAY_MS
    late = proposal_for(core, 0, time_ms=oldest - 1)
    assert [v.block_hash for v in sent_votes(feed(core, [late]), PREVOTE)] == [None]


def test_cons_time_2_proposal_from_the_future_gets_nil_prevote() -> None:
    core, _ = started()
    ahead = proposal_for(core, 0, time_ms=NOW + DEFAULT_CLOCK_PRECISION_MS + 1)
    assert [v.block_hash for v in sent_votes(feed(core, [ahead]), PREVOTE)] == [None]


@pytest.mark.parametrize("proposer_off_s, voter_off_s", [
    (10, -10), (-10, 10), (4, 0), (-10, 0), (10, 0), (0, 10), (0, -10), (4, -10)])
def test_cons_time_3_clocks_up_to_10_s_off_still_accept_each_others_proposals(
        proposer_off_s: int, voter_off_s: int) -> None:
    """[CONS-TIME.3] issue 48 §5: with the defaults, a proposal stamped by a clock up to 10 s
    off true time is timely at a voter whose clock is up to 10 s off the other way, even
    when it arrives the whole message delay late (before: 0.5 s + 2 s, and a validator 4 s
    ahead prevoted nil on every proposal)."""
    for delay_ms in (0, DEFAULT_MESSAGE_DELAY_MS):
        core, _ = started()
        stamped = NOW + 1_000 * (proposer_off_s - voter_off_s) - delay_ms
        core.last_block_time = stamped - 1  # [CONS-TIME.1] the parent is older still
        p = proposal_for(core, 0, time_ms=stamped)
        assert [v.block_hash for v in sent_votes(feed(core, [p]), PREVOTE)] == [p.block_hash]


def test_cons_time_1_block_time_must_exceed_previous() -> None:
    core, _ = started()
    core.last_block_time = NOW + 100  # previous block later than this proposal's time
    p = proposal_for(core, 0, time_ms=NOW)
    assert [v.block_hash for v in sent_votes(feed(core, [p]), PREVOTE)] == [None]


def test_cons_valid_1_invalid_block_gets_nil_prevote() -> None:
    core, _ = started()
    good = proposal_for(core, 0)
    from chain.consensus.messages import sign_proposal
    from tests.consensus.helpers import key_of

    forged = sign_proposal(
        key_of(good.proposer),
        CHAIN,
        good.height,
        good.round,
        good.pol_round,
        good.block_hash,
        good.time_ms,
        good.block + b"x",
    )
    assert [v.block_hash for v in sent_votes(feed(core, [forged]), PREVOTE)] == [None]


def test_cons_propose_2_wrong_proposer_is_rejected() -> None:
    core, _ = started()
    p = proposal_for(core, 0)
    impostor = next(k for k in KEYS if k.address != p.proposer)
    from chain.consensus.messages import sign_proposal

    fake = sign_proposal(
        impostor, CHAIN, p.height, p.round, p.pol_round, p.block_hash, p.time_ms, p.block
    )
    out = feed(core, [fake])
    assert PeerMisbehaved(b"peer", "wrong_proposer") in out
    assert sent_votes(out) == []


def test_bad_vote_signature_is_rejected_and_reported() -> None:
    core, me = started()
    good = vote(others(me)[0], PREVOTE, 1, 0, None)
    bad = Vote(good.kind, good.height, good.round, good.block_hash, good.validator, b"\x01" * 64)
    out = feed(core, [bad])
    assert PeerMisbehaved(b"peer", "bad_signature") in out
    assert core.tallies.get((PREVOTE, 0)) is None


def test_vote_from_non_validator_is_rejected() -> None:
    core, _ = started()
    stranger = PrivateKey.from_seed(b"stranger")
    out = feed(core, [vote(stranger, PREVOTE, 1, 0, None)])
    assert PeerMisbehaved(b"peer", "unknown_validator") in out


def test_cons_lock_1_polka_locks_and_precommits() -> None:
    core, _ = started()
    p = proposal_for(core, 0)
    out = feed(core, [p, *polka(core, 0, p.block_hash)])
    assert [v.block_hash for v in sent_votes(out, PRECOMMIT)] == [p.block_hash]
    assert (core.locked_round, core.locked_hash) == (0, p.block_hash)
    assert core.valid_round == 0


def test_cons_precommit_nil_1_nil_polka_precommits_nil() -> None:
    core, _ = started()
    out = feed(core, [proposal_for(core, 0), *polka(core, 0, None)])
    assert [v.block_hash for v in sent_votes(out, PRECOMMIT)] == [None]
    assert core.locked_round == -1


def test_cons_timeout_propose_1_prevotes_nil() -> None:
    core, _ = started()
    out = core.on_timeout(Timeout(TimeoutKind.PROPOSE, Height(1), Round(0)), NOW + 2000)
    assert [v.block_hash for v in sent_votes(out, PREVOTE)] == [None]


def test_cons_prevote_wait_1_and_timeout_prevote_1() -> None:
    """[CONS-TIMEOUT-PREVOTE.1] A quorum of split prevotes (no polka) starts
    timeout_prevote; when it fires in step prevote the core precommits nil. The same
    timeout fired in step propose, or again once it precommitted, signs nothing."""
    idle, _ = started()
    assert idle.step is Step.PROPOSE
    early = idle.on_timeout(Timeout(TimeoutKind.PREVOTE, Height(1), Round(0)), NOW + 600)
    assert sent_votes(early) == [] and idle.step is Step.PROPOSE
    core, me = started()
    feed(core, [proposal_for(core, 0)])
    a, b = others(me)[:2]
    out = feed(core, [vote(a, PREVOTE, 1, 0, None), vote(b, PREVOTE, 1, 0, block(1, 0, NOW)[0])])
    assert ScheduleTimeout(Timeout(TimeoutKind.PREVOTE, Height(1), Round(0)), 500) in out
    out = core.on_timeout(Timeout(TimeoutKind.PREVOTE, Height(1), Round(0)), NOW + 600)
    assert [v.block_hash for v in sent_votes(out, PRECOMMIT)] == [None]
    assert core.step is Step.PRECOMMIT
    again = core.on_timeout(Timeout(TimeoutKind.PREVOTE, Height(1), Round(0)), NOW + 700)
    assert sent_votes(again) == []


def test_cons_timeout_precommit_1_starts_next_round() -> None:
    core, _ = started()
    core.on_timeout(Timeout(TimeoutKind.PRECOMMIT, Height(1), Round(0)), NOW + 600)
    assert core.round == 1 and core.step in (Step.PROPOSE, Step.PREVOTE)


def test_stale_timeouts_are_ignored() -> None:
    core, _ = started()
    assert core.on_timeout(Timeout(TimeoutKind.PREVOTE, Height(1), Round(5)), NOW) == []
    assert core.on_timeout(Timeout(TimeoutKind.PROPOSE, Height(7), Round(0)), NOW) == []


def _locked_at_round_0(me: PrivateKey) -> tuple[Any, Any]:
    core, _ = started(me)
    p0 = proposal_for(core, 0)
    feed(core, [p0, *polka(core, 0, p0.block_hash)])
    assert core.locked_hash == p0.block_hash
    return core, p0


def _advance_to(core: Any, round_: int) -> None:
    while core.round < round_:
        core.on_timeout(Timeout(TimeoutKind.PRECOMMIT, core.height, core.round), NOW + 100)


def _locked_core_waiting_in(round_: int) -> tuple[Any, Any]:
    """A validator locked in round 0 that is not the proposer of ``round_``."""
    for me in KEYS:
        proposer = vset().proposer(Height(1), Round(round_)).address
        proposer0 = vset().proposer(Height(1), Round(0)).address
        if me.address not in (proposer, proposer0):
            core, p0 = _locked_at_round_0(me)
            _advance_to(core, round_)
            return core, p0
    raise AssertionError("no suitable validator")


def test_cons_prevote_1_locked_validator_rejects_other_fresh_block() -> None:
    core, _ = _locked_core_waiting_in(2)
    other = proposal_for(core, 2, tag=b"other")
    assert [v.block_hash for v in sent_votes(feed(core, [other]), PREVOTE)] == [None]


def test_cons_prevote_2_unlock_on_newer_proof_of_lock() -> None:
    core, _ = _locked_core_waiting_in(3)
    h1, b1 = block(1, 1, NOW + 50, b"newer")
    proof = polka(core, 1, h1)  # >2/3 prevoted h1 in round 1 > locked round 0
    re = proposal_for(core, 3, pol_round=1, value=(h1, b1), time_ms=NOW + 50)
    out = feed(core, [*proof, re])
    assert [v.block_hash for v in sent_votes(out, PREVOTE)] == [h1]


def test_cons_prevote_2_stays_locked_on_older_proof_of_lock() -> None:
    core, _ = _locked_core_waiting_in(3)
    core.locked_round = Round(2)  # pretend the lock is newer than the proof below
    h1, b1 = block(1, 1, NOW + 50, b"older")
    re = proposal_for(core, 3, pol_round=1, value=(h1, b1), time_ms=NOW + 50)
    out = feed(core, [*polka(core, 1, h1), re])
    assert [v.block_hash for v in sent_votes(out, PREVOTE)] == [None]


def test_cons_prevote_2_waits_for_the_proof_of_lock() -> None:
    core, _ = _locked_core_waiting_in(3)
    h1, b1 = block(1, 1, NOW + 50, b"newer")
    re = proposal_for(core, 3, pol_round=1, value=(h1, b1), time_ms=NOW + 50)
    assert sent_votes(feed(core, [re]), PREVOTE) == []
    assert [v.block_hash for v in sent_votes(feed(core, polka(core, 1, h1)), PREVOTE)] == [h1]


def test_cons_propose_1_proposer_reproposes_its_valid_value() -> None:
    for me in KEYS:
        if vset().proposer(Height(1), Round(1)).address == me.address:
            break
    core = make_core(me)
    core.start(NOW)
    if core.round == 0 and core.vset.proposer(Height(1), Round(0)).address == me.address:
        return  # proposer of both rounds; covered by the simulator
    p0 = proposal_for(core, 0)
    feed(core, [p0, *polka(core, 0, p0.block_hash)])
    out = core.on_timeout(Timeout(TimeoutKind.PRECOMMIT, Height(1), Round(0)), NOW + 100)
    proposals = [
        a.message
        for a in out
        if isinstance(a, Broadcast) and a.message is not None and not isinstance(a.message, Vote)
    ]
    assert proposals and proposals[0].block_hash == p0.block_hash
    assert proposals[0].pol_round == 0


def test_cons_commit_1_commits_with_valid_certificate() -> None:
    core, _ = started()
    p = proposal_for(core, 0)
    out = feed(core, [p, *polka(core, 0, p.block_hash), *polka(core, 0, p.block_hash, PRECOMMIT)])
    commits = [a for a in out if isinstance(a, Commit)]
    assert len(commits) == 1
    d = commits[0].decision
    assert (d.height, d.block_hash, d.block, d.time_ms) == (1, p.block_hash, p.block, p.time_ms)
    verify_certificate(d.certificate, vset(), CHAIN)
    assert core.height == 2 and core.last_block_time == p.time_ms


def test_cons_commit_1_precommits_of_a_later_round_also_commit() -> None:
    core, _ = started()
    p = proposal_for(core, 0)
    feed(core, [p])
    out = feed(core, polka(core, 4, p.block_hash, PRECOMMIT))
    assert [a.decision.certificate.round for a in out if isinstance(a, Commit)] == [4]


class DeferringApp(FixedApp):
    """``decided`` raises ``CommitDeferred`` (storage busy) the first ``busy`` times."""

    def __init__(self, busy: int) -> None:
        super().__init__(vset())
        self.busy = busy
        self.calls = 0

    def decided(self, decision: Decision) -> None:
        self.calls += 1
        if self.calls <= self.busy:
            raise CommitDeferred("database is locked")


def test_cons_commit_2_deferred_commit_waits_at_the_height_and_retries() -> None:
    app = DeferringApp(busy=2)
    core, me = started(app=app)
    p = proposal_for(core, 0)
    precommits = polka(core, 0, p.block_hash, PRECOMMIT)
    out = feed(core, [p, *polka(core, 0, p.block_hash), *precommits])
    assert [a.reason for a in out if isinstance(a, CommitStalled)] == ["database is locked"]
    assert not [a for a in out if isinstance(a, Commit)]
    assert sent_votes(out, PRECOMMIT), "the core's own precommit is still sent"
    assert core.height == 1 and core.commit_deferred and app.calls == 1
    # more votes and timeouts neither ask the application again nor start a round
    late = others(me)[-1]
    assert feed(core, [vote(late, PRECOMMIT, 1, 0, p.block_hash)]) == []
    for kind in (TimeoutKind.PRECOMMIT, TimeoutKind.PROPOSE, TimeoutKind.PREVOTE):
        assert core.on_timeout(Timeout(kind, Height(1), Round(0)), NOW + 5000) == []
    assert core.round == 0 and app.calls == 1
    rebroadcast = core.on_timeout(Timeout(TimeoutKind.REBROADCAST, Height(1), Round(0)), NOW)
    assert sent_votes(rebroadcast), "peers still get our votes while we wait"
    # the first retry is deferred again, the second commits the same block
    again = core.retry_commit(NOW + 6000)
    assert [type(a) for a in again] == [CommitStalled] and core.height == 1
    done = core.retry_commit(NOW + 7000)
    commits = [a for a in done if isinstance(a, Commit)]
    assert [c.decision.block_hash for c in commits] == [p.block_hash]
    assert core.height == 2 and not core.commit_deferred and app.calls == 3
    assert core.retry_commit(NOW + 8000) == [], "nothing left to retry"


def test_cons_skip_1_messages_from_more_than_f_move_the_round() -> None:
    core, me = started()
    a, b = others(me)[:2]
    feed(core, [vote(a, PREVOTE, 1, 5, None)])
    assert core.round == 0  # one validator of four is not more than f
    feed(core, [vote(b, PRECOMMIT, 1, 7, None)])
    assert core.round == 5


def test_cons_evidence_2_conflicting_votes_are_reported() -> None:
    core, me = started()
    bad = others(me)[0]
    v1 = vote(bad, PREVOTE, 1, 0, None)
    v2 = vote(bad, PREVOTE, 1, 0, block(1, 0, NOW)[0])
    out = feed(core, [v1, v2, v2])
    evidence = [a.evidence for a in out if isinstance(a, ReportEvidence)]
    assert len(evidence) == 1
    assert check_evidence(evidence[0], vset(), CHAIN) == bad.address


def test_cons_count_1_equivocator_counts_once_per_value() -> None:
    core, me = started()
    bad = others(me)[0]
    h = block(1, 0, NOW)[0]
    feed(core, [vote(bad, PREVOTE, 1, 0, None), vote(bad, PREVOTE, 1, 0, h)])
    tally = core.tallies[(PREVOTE, 0)]
    assert tally.total_power == 1 and tally.power_for(None) == 1 and tally.power_for(h) == 1


def test_cons_wal_1_signature_persisted_before_broadcast() -> None:
    core, _ = started()
    out = feed(core, [proposal_for(core, 0)])
    kinds = [type(a) for a in out if isinstance(a, PersistSigned | Broadcast)]
    assert kinds[:2] == [PersistSigned, Broadcast]
    persisted = next(a for a in out if isinstance(a, PersistSigned)).record.message
    assert persisted == sent_votes(out)[0]


def test_cons_catchup_1_messages_of_decided_heights_do_nothing() -> None:
    """A lagging peer catches up by block sync; the core neither answers nor counts."""
    core, _ = started()
    core.height = Height(5)
    assert core.on_message(vote(KEYS[0], PREVOTE, 3, 0, None), NOW, b"laggard") == []
    assert core.on_message(vote(KEYS[0], PRECOMMIT, 3, 0, None), NOW + 1, b"laggard") == []


def _fire_new_height(core: Any, now: int) -> list[Any]:
    return core.on_timeout(Timeout(TimeoutKind.NEW_HEIGHT, core.height, Round(0)), now)


def test_single_validator_commits_through_the_same_path() -> None:
    """[CONS-TIMEOUT.2] A lone validator decides each height in one step, so the next
    height must start from the new_height timer: five events give exactly heights 1-5,
    one each (a direct start after the commit would recurse without end)."""
    solo = KEYS[0]
    single = ValidatorSet.from_members([(solo.public_key, 1)])
    core = make_core(solo, app=FixedApp(single))
    out = core.start(NOW)
    decisions = []
    for step in range(1, 6):
        commits = [a.decision for a in out if isinstance(a, Commit)]
        assert len(commits) == 1, f"event {step}: {len(commits)} commits"
        decisions += commits
        out = _fire_new_height(core, NOW + step)
    assert [d.height for d in decisions] == [1, 2, 3, 4, 5]
    for d in decisions:
        verify_certificate(d.certificate, single, CHAIN)
    times = [d.time_ms for d in decisions]
    assert times == sorted(set(times))


def test_cons_valset_2_core_uses_the_set_of_each_height() -> None:
    solo = KEYS[0]
    one = ValidatorSet.from_members([(solo.public_key, 1)])
    two = ValidatorSet.from_members([(solo.public_key, 1), (KEYS[1].public_key, 5)])

    class Changing(FixedApp):
        def validators_at(self, height: Height) -> ValidatorSet:
            return one if height < 3 else two

    core = make_core(solo, app=Changing(one))
    core.start(NOW)
    _fire_new_height(core, NOW + 1)
    _fire_new_height(core, NOW + 2)
    assert core.height == 3  # heights 1 and 2 decided alone, then waits for the new member
    assert core.vset == two
    out = core.on_timeout(Timeout(TimeoutKind.PROPOSE, Height(3), core.round), NOW + 5000)
    assert not any(isinstance(a, Commit) for a in out)


def test_observer_without_key_never_signs() -> None:
    core = make_core(None)
    out = core.start(NOW)
    out += feed(core, [proposal_for(core, 0)])
    assert not any(isinstance(a, PersistSigned) for a in out) and sent_votes(out) == []


def test_signature_checks_are_real_unless_a_check_is_injected() -> None:
    """The production config has no bypass; only an injected check changes verification."""
    from chain.consensus.core import ConsensusConfig, ConsensusCore

    assert not hasattr(ConsensusConfig(chain_id="x"), "fast_sim_skip_signature_checks")
    core, me = started()
    good = vote(others(me)[0], PREVOTE, 1, 0, None)
    forged = Vote(PREVOTE, Height(1), Round(0), None, others(me)[1].address, good.signature)
    out = feed(core, [good, forged])
    assert core.signature_checks == 2 and any(
        isinstance(a, PeerMisbehaved) and a.code == "bad_signature" for a in out)
    trusting = make_core(me, check_signature=lambda *a: True)
    assert isinstance(trusting, ConsensusCore)
    trusting.start(NOW)
    assert not any(isinstance(a, PeerMisbehaved) for a in trusting.on_message(forged, NOW))


def test_cons_valid_value_1_late_polka_of_past_round_becomes_valid_value_without_lock() -> None:
    core, _ = started()
    _advance_to(core, 1)
    p1 = proposal_for(core, 1)
    feed(core, [p1])
    _advance_to(core, 3)
    assert core.valid_round == -1
    feed(core, polka(core, 1, p1.block_hash))
    assert (core.valid_round, core.valid_value[0]) == (1, p1.block_hash)  # type: ignore[index]
    assert core.locked_round == -1  # adopting a valid value never locks


def _proposals(actions: list[Any]) -> list[Proposal]:
    return [a.message for a in actions
            if isinstance(a, Broadcast) and isinstance(a.message, Proposal)]


def _proposer_of(height: int, round_: int, *, not_of: tuple[int, ...] = ()) -> PrivateKey:
    """The key proposing (height, round_), checked not to propose the rounds ``not_of``."""
    address = vset().proposer(Height(height), Round(round_)).address
    for r in not_of:
        assert vset().proposer(Height(height), Round(r)).address != address
    return next(k for k in KEYS if k.address == address)


def test_cons_start_1_proposer_proposes_and_every_validator_schedules_timeout_propose() -> None:
    """[CONS-START.1] start_round(r) sets round = r, step = propose; the proposer of
    (h, r) and only it signs a fresh proposal (pol_round -1, time max(now,
    last_block_time + 1)); everyone schedules timeout_propose(h, r). Tried in round 0
    (start) and round 2 (entered by timeouts), and with a clock behind the last block."""
    for r in (0, 2):
        proposer = _proposer_of(1, r)
        for me in KEYS:
            core = make_core(me)
            out = core.start(NOW)
            while core.round < r:
                out = core.on_timeout(
                    Timeout(TimeoutKind.PRECOMMIT, Height(1), core.round), NOW)
            assert core.round == r
            wait = ScheduleTimeout(Timeout(TimeoutKind.PROPOSE, Height(1), Round(r)),
                                   1000 + 500 * r)
            assert wait in out, (r, out)
            mine = _proposals(out)
            if me is proposer:
                assert [(p.round, p.pol_round, p.time_ms, p.proposer) for p in mine] == [
                    (r, -1, NOW, me.address)]
                assert core.step is Step.PREVOTE  # it prevoted its own block at once
            else:
                assert mine == [] and core.step is Step.PROPOSE
    behind = make_core(_proposer_of(1, 0))
    behind.last_block_time = T0 + 5_000  # our clock (NOW = T0 + 1000) is behind
    (p,) = _proposals(behind.start(NOW))
    assert p.time_ms == T0 + 5_001


def test_cons_precommit_wait_1_quorum_of_split_precommits_starts_timeout_precommit_once() -> None:
    """[CONS-PRECOMMIT-WAIT.1] Precommits from a quorum that agree on nothing still start
    timeout_precommit(h, round) -- whatever our step (here: still propose) -- and only
    the first time; two of four are not a quorum and start nothing."""
    core, me = started()
    a, b, c = others(me)[:3]
    h1, h2 = block(1, 0, NOW, b"one")[0], block(1, 0, NOW, b"two")[0]
    wait = ScheduleTimeout(Timeout(TimeoutKind.PRECOMMIT, Height(1), Round(0)), 500)
    out = feed(core, [vote(a, PRECOMMIT, 1, 0, None), vote(b, PRECOMMIT, 1, 0, h1)])
    assert wait not in out
    out = feed(core, [vote(c, PRECOMMIT, 1, 0, h2)])
    assert out.count(wait) == 1 and core.step is Step.PROPOSE
    assert not any(isinstance(x, Commit) for x in out)
    more = feed(core, [vote(a, PRECOMMIT, 1, 0, h2), vote(c, PRECOMMIT, 1, 0, None)])
    assert wait not in more, "timeout_precommit is scheduled only the first time"
    core.on_timeout(wait.timeout, NOW + 600)
    assert core.round == 1


def test_cons_timeout_1_timeouts_grow_linearly_with_the_round() -> None:
    """[CONS-TIMEOUT.1] Defaults propose 1000 + 500 r, prevote 500 + 250 r, precommit
    500 + 250 r ms, without bound; and the core asks for exactly those when it enters
    round r and when it sees a quorum of any votes there."""
    t = TimeoutConfig()
    for r in (0, 1, 7, 1_000):
        assert t.duration_ms(TimeoutKind.PROPOSE, Round(r)) == 1000 + 500 * r
        assert t.duration_ms(TimeoutKind.PREVOTE, Round(r)) == 500 + 250 * r
        assert t.duration_ms(TimeoutKind.PRECOMMIT, Round(r)) == 500 + 250 * r
    core, me = started(timeouts=TimeoutConfig())
    a, b, c = others(me)[:3]
    for r in range(1, 6):
        out = core.on_timeout(Timeout(TimeoutKind.PRECOMMIT, Height(1), Round(r - 1)), NOW)
        assert ScheduleTimeout(Timeout(TimeoutKind.PROPOSE, Height(1), Round(r)),
                               1000 + 500 * r) in out
        core.on_timeout(Timeout(TimeoutKind.PROPOSE, Height(1), Round(r)), NOW)
        assert core.step is Step.PREVOTE
        out = feed(core, [vote(a, PREVOTE, 1, r, None),
                          vote(b, PREVOTE, 1, r, block(1, r, NOW, b"split")[0])])
        assert ScheduleTimeout(Timeout(TimeoutKind.PREVOTE, Height(1), Round(r)),
                               500 + 250 * r) in out
        out = feed(core, [vote(k, PRECOMMIT, 1, r, None) for k in (a, b, c)])
        assert ScheduleTimeout(Timeout(TimeoutKind.PRECOMMIT, Height(1), Round(r)),
                               500 + 250 * r) in out


def test_cons_timeout_2_next_height_starts_only_from_the_commit_timer() -> None:
    """[CONS-TIMEOUT.2] After a commit the core schedules new_height(h + 1) after
    COMMIT_MS and signs nothing of h + 1 until it fires -- not even the proposer of
    (h + 1, 0); with COMMIT_MS = 0 the timer (of 0 ms) is still there."""
    proposer2 = _proposer_of(2, 0)
    for commit_ms in (1000, 0):
        core = make_core(proposer2, timeouts=TimeoutConfig(commit_ms=commit_ms))
        core.start(NOW)
        own = core.first_proposal.get(0)  # set if we also propose (1, 0)
        p = proposal_for(core, 0)
        block_hash = own if own is not None else p.block_hash
        out = feed(core, [*([] if own is not None else [p]), *polka(core, 0, block_hash),
                          *polka(core, 0, block_hash, PRECOMMIT)])
        assert [a.decision.height for a in out if isinstance(a, Commit)] == [1]
        assert core.height == 2 and core.step is Step.NEW_HEIGHT
        assert ScheduleTimeout(Timeout(TimeoutKind.NEW_HEIGHT, Height(2), Round(0)),
                               commit_ms) in out
        at = next(i for i, a in enumerate(out) if isinstance(a, Commit))
        after = [a for a in out[at:] if isinstance(a, PersistSigned | Broadcast)]
        assert after == [], "nothing of height 2 before its timer"
        assert core.on_timeout(Timeout(TimeoutKind.PROPOSE, Height(2), Round(0)), NOW) == []
        started_out = _fire_new_height(core, NOW + commit_ms)
        assert [(q.height, q.round) for q in _proposals(started_out)] == [(2, 0)]


def test_cons_gossip_1_rebroadcast_resends_own_votes_of_this_and_the_previous_round() -> None:
    """[CONS-GOSSIP.1] Every REBROADCAST_MS the core re-sends the first proposal of the
    current round and its own prevote and precommit of the current and previous round
    (the same signed messages, not new ones), then schedules the next rebroadcast.
    Votes two rounds back are no longer sent."""
    me = next(k for k in KEYS if all(
        vset().proposer(Height(1), Round(r)).address != k.address for r in (0, 1, 2)))
    core, _ = started(me)
    p0 = proposal_for(core, 0)
    signed = sent_votes(feed(core, [p0, *polka(core, 0, None)]))
    assert [(v.kind, v.round) for v in signed] == [(PREVOTE, 0), (PRECOMMIT, 0)]
    core.on_timeout(Timeout(TimeoutKind.PRECOMMIT, Height(1), Round(0)), NOW)
    p1 = proposal_for(core, 1)
    signed += sent_votes(feed(core, [p1]))
    assert [(v.kind, v.round) for v in signed][2:] == [(PREVOTE, 1)]
    tick = Timeout(TimeoutKind.REBROADCAST, Height(1), Round(0))
    out = core.on_timeout(tick, NOW + 1000)
    assert _proposals(out) == [p1]
    assert sorted(sent_votes(out), key=lambda v: (v.round, v.kind)) == \
        sorted(signed, key=lambda v: (v.round, v.kind))
    assert ScheduleTimeout(tick, 1000) in out
    core.on_timeout(Timeout(TimeoutKind.PRECOMMIT, Height(1), Round(1)), NOW)
    assert core.round == 2
    out = core.on_timeout(tick, NOW + 2000)
    assert [(v.kind, v.round) for v in sent_votes(out)] == [(PREVOTE, 1)]
    assert ScheduleTimeout(tick, 1000) in out


def test_cons_gossip_2_reproposal_carries_the_polka_so_an_unlocked_peer_prevotes_it() -> None:
    """[CONS-GOSSIP.2] A proposer that re-proposes its valid value (pol_round 0) also
    relays the quorum of round-0 prevotes for it, again with every rebroadcast. A peer
    that never saw round 0 gets only those messages and prevotes the re-proposed block
    ([CONS-PREVOTE.2]); without the relay it would wait (see
    test_cons_prevote_2_waits_for_the_proof_of_lock)."""
    me = _proposer_of(1, 1, not_of=(0,))
    core = make_core(me)
    core.start(NOW)
    p0 = proposal_for(core, 0)
    feed(core, [p0, *polka(core, 0, p0.block_hash)])
    assert core.valid_round == 0
    out = core.on_timeout(Timeout(TimeoutKind.PRECOMMIT, Height(1), Round(0)), NOW + 100)
    (re,) = _proposals(out)
    assert (re.round, re.pol_round, re.block_hash) == (1, 0, p0.block_hash)
    relayed = [v for v in sent_votes(out, PREVOTE) if v.round == 0]
    assert {v.block_hash for v in relayed} == {p0.block_hash}
    assert vset().is_quorum(vset().power_of(v.validator for v in relayed))
    tick = core.on_timeout(Timeout(TimeoutKind.REBROADCAST, Height(1), Round(0)), NOW + 1000)
    assert {v.validator for v in relayed} <= {
        v.validator for v in sent_votes(tick, PREVOTE) if v.round == 0}
    peer_key = next(k for k in KEYS if k is not me
                    and k.address != vset().proposer(Height(1), Round(0)).address)
    peer = make_core(peer_key)
    peer.start(NOW)
    peer.on_timeout(Timeout(TimeoutKind.PRECOMMIT, Height(1), Round(0)), NOW + 100)
    assert peer.round == 1 and peer.step is Step.PROPOSE
    messages = [a.message for a in out if isinstance(a, Broadcast)]
    answer = feed(peer, messages, NOW + 100)
    assert [v.block_hash for v in sent_votes(answer, PREVOTE) if v.round == 1] == [
        p0.block_hash]
    bare = make_core(peer_key)
    bare.start(NOW)
    bare.on_timeout(Timeout(TimeoutKind.PRECOMMIT, Height(1), Round(0)), NOW + 100)
    assert sent_votes(feed(bare, [re], NOW + 100)) == [], "without the polka it waits"


def test_cons_quorum_2_more_than_f_is_strictly_more_than_a_third_of_the_power() -> None:
    """[CONS-QUORUM.2] "More than f" is 3p > P, exactly: checked against p > P/3 for
    every p of sets whose total is and is not a multiple of 3, and through the core,
    where exactly a third of the power ahead does not move the round ([CONS-SKIP.1])
    and a bit more does."""
    from fractions import Fraction

    for powers in ((1, 1, 1, 1), (1, 1, 1, 3), (2, 2, 1, 1), (5, 1, 1, 2), (7, 7, 7, 7)):
        v = vset(powers)
        total = sum(powers)
        for p in range(total + 1):
            assert v.exceeds_faulty(p) == (Fraction(p) > Fraction(total, 3)), (powers, p)
    powers = (2, 2, 1, 1)  # total 6: a third is 2
    app = FixedApp(vset(powers))
    heavy = [k for k, w in zip(KEYS, powers, strict=True) if w == 2]
    light = [k for k, w in zip(KEYS, powers, strict=True) if w == 1]
    core = make_core(light[0], app=app)
    core.start(NOW)
    feed(core, [vote(heavy[0], PREVOTE, 1, 4, None)])
    assert core.round == 0, "power 2 of 6 is not more than f"
    feed(core, [vote(light[1], PREVOTE, 1, 3, None)])
    assert core.round == 3, "power 3 of 6 is"
