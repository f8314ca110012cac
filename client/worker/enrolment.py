"""A worker opts in to verification, and out of it, as its policy says [WORK-VERIFY.1].

Only verifiers are eligible voters (ledger.md [VOTE-ELIGIBLE.2]), so a worker
whose policy says ``verify = true`` sends ``verifier_join`` once its balance
covers the bond, again after a missed vote cost it the bond
[VOTE-NOSHOW.1], and ``verifier_leave`` (bond back) when the policy says
``verify = false``. The decision is a pure function of the committed state.
"""

from __future__ import annotations

import logging

from chain.state import StateReader
from chain.transactions import Body
from chain.types import Address
from chain.verifiers.bodies import VerifierJoin, VerifierLeave
from chain.verifiers.rules import voting_on
from client.node.handle import NodeHandle
from client.worker.outbox import Action, Outbox

log = logging.getLogger("learningchain.worker")

ENROLMENT = b"verifier"
"""The outbox key of enrolment transactions (they belong to no job)."""


def enrolment_change(state: StateReader, address: Address, wants_to_verify: bool
                     ) -> tuple[Body | None, str]:
    """The transaction that brings ``address`` to what its policy wants, and why."""
    if not state.is_member(address) or state.account(address).banned:
        return None, "not a member that may send transactions"
    bond = state.verifier_bond(address)
    if wants_to_verify and bond is None:
        need = state.params.verifier_bond
        have = state.account(address).balance
        if have < need:
            return None, f"balance {have} is below the verifier bond {need}"
        return VerifierJoin(), f"opting in to verify (bond {need})"
    if not wants_to_verify and bond is not None:
        if voting_on(state, address) is not None:
            return None, "still an eligible voter of an open vote"
        return VerifierLeave(), f"opting out of verification (bond {bond} back)"
    return None, "as the policy wants"


class Enrolment:
    """Sends the enrolment transaction the state calls for, at most every few blocks."""

    def __init__(self, node: NodeHandle, outbox: Outbox, address: Address,
                 wants_to_verify: bool) -> None:
        self.node = node
        self.outbox = outbox
        self.address = address
        self.wants_to_verify = wants_to_verify
        self._last_reason = ""

    def maybe_enrol(self, height: int) -> None:
        body, reason = enrolment_change(self.node.state, self.address, self.wants_to_verify)
        if body is None:
            if reason != self._last_reason and self.wants_to_verify \
                    and self.node.state.verifier_bond(self.address) is None:
                log.info("not verifying yet: %s", reason)
            self._last_reason = reason
            return
        self._last_reason = reason
        action = Action(body.TAG, ENROLMENT)
        if self.outbox.due(action, height):
            log.info("%s", reason)
            self.outbox.send(body, body.TAG, ENROLMENT, action)
