"""What a newcomer reads (issue 15 §5-6), driven as a user drives the CLI (``CliRunner`` on
the real command tree) against a real solo node and its HTTP API on 127.0.0.1:

- every command takes ``--json``; under it, every error (the node's, the ledger's, a
  usage error, a plain click error of the sandbox floor) is one JSON object on stderr
  with ``code`` and ``message``, and the exit code stays 1 / 2;
- tables carry a header row; ``chain tx`` shows its block's time as ISO-8601 UTC;
- ``keys export`` has ``--json``; ``keys new`` warns when the passphrase is empty.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from chain.crypto import PrivateKey, address_to_text
from chain.keyfile import write_key_file
from client.cli.main import cli
from tests.client.api.test_api_support import ApiThread

PASS = "correct horse"
NO_JSON = {("node", "start"), ("federated", "join")}
"""They run a node until stopped (or the job is done) and print its log: they have
``--log-json`` instead."""


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[ApiThread]:
    with ApiThread(tmp_path, validators=2) as api:
        yield api


def run(args: list[str], code: int = 0, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(cli, args, catch_exceptions=False, env=env)
    assert result.exit_code == code, (args, result.exit_code, result.stdout, result.stderr)
    return result


def json_error(result: Result) -> dict[str, str]:
    """The one JSON error object a ``--json`` run ends with, and nothing else on stdout."""
    assert not result.stdout, result.stdout
    [line] = result.stderr.strip().splitlines()
    doc = json.loads(line)
    assert set(doc) == {"error"} and set(doc["error"]) == {"code", "message"}, doc
    return doc["error"]


def key_args(tmp_path: Path, key: PrivateKey, name: str) -> list[str]:
    path = tmp_path / f"{name}.key"
    write_key_file(path, key, PASS, scrypt_n=2**10)
    (tmp_path / f"{name}.pass").write_text(PASS + "\n")
    return ["--key", str(path), "--passphrase-file", str(tmp_path / f"{name}.pass")]


def leaves(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from leaves(command, (*prefix, name))
        else:
            yield (*prefix, name)


def test_every_command_takes_json() -> None:
    missing = []
    for path in leaves(cli.load_all()):
        command: click.Command = cli
        for name in path:
            assert isinstance(command, click.Group)
            command = command.commands[name]
        flags = {opt for p in command.params for opt in getattr(p, "opts", [])}
        if "--json" not in flags and path not in NO_JSON:
            missing.append(" ".join(path))
    assert not missing, f"commands without --json: {missing}"
    for path in NO_JSON:
        command = cli
        for name in path:
            assert isinstance(command, click.Group)
            command = command.commands[name]
        assert "--log-json" in {o for p in command.params for o in getattr(p, "opts", [])}, path


def test_errors_under_json_are_one_object_with_code_and_message(
        chain: ApiThread, tmp_path: Path) -> None:
    node = ["--node", chain.url]
    # The node's own code: an unknown transaction.
    error = json_error(run(["chain", "tx", "ab" * 32, *node, "--json"], code=1))
    assert error["code"] == "unknown_tx" and "ab" * 32 in error["message"]
    # The ledger's code, through a rejected transfer.
    fresh = key_args(tmp_path, PrivateKey.generate(), "fresh")
    some = address_to_text(chain.keys["alice"].address)
    error = json_error(run(["transfer", some, "1", *fresh, *node, "--json"], code=1))
    assert error["code"] == "insufficient_balance", error
    # No node answers.
    error = json_error(run(["balance", some, "--node", "http://127.0.0.1:9", "--json"],
                           code=1))
    assert "cannot reach the node" in error["message"]
    # A usage error keeps exit code 2 and says which command.
    error = json_error(run(["chain", "block", "--json"], code=2))
    assert error["code"] == "usage" and "HEIGHT" in error["message"]
    assert "learningchain chain block --help" in error["message"] or \
        "chain block --help" in error["message"]
    # A wrong passphrase, through the keys commands.
    (tmp_path / "wrong.pass").write_text("nope\n")
    error = json_error(run(["keys", "show", str(tmp_path / "fresh.key"), "--passphrase-file",
                            str(tmp_path / "wrong.pass"), "--json"], code=1))
    assert error["code"] == "key_file_error" and "passphrase" in error["message"]
    # A plain click error of a command outside client/ (the sandbox floor): job init.
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("x")
    error = json_error(run(["job", "init", str(tmp_path / "used"), "--json"], code=1))
    assert error["code"] == "user_error" and "not an empty folder" in error["message"]
    # Without --json the same error is the one human line it always was.
    plain = run(["chain", "tx", "ab" * 32, *node], code=1)
    assert plain.stderr.startswith("Error: unknown_tx") and not plain.stdout


def test_tables_have_headers_and_chain_tx_shows_iso_utc_time(
        chain: ApiThread, tmp_path: Path) -> None:
    node = ["--node", chain.url]
    alice = key_args(tmp_path, chain.keys["alice"], "alice")
    bob = address_to_text(chain.keys["bob"].address)
    sent = json.loads(run(["transfer", bob, "7", *alice, *node, "--json"]).stdout)
    shown = json.loads(run(["chain", "tx", sent["hash"], *node, "--json"]).stdout)
    iso = datetime.fromtimestamp(shown["time_ms"] / 1000, tz=UTC).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")
    text = run(["chain", "tx", sent["hash"], *node]).stdout
    assert iso in text and str(shown["time_ms"]) not in text, text

    blocks = run(["chain", "blocks", "--limit", "5", *node]).stdout.splitlines()
    assert blocks[0].split() == ["height", "hash", "txs", "time", "(UTC)", "age", "proposer"]
    assert blocks[1].split()[0].isdigit() and blocks[1].split()[3].endswith("Z")
    block = run(["chain", "block", str(sent["height"]), *node]).stdout
    assert f"time        {iso}" in block and "tx  " in block and "sender" in block
    members = run(["member", "list", *node]).stdout.splitlines()
    assert members[0].split() == ["address", "balance", "roles"]
    assert any(bob in line for line in members[1:])
    validators = run(["validator", "list", *node]).stdout.splitlines()
    assert validators[0].split() == ["address", "power", "public", "key"]
    created = run(["network", "create", "--out", str(tmp_path / "net"), "--validators", "2",
                   "--base-port", "31000"]).stdout.splitlines()
    assert created[1].split() == ["node", "roles", "p2p", "api", "address"]
    assert created[2].split()[:3] == ["node0", "validator+worker", "31000"]


def test_keys_export_json_and_the_empty_passphrase_warning(tmp_path: Path) -> None:
    made = run(["keys", "new", str(tmp_path / "a.key"), "--json"], env={"LC_PASSPHRASE": "pw"})
    assert "warning" not in made.stderr
    info = json.loads(made.stdout)
    exported = json.loads(run(["keys", "export", str(tmp_path / "a.key"), "--i-understand",
                               "--json"], env={"LC_PASSPHRASE": "pw"}).stdout)
    assert exported["address"] == info["address"] and len(exported["secret"]) == 64
    assert PrivateKey(bytes.fromhex(exported["secret"])).public_key.hex() == info["public_key"]
    plain = run(["keys", "export", str(tmp_path / "a.key"), "--i-understand"],
                env={"LC_PASSPHRASE": "pw"}).stdout.strip()
    assert plain == exported["secret"]

    empty = run(["keys", "new", str(tmp_path / "b.key"), "--json"], env={"LC_PASSPHRASE": ""})
    assert "warning: the passphrase is empty" in empty.stderr and str(tmp_path / "b.key") in \
        empty.stderr
    assert json.loads(empty.stdout)["file"] == str(tmp_path / "b.key")  # stdout still JSON
    (tmp_path / "empty.pass").write_text("\n")
    (tmp_path / "secret").write_text(exported["secret"])
    imported = run(["keys", "import", str(tmp_path / "c.key"), "--secret-file",
                    str(tmp_path / "secret"), "--passphrase-file", str(tmp_path / "empty.pass")])
    assert "warning: the passphrase is empty" in imported.stderr
