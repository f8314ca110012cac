"""Penalties every part applies alike: a ban [JOB-BAN.1], a verifier's bond forfeited
[VERIFY-FORFEIT.1] [VOTE-NOSHOW.1], a validator removed after the change delay [GOV-VALSET.1].

A train verdict, a federated round's verdict and equivocation evidence all ban the same
way, so the ban and what it touches (the verifier set, the validator set) sit in the core,
below every kind: no kind reaches into another to punish.
"""

from __future__ import annotations

from chain.records import Account, Job, ValidatorChange
from chain.state import Overlay, height_key
from chain.types import Address, Amount, Height


def ban(view: Overlay, address: Address, height: Height) -> None:
    """[JOB-BAN.1] A proven cheater is banned; all its credits, its verifier bond
    included, are burned."""
    account = view.account(address)
    view.add_burned(account.balance)
    view.put_account(address, Account(balance=Amount(0), nonce=account.nonce, banned=True))
    forfeit_bond(view, address)
    if address in view.validators():
        schedule_validator_removal(view, address, height)


def schedule_validator_change(view: Overlay, height: Height, change: ValidatorChange) -> None:
    """[GOV-VALSET.1] A change takes effect ``validator_change_delay`` heights later."""
    effective = height + view.params.validator_change_delay
    key = height_key(effective)
    view.put("valset_change", key, [*(view.get("valset_change", key) or []), change])


def schedule_validator_removal(view: Overlay, address: Address, height: Height) -> None:
    schedule_validator_change(view, height, ValidatorChange("remove", address, None, 0))


def forfeit_bond(view: Overlay, address: Address) -> None:
    """[VERIFY-FORFEIT.1] The bond is burned and the member leaves the verifier set."""
    bond = view.verifier_bond(address)
    if bond is None:
        return
    view.add_burned(bond)
    view.delete("verifier", address)


def forfeit_no_shows(view: Overlay, job: Job) -> tuple[Address, ...]:
    """[VOTE-NOSHOW.1] Eligible voters of a turn that reached a verdict and opened no vote
    forfeit their bonds. Returns them, sorted."""
    opened = {v.voter for v in job.votes if v.revealed}
    missing = tuple(a for a in job.eligible_voters if a not in opened)
    for address in missing:
        forfeit_bond(view, address)
    return missing
