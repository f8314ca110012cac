"""[WORK-VERIFY.1] A worker opts in to verification as its policy says, on a real ledger.

The decision (``enrolment_change``) is pure; these tests drive it through a
one-validator node that commits real blocks to SQLite, so the transactions
the worker sends are admitted by the mempool and applied by the ledger.
"""

from __future__ import annotations

from pathlib import Path

from chain.verifiers.bodies import VerifierJoin, VerifierLeave
from client.worker.enrolment import Enrolment, enrolment_change
from client.worker.outbox import Outbox
from tests.framework.solo import SoloNode
from tests.ledger.harness import Chain, make_genesis

BOND = 10


async def test_work_verify_1_a_worker_opts_in_and_out_through_real_blocks(
        tmp_path: Path) -> None:
    """[WORK-VERIFY.1] verify=true: verifier_join, bond locked; verify=false: leave, bond
    back; nothing is sent twice while the state already says what the policy wants."""
    genesis, keys = make_genesis(members=("submitter", "alice"), verifiers=())
    async with SoloNode(genesis, keys["v0"], tmp_path, block_interval=3600.0) as node:
        alice = keys["alice"].address
        before = node.state.account(alice).balance
        outbox = Outbox(node, keys["alice"])
        joining = Enrolment(node, outbox, alice, wants_to_verify=True)
        joining.maybe_enrol(node.height)
        await node.commit_block()
        assert node.state.verifier_bond(alice) == BOND
        assert node.state.account(alice).balance == before - BOND
        joining.maybe_enrol(node.height)  # already a verifier: nothing to send
        assert outbox.counters["verifier_join"] == 1
        leaving = Enrolment(node, outbox, alice, wants_to_verify=False)
        leaving.maybe_enrol(node.height)
        await node.commit_block()
        assert node.state.verifier_bond(alice) is None
        assert node.state.account(alice).balance == before
        assert outbox.counters["verifier_leave"] == 1


def test_work_verify_1_what_the_state_calls_for() -> None:
    """[WORK-VERIFY.1] Join with the bond in hand; wait without it; never as an outsider;
    leave only when not an eligible voter of an open vote."""
    chain = Chain(validators=1, members=("submitter", "alice", "erin"), verifiers=("alice",))
    erin, alice, mallory = chain.addr("erin"), chain.addr("alice"), chain.addr("mallory")
    body, _ = enrolment_change(chain.state, erin, True)
    assert isinstance(body, VerifierJoin)
    assert enrolment_change(chain.state, alice, True)[0] is None
    body, why = enrolment_change(chain.state, mallory, True)
    assert body is None and "not a member" in why
    assert isinstance(enrolment_change(chain.state, alice, False)[0], VerifierLeave)
    poor = Chain(validators=1, members=("submitter", "erin"), verifiers=(), balance=BOND - 1)
    body, why = enrolment_change(poor.state, poor.addr("erin"), True)
    assert body is None and "below the verifier bond 10" in why


def test_work_verify_1_no_leave_while_an_eligible_voter() -> None:
    """[WORK-VERIFY.1] [VERIFY-LEAVE.1] The worker waits for the verdict before leaving."""
    from chain.train.bodies import PostJob
    from tests.ledger.harness import job_spec

    chain = Chain(validators=1, members=("submitter", "alice", "bob"))
    post = chain.tx("submitter", PostJob(job_spec(expiry_ms=chain.now + 10_000)))
    chain.block(post)
    chain.block(chain.claim("alice", post.hash, 0.2))
    chain.block(at=chain.job(post.hash).spec.expiry_ms)
    chain.block(chain.reveal("alice", post.hash))
    body, why = enrolment_change(chain.state, chain.addr("bob"), False)
    assert body is None and "eligible voter" in why
