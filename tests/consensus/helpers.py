"""Small builders for unit tests of single consensus rules."""

from __future__ import annotations

from typing import Any

from chain.consensus.core import ConsensusConfig, ConsensusCore
from chain.consensus.messages import Proposal, Vote, VoteKind, sign_proposal, sign_vote
from chain.consensus.timeouts import TimeoutConfig
from chain.consensus.validators import ValidatorSet
from chain.consensus.wal import SignedRecord
from chain.crypto import PrivateKey
from chain.types import Hash32, Height, Round, TimeMs
from tests.consensus.toy_app import SimApp

CHAIN = "lc-unit"
T0 = TimeMs(1_700_000_000_000)
KEYS = sorted(
    (PrivateKey.from_seed(b"unit-validator-%d" % i) for i in range(4)), key=lambda k: k.address
)
"""Four validators in address order (the order of the set)."""


def vset(powers: tuple[int, ...] = (1, 1, 1, 1), keys: list[PrivateKey] = KEYS) -> ValidatorSet:
    return ValidatorSet.from_members((k.public_key, p) for k, p in zip(keys, powers, strict=True))


def key_of(address: bytes) -> PrivateKey:
    return next(k for k in KEYS if k.address == address)


class FixedApp(SimApp):
    def __init__(self, validator_set: ValidatorSet, author: int = 0) -> None:
        super().__init__(author, lambda h: validator_set)


def make_core(
    me: PrivateKey | None,
    *,
    app: Any = None,
    height: int = 1,
    history: list[SignedRecord] | None = None,
    check_signature: Any = None,
    timeouts: TimeoutConfig | None = None,
    **config: Any,
) -> ConsensusCore:
    timeouts = timeouts or TimeoutConfig(commit_ms=0, rebroadcast_ms=1000)
    cfg = ConsensusConfig(chain_id=CHAIN, timeouts=timeouts, **config)
    extra = {} if check_signature is None else {"check_signature": check_signature}
    return ConsensusCore(cfg, app or FixedApp(vset()), me, Height(height), T0, history or [],
                         **extra)


def block(height: int, round_: int, time_ms: int, tag: bytes = b"") -> tuple[Hash32, bytes]:
    return SimApp(99, lambda h: vset()).make(height, round_, time_ms, tag)


def proposal_for(
    core: ConsensusCore,
    round_: int,
    *,
    time_ms: int | None = None,
    pol_round: int = -1,
    tag: bytes = b"",
    value: tuple[Hash32, bytes] | None = None,
) -> Proposal:
    """A correctly signed proposal by the real proposer of (core.height, round_)."""
    proposer = core.vset.proposer(core.height, Round(round_))
    t = TimeMs(time_ms if time_ms is not None else T0 + 1000)
    h, b = value or block(core.height, round_, t, tag)
    return sign_proposal(
        key_of(proposer.address), CHAIN, core.height, Round(round_), Round(pol_round), h, t, b
    )


def vote(key: PrivateKey, kind: VoteKind, height: int, round_: int, value: Hash32 | None) -> Vote:
    return sign_vote(key, CHAIN, kind, Height(height), Round(round_), value)


def others(me: PrivateKey | None) -> list[PrivateKey]:
    return [k for k in KEYS if k is not me]


def non_proposer(height: int, round_: int) -> PrivateKey:
    p = vset().proposer(Height(height), Round(round_))
    return next(k for k in KEYS if k.address != p.address)
