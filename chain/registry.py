"""The registry: which part of the protocol handles which transaction, and in which order
the parts' block steps run. The one module of the core that imports the kinds.

A reader checks it against the spec as one checks execution-specs' ``fork.py`` (or a
Cosmos SDK app's module wiring): every transaction type of protocol_spec/ledger.md §3,
predict.md §8 and federated.md §7 has one row in ``HANDLERS``, and ``BEGIN_BLOCK`` /
``END_BLOCK`` list the steps in the order [BLOCK-BEGIN.1] and ledger.md §6 fix. The
transition (``chain.transition``) runs these tables and knows no kind by name.

The parts (one package each, the same inner shape where it applies: ``bodies``,
``records``, ``spec``, ``rules`` or ``tx`` (handlers), ``steps`` (block steps), ``reads``);
what they all apply alike (a ban, a bond forfeited) is the core's ``chain.penalties``:

- ``chain.bank``: transfers [TX-TRANSFER.1] (ledger.md §3)
- ``chain.train`` and ``chain.train.holdout``: train/v1-v3 jobs [JOB-*] [VOTE-*] and
  train/v3's hidden test set [HOLDOUT-*] (ledger.md §5, job_contract.md §1b)
- ``chain.verifiers``: who verifies [VERIFY-*] (ledger.md §5)
- ``chain.governance``: members, validators [GOV-*], equivocation evidence
  [TX-EVIDENCE.1] (ledger.md §6)
- ``chain.predict``: prediction requests [PRED-*] (predict.md)
- ``chain.federated.open`` and ``chain.federated.private``: federated/v1 jobs [FED-*]
  (federated.md §6-7)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chain.bank import apply_transfer
from chain.context import TxContext
from chain.federated.open import steps as fed_steps
from chain.federated.open import tx as fed_tx
from chain.federated.open.bodies import (
    FedAggregate,
    FedCommit,
    FedPart,
    FedReveal,
    FedVoteCommit,
    FedVoteReveal,
)
from chain.federated.private import tx as fed_private_tx
from chain.federated.private.bodies import FedKeys, FedShares, FedUnmask
from chain.governance import rules as governance
from chain.governance.evidence import apply_evidence
from chain.governance.upgrade import activate_upgrade
from chain.predict import steps as predict_steps
from chain.predict import tx as predict_tx
from chain.predict.bodies import (
    DeployModel,
    OfferPrediction,
    PredictCommit,
    PredictReveal,
    RequestPrediction,
    WithdrawPrediction,
)
from chain.state import Overlay
from chain.train import rules as train
from chain.train.holdout import rules as holdout
from chain.train.holdout import tx as holdout_tx
from chain.transactions import (
    ClaimLoss,
    Evidence,
    GovernanceApprove,
    GovernancePropose,
    HoldoutPublish,
    HoldoutReveal,
    HoldoutVoteReveal,
    PostJob,
    RevealModel,
    Transfer,
    VerifierJoin,
    VerifierLeave,
    VoteCommit,
    VoteReveal,
)
from chain.types import Address, Hash32, Height, TimeMs
from chain.verifiers import rules as verifiers

Handler = Callable[[Overlay, Address, Any, TxContext], None]
"""A body's own rules [TX-APPLY.1], run after the envelope's checks (signature, ban, nonce)."""

HANDLERS: dict[type, tuple[Handler, ...]] = {
    # ledger.md §3: credits
    Transfer: (apply_transfer,),                              # [TX-TRANSFER.1]
    # ledger.md §5: jobs (train/v1-v3), then federated/v1's own checks [TX-FED.1]
    PostJob: (train.apply_post_job, fed_tx.apply_post_job),  # [JOB-POST.1] [TX-FED.1]
    ClaimLoss: (train.apply_claim,),                          # claim
    RevealModel: (train.apply_reveal,),                       # reveal
    VoteCommit: (train.apply_vote_commit,),                   # vote_commit
    VoteReveal: (train.apply_vote_reveal,),                   # vote_reveal
    # ledger.md §6: governance; §3: equivocation evidence
    GovernancePropose: (governance.apply_propose,),           # [GOV-PROPOSE.1]
    GovernanceApprove: (governance.apply_approve,),           # [GOV-APPROVE.1]
    Evidence: (apply_evidence,),                              # [TX-EVIDENCE.1]
    # ledger.md §5 (Verifiers); leaving is refused while aggregating [VERIFY-LEAVE.1]
    VerifierJoin: (verifiers.apply_verifier_join,),           # [VERIFY-JOIN.1]
    VerifierLeave: (fed_tx.check_verifier_leave, verifiers.apply_verifier_leave),
    # job_contract.md §1b: train/v3's hidden test set
    HoldoutPublish: (holdout.apply_holdout_publish,),         # [HOLDOUT-PUBLISH.1]
    HoldoutReveal: (holdout_tx.apply_holdout_reveal,),        # [HOLDOUT-REVEAL.1]
    HoldoutVoteReveal: (holdout_tx.apply_holdout_vote_reveal,),  # [HOLDOUT-VOTE.1]
    # predict.md §8: prediction requests [TX-PREDICT.1]
    DeployModel: (predict_tx.apply_deploy_model,),
    OfferPrediction: (predict_tx.apply_offer_prediction,),
    WithdrawPrediction: (predict_tx.apply_withdraw_prediction,),
    RequestPrediction: (predict_tx.apply_request_prediction,),
    PredictCommit: (predict_tx.apply_predict_commit,),
    PredictReveal: (predict_tx.apply_predict_reveal,),
    # federated.md §7: a federated job's rounds [TX-FED.2-7]
    FedCommit: (fed_tx.apply_fed_commit,),
    FedReveal: (fed_tx.apply_fed_reveal,),
    FedAggregate: (fed_tx.apply_fed_aggregate,),
    FedVoteCommit: (fed_tx.apply_fed_vote_commit,),
    FedVoteReveal: (fed_tx.apply_fed_vote_reveal,),
    FedPart: (fed_tx.apply_fed_part,),
    # federated.md §6: private mode's round keys, shares and unmasking [TX-FED.8-10]
    FedKeys: (fed_private_tx.apply_fed_keys,),
    FedShares: (fed_private_tx.apply_fed_shares,),
    FedUnmask: (fed_private_tx.apply_fed_unmask,),
}
"""Each transaction type's handlers, run in order; the first that raises rejects it whole."""

