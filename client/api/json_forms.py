"""JSON views of chain records for the HTTP API [API-JSON.1].

One function per record, pure and total: bytes become lowercase hex,
addresses their checksummed ``lc1…`` text, amounts plain integers, times
milliseconds. The shapes are the ones ``client.api.openapi`` documents; the
API tests check every response against that document, so a field added
here and not there (or the reverse) fails a test.

The parsers at the end turn path and query text into chain values and
raise ``BadInput`` (a clean 400) on anything else.
"""

from __future__ import annotations

from typing import Any

from chain.blocks import Block
from chain.crypto import address_from_pubkey, address_from_text, address_to_text
from chain.errors import InvalidAddress
from chain.governance.bodies import (
    UPGRADE_ACTIONS,
    Evidence,
    GovernanceAction,
    GovernanceApprove,
    GovernancePropose,
)
from chain.governance.records import Proposal
from chain.jobspec import DataRef, Holdout, JobSpec
from chain.records import SETTLED, Claim, Job, JobStatus, Params, Verdict, VoteRecord
from chain.train.bodies import ClaimLoss, PostJob, RevealModel, VoteCommit, VoteReveal
from chain.train.holdout.bodies import HoldoutPublish, HoldoutReveal, HoldoutVoteReveal
from chain.train.holdout.records import HoldoutState, HoldoutStatus
from chain.train.holdout.rules import choose_winner
from chain.transactions import SignedTransaction, Transfer
from chain.types import Address
from client.api.federated.views import fed_body_json
from client.api.predict.views import predict_body_json

Json = dict[str, Any]


def hx(data: bytes | None) -> str | None:
    return None if data is None else data.hex()


def addr(address: bytes | None) -> str | None:
    return None if address is None else address_to_text(address)


# --- transactions ---------------------------------------------------------------------

def action_json(action: GovernanceAction) -> Json:
    """A governance action; ``target`` is an address, a public key for add_validator, or an
    upgrade plan's name [UPGRADE-PLAN.1]."""
    if action.kind in UPGRADE_ACTIONS:
        out: Json = {"kind": action.kind, "target": action.target.decode("ascii"),
                     "power": 0}
        if action.plan is not None:
            out["plan"] = {"name": action.plan.name, "version": action.plan.version,
                           "height": action.plan.height}
        return out
    if action.kind == "add_validator":
        return {"kind": action.kind, "target": action.target.hex(),
                "address": address_to_text(address_from_pubkey(action.target)),
                "power": action.power}
    return {"kind": action.kind, "target": address_to_text(action.target),
            "address": address_to_text(action.target), "power": action.power}


def body_json(body: Any) -> Json:
    """The decoded body of a transaction, tagged by ``type``."""
    out: Json = {"type": body.TAG}
    if isinstance(body, Transfer):
        out.update(to=addr(body.to), amount=body.amount)
        if body.memo:  # [TX-TRANSFER.2]
            out.update(memo=body.memo.hex())
    elif isinstance(body, PostJob):
        out.update(spec=spec_json(body.spec))
    elif isinstance(body, ClaimLoss):
        out.update(job_id=body.job_id.hex(), loss=body.loss, commitment=body.commitment.hex())
    elif isinstance(body, RevealModel):
        out.update(job_id=body.job_id.hex(), model_hash=body.model_hash.hex(),
                   salt=body.salt.hex())
    elif isinstance(body, VoteCommit):
        out.update(job_id=body.job_id.hex(), claimer=addr(body.claimer),
                   commitment=body.commitment.hex())
    elif isinstance(body, VoteReveal):
        out.update(job_id=body.job_id.hex(), claimer=addr(body.claimer), valid=body.valid,
                   measured_loss=body.measured_loss, salt=body.salt.hex(),
                   challenge_loss=body.challenge_loss)  # [VOTE-CHALLENGE.1]
    elif isinstance(body, GovernancePropose):
        out.update(action=action_json(body.action))
    elif isinstance(body, GovernanceApprove):
        out.update(proposal_id=body.proposal_id.hex())
    elif isinstance(body, Evidence):
        out.update(vote_a=body.vote_a.hex(), vote_b=body.vote_b.hex())
    elif isinstance(body, HoldoutPublish | HoldoutReveal):
        out.update(job_id=body.job_id.hex(), part=data_ref_json(body.part))
    elif isinstance(body, HoldoutVoteReveal):
        out.update(job_id=body.job_id.hex(), claimer=addr(body.claimer), valid=body.valid,
                   measured_loss=body.measured_loss, holdout_ok=body.holdout_ok,
                   hidden_loss=body.hidden_loss, salt=body.salt.hex(),
                   # [HOLDOUT-CHALLENGE.1] the answers on the hidden and the public part
                   hidden_challenge_loss=body.hidden_challenge_loss,
                   challenge_loss=body.challenge_loss)
    elif (predict := predict_body_json(body)) is not None:
        out.update(predict)  # [TX-PREDICT.1]
    elif (fed := fed_body_json(body)) is not None:
        out.update(fed)  # [API-FED.4]
    return out


