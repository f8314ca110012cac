"""The prediction block tick: the draw, the windows, the payout and the forfeits
[PRED-DRAW.1] [PRED-WINDOW.1] [PRED-SETTLE.1] [PRED-FORFEIT.1].

The pure rules (``lottery``, ``agreement``, ``payout``) decide; this module reads and writes
the prediction tables. Every credit of an escrowed fee ends at a named address or burned,
and every forfeited bond credit is burned, so [BANK.1] holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from chain.errors import InvalidTransaction
from chain.predict.agreement import Agreement, Answer, exact_agreement, tolerance_agreement
from chain.predict.io import UNLOADABLE_HASH
from chain.predict.lottery import candidates, draw, lottery_seed
from chain.predict.model import DeployedModel
from chain.predict.params import LOTTERY_DELAY, PREDICT_PENALTY
from chain.predict.payout import settle
from chain.predict.records import Prediction, PredictionStatus
from chain.records import Account
from chain.state import Overlay, StateReader
from chain.types import Address, Amount, Hash32, Height, TimeMs


def deployed_model(view: StateReader, model_id: bytes) -> DeployedModel | None:
    value: DeployedModel | None = view.get("model", model_id)
    return value


def predictor_bond(view: StateReader, address: Address) -> Amount | None:
    bond = view.get("predictor", address)
    return None if bond is None else Amount(bond)


def prediction(view: StateReader, request_id: bytes) -> Prediction | None:
    value: Prediction | None = view.get("prediction", request_id)
    return value


def require_prediction(view: StateReader, request_id: bytes) -> Prediction:
    rec = prediction(view, request_id)
    if rec is None:
        raise InvalidTransaction("unknown_request", f"no prediction request {request_id.hex()}")
    return rec


def open_predictions(view: StateReader) -> Iterator[Prediction]:
    """Unsettled requests in request id order."""
    for key in view.keys("active_prediction"):
        rec = prediction(view, key)
        if rec is not None:
            yield rec


def offering(view: StateReader) -> list[Address]:
    """[PRED-DRAW.1] Candidates before the requester is removed: members offering service,
    not banned, whose bond still covers a penalty."""
    return [Address(a) for a in view.keys("predictor")
            if not view.account(Address(a)).banned
            and view.get("predictor", a) >= PREDICT_PENALTY]


def _credit(view: Overlay, address: Address, amount: int) -> None:
    """Pays ``amount``; a banned address is paid nothing and the amount is burned
    [JOB-SETTLE.1]. Zero amounts write nothing."""
    if amount == 0:
        return
    account = view.account(address)
    if account.banned:
        view.add_burned(amount)
        return
    view.put_account(address, Account(Amount(account.balance + amount), account.nonce,
                                      account.banned))


def _close(view: Overlay, rec: Prediction, status: PredictionStatus,
           answer: Hash32 | None = None) -> None:
    view.put("prediction", rec.request_id, replace(rec, status=status, escrow=Amount(0),
                                                   answer=answer))
    view.delete("active_prediction", rec.request_id)


def forfeit(view: Overlay, executor: Address) -> None:
    """[PRED-FORFEIT.1] ``PREDICT_PENALTY`` (or what is left of the bond, if less) is burned;
    a bond below the penalty keeps its executor out of the draw until it withdraws."""
    bond = predictor_bond(view, executor)
    if bond is None:
        return
    burned = min(bond, PREDICT_PENALTY)
    view.add_burned(burned)
    view.put("predictor", executor, bond - burned)


def agreement_of(rec: Prediction) -> Agreement:
    """[PRED-AGREE.2] [PRED-AGREE.3] The agreement of the opened answers, by mode."""
    opened = [a for a in rec.answers if a.output_hash is not None]
    if rec.request.mode == "values":
        answers: dict[Address, Answer] = {
            a.executor: (a.values if a.values is not None else bytes(a.output_hash or b""))
            for a in opened}
        return tolerance_agreement(rec.executors, answers, rec.request.tolerance)
    return exact_agreement(rec.executors, {a.executor: Hash32(a.output_hash or b"")
                                           for a in opened})


def settle_prediction(view: Overlay, rec: Prediction) -> None:
    """[PRED-SETTLE.1] [PRED-PAY.1] [PRED-PAY.2] Pays the agreeing executors, the owner's
    royalty and the requester's dust or refund, then the forfeits, then (agreed "does not
    load", [PRED-UNLOADABLE.3]) marks the model unservable, then closes the request."""
    model = deployed_model(view, rec.request.model_id)
    royalty_permille = 0 if model is None else model.royalty_permille
    agreement = agreement_of(rec)
    payout = settle(rec.escrow, royalty_permille, agreement)
    for executor, amount in payout.executors:
        _credit(view, executor, amount)
    if model is not None:
        _credit(view, model.owner, payout.royalty)
    _credit(view, rec.requester, payout.refund)
    for executor in payout.forfeit:
        forfeit(view, executor)
    if agreement.answer == UNLOADABLE_HASH and model is not None \
            and model.unservable_by is None:  # [PRED-UNLOADABLE.3]
        view.put("model", model.job_id, replace(model, unservable_by=rec.request_id))
    status = PredictionStatus.AGREED if agreement.answer else PredictionStatus.NO_MAJORITY
    _close(view, rec, status, agreement.answer)


def settle_if_all_open(view: Overlay, rec: Prediction) -> None:
    """[PRED-SETTLE.1] In the reveal window, once every committed answer is open."""
    if rec.status == PredictionStatus.REVEAL and all(a.opened for a in rec.answers):
        settle_prediction(view, rec)


def _draw(view: Overlay, rec: Prediction, parent_hash: Hash32, now: TimeMs) -> None:
    """[PRED-DRAW.1] [PRED-LOTTERY.1] [PRED-LOTTERY.2]"""
    pool = candidates(offering(view), rec.requester)
    if len(pool) < rec.request.k:
        _credit(view, rec.requester, rec.escrow)
        _close(view, rec, PredictionStatus.UNSERVED)
        return
    executors = draw(lottery_seed(rec.request_id, parent_hash), pool, rec.request.k)
    view.put("prediction", rec.request_id, replace(
        rec, status=PredictionStatus.COMMIT, executors=executors,
        deadline_ms=TimeMs(now + rec.request.commit_window_ms)))


def tick_predictions(view: Overlay, now: TimeMs, height: Height, parent_hash: Hash32) -> None:
    """[PRED-DRAW.1] [PRED-WINDOW.1] Each open request in request id order: draw at
    ``included_height + LOTTERY_DELAY`` (1) from the parent's hash, the including block's;
    a commit window that ended opens the reveal window (or settles when nobody committed);
    a reveal window that ended settles."""
    for rec in list(open_predictions(view)):
        if rec.status == PredictionStatus.DRAWING:
            if height >= rec.included_height + LOTTERY_DELAY:
                _draw(view, rec, parent_hash, now)
        elif now >= rec.deadline_ms and rec.status == PredictionStatus.COMMIT:
            rec = replace(rec, status=PredictionStatus.REVEAL,
                          deadline_ms=TimeMs(now + rec.request.reveal_window_ms))
            view.put("prediction", rec.request_id, rec)
            settle_if_all_open(view, rec)
        elif now >= rec.deadline_ms and rec.status == PredictionStatus.REVEAL:
            settle_prediction(view, rec)
