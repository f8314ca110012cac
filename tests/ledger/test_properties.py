"""Property tests over random sequences of valid and invalid transactions [BANK.1]."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain.ledger import Ledger
from chain.storage import sqlite_url
from chain.train.bodies import PostJob
from chain.transactions import Transfer
from chain.types import Amount
from tests.ledger.harness import MEMBER_NAMES, Chain, job_spec

NAMES = (*MEMBER_NAMES, "mallory", "v0")

transfer = st.tuples(st.just("transfer"), st.sampled_from(NAMES), st.sampled_from(NAMES),
                     st.integers(1, 1_500))
post = st.tuples(st.just("post"), st.sampled_from(NAMES), st.integers(1, 600),
                 st.integers(2_000, 20_000))
claim = st.tuples(st.just("claim"), st.sampled_from(NAMES), st.integers(0, 5),
                  st.floats(0.0, 2.0, allow_nan=False))
reveal = st.tuples(st.just("reveal"), st.sampled_from(NAMES), st.integers(0, 5))
vote = st.tuples(st.just("vote"), st.sampled_from(NAMES), st.integers(0, 5), st.booleans())
tick = st.tuples(st.just("tick"), st.integers(500, 8_000))
bad_nonce = st.tuples(st.just("bad_nonce"), st.sampled_from(NAMES))
action = st.one_of(transfer, post, claim, reveal, vote, tick, bad_nonce)
blocks = st.lists(st.lists(action, min_size=0, max_size=8), min_size=1, max_size=14)


def _drive(chain: Chain, plan: list[list[tuple[Any, ...]]]) -> list[bytes]:
    """Turns a plan into blocks via the proposer path (invalid transactions dropped)."""
    from chain.transition import advance, apply_block, build_block

    jobs: list[bytes] = []
    roots = []
    for step in plan:
        txs, dt = [], 1_000
        for act in step:
            kind = act[0]
            if kind == "transfer":
                txs.append(chain.tx(act[1], Transfer(chain.addr(act[2]), Amount(act[3]))))
            elif kind == "post":
                t = chain.tx(act[1], PostJob(job_spec(bounty=act[2],
                                                      expiry_ms=chain.now + act[3],
                                                      window_ms=2_000)))
                txs.append(t)
                jobs.append(t.hash)
            elif kind == "claim" and jobs:
                txs.append(chain.claim(act[1], jobs[act[2] % len(jobs)], act[3]))
            elif kind == "reveal" and jobs and (jobs[act[2] % len(jobs)], act[1]) in chain.salts:
                txs.append(chain.reveal(act[1], jobs[act[2] % len(jobs)]))
            elif kind == "vote" and jobs:
                job = chain.state.job(jobs[act[2] % len(jobs)])
                if job is not None and job.current is not None:
                    claimer = next(n for n in NAMES if chain.addr(n) == job.current)
                    loss = job.claim_of(job.current).loss if act[3] else 9.0
                    maker = chain.vote_commit if job.status == "vote_commit" else \
                        chain.vote_reveal
                    txs.append(maker(act[1], job.job_id, claimer, act[3], loss))
            elif kind == "tick":
                dt = act[1]
            elif kind == "bad_nonce":
                txs.append(chain.tx(act[1], Transfer(chain.addr("bob"), Amount(1)), nonce=10**6))
        block, _, _ = build_block(chain.state, txs, chain.now + dt, chain.addr("v0"),
                                  chain.cache)
        chain._pending = []
        advance(chain.state, block, apply_block(chain.state, block))  # the validators' side
        chain.blocks.append(block)
        # [BANK.1] balances + escrow + burned == genesis supply, at every block.
        assert chain.state.total_credits() == chain.state.supply
        roots.append(chain.state.state_root)
    return roots


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=blocks)
def test_credits_conserved_and_replay_is_identical(plan: list[list[tuple[Any, ...]]]) -> None:
    """[BANK.1] [STATE-ROOT.1] Credits conserved at every height; a replay gives the same roots."""
    chain = Chain()
    roots = _drive(chain, plan)
    with tempfile.TemporaryDirectory() as tmp:
        replay = Ledger.open(sqlite_url(Path(tmp)), chain.genesis)
        for block, root in zip(chain.blocks, roots, strict=True):
            replay.apply(block)
            assert replay.state.state_root == root
        assert replay.state.digest() == chain.state.digest()
        # And the database, reloaded from disk, holds exactly that state.
        reloaded = replay.storage.load_state()
        assert reloaded.digest() == chain.state.digest()
        replay.close()


def test_property_run_is_not_vacuous() -> None:
    """The generator really produces jobs that settle (guards the property test's power)."""
    chain = Chain()
    plan = [[("post", "submitter", 50, 3_000)],
            [("claim", "alice", 0, 0.5), ("claim", "bob", 0, 0.4)],
            [("tick", 3_000)], [("reveal", "bob", 0)],
            [("vote", n, 0, True)
             for n in ("alice", "bob", "carol", "dave", "erin", "v0", "mallory")],
            [("vote", n, 0, True) for n in ("alice", "bob", "carol", "dave", "erin", "v0")]]
    _drive(chain, plan)
    job = chain.state.job(chain.blocks[0].txs[0].hash)
    assert job is not None and job.status == "paid"
