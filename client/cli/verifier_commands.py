"""``learningchain verifier``: opt in to verification with a bond, opt out, list verifiers.

Only verifiers are eligible voters (ledger.md [VOTE-ELIGIBLE.2]). A node that
runs the worker opts in by itself (node.md [WORK-VERIFY.1]); these commands
are for a member that wants to do it by hand, or to see who verifies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from chain.crypto import address_to_text
from chain.transactions import Body
from chain.verifiers.bodies import VerifierJoin, VerifierLeave
from client.cli.common import (
    client_for,
    emit,
    json_option,
    key_option,
    load_key,
    node_option,
    out,
    passphrase_option,
    send,
    table,
    user_errors,
    wait_option,
)


@click.group("verifier")
def verifier() -> None:
    """Verify other members' claims: opt in (bond), opt out, list."""


def _enrol(body: Body, key_path: Path, passphrase_file: Path | None, node_url: str,
           wait: bool, as_json: bool) -> None:
    key = load_key(key_path, passphrase_file)
    client = client_for(node_url)
    tx, info = send(client, key, body, wait=wait, what=body.TAG)
    with user_errors():
        account = client.account(key.address)
    result: dict[str, Any] = {"hash": tx.hash.hex(), "address": address_to_text(key.address),
                              "height": info["height"] if info else None,
                              "verifier_bond": account.get("verifier_bond"),
                              "balance": account.get("balance")}

    def text() -> None:
        where = f"in block {info['height']}" if info else "(pending)"
        if isinstance(body, VerifierJoin):
            out(f"{result['address']} verifies {where}: bond {result['verifier_bond']} "
                f"locked, balance {result['balance']}")
            out("an eligible voter that misses a vote forfeits the bond [VOTE-NOSHOW.1]")
        else:
            out(f"{result['address']} no longer verifies {where}: bond returned, balance "
                f"{result['balance']}")
        out(f"tx {tx.hash.hex()}")

    emit(result, as_json, text)


@verifier.command("join")
@key_option()
@passphrase_option
@node_option
@wait_option()
@json_option
def verifier_join(key_path: Path, passphrase_file: Path | None, node_url: str, wait: bool,
                  as_json: bool) -> None:
    """Opt in to verify (and vote on) claims; locks the graph's verifier bond."""
    _enrol(VerifierJoin(), key_path, passphrase_file, node_url, wait, as_json)


@verifier.command("leave")
@key_option()
@passphrase_option
@node_option
@wait_option()
@json_option
def verifier_leave(key_path: Path, passphrase_file: Path | None, node_url: str, wait: bool,
                   as_json: bool) -> None:
    """Opt out of verification; the bond returns (not while you are due to vote)."""
    _enrol(VerifierLeave(), key_path, passphrase_file, node_url, wait, as_json)


@verifier.command("list")
@node_option
@json_option
def verifier_list(node_url: str, as_json: bool) -> None:
    """The members that verify, and the bond a new verifier locks."""
    client = client_for(node_url)
    with user_errors():
        members = client.get("/members")["members"]
        bond = client.params().get("verifier_bond")
    rows = [m for m in members if m.get("verifier")]
    result = {"verifier_bond": bond, "verifiers": [
        {"address": m["address"], "balance": m["balance"], "validator": m["validator"]}
        for m in rows]}

    def text() -> None:
        out(f"{len(rows)} verifiers (bond to join: {bond})")
        table(["ADDRESS", "BALANCE", "VALIDATOR"],
              [[m["address"], m["balance"], "yes" if m["validator"] else "no"] for m in rows],
              right=(1,))

    emit(result, as_json, text)
