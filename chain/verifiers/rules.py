"""Who verifies [VERIFY-*]: members opt in with a bond, and a missed vote forfeits it.

Only members that actually re-evaluate models should be counted when a verdict
needs a quorum. A member that computes nothing (a validator without a Docker
engine, a submitter) would otherwise be an eligible voter that never votes, and
every verdict would fail its quorum and refund the job. So a member opts in
(``verifier_join``) and locks ``params.verifier_bond``; an eligible verifier
that does not open a vote in a turn that reached a verdict loses the bond
(burned, so nobody profits from another's absence) and leaves the set. A member
that wants to block verdicts therefore pays a bond per blocked turn, and is out
of the set after its first miss. See protocol_spec/ledger.md §Verifiers.
"""

from __future__ import annotations

from chain.context import TxContext
from chain.crypto import address_to_text
from chain.errors import InvalidTransaction
from chain.records import Account, Job, JobStatus
from chain.state import Overlay, StateReader
from chain.types import Address, Amount
from chain.verifiers.bodies import VerifierJoin, VerifierLeave

VOTING = (JobStatus.VOTE_COMMIT, JobStatus.VOTE_REVEAL)


def apply_verifier_join(view: Overlay, sender: Address, body: VerifierJoin,
                        ctx: TxContext) -> None:
    """[VERIFY-JOIN.1] A member, not yet a verifier, with the bond in its balance."""
    del body, ctx
    if not view.is_member(sender):
        raise InvalidTransaction("not_member", f"{address_to_text(sender)} is not an admitted "
                                               f"member; only members verify")
    if view.verifier_bond(sender) is not None:
        raise InvalidTransaction("already_verifier", "this member already verifies")
    bond = view.params.verifier_bond
    account = view.account(sender)
    if account.balance < bond:
        raise InvalidTransaction("insufficient_balance", f"balance {account.balance} is less "
                                                         f"than the verifier bond {bond}")
    view.put_account(sender, Account(Amount(account.balance - bond), account.nonce,
                                     account.banned))
    view.put("verifier", sender, bond)


def voting_on(view: StateReader, address: Address) -> Job | None:
    """An active job whose open vote counts ``address`` as an eligible voter."""
    for key in view.keys("active_job"):
        job = view.job(key)
        if job is not None and job.status in VOTING and address in job.eligible_voters:
            return job
    return None


def apply_verifier_leave(view: Overlay, sender: Address, body: VerifierLeave,
                         ctx: TxContext) -> None:
    """[VERIFY-LEAVE.1] A verifier leaves and gets its bond back, but not while it is an
    eligible voter of an open vote: that vote's no-show rule must still be able to bite."""
    del body, ctx
    bond = view.verifier_bond(sender)
    if bond is None:
        raise InvalidTransaction("not_verifier", "this member does not verify")
    job = voting_on(view, sender)
    if job is not None:
        raise InvalidTransaction("verifying", f"an eligible voter of job {job.job_id.hex()}; "
                                              f"leave after its verdict")
    account = view.account(sender)
    view.put_account(sender, Account(Amount(account.balance + bond), account.nonce,
                                     account.banned))
    view.delete("verifier", sender)
