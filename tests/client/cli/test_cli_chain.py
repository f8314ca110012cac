"""The chain CLI against a real solo node and its HTTP API (background thread, real sockets).

balance, transfer, chain status/block/tx, governance (member admit, validator
add, governance list/approve), network create; exit codes 0 / 1 / 2 and one
clean line per error.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from chain.crypto import PrivateKey, address_to_text
from chain.genesis import Genesis
from chain.keyfile import read_key_file, write_key_file
from client.cli.main import cli
from client.node.config import NodeConfig
from tests.client.api.test_api_support import ApiThread

PASS = "correct horse"


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[ApiThread]:
    with ApiThread(tmp_path, validators=2) as api:
        yield api


def key_file(tmp_path: Path, key: PrivateKey, name: str) -> list[str]:
    """--key/--passphrase-file arguments for ``key`` (cheap scrypt, still a real key file)."""
    path = tmp_path / f"{name}.key"
    if not path.exists():
        write_key_file(path, key, PASS, scrypt_n=2**10)
        (tmp_path / f"{name}.pass").write_text(PASS + "\n")
    return ["--key", str(path), "--passphrase-file", str(tmp_path / f"{name}.pass")]


def run(args: list[str], node: ApiThread | None = None, code: int = 0) -> Result:
    full = [*args, "--node", node.url] if node is not None else args
    result = CliRunner().invoke(cli, full, catch_exceptions=False)
    assert result.exit_code == code, (full, result.exit_code, result.output)
    if code == 1:  # a user error: one clean last line, never a traceback
        lines = result.output.strip().splitlines()
        assert lines[-1].startswith("Error: ") and "Traceback" not in result.output
        assert sum(line.startswith("Error") for line in lines) == 1, result.output
        assert not result.stdout, result.stdout  # progress and errors go to stderr
    return result


def addr(api: ApiThread, name: str) -> str:
    return address_to_text(api.keys[name].address)


def test_balance_by_address_and_by_key(chain: ApiThread, tmp_path: Path) -> None:
    shown = json.loads(run(["balance", addr(chain, "alice"), "--json"], chain).stdout)
    assert shown["balance"] == 1_000 and shown["member"] and shown["nonce"] == 0
    text = run(["balance", *key_file(tmp_path, chain.keys["alice"], "alice")], chain).stdout
    assert addr(chain, "alice") in text and "1000 credits" in text


def test_balance_usage_and_user_errors(chain: ApiThread, tmp_path: Path) -> None:
    run(["balance"], chain, code=2)
    typo = addr(chain, "alice")[:-1] + ("0" if addr(chain, "alice")[-1] != "0" else "1")
    assert "checksum" in run(["balance", typo], chain, code=2).output
    out = run(["balance", addr(chain, "alice"), "--node", "http://127.0.0.1:9"], code=1).output
    assert "cannot reach the node" in out
    args = key_file(tmp_path, chain.keys["alice"], "alice")
    (tmp_path / "wrong.pass").write_text("nope\n")
    out = run(["balance", *args[:2], "--passphrase-file", str(tmp_path / "wrong.pass")],
              chain, code=1).output
    assert "wrong passphrase" in out


def test_transfer_lands_in_a_block(chain: ApiThread, tmp_path: Path) -> None:
    alice = key_file(tmp_path, chain.keys["alice"], "alice")
    sent = json.loads(run(["transfer", addr(chain, "bob"), "25", *alice, "--json"], chain).stdout)
    assert sent["amount"] == 25 and sent["height"] >= 1
    assert json.loads(run(["balance", addr(chain, "bob"), "--json"], chain).stdout)[
        "balance"] == 1_025
    shown = json.loads(run(["chain", "tx", sent["hash"], "--json"], chain).stdout)
    assert shown["status"] == "committed" and shown["tx"]["body"]["amount"] == 25
    block = run(["chain", "block", str(sent["height"])], chain).stdout
    assert sent["hash"][:16] in block and "transfer" in block
    assert "height" in run(["chain", "status"], chain).stdout
    assert str(sent["height"]) in run(["chain", "blocks", "--limit", "50"], chain).stdout


def test_transfer_rejections_are_one_clear_line(chain: ApiThread, tmp_path: Path) -> None:
    alice = key_file(tmp_path, chain.keys["alice"], "alice")
    out = run(["transfer", addr(chain, "bob"), "5000", *alice], chain, code=1).output
    assert "transfer rejected: insufficient_balance" in out
    fresh = key_file(tmp_path, PrivateKey.generate(), "fresh")
    out = run(["transfer", addr(chain, "bob"), "1", *fresh], chain, code=1).output
    assert "insufficient_balance: balance 0" in out
    run(["transfer", addr(chain, "bob"), "0", *alice], chain, code=2)
    run(["transfer", addr(chain, "bob"), "ten", *alice], chain, code=2)


def test_governance_admit_needs_two_thirds_then_executes(chain: ApiThread,
                                                         tmp_path: Path) -> None:
    v0 = key_file(tmp_path, chain.keys["v0"], "v0")
    v1 = key_file(tmp_path, chain.keys["v1"], "v1")
    newcomer = PrivateKey.generate()
    text = address_to_text(newcomer.address)
    proposed = json.loads(run(["member", "admit", text, *v0, "--json"], chain).stdout)
    assert proposed["state"] == "pending" and proposed["needed_power"] == 2
    listed = run(["governance", "list"], chain).stdout
    assert proposed["proposal_id"] in listed and "approved power 1/2" in listed
    again = run(["governance", "approve", proposed["proposal_id"], *v0], chain, code=1).output
    assert "already_approved" in again
    done = json.loads(run(["governance", "approve", proposed["proposal_id"], *v1, "--json"],
                          chain).stdout)
    assert done["state"] == "executed"
    assert json.loads(run(["balance", text, "--json"], chain).stdout)["member"] is True
    assert text in run(["member", "list"], chain).stdout
    # Only validators propose; the ledger's reason comes through.
    alice = key_file(tmp_path, chain.keys["alice"], "alice")
    out = run(["member", "admit", address_to_text(PrivateKey.generate().address), *alice],
              chain, code=1).output
    assert "not_validator" in out


def test_validator_add_and_remove_proposals(chain: ApiThread, tmp_path: Path) -> None:
    v0 = key_file(tmp_path, chain.keys["v0"], "v0")
    newcomer = PrivateKey.generate()
    added = json.loads(run(["validator", "add", newcomer.public_key.hex(), "--power", "3", *v0,
                            "--json"], chain).stdout)
    assert added["state"] == "pending"
    removal = json.loads(run(["validator", "remove", addr(chain, "v1"), *v0, "--json"],
                             chain).stdout)
    assert removal["state"] == "pending"
    proposals = json.loads(run(["governance", "list", "--json"], chain).stdout)["proposals"]
    kinds = {p["action"]["kind"]: p["action"] for p in proposals}
    assert kinds["add_validator"]["power"] == 3
    assert kinds["add_validator"]["address"] == address_to_text(newcomer.address)
    assert kinds["remove_validator"]["address"] == addr(chain, "v1")
    assert "total power 2" in run(["validator", "list"], chain).stdout
    run(["validator", "add", "02abcd", *v0], chain, code=2)
    run(["governance", "approve", "nothex", *v0], chain, code=2)
    out = run(["governance", "approve", "ab" * 32, *v0], chain, code=1).output
    assert "no pending proposal" in out


def test_network_create_writes_loadable_configs_and_genesis(tmp_path: Path) -> None:
    out = tmp_path / "net"
    result = run(["network", "create", "--out", str(out), "--validators", "3", "--workers", "1",
                  "--chain-id", "lc-test", "--base-port", "31000", "--json"])
    layout = json.loads(result.stdout)
    genesis = Genesis.load(out / "genesis.json")
    assert genesis.chain_id == layout["chain_id"] == "lc-test"
    assert len(genesis.validators) == 3
    balances = {address_to_text(a): b for a, b in genesis.balances}
    members = {address_to_text(m) for m in genesis.members}
    p2p_ports = set()
    for i, node in enumerate(layout["nodes"]):
        config = NodeConfig.load(Path(node["config"]))
        assert config.roles == (("validator", "worker") if i == 0 else ("validator",))
        assert Genesis.load(config.genesis) == genesis
        key = read_key_file(config.key_file, config.passphrase())
        assert address_to_text(key.address) == node["address"]
        assert key.public_key in {v.pubkey for v in genesis.validators}
        assert stat.S_IMODE(config.passphrase_file.stat().st_mode) == 0o600  # type: ignore[union-attr]
        assert config.p2p_port == 31000 + i and config.api_port == 31100 + i
        assert len(config.bootstrap) == 2 and f"127.0.0.1:{config.p2p_port}" not in \
            config.bootstrap
        assert balances[node["address"]] > 0 and node["address"] in members
        p2p_ports.add(config.p2p_port)
    [user] = layout["users"]
    key = read_key_file(Path(user["key_file"]),
                        Path(user["passphrase_file"]).read_text().rstrip("\n"))
    assert address_to_text(key.address) == user["address"]
    assert balances[user["address"]] == 10_000 and user["address"] in members
    text = run(["network", "create", "--out", str(out)], code=1).output
    assert "already holds a network" in text
    run(["network", "create", "--out", str(tmp_path / "n2"), "--validators", "2",
         "--workers", "3"], code=2)


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))


def test_every_command_has_help() -> None:
    paths = list(_commands(cli.load_all()))
    assert ("job", "submit") in paths and ("network", "create") in paths
    for path in paths:
        result = CliRunner().invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output


def test_api_supply_1_and_api_genesis_1_through_the_cli(chain: ApiThread, tmp_path: Path) -> None:
    """``chain supply`` adds the totals up; ``chain genesis -o`` writes a loadable genesis."""
    run(["transfer", addr(chain, "bob"), "9", *key_file(tmp_path, chain.keys["alice"], "alice")],
        chain)
    text = run(["chain", "supply"], chain).stdout
    assert "balances + escrowed + bonded + burned = supply: yes" in text
    totals = json.loads(run(["chain", "supply", "--json"], chain).stdout)
    bonds = len(chain.genesis.verifiers) * chain.genesis.params.verifier_bond
    supply = sum(amount for _, amount in chain.genesis.balances) + bonds
    assert totals["supply"] == supply and totals["conserved"] and totals["height"] >= 1
    assert totals["bonded"] == bonds and totals["verifiers"] == len(chain.genesis.verifiers)
    assert totals["balances"] + totals["escrowed"] + totals["bonded"] + totals["burned"] \
        == supply
    out = tmp_path / "genesis.json"
    shown = run(["chain", "genesis", "-o", str(out)], chain).stdout
    assert f"hash      {chain.genesis.hash.hex()} (recomputed)" in shown
    assert Genesis.load(out).hash == chain.genesis.hash
    doc = json.loads(run(["chain", "genesis", "--json"], chain).stdout)
    assert doc["hash"] == chain.genesis.hash.hex()