def tx_json(tx: SignedTransaction) -> Json:
    return {
        "hash": tx.hash.hex(),
        "type": tx.body.TAG,
        "sender": address_to_text(tx.sender),
        "sender_pubkey": tx.sender_pubkey.hex(),
        "nonce": tx.nonce,
        "size": len(tx.wire),
        "body": body_json(tx.body),
    }


# --- blocks -----------------------------------------------------------------------------

def block_header_json(block: Block) -> Json:
    h = block.header
    return {
        "height": h.height,
        "hash": block.hash.hex(),
        "chain_id": h.chain_id,
        "version": h.version,
        "time_ms": h.time_ms,
        "prev_hash": h.prev_hash.hex(),
        "proposer": address_to_text(h.proposer),
        "tx_root": h.tx_root.hex(),
        "state_root": h.state_root.hex(),
        "last_commit_hash": h.last_commit_hash.hex(),
        "tx_count": len(block.txs),
    }


def block_json(block: Block) -> Json:
    out = block_header_json(block)
    out["tx_hashes"] = [tx.hash.hex() for tx in block.txs]
    out["txs"] = [tx_json(tx) for tx in block.txs]
    return out


# --- jobs ---------------------------------------------------------------------------------

def data_ref_json(ref: DataRef | None) -> Json | None:
    return None if ref is None else {"blob": ref.blob.hex(), "size": ref.size}


def holdout_terms_json(terms: Holdout | None) -> Json | None:
    """[HOLDOUT-SPEC.1] A train/v3 job's hidden-test-set terms; None for other kinds."""
    if terms is None:
        return None
    return {"root": terms.root.hex(), "pool": terms.pool,
            "public_permille": terms.public_permille, "finalists": terms.finalists,
            "deposit": terms.deposit, "reveal_window_ms": terms.reveal_window_ms,
            "tie_tolerance": terms.tie_tolerance}


def spec_json(spec: JobSpec) -> Json:
    v, lim = spec.voting, spec.limits
    return {
        "kind": spec.kind,
        "image_digest": spec.image_digest.hex(),
        "image_blob": spec.image_blob.hex(),
        "image_ref": spec.image_ref,
        "data": {role: {"blob": ref.blob.hex(), "size": ref.size} for role, ref in spec.data},
        "entry_points": {name: list(argv) for name, argv in spec.entry_points},
        "limits": {"memory_mb": lim.memory_mb, "cpu_millis": lim.cpu_millis,
                   "time_s": lim.time_s, "disk_mb": lim.disk_mb, "model_mb": lim.model_mb,
                   "image_mb": lim.image_mb, "image_unpacked_mb": lim.image_unpacked_mb,
                   **({"gpu_count": lim.gpu_count, "gpu_memory_mb": lim.gpu_memory_mb}
                      if lim.gpu_count else {})},  # [JOB-GPU.1] only a GPU job has them
        "search_space": [{"name": p.name, "kind": p.kind, "values": list(p.values)}
                         for p in spec.search_space],
        "bounty": spec.bounty,
        "escrow": spec.escrow,
        "expiry_ms": spec.expiry_ms,
        "loss_tolerance": spec.loss_tolerance,
        "voting": {
            "reveal_window_ms": v.reveal_window_ms,
            "commit_window_ms": v.commit_window_ms,
            "vote_reveal_window_ms": v.vote_reveal_window_ms,
            "quorum_permille": v.quorum_permille,
            "supermajority_permille": v.supermajority_permille,
            "voter_reward": v.voter_reward,
            "max_turns": v.max_turns,
        },
        "description": spec.description,
        "holdout": holdout_terms_json(spec.holdout),
    }


def claim_json(claim: Claim) -> Json:
    return {"claimer": address_to_text(claim.claimer), "loss": claim.loss,
            "commitment": claim.commitment.hex(), "height": claim.height,
            "index": claim.index}


def vote_json(vote: VoteRecord) -> Json:
    return {"voter": address_to_text(vote.voter), "commitment": vote.commitment.hex(),
            "revealed": vote.revealed,
            "valid": vote.valid if vote.revealed else None,
            "measured_loss": vote.measured_loss if vote.revealed else None,
            "holdout_ok": vote.holdout_ok if vote.revealed else None,
            "hidden_loss": vote.hidden_loss if vote.revealed else None,
            # [HOLDOUT-CHALLENGE.1] a holdout vote's answer on the hidden part
            "hidden_challenge_loss": vote.hidden_challenge_loss if vote.revealed else None,
            # [VOTE-CHALLENGE.1] the answer to the turn's challenge (null: none or unopened)
            "challenge_loss": vote.challenge_loss if vote.revealed else None}


