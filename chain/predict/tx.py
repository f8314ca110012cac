"""The ledger's handlers of the prediction transactions [PRED-DEPLOY.1] [PRED-OFFER.1]
[PRED-WITHDRAW.1] [PRED-REQUEST.1] [PRED-COMMIT.1] [PRED-REVEAL.1].

Each checks what needs state, in the order predict.md §8 lists the codes, and writes the
prediction tables (``chain.predict.records``). The windows, the draw and the payout run in
the block tick (``chain.predict.steps``); a reveal that opens the last committed answer
settles at once, as the last vote of a turn decides it.
"""

from __future__ import annotations

from dataclasses import replace

from chain.context import TxContext
from chain.crypto import address_to_text
from chain.errors import FieldError, InvalidTransaction
from chain.predict.answer import answer_commitment, check_values, values_hash
from chain.predict.bodies import (
    DeployModel,
    OfferPrediction,
    PredictCommit,
    PredictReveal,
    RequestPrediction,
    WithdrawPrediction,
)
from chain.predict.io import INVALID_REASONS, UNLOADABLE_HASH, invalid_blob, output_hash
from chain.predict.model import DeployedModel
from chain.predict.params import MAX_REVEAL_VALUES, PREDICT_BOND
from chain.predict.records import ExecutorAnswer, Prediction, PredictionStatus
from chain.predict.request import check_request
from chain.predict.steps import (
    deployed_model,
    open_predictions,
    predictor_bond,
    require_prediction,
    settle_if_all_open,
)
from chain.records import Account, JobStatus, Outcome
from chain.state import Overlay
from chain.types import Address, Amount, Hash32, TimeMs

INVALID_HASHES = frozenset({*(output_hash(invalid_blob(r)) for r in INVALID_REASONS),
                            UNLOADABLE_HASH})
"""[PRED-IO.3] [PRED-UNLOADABLE.1] The only output hashes a ``values`` reveal may carry
without values: the five invalid answers and "the model does not load"."""


def _debit(view: Overlay, address: Address, amount: int, what: str) -> None:
    account = view.account(address)
    if account.balance < amount:
        raise InvalidTransaction("insufficient_balance", f"balance {account.balance} is less "
                                                         f"than the {what} {amount}")
    view.put_account(address, Account(Amount(account.balance - amount), account.nonce,
                                      account.banned))


def apply_deploy_model(view: Overlay, sender: Address, body: DeployModel,
                       ctx: TxContext) -> None:
    """[PRED-DEPLOY.1] Only the submitter of a PAID job deploys, once, and only the model
    its winner revealed and the voters verified."""
    del ctx
    job = view.job(body.job_id)
    if job is None:
        raise InvalidTransaction("unknown_job", f"no job {body.job_id.hex()}")
    if sender != job.submitter:
        raise InvalidTransaction("not_submitter", "only the job's submitter deploys its model")
    if job.status != JobStatus.PAID or job.winner is None:
        raise InvalidTransaction("job_not_paid", f"job is {job.status}; only a paid job's "
                                                 "winning model is deployable")
    if deployed_model(view, body.job_id) is not None:
        raise InvalidTransaction("already_deployed", "this job's model is already deployed")
    winning = next((v.model_hash for v in job.verdicts
                    if v.claimer == job.winner and v.outcome == Outcome.VALID), None)
    if winning is None or body.model_hash != winning:
        raise InvalidTransaction("not_winner_model", f"model {body.model_hash.hex()} is not the "
                                                     "paid winner's verified model")
    view.put("model", body.job_id, DeployedModel(
        body.job_id, body.model_hash, body.format, body.input, body.output, sender,
        body.royalty_permille))


def apply_offer_prediction(view: Overlay, sender: Address, body: OfferPrediction,
                           ctx: TxContext) -> None:
    """[PRED-OFFER.1] A member, not yet offering, locks ``PREDICT_BOND``."""
    del body, ctx
    if not view.is_member(sender):
        raise InvalidTransaction("not_member", f"{address_to_text(sender)} is not an admitted "
                                               "member; only members execute predictions")
    if predictor_bond(view, sender) is not None:
        raise InvalidTransaction("already_predictor", "this member already offers predictions")
    _debit(view, sender, PREDICT_BOND, "prediction bond")
    view.put("predictor", sender, PREDICT_BOND)


def apply_withdraw_prediction(view: Overlay, sender: Address, body: WithdrawPrediction,
                              ctx: TxContext) -> None:
    """[PRED-WITHDRAW.1] What is left of the bond returns, but not while the sender is drawn
    on an open request: its forfeit must still be able to bite."""
    del body, ctx
    bond = predictor_bond(view, sender)
    if bond is None:
        raise InvalidTransaction("not_predictor", "this member does not offer predictions")
    busy = next((p for p in open_predictions(view) if sender in p.executors), None)
    if busy is not None:
        raise InvalidTransaction("executing", f"drawn on request {busy.request_id.hex()}; "
                                              "withdraw after it settles")
    account = view.account(sender)
    view.put_account(sender, Account(Amount(account.balance + bond), account.nonce,
                                     account.banned))
    view.delete("predictor", sender)


