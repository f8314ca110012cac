"""A request is answered two blocks after the one that includes it [PRED-LOTTERY.1]
[MEMPOOL-ADMIT.1]: drawn at the next block's start, so the mempool (which admits against
the next block's begin steps) takes the drawn executors' commits at once; the last commit
opens the reveal window and the reveals settle in the block after."""

from __future__ import annotations

from chain.mempool import Mempool
from chain.predict.bodies import RequestPrediction
from chain.predict.records import PredictionStatus
from chain.predict.steps import prediction
from chain.state import Overlay
from chain.transition import preview_next_block
from tests.ledger.harness import Chain
from tests.predict.ledger_story import RIGHT, commit, ready, record, request, reveal


def _drawn_names(chain: Chain, view: Overlay, request_id: bytes) -> list[str]:
    rec = prediction(view, request_id)
    assert rec is not None
    by_addr = {chain.addr(n): n for n in chain.keys}
    return [by_addr[a] for a in rec.executors]


def test_commits_are_admitted_right_after_the_including_block() -> None:
    """[PRED-LOTTERY.1] [PRED-DRAW.1] [MEMPOOL-ADMIT.1] Block h includes the request; the
    pool, admitting against the next block's begin steps, sees it drawn from h's hash and
    admits the drawn executors' commits (the bare committed state, still ``drawing``,
    refuses them: ``not_executor``); block h+1 carries them and opens the reveal
    window; the reveals go into h+2, which settles the request agreed."""
    chain = Chain()
    model_id = ready(chain)
    tx = chain.tx("alice", RequestPrediction(request(model_id)))
    chain.block(tx)
    included = chain.state.height
    rid = tx.hash
    assert record(chain, rid).status == PredictionStatus.DRAWING
    view = preview_next_block(chain.state, chain.now + 1_000)
    drawn = _drawn_names(chain, view, rid)
    assert len(drawn) == 3 and "alice" not in drawn
    pool = Mempool(chain.state, chain.cache)
    commits = [chain.tx(n, commit(chain, n, rid, RIGHT)) for n in drawn]
    assert chain.reject(commits[0]) == "not_executor"  # the bare state: nobody drawn yet
    for c in commits:
        result = pool.add(c, chain.now + 1_000)
        assert result.accepted, (result.code, result.message)
    chain.block(*pool.reap(10))
    assert record(chain, rid).status == PredictionStatus.REVEAL
    assert record(chain, rid).executors == prediction(view, rid).executors  # type: ignore[union-attr]
    pool.update(list(chain.blocks[-1].txs), chain.now + 1_000)
    for n in drawn:
        result = pool.add(chain.tx(n, reveal(n, rid, RIGHT)), chain.now + 1_000)
        assert result.accepted, (result.code, result.message)
    chain.block(*pool.reap(10))
    rec = record(chain, rid)
    assert rec.status == PredictionStatus.AGREED
    assert chain.state.height == included + 2


def test_the_seed_is_the_including_blocks_hash() -> None:
    """[PRED-LOTTERY.1] The same request included at two different block times (so two
    different including blocks) is drawn from each block's own hash: the draw is the
    lottery of that hash, and over a few requests the two timelines differ, so the
    requester, who cannot know the block's time or contents, cannot know its executors."""
    from chain.predict.lottery import draw, lottery_seed
    from chain.predict.steps import offering

    differ = 0
    for fee in range(1_000, 1_008):
        draws = []
        for dt in (1_000, 1_001):
            chain = Chain()
            model_id = ready(chain)
            tx = chain.tx("alice", RequestPrediction(request(model_id, fee=fee)))
            including = chain.block(tx, dt=dt)
            chain.block()
            rec = record(chain, tx.hash)
            pool = sorted(a for a in offering(chain.state) if a != chain.addr("alice"))
            assert rec.executors == draw(lottery_seed(tx.hash, including.hash), pool, 3)
            draws.append(rec.executors)
        differ += draws[0] != draws[1]
    assert differ > 0