def verdict_json(verdict: Verdict) -> Json:
    return {"claimer": address_to_text(verdict.claimer), "outcome": str(verdict.outcome),
            "valid_votes": verdict.valid_votes, "invalid_votes": verdict.invalid_votes,
            "eligible": verdict.eligible, "time_ms": verdict.time_ms,
            "model_hash": hx(verdict.model_hash), "verified_loss": verdict.verified_loss}


def leaderboard_json(job: Job) -> list[Json]:
    """Claims ranked as the ledger ranks them [JOB-RANK.1]: loss, then height, then index.

    ``state`` says where each claim stands: ``waiting`` for its turn, ``current``
    (its turn is running), or the outcome of its turn (valid, cheat, forfeit, …).
    """
    outcomes = {v.claimer: str(v.outcome) for v in job.verdicts}
    rows = []
    for rank, claim in enumerate(job.ranked_claims(), start=1):
        if claim.claimer == job.current:
            state = "current"
        else:
            state = outcomes.get(claim.claimer, "waiting")
        rows.append({"rank": rank, **claim_json(claim), "state": state,
                     "winner": claim.claimer == job.winner})
    return rows


def job_summary_json(job: Job) -> Json:
    best = job.best_claim()
    return {
        "job_id": job.job_id.hex(),
        "submitter": address_to_text(job.submitter),
        "status": str(job.status),
        "settled": job.status in SETTLED,
        "description": job.spec.description,
        "image_ref": job.spec.image_ref,
        "bounty": job.spec.bounty,
        "escrow": job.escrow,
        "posted_height": job.posted_height,
        "posted_time_ms": job.posted_time_ms,
        "expiry_ms": job.spec.expiry_ms,
        "claim_count": len(job.claims),
        "best_loss": None if best is None else best.loss,
        "winner": addr(job.winner),
    }


def hidden_leaderboard_json(state: HoldoutState, terms: Holdout, job: Job) -> list[Json]:
    """[HOLDOUT-WINNER.1] The finalists in the order that decides the winner.

    With the hidden part ``verified``: the group within ``tie_tolerance`` of the lowest
    hidden loss first (``tied``, earliest claim first: its first row leads), then the other
    measured finalists by hidden loss, then those without one. ``tied`` marks a group of two
    or more. Otherwise the public ranking decides (the first finalist leads), nobody tied."""
    finalists = list(state.finalists)
    measured = [f for f in finalists if f.hidden_loss is not None]
    tied_group: list[Any] = []
    if state.status == HoldoutStatus.VERIFIED and measured:
        best = min(f.hidden_loss for f in measured if f.hidden_loss is not None)
        tied_group = sorted((f for f in measured if f.hidden_loss is not None
                             and f.hidden_loss - best <= terms.tie_tolerance),
                            key=lambda f: (f.height, f.index))
        rest = sorted((f for f in measured if f not in tied_group),
                      key=lambda f: (f.hidden_loss, f.height, f.index))
        finalists = [*tied_group, *rest, *(f for f in finalists if f.hidden_loss is None)]
    leader = choose_winner(state, terms.tie_tolerance)
    return [{"rank": rank, "claimer": address_to_text(f.claimer), "hidden_loss": f.hidden_loss,
             "height": f.height, "index": f.index,
             "tied": len(tied_group) > 1 and f in tied_group,
             "leading": f == leader, "winner": f.claimer == job.winner}
            for rank, f in enumerate(finalists, start=1)]


def holdout_json(job: Job, state: HoldoutState | None) -> Json | None:
    """[API-HOLDOUT.1] A train/v3 job's hidden test set: its terms, the split, both parts,
    the finalists and the hidden leaderboard; None for other kinds."""
    terms = job.spec.holdout
    if terms is None or state is None:
        return None
    public = terms.public_count
    verified = state.status == HoldoutStatus.VERIFIED
    return {
        "terms": holdout_terms_json(terms),
        "public_count": public,
        "hidden_count": terms.pool - public,
        "seed": hx(state.seed),
        "split_height": job.posted_height + 2,
        "public": data_ref_json(state.public),
        "hidden": data_ref_json(state.hidden),
        "status": str(state.status),
        "reveal_deadline_ms": (job.phase_deadline_ms or None)
        if job.status == JobStatus.HOLDOUT else None,
        "winner_rule": "hidden_loss" if verified else "public_rank",
        "finalists": [{"claimer": address_to_text(f.claimer), "hidden_loss": f.hidden_loss,
                       "height": f.height, "index": f.index} for f in state.finalists],
        "hidden_leaderboard": hidden_leaderboard_json(state, terms, job),
    }


