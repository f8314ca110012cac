"""Commands that read the chain or send plain transactions through a node's HTTP API.

``balance``, ``transfer``, ``chain status|blocks|block|tx|supply|genesis``, and governance:
``member admit|list``, ``validator add|remove|list``, ``governance approve|list|upgrade|
cancel-upgrade`` [UPGRADE-PLAN.1].
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from chain.crypto import address_to_text
from chain.errors import ChainError
from chain.governance.bodies import (
    GovernanceAction,
    GovernanceApprove,
    GovernancePropose,
    UpgradePlan,
    plan_name,
)
from chain.transactions import MAX_MEMO_LEN, Transfer
from chain.types import Address, Amount, Hash32, PublicKeyBytes
from chain.versions import MAX_PLANNED_VERSION, UPGRADE_MIN_DELAY
from client.cli.common import (
    ADDRESS,
    HASH32,
    PUBKEY,
    UserError,
    client_for,
    emit,
    iso_time,
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
    when,
)

# --- balance and transfer -----------------------------------------------------------------


@click.command("balance")
@click.argument("address", type=ADDRESS, required=False)
@key_option(required=False, help="Show the balance of this key file's address.")
@passphrase_option
@node_option
@json_option
def balance(address: Address | None, key_path: Path | None, passphrase_file: Path | None,
            node_url: str, as_json: bool) -> None:
    """Show the balance (and nonce, membership) of ADDRESS or of --key's address."""
    if address is None and key_path is None:
        raise click.UsageError("give an ADDRESS or --key")
    if address is None:
        assert key_path is not None
        address = load_key(key_path, passphrase_file).address
    client = client_for(node_url)
    with user_errors():
        info = client.account(address)

    def text() -> None:
        flags = [f for f, on in (("member", info["member"]), ("banned", info["banned"]),
                                 (f"validator power {info['validator_power']}",
                                  info["validator_power"])) if on]
        out(f"{info['address']}  {info['balance']} credits")
        out(f"nonce {info['nonce']} (next {info['next_nonce']})"
                   + ("; " + ", ".join(flags) if flags else "; not a member"))

    emit(info, as_json, text)


@click.command("transfer")
@click.argument("to", type=ADDRESS)
@click.argument("amount", type=click.IntRange(min=1, max=2**63 - 1))
@click.option("--memo", default="", help="A reference for the recipient (UTF-8, up to 64 "
              "bytes; from protocol version 2 [TX-TRANSFER.2]).")
@key_option()
@passphrase_option
@node_option
@wait_option()
@json_option
def transfer(to: Address, amount: int, memo: str, key_path: Path, passphrase_file: Path | None,
             node_url: str, wait: bool, as_json: bool) -> None:
    """Send AMOUNT credits to the address TO, signed with --key."""
    memo_bytes = memo.encode()
    if len(memo_bytes) > MAX_MEMO_LEN:
        raise UserError(f"--memo is {len(memo_bytes)} bytes; at most {MAX_MEMO_LEN}")
    key = load_key(key_path, passphrase_file)
    client = client_for(node_url)
    tx, info = send(client, key, Transfer(to, Amount(amount), memo_bytes), wait=wait,
                    what="transfer")
    result: dict[str, Any] = {"hash": tx.hash.hex(), "from": address_to_text(key.address),
                           "to": address_to_text(to), "amount": amount,
                           "height": info["height"] if info else None}

    def text() -> None:
        where = f"in block {info['height']}" if info else "(pending)"
        out(f"sent {amount} credits to {address_to_text(to)} {where}")
        out(f"tx {tx.hash.hex()}")

    emit(result, as_json, text)


# --- chain ----------------------------------------------------------------------------------


@click.group("chain")
def chain() -> None:
    """Read the chain through a node: status, blocks, transactions."""