BlockStep = Callable[[Overlay, Height, TimeMs, Hash32], None]
"""A part's step at a block's begin or end: (overlay, height, block time, parent hash)."""


def _activate_upgrade(view: Overlay, height: Height, time_ms: TimeMs, parent: Hash32) -> None:
    activate_upgrade(view, height)


def _tick_proposals(view: Overlay, height: Height, time_ms: TimeMs, parent: Hash32) -> None:
    governance.tick_proposals(view, time_ms)


def _tick_jobs(view: Overlay, height: Height, time_ms: TimeMs, parent: Hash32) -> None:
    train.tick_jobs(view, time_ms, height, parent)


def _tick_predictions(view: Overlay, height: Height, time_ms: TimeMs, parent: Hash32) -> None:
    predict_steps.tick_predictions(view, time_ms, height, parent)


def _tick_federated(view: Overlay, height: Height, time_ms: TimeMs, parent: Hash32) -> None:
    fed_steps.tick_federated(view, time_ms, height, parent)


def _apply_validator_changes(view: Overlay, height: Height, time_ms: TimeMs,
                             parent: Hash32) -> None:
    governance.apply_validator_changes(view, height + 1)


BEGIN_BLOCK: tuple[tuple[str, BlockStep], ...] = (
    # A plan due at this height switches the version before anything else runs, so every
    # rule of the block runs under it [UPGRADE-PLAN.4]
    ("upgrade", _activate_upgrade),
    # Windows that ended by this block's time close first, train/v3 splits due at this
    # height are drawn from the parent's hash [JOB-TICK.1] [HOLDOUT-SPLIT.1]
    ("train", _tick_jobs),
    ("governance", _tick_proposals),    # proposals expire [GOV-EXPIRE.1]
    ("predict", _tick_predictions),     # draws, windows, settlement [PRED-DRAW.1] [PRED-WINDOW.1]
    ("federated", _tick_federated),     # rounds step [FED-ROUND.1]
)
"""[BLOCK-BEGIN.1] The parts' begin-block steps, in this order."""

END_BLOCK: tuple[tuple[str, BlockStep], ...] = (
    ("governance", _apply_validator_changes),  # changes due at height + 1 [GOV-VALSET.1]
)
"""The parts' end-block steps, in this order (only the validator set changes there)."""