def apply_request_prediction(view: Overlay, sender: Address, body: RequestPrediction,
                             ctx: TxContext) -> None:
    """[PRED-REQUEST.1] [PRED-REQ.1] [PRED-REQ.4] [PRED-REQ.5] The request fits its model,
    pays every run and is one of at most 8 open; a ``values`` answer fits one reveal
    (``MAX_REVEAL_VALUES``); the fee leaves the sender into escrow."""
    req = body.request
    open_count = sum(1 for p in open_predictions(view) if p.requester == sender)
    model = deployed_model(view, req.model_id)
    check_request(req, model, open_count)
    if model is not None and req.mode == "values" \
            and req.rows * model.output.outputs > MAX_REVEAL_VALUES:
        raise InvalidTransaction("too_many_values", f"{req.rows} rows × {model.output.outputs} "
                                                    f"outputs > {MAX_REVEAL_VALUES} values a "
                                                    "reveal can carry")
    _debit(view, sender, req.fee, "fee")
    view.put("prediction", ctx.tx_hash,
             Prediction(ctx.tx_hash, sender, req, ctx.height, PredictionStatus.DRAWING, req.fee))
    view.put("active_prediction", ctx.tx_hash, True)


def apply_predict_commit(view: Overlay, sender: Address, body: PredictCommit,
                         ctx: TxContext) -> None:
    """[PRED-COMMIT.1] Only a drawn executor, once, inside the commit window. When all k have
    committed the reveal window opens at once."""
    rec = require_prediction(view, body.request_id)
    if sender not in rec.executors:
        raise InvalidTransaction("not_executor", f"{address_to_text(sender)} was not drawn for "
                                                 "this request")
    if rec.status != PredictionStatus.COMMIT or ctx.time_ms >= rec.deadline_ms:
        raise InvalidTransaction("not_in_commit_window", f"request is {rec.status}")
    if rec.answer_of(sender) is not None:
        raise InvalidTransaction("already_committed", "this executor already committed")
    answers = (*rec.answers, ExecutorAnswer(sender, body.commitment))
    rec = replace(rec, answers=answers)
    if len(answers) == len(rec.executors):
        rec = replace(rec, status=PredictionStatus.REVEAL,
                      deadline_ms=TimeMs(ctx.time_ms + rec.request.reveal_window_ms))
    view.put("prediction", rec.request_id, rec)


def _check_answer(rec: Prediction, view: Overlay, body: PredictReveal) -> None:
    """[PRED-REVEAL.1] [PRED-ANSWER.2] A ``values`` answer carries exactly rows × outputs
    values hashing to the output hash, or none with an invalid answer's hash [PRED-IO.3];
    other modes carry none."""
    if rec.request.mode != "values":
        if body.values is not None:
            raise InvalidTransaction("bad_values", f"{rec.request.mode} answers carry no values")
        return
    if body.values is None:
        if body.output_hash not in INVALID_HASHES:
            raise InvalidTransaction("bad_values", "a values answer without values must be an "
                                                   "invalid answer [PRED-IO.3] or the "
                                                   "unloadable answer [PRED-UNLOADABLE.1]")
        return
    model = deployed_model(view, rec.request.model_id)
    outputs = 0 if model is None else model.output.outputs
    try:
        check_values(body.values, rec.request.rows * outputs)
    except FieldError as e:
        raise InvalidTransaction("bad_values", str(e)) from e
    if values_hash(body.values) != body.output_hash:
        raise InvalidTransaction("bad_values", "the values do not hash to the output hash")


def apply_predict_reveal(view: Overlay, sender: Address, body: PredictReveal,
                         ctx: TxContext) -> None:
    """[PRED-REVEAL.1] Opens the sender's own commitment [PRED-ANSWER.1] inside the reveal
    window; the reveal that opens the last commitment settles the request."""
    rec = require_prediction(view, body.request_id)
    if rec.status != PredictionStatus.REVEAL or ctx.time_ms >= rec.deadline_ms:
        raise InvalidTransaction("not_in_reveal_window", f"request is {rec.status}")
    mine = rec.answer_of(sender)
    if mine is None:
        raise InvalidTransaction("no_commitment", f"{address_to_text(sender)} committed no "
                                                  "answer to this request")
    if mine.opened:
        raise InvalidTransaction("already_revealed", "this executor already revealed")
    expected = answer_commitment(rec.request_id, sender, body.output_hash, body.salt)
    if expected != mine.commitment:
        raise InvalidTransaction("answer_commitment_mismatch",
                                 "the reveal does not open its commitment")
    _check_answer(rec, view, body)
    opened = replace(mine, output_hash=Hash32(body.output_hash), values=body.values)
    rec = replace(rec, answers=tuple(opened if a.executor == sender else a for a in rec.answers))
    view.put("prediction", rec.request_id, rec)
    settle_if_all_open(view, rec)
