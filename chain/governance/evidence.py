"""[TX-EVIDENCE.1] Equivocation evidence on chain: checked by consensus, punished here.

Two conflicting signed votes by one validator for the same (height, round,
kind) prove it tried to break safety. The ledger records the slot once and
bans the offender exactly like a proven cheater (credits burned, removed from
the validator set after the change delay): equivocation is never an accident
for a validator that keeps its write-ahead log.
"""

from __future__ import annotations

from chain.context import TxContext
from chain.encoding import decode
from chain.errors import ChainError, InvalidTransaction
from chain.governance.bodies import Evidence
from chain.penalties import ban
from chain.state import Overlay
from chain.types import Address

EVIDENCE_MAX_AGE = 100_000
"""Heights after which evidence is no longer accepted (it is checked against the current set)."""


def apply_evidence(view: Overlay, sender: Address, body: Evidence, ctx: TxContext) -> None:
    from chain.consensus.evidence import DuplicateVoteEvidence, check_evidence
    from chain.consensus.messages import vote_from_wire
    from chain.consensus.validators import ValidatorSet

    try:
        a = vote_from_wire(decode(body.vote_a))
        b = vote_from_wire(decode(body.vote_b))
    except (ChainError, TypeError, ValueError) as e:
        raise InvalidTransaction("invalid_evidence", str(e)) from e
    slot = b"%s:%d:%d:%s" % (a.validator, a.height, a.round, a.kind.encode())
    if view.get("evidence", slot) is not None:
        raise InvalidTransaction("duplicate_evidence", "this equivocation is already recorded")
    try:
        validators = ValidatorSet.from_members(
            (v.pubkey, v.power) for v in view.validators().values())
        offender = check_evidence(DuplicateVoteEvidence(a, b), validators, ctx.chain_id)
    except (ChainError, TypeError, ValueError) as e:
        raise InvalidTransaction("invalid_evidence", str(e)) from e
    if not ctx.height - EVIDENCE_MAX_AGE <= a.height <= ctx.height:
        raise InvalidTransaction("evidence_too_old", f"evidence for height {a.height} is outside "
                                                     f"the last {EVIDENCE_MAX_AGE} heights")
    view.put("evidence", slot, [offender, a.height, a.round, a.kind, ctx.height])
    ban(view, offender, ctx.height)
