"""A real node process bound off loopback and the real CLI against it [API-AUTH.1]
[API-AUTH.5] [API-AUTH.6].

The operator's path, end to end: ``learningchain node token`` makes the file, the
config binds the API to ``0.0.0.0`` and names it, ``learningchain node start`` runs
the node (a LedgerNode process; the CLI is dialled on 127.0.0.1, so traffic stays
on this machine). Reads need nothing; ``learningchain transfer`` is refused without
``$LC_API_TOKEN`` or with a wrong one, and lands in a block with the right one.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner, Result

from client.api import http_client, token_file
from client.cli.main import cli as cli_root
from client.devnet.network import create_network
from tests.framework.ports import free_base_port

REPO = Path(__file__).resolve().parents[3]


def cli(args: list[str], token: str | None = None, code: int = 0) -> Result:
    """The real command tree in this process; ``$LC_API_TOKEN`` set to ``token`` or unset."""
    result = CliRunner().invoke(cli_root, args, catch_exceptions=False,
                                env={"LC_API_TOKEN": token, "LC_NODE": None})
    assert result.exit_code == code, (args, result.exit_code, result.stdout, result.stderr)
    return result


def test_api_auth_6_the_cli_sends_lc_api_token_to_a_node_bound_off_loopback(
        tmp_path: Path) -> None:
    """[API-AUTH.6] [API-AUTH.1] [API-AUTH.5] Off loopback with a token made by ``node
    token``: ``balance`` works without a token; ``transfer`` without ``$LC_API_TOKEN`` is
    one error line saying the token is needed and the variable is not set, with a wrong
    token ``bad_token``, and with the node's token it is committed."""
    assert http_client.TOKEN_ENV == token_file.TOKEN_ENV == "LC_API_TOKEN"  # one name, two ends
    layout = create_network(tmp_path / "net", validators=1, workers=0,
                            base_port=free_base_port(1), users={"alice": 1_000, "bob": 0},
                            consensus={"commit_ms": 100})
    node = layout.nodes[0]
    token_path = node.directory / "api_token"
    cli(["node", "token", str(token_path)])
    token = token_path.read_text().strip()
    config = node.config.read_text()
    assert config.count('[api]\nhost = "127.0.0.1"\n') == 1
    node.config.write_text(config.replace('[api]\nhost = "127.0.0.1"\n',
                                          '[api]\nhost = "0.0.0.0"\ntoken_file = "api_token"\n'))
    log = (node.directory / "node.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "client", "node", "start", "--config",
                             str(node.config)], cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = node.api_url
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (node.directory / "node.log").read_text()
            done = CliRunner().invoke(cli_root, ["chain", "status", "--json", "--node", url])
            if done.exit_code == 0 and json.loads(done.stdout)["height"] >= 1:
                break
            assert time.monotonic() < deadline, done.output
            time.sleep(0.3)
        alice, bob = (next(u for u in layout.users if u.name == n) for n in ("alice", "bob"))
        key = ["--key", str(alice.key_file), "--passphrase-file", str(alice.passphrase_file)]
        shown = json.loads(cli(["balance", alice.address, "--json", "--node", url]).stdout)
        assert shown["balance"] == 1_000

        refused = cli(["transfer", bob.address, "5", *key, "--node", url], code=1)
        last = refused.stderr.strip().splitlines()[-1]
        assert last.startswith("Error: ") and "token_required" in last, refused.stderr
        assert "$LC_API_TOKEN is not set" in last and "Traceback" not in refused.stderr
        wrong = cli(["transfer", bob.address, "5", *key, "--node", url], token="f" * 64, code=1)
        assert "bad_token" in wrong.stderr
        sent = json.loads(cli(["transfer", bob.address, "5", *key, "--json", "--node", url],
                              token=token).stdout)
        assert sent["hash"]
        shown = json.loads(cli(["balance", bob.address, "--json", "--node", url]).stdout)
        assert shown["balance"] == 5
        assert token not in (node.directory / "node.log").read_text()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