def job_json(job: Job, holdout: HoldoutState | None = None) -> Json:
    """Everything about one job: spec, escrow, claims, the current turn, votes, verdicts,
    and a train/v3 job's hidden test set (``holdout``: the state's record of it)."""
    out = job_summary_json(job)
    voted = sum(1 for v in job.verdicts if str(v.outcome) != "forfeit")
    # The paid winner's model. On a train/v3 job the first valid verdict is the best public
    # finalist, which the hidden ranking may have passed over [HOLDOUT-WINNER.1]; before a
    # winner is named only a train/v1-v2 job's valid verdict is the one that will be paid.
    valid_verdict = next((v for v in job.verdicts if str(v.outcome) == "valid"
                          and (v.claimer == job.winner
                               or (job.winner is None and job.spec.holdout is None))), None)
    out.update(
        spec=spec_json(job.spec),
        claims=[claim_json(c) for c in job.ranked_claims()],
        tried=[address_to_text(a) for a in job.tried],
        turn=None if job.current is None else {
            "claimer": address_to_text(job.current),
            "number": len(job.verdicts) + 1,
            "phase": str(job.status),
            "deadline_ms": job.phase_deadline_ms,
            "model_hash": hx(job.model_hash),
            "eligible_voters": [address_to_text(a) for a in job.eligible_voters],
            "votes_committed": len(job.votes),
            "votes_revealed": sum(1 for v in job.votes if v.revealed),
        },
        phase_deadline_ms=job.phase_deadline_ms or None,
        turns_voted=voted,
        model_hash=hx(job.model_hash),
        votes=[vote_json(v) for v in job.votes],
        eligible_voters=[address_to_text(a) for a in job.eligible_voters],
        verdicts=[verdict_json(v) for v in job.verdicts],
        paid=job.paid,
        winner_model_hash=hx(valid_verdict.model_hash if valid_verdict else None),
        holdout=holdout_json(job, holdout),
    )
    return out


# --- governance and accounts -------------------------------------------------------------

def proposal_json(proposal: Proposal, powers: dict[Address, int], params: Params) -> Json:
    total = sum(powers.values())
    approved = sum(powers.get(a, 0) for a in proposal.approvals)
    return {
        "proposal_id": proposal.proposal_id.hex(),
        "proposer": address_to_text(proposal.proposer),
        "action": action_json(proposal.action),
        "created_ms": proposal.created_ms,
        "expires_ms": proposal.created_ms + params.governance_window_ms,
        "approvals": [address_to_text(a) for a in proposal.approvals],
        "approved_power": approved,
        "total_power": total,
        "needed_power": total * 2 // 3 + 1,
    }


def params_json(params: Params) -> Json:
    return {name: getattr(params, name) for name in params.__dataclass_fields__}


# --- parsing path and query values -------------------------------------------------------

class BadInput(ValueError):
    """A path or query value that is not what the route takes (a 400)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_hash(text: str, what: str) -> bytes:
    """32 bytes as 64 lowercase or uppercase hex characters."""
    if len(text) != 64:
        raise BadInput(f"bad_{what}", f"{what} must be 64 hex characters, got {len(text)}")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise BadInput(f"bad_{what}", f"{what} is not hex: {text[:80]!r}") from None


def parse_address(text: str) -> Address:
    try:
        return address_from_text(text)
    except InvalidAddress as e:
        raise BadInput("bad_address", e.message) from None


def parse_int(text: str | None, what: str, *, default: int | None = None, low: int = 0,
              high: int = 2**63 - 1) -> int:
    if text is None or text == "":
        if default is None:
            raise BadInput(f"bad_{what}", f"{what} is required")
        return default
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        raise BadInput(f"bad_{what}", f"{what} must be a non-negative integer, got {text[:40]!r}")
    value = int(text)
    if not low <= value <= high:
        raise BadInput(f"bad_{what}", f"{what} must be in {low}..{high}, got {value}")
    return value


def parse_float(text: str | None, what: str, *, default: float, low: float,
                high: float) -> float:
    if text is None or text == "":
        return default
    try:
        value = float(text)
    except ValueError:
        raise BadInput(f"bad_{what}", f"{what} must be a number, got {text[:40]!r}") from None
    if not low <= value <= high:  # also false for NaN
        raise BadInput(f"bad_{what}", f"{what} must be in {low}..{high}, got {text[:40]!r}")
    return value
