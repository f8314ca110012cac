"""Who is paid what once the answers are judged [PRED-PAY.1] [PRED-PAY.2].

Integer credits only; every credit of the escrowed fee ends somewhere stated, so the
ledger's supply check holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from chain.predict.agreement import Agreement
from chain.predict.io import UNLOADABLE_HASH
from chain.types import Address, Amount


@dataclass(frozen=True, slots=True)
class Payout:
    """``executors``: (address, amount) for each agreeing executor, sorted by address;
    ``royalty`` to the model's owner; ``refund`` back to the requester; ``forfeit``: the
    executors that forfeit (no-shows always; disagreeing ones when there was a majority).
    ``sum(executors) + royalty + refund == fee``."""

    executors: tuple[tuple[Address, Amount], ...]
    royalty: Amount
    refund: Amount
    forfeit: tuple[Address, ...]


def settle(fee: int, royalty_permille: int, agreement: Agreement) -> Payout:
    """[PRED-PAY.1] Agreed: royalty ``fee × royalty_permille // 1000`` to the owner; the rest
    split evenly among the m agreeing executors (``pool // m`` each); the dust ``pool mod m``
    returns to the requester. The disagreeing and the no-shows get nothing and forfeit.
    [PRED-PAY.2] No majority: the whole fee returns to the requester, nobody is paid, no
    royalty; only the no-shows forfeit (a wrong answer cannot be told from a right one
    without a majority).
    [PRED-UNLOADABLE.2] Agreed that the model does not load: as agreed, but no royalty (the
    whole fee is the pool): the owner is never paid for a model nobody could run."""
    if agreement.answer is None:
        return Payout((), Amount(0), Amount(fee), agreement.no_shows)
    if agreement.answer == UNLOADABLE_HASH:
        royalty_permille = 0
    royalty = fee * royalty_permille // 1000
    pool = fee - royalty
    m = len(agreement.agreeing)
    share = pool // m
    return Payout(tuple((a, Amount(share)) for a in agreement.agreeing), Amount(royalty),
                  Amount(pool - share * m),
                  tuple(sorted((*agreement.disagreeing, *agreement.no_shows))))