@chain.command("status")
@node_option
@json_option
def chain_status(node_url: str, as_json: bool) -> None:
    """The node's view: chain id, height, last block, peers, roles."""
    client = client_for(node_url)
    with user_errors():
        s = client.status()

    def text() -> None:
        out(f"chain    {s['chain_id']}")
        last = when(s["last_block_time_ms"], s["time_ms"])
        out(f"height   {s['height']} (last block {last})")
        out(f"node     {s['address']} ({', '.join(s['roles'])})")
        out(f"peers    {s['peer_count']}; mempool {s['mempool_txs']} tx; "
                   f"caught up: {'yes' if s['caught_up'] else 'no'}")
        base, missing = s.get("base_height", 1), s.get("sync_missing")
        if isinstance(base, int) and base > 1:  # [STORE-PRUNE.5] a node's word, checked
            out(f"stored   blocks {base}..{s['height']} (older ones pruned)")
        if (isinstance(missing, list) and len(missing) == 2
                and all(isinstance(x, int) for x in missing)):  # [WIRE-SYNC.8]
            out(f"SYNC     blocks {missing[0]}..{missing[1]} are pruned on every peer: "
                "cannot catch up")
        _protocol_lines(s)
        if s.get("storage_problem"):
            out(f"STORAGE  {s['storage_problem']}")

    emit(s, as_json, text)


def _protocol_lines(s: dict[str, Any]) -> None:
    """[UPGRADE-HALT.1] The version in force and a pending plan, with what it needs here."""
    p = s.get("protocol")
    if not p:
        return
    out(f"protocol version {p['version']} (this node runs up to {p['max_known_version']})")
    plan = p.get("upgrade_plan")
    if plan:
        left = plan["height"] - s["height"] - 1
        ready = "ready" if plan["version"] <= p["max_known_version"] else \
            "NOT READY: this node's software must be upgraded before then"
        out(f"upgrade  {plan['name']}: version {plan['version']} from height {plan['height']} "
            f"({max(left, 0)} blocks from now); {ready}")
    if p.get("upgrade_required"):
        out(f"HALTED   {p['upgrade_required']}")


@chain.command("blocks")
@click.option("--from", "start", type=click.IntRange(min=0), default=None,
              help="First height (default: the newest).")
@click.option("--limit", type=click.IntRange(1, 100), default=10, show_default=True)
@node_option
@json_option
def chain_blocks(start: int | None, limit: int, node_url: str, as_json: bool) -> None:
    """The newest blocks (height, time, transactions, proposer)."""
    client = client_for(node_url)
    with user_errors():
        doc = client.blocks(start, limit)
        now = client.status()["time_ms"]

    def text() -> None:
        table(("height", "hash", "txs", "time (UTC)", "age", "proposer"),
              [(b["height"], b["hash"][:16], b["tx_count"], iso_time(b["time_ms"]),
                when(b["time_ms"], now), b["proposer"]) for b in doc["blocks"]],
              right=(0, 2, 4))

    emit(doc, as_json, text)


@chain.command("block")
@click.argument("height", type=click.IntRange(min=1))
@node_option
@json_option
def chain_block(height: int, node_url: str, as_json: bool) -> None:
    """One block: header and its transactions."""
    client = client_for(node_url)
    with user_errors():
        b = client.block(height)

    def text() -> None:
        for k in ("height", "hash", "proposer", "prev_hash", "state_root"):
            out(f"{k:11} {b[k]}")
        out(f"{'time':11} {iso_time(b['time_ms'])} ({b['time_ms']} ms)")
        out(f"{'txs':11} {len(b['txs'])}")
        if b["txs"]:
            table(("  tx", "type", "sender", "nonce"),
                  [(f"  {t['hash'][:16]}", t["type"], t["sender"], t["nonce"])
                   for t in b["txs"]], right=(3,))

    emit(b, as_json, text)


