"""Credits that move [TX-TRANSFER.1]: the one transaction every kind shares, apart from them.

Credits exist only from genesis and move [BANK.1]; a transfer is the plain move, every
other movement (escrow, bounty, bond, fee) belongs to the kind that makes it.
"""

from __future__ import annotations

from chain.context import TxContext
from chain.errors import InvalidTransaction
from chain.records import Account
from chain.state import Overlay
from chain.transactions import Transfer
from chain.types import Address, Amount
from chain.versions import MEMO_VERSION


def apply_transfer(view: Overlay, sender: Address, body: Transfer, ctx: TxContext) -> None:
    """[TX-TRANSFER.1] Credits move between two distinct, unbanned accounts."""
    if body.to == sender:
        raise InvalidTransaction("self_transfer", "sender and recipient are the same")
    if body.memo and view.protocol_version < MEMO_VERSION:  # [TX-TRANSFER.2]
        raise InvalidTransaction("needs_protocol_version",
                                 f"a transfer memo needs protocol version {MEMO_VERSION}; "
                                 f"version {view.protocol_version} is in force")
    recipient = view.account(body.to)
    if recipient.banned:
        raise InvalidTransaction("recipient_banned", "credits cannot be sent to a banned address")
    account = view.account(sender)
    if account.balance < body.amount:
        raise InvalidTransaction("insufficient_balance",
                                 f"balance {account.balance} is less than {body.amount}")
    # Direct construction, not dataclasses.replace: this is the hottest path of execution.
    view.put_account(sender, Account(Amount(account.balance - body.amount), account.nonce,
                                     account.banned))
    recipient = view.account(body.to)
    view.put_account(body.to, Account(Amount(recipient.balance + body.amount), recipient.nonce,
                                      recipient.banned))
