"""API routes that read the committed state [API-STATE.*]: accounts, governance, genesis, supply.

Split from ``client.api.server`` (which registers them with its own routes).
Each handler reads ``node.state`` once, in the node's event loop, so it sees
one committed height.

- **[API-GENESIS.1]** ``GET /genesis`` serves the genesis document the node runs
  (``Genesis.to_json``) and its hash: ``Genesis.from_json(doc["genesis"]).hash``
  recomputes ``doc["hash"]`` (ledger.md §8) and equals ``genesis_hash`` in
  ``/status`` and block 1's ``prev_hash``.
- **[API-SUPPLY.1]** ``GET /supply`` serves the credit totals of the committed
  state: the genesis ``supply`` and the four terms of ledger.md [BANK.1] (``balances``;
  ``escrowed`` in jobs and open prediction requests; ``bonded`` by verifiers and
  prediction executors; ``burned``), so ``balances + escrowed + bonded + burned ==
  supply`` can be checked without replaying the chain. Computed once per committed
  height; the same sum as ``State.total_credits``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from chain.records import ValidatorChange
from chain.types import Address
from client.api.json_forms import addr, hx, parse_address, proposal_json
from client.node.handle import NodeHandle

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def supply_json(state: Any) -> dict[str, Any]:
    """[API-SUPPLY.1] The credit totals of one committed state, term by term as [BANK.1]
    states them."""
    balances = accounts = 0
    for key in state.keys("account"):
        account = state.get("account", key)
        if account is not None:
            balances += account.balance
            accounts += 1
    escrowed = holding = 0
    for key in state.keys("job"):
        job = state.get("job", key)
        if job is not None and job.escrow:
            escrowed += job.escrow
            holding += 1
    bonded = verifiers = 0
    for key in state.keys("verifier"):
        bond = state.get("verifier", key)
        if bond is not None:
            bonded += int(bond)
            verifiers += 1
    for key in state.keys("prediction"):  # open prediction fees [PRED-STATE.1]
        rec = state.get("prediction", key)
        if rec is not None and rec.escrow:
            escrowed += rec.escrow
    bonded += sum(int(state.get("predictor", key) or 0)  # executors' bonds [PRED-OFFER.1]
                  for key in state.keys("predictor"))
    supply, burned = int(state.supply), int(state.burned)
    return {
        "height": int(state.height),
        "state_root": bytes(state.state_root).hex(),
        "supply": supply, "balances": balances, "escrowed": escrowed, "bonded": bonded,
        "burned": burned, "accounts": accounts, "jobs_holding_escrow": holding,
        "verifiers": verifiers,
        "conserved": balances + escrowed + bonded + burned == supply,
    }


class StateRoutes:
    """Handlers over the committed state; ``routes()`` lists them relative to the prefix."""

    def __init__(self, node: NodeHandle) -> None:
        self.node = node
        self._supply: tuple[tuple[int, bytes], dict[str, Any]] | None = None

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("GET", "/accounts/{address}", self.get_account),
            ("GET", "/validators", self.get_validators),
            ("GET", "/members", self.get_members),
            ("GET", "/proposals", self.get_proposals),
            ("GET", "/genesis", self.get_genesis),
            ("GET", "/supply", self.get_supply),
        ]

    async def get_account(self, request: web.Request) -> web.Response:
        address = parse_address(request.match_info["address"])
        state = self.node.state
        account = state.account(address)
        validator = state.validators().get(address)
        return web.json_response({
            "address": addr(address),
            "balance": account.balance,
            "nonce": account.nonce,
            "next_nonce": self.node.next_nonce(address),
            "member": state.is_member(address),
            "banned": account.banned,
            "validator_power": validator.power if validator else 0,
            "verifier_bond": state.verifier_bond(address),
        })

    async def get_validators(self, request: web.Request) -> web.Response:
        state = self.node.state
        validators = state.validators()
        scheduled = []
        for key in sorted(state.keys("valset_change")):
            changes: list[ValidatorChange] = state.get("valset_change", key) or []
            for c in changes:
                scheduled.append({"height": int.from_bytes(key, "big"), "kind": c.kind,
                                  "address": addr(c.address), "pubkey": hx(c.pubkey),
                                  "power": c.power})
        return web.json_response({
            "validators": [{"address": addr(a), "pubkey": v.pubkey.hex(), "power": v.power}
                           for a, v in validators.items()],
            "total_power": sum(v.power for v in validators.values()),
            "scheduled_changes": scheduled,
        })

    async def get_members(self, request: web.Request) -> web.Response:
        state = self.node.state
        validators = state.validators()
        out = []
        for key in sorted(state.keys("member")):
            account = state.account(key)  # type: ignore[arg-type]
            out.append({"address": addr(key), "balance": account.balance,
                        "banned": account.banned, "validator": key in validators,
                        "verifier": state.verifier_bond(Address(key)) is not None})
        return web.json_response({"members": out})

    async def get_proposals(self, request: web.Request) -> web.Response:
        state = self.node.state
        powers = {a: v.power for a, v in state.validators().items()}
        proposals = [p for p in (state.proposal(k) for k in state.keys("proposal"))
                     if p is not None]
        proposals.sort(key=lambda p: (p.created_ms, p.proposal_id))
        return web.json_response(
            {"proposals": [proposal_json(p, powers, state.params) for p in proposals]})

    async def get_genesis(self, request: web.Request) -> web.Response:
        """[API-GENESIS.1] The genesis document and the hash it recomputes to."""
        genesis = self.node.genesis
        return web.json_response({"hash": genesis.hash.hex(), "genesis": genesis.to_json()})

    async def get_supply(self, request: web.Request) -> web.Response:
        """[API-SUPPLY.1] Supply, balances, escrowed, bonded and burned at the committed
        height."""
        state = self.node.state
        key = (int(state.height), bytes(state.state_root))
        if self._supply is None or self._supply[0] != key:
            self._supply = (key, supply_json(state))
        return web.json_response(self._supply[1])