@chain.command("tx")
@click.argument("tx_hash", metavar="HASH", type=HASH32)
@node_option
@json_option
def chain_tx(tx_hash: bytes, node_url: str, as_json: bool) -> None:
    """A transaction: committed (where, what) or pending."""
    client = client_for(node_url)
    with user_errors():
        info = client.tx(tx_hash)

    def text() -> None:
        if info["status"] != "committed":
            out(f"{tx_hash.hex()} pending (chain at {info['chain_height']})")
            return
        t = info["tx"]
        out(f"{tx_hash.hex()} committed in block {info['height']} at index {info['index']}, "
            f"{iso_time(info.get('time_ms'))}")
        out(f"{t['type']} from {t['sender']} nonce {t['nonce']}")
        for k, v in t["body"].items():
            if k != "type":
                out(f"  {k}: {v}")

    emit(info, as_json, text)


@chain.command("supply")
@node_option
@json_option
def chain_supply(node_url: str, as_json: bool) -> None:
    """Credit totals: balances + escrowed + bonded + burned = supply, no replay [BANK.1]."""
    client = client_for(node_url)
    with user_errors():
        t = client.supply()

    def text() -> None:
        out(f"height    {t['height']} (state root {t['state_root']})")
        out(f"supply    {t['supply']:>20}  (created at genesis)")
        out(f"balances  {t['balances']:>20}  ({t['accounts']} accounts)")
        out(f"escrowed  {t['escrowed']:>20}  ({t['jobs_holding_escrow']} jobs)")
        out(f"bonded    {t['bonded']:>20}  ({t['verifiers']} verifiers)")
        out(f"burned    {t['burned']:>20}")
        verdict = "yes" if t["conserved"] else "NO: the node's state does not add up"
        out(f"balances + escrowed + bonded + burned = supply: {verdict}")

    emit(t, as_json, text)
    if not t["conserved"]:
        raise UserError(f"credits not conserved at height {t['height']}: "
                        f"{t['balances']} + {t['escrowed']} + {t['bonded']} + {t['burned']} "
                        f"!= {t['supply']}")


@chain.command("genesis")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the genesis document here (a genesis.json a new node can use).")
@node_option
@json_option
def chain_genesis(output: Path | None, node_url: str, as_json: bool) -> None:
    """The genesis the node runs, its hash recomputed here and checked [API-GENESIS.1]."""
    from chain.errors import InvalidGenesis
    from chain.genesis import Genesis

    client = client_for(node_url)
    with user_errors():
        doc = client.genesis()
    try:
        genesis = Genesis.from_json(doc["genesis"])
    except InvalidGenesis as e:
        raise UserError(f"the node serves an invalid genesis: {e}") from None
    if genesis.hash.hex() != doc["hash"]:
        raise UserError(f"the node's genesis document hashes to {genesis.hash.hex()}, "
                        f"not the {doc['hash']} it claims")
    if output is not None:
        with user_errors():
            genesis.save(output)
    supply = sum(amount for _, amount in genesis.balances)

    def text() -> None:
        out(f"chain     {genesis.chain_id}")
        out(f"hash      {doc['hash']} (recomputed)")
        out(f"time      {iso_time(genesis.genesis_time_ms)} ({genesis.genesis_time_ms} ms)")
        out(f"validators {len(genesis.validators)}, members {len(genesis.members)}, "
            f"supply {supply}")
        if output is not None:
            out(f"wrote {output}")

    emit(doc, as_json, text)


# --- governance -------------------------------------------------------------------------


def _propose(key_path: Path, passphrase_file: Path | None, node_url: str, wait: bool,
             as_json: bool, action: GovernanceAction, what: str) -> None:
    key = load_key(key_path, passphrase_file)
    client = client_for(node_url)
    tx, info = send(client, key, GovernancePropose(action), wait=wait, what="proposal")
    _report_proposal(client, tx.hash.hex(), info is not None, as_json, what)


def _report_proposal(client: Any, proposal_id: str, included: bool, as_json: bool,
                     what: str) -> None:
    """After inclusion: executed at once (enough power approved) or still pending."""
    pending = None
    if included:
        with user_errors():
            pending = next((p for p in client.proposals()["proposals"]
                            if p["proposal_id"] == proposal_id), None)
    state = "submitted" if not included else ("pending" if pending else "executed")
    result = {"proposal_id": proposal_id, "state": state, "action": what,
           "approved_power": pending["approved_power"] if pending else None,
           "needed_power": pending["needed_power"] if pending else None}

    def text() -> None:
        if state == "executed":
            out(f"executed: {what}")
        elif state == "pending":
            out(f"proposal {proposal_id} pending ({what}): approved power "
                       f"{result['approved_power']} of {result['needed_power']} needed")
            out(f"other validators: learningchain governance approve {proposal_id}")
        else:
            out(f"proposal {proposal_id} submitted ({what})")

    emit(result, as_json, text)


@click.group("member")
def member() -> None:
    """Graph membership: admitted members may post, claim and vote."""


@member.command("admit")
@click.argument("address", type=ADDRESS)
@key_option(help="A validator's key file (only validators propose).")
@passphrase_option
@node_option
@wait_option("the proposal")
@json_option
def member_admit(address: Address, key_path: Path, passphrase_file: Path | None, node_url: str,
                 wait: bool, as_json: bool) -> None:
    """Propose admitting ADDRESS as a member (executes once > 2/3 of power approve)."""
    text = address_to_text(address)
    _propose(key_path, passphrase_file, node_url, wait, as_json,
             GovernanceAction("admit_member", address), f"admit {text}")


@member.command("list")
@node_option
@json_option
def member_list(node_url: str, as_json: bool) -> None:
    """Every member with its balance."""
    client = client_for(node_url)
    with user_errors():
        doc = client.members()

    def text() -> None:
        table(("address", "balance", "roles"),
              [(m["address"], m["balance"],
                ", ".join(t for t, on in (("validator", m["validator"]),
                                          ("banned", m["banned"])) if on) or "-")
               for m in doc["members"]], right=(1,))

    emit(doc, as_json, text)


@click.group("validator")
def validator() -> None:
    """The validator set: propose additions and removals, list it."""


@validator.command("add")
@click.argument("pubkey", type=PUBKEY)
@click.option("--power", type=click.IntRange(1, 1000), default=1, show_default=True,
              help="Voting power of the new validator.")
@key_option(help="A validator's key file (only validators propose).")
@passphrase_option
@node_option
@wait_option("the proposal")
@json_option
def validator_add(pubkey: PublicKeyBytes, power: int, key_path: Path,
                  passphrase_file: Path | None, node_url: str, wait: bool,
                  as_json: bool) -> None:
    """Propose PUBKEY (hex, from `keys show`) as a validator with --power."""
    _propose(key_path, passphrase_file, node_url, wait, as_json,
             GovernanceAction("add_validator", pubkey, power),
             f"add validator {pubkey.hex()} (power {power})")


@validator.command("remove")
@click.argument("address", type=ADDRESS)
@key_option(help="A validator's key file (only validators propose).")
@passphrase_option
@node_option
@wait_option("the proposal")
@json_option
def validator_remove(address: Address, key_path: Path, passphrase_file: Path | None,
                     node_url: str, wait: bool, as_json: bool) -> None:
    """Propose removing the validator ADDRESS."""
    _propose(key_path, passphrase_file, node_url, wait, as_json,
             GovernanceAction("remove_validator", address),
             f"remove validator {address_to_text(address)}")


@validator.command("list")
@node_option
@json_option
def validator_list(node_url: str, as_json: bool) -> None:
    """The validators, their power, and scheduled changes."""
    client = client_for(node_url)
    with user_errors():
        doc = client.validators()

    def text() -> None:
        table(("address", "power", "public key"),
              [(v["address"], v["power"], v["pubkey"]) for v in doc["validators"]],
              right=(1,))
        out(f"total power {doc['total_power']}")
        for c in doc["scheduled_changes"]:
            out(f"at height {c['height']}: {c['kind']} {c['address']}")

    emit(doc, as_json, text)


@click.group("governance")
def governance() -> None:
    """Pending governance proposals: list and approve them."""


@governance.command("approve")
@click.argument("proposal_id", type=HASH32)
@key_option(help="A validator's key file.")
@passphrase_option
@node_option
@wait_option("the approval")
@json_option
def governance_approve(proposal_id: bytes, key_path: Path, passphrase_file: Path | None,
                       node_url: str, wait: bool, as_json: bool) -> None:
    """Approve the pending proposal PROPOSAL_ID (see `governance list`)."""
    key = load_key(key_path, passphrase_file)
    client = client_for(node_url)
    with user_errors():
        known = {p["proposal_id"]: p for p in client.proposals()["proposals"]}
    if proposal_id.hex() not in known:
        raise UserError(f"no pending proposal {proposal_id.hex()} "
                        "(executed, expired, or never made)")
    action = known[proposal_id.hex()]["action"]
    _tx, info = send(client, key, GovernanceApprove(Hash32(proposal_id)), wait=wait,
                     what="approval")
    _report_proposal(client, proposal_id.hex(), info is not None, as_json,
                     _action_text(action))


def _action_text(a: dict[str, Any]) -> str:
    if "plan" in a:  # [UPGRADE-PLAN.1]
        plan = a["plan"]
        return (f"schedule_upgrade {plan['name']}: protocol version {plan['version']} from "
                f"height {plan['height']}")
    if a["kind"] == "cancel_upgrade":
        return f"cancel_upgrade {a['target']}"
    return f"{a['kind']} {a['address']}" + (
        f" power {a['power']}" if a["kind"] == "add_validator" else "")


@governance.command("upgrade")
@click.argument("name")
@click.option("--version", "version", type=click.IntRange(2, MAX_PLANNED_VERSION),
              required=True, help="The protocol version blocks carry from --height on.")
@click.option("--height", type=click.IntRange(min=1), required=True,
              help=f"The first block of the new version (at least {UPGRADE_MIN_DELAY} "
                   "heights after the block that passes the plan).")
@key_option(help="A validator's key file (only validators propose).")
@passphrase_option
@node_option
@wait_option("the proposal")
@json_option
def governance_upgrade(name: str, version: int, height: int, key_path: Path,
                       passphrase_file: Path | None, node_url: str, wait: bool,
                       as_json: bool) -> None:
    """Propose upgrade plan NAME: protocol VERSION from HEIGHT on [UPGRADE-PLAN.1].

    Once more than 2/3 of validator power approves, nodes whose software does not know
    the version stop at HEIGHT; a later plan replaces this one."""
    try:
        plan = UpgradePlan(plan_name(name, "NAME"), version, height)
    except ChainError as e:
        raise UserError(str(e)) from None
    _propose(key_path, passphrase_file, node_url, wait, as_json,
             GovernanceAction.schedule(plan),
             f"upgrade {name} to protocol version {version} at height {height}")


@governance.command("cancel-upgrade")
@click.argument("name")
@key_option(help="A validator's key file (only validators propose).")
@passphrase_option
@node_option
@wait_option("the proposal")
@json_option
def governance_cancel_upgrade(name: str, key_path: Path, passphrase_file: Path | None,
                              node_url: str, wait: bool, as_json: bool) -> None:
    """Propose cancelling the pending upgrade plan NAME [UPGRADE-PLAN.3]."""
    try:
        plan_name(name, "NAME")
    except ChainError as e:
        raise UserError(str(e)) from None
    _propose(key_path, passphrase_file, node_url, wait, as_json,
             GovernanceAction.cancel(name), f"cancel upgrade {name}")


@governance.command("list")
@node_option
@json_option
def governance_list(node_url: str, as_json: bool) -> None:
    """Pending proposals with their approvals."""
    client = client_for(node_url)
    with user_errors():
        doc = client.proposals()
        now = client.status()["time_ms"]

    def text() -> None:
        if not doc["proposals"]:
            out("no pending proposals")
        for p in doc["proposals"]:
            out(f"{p['proposal_id']}  {_action_text(p['action'])}")
            out(f"    approved power {p['approved_power']}/{p['needed_power']} needed; "
                       f"expires {when(p['expires_ms'], now)}")

    emit(doc, as_json, text)
