"""``[api]`` of the node's config off loopback [API-AUTH.1] [API-AUTH.5] [API-UPLOAD.1-2]:
a bind that is not loopback without a token is refused at load with the line to add;
the token file is checked at start (exists, owner-only, long enough); the upload
bounds are read and checked; ``learningchain node token`` writes a fit file; ``node
start`` prints each refusal as one error line. Real config files, as an operator edits
them (``render_config`` is what ``devnet up`` writes)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from client.api.upload_limits import MIB, UploadLimits
from client.node.config import ConfigError, NodeConfig, render_config
from tests.client.cli.test_cli_chain import run

TOKEN = "0123456789abcdef" * 4


def write(tmp_path: Path, api: str) -> Path:
    """A config whose ``[api]`` table is ``api`` (its lines after the header)."""
    text = render_config(roles=("full",))
    head, _ = text.split("[api]\n", 1)
    path = tmp_path / "config.toml"
    path.write_text(f"{head}[api]\n{api}")
    return path


def token_file(tmp_path: Path, text: str = TOKEN + "\n", mode: int = 0o600) -> Path:
    path = tmp_path / "api_token"
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "203.0.113.7",
                                  "node.example.org"])
def test_api_auth_1_an_open_bind_without_a_token_is_refused_with_the_line_to_add(
        tmp_path: Path, host: str) -> None:
    """[API-AUTH.1] The message names the bind, the key and value to add, the command that
    makes the file, and the way back to loopback."""
    path = write(tmp_path, f'host = "{host}"\nport = 8601\n')
    with pytest.raises(ConfigError) as caught:
        NodeConfig.load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: the API binds {host!r}, which is not a loopback")
    assert 'Add token_file = "api_token" to [api]' in message
    assert "learningchain node token api_token" in message
    assert 'or bind host = "127.0.0.1"' in message


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_api_auth_1_a_loopback_bind_needs_no_token(tmp_path: Path, host: str) -> None:
    """[API-AUTH.1] The default and every loopback address load without a token."""
    config = NodeConfig.load(write(tmp_path, f'host = "{host}"\n'))
    assert config.api_host == host and config.api_token() is None


def test_api_auth_5_the_token_file_is_read_and_checked_at_start(tmp_path: Path) -> None:
    """[API-AUTH.5] Relative to the config; a missing file, one others may read, a short or
    two-word token are refused with what to do; a fit one is read without its newline."""
    path = write(tmp_path, 'host = "0.0.0.0"\ntoken_file = "api_token"\n')
    config = NodeConfig.load(path)  # the file is read at start, not at load
    assert config.api_token_file == tmp_path / "api_token"
    with pytest.raises(ConfigError, match="does not exist: create it with `learningchain "
                                          "node token"):
        config.api_token()
    for mode in (0o644, 0o640, 0o604, 0o660):
        token_file(tmp_path, mode=mode)
        with pytest.raises(ConfigError) as caught:
            config.api_token()
        assert f"is readable by others (mode {mode:04o}): chmod 600" in str(caught.value)
    for bad in ("short\n", "x" * 31, ("a" * 20) + " " + ("b" * 20), "é" * 40, "\n"):
        (tmp_path / "api_token").unlink()
        token_file(tmp_path, bad)
        with pytest.raises(ConfigError, match="at least 32 visible ASCII"):
            config.api_token()
    (tmp_path / "api_token").unlink()
    token_file(tmp_path, f"  {TOKEN}\n\n")
    assert config.api_token() == TOKEN
    assert TOKEN not in repr(config)


def test_api_upload_1_2_the_upload_bounds_are_read_and_checked(tmp_path: Path) -> None:
    """[API-UPLOAD.1] [API-UPLOAD.2] Defaults, values in MiB and counts, 0 turns a rate off;
    a size bound under 1, a negative rate, a budget under the largest blob or a wrong type
    are refused naming the key."""
    assert NodeConfig.load(write(tmp_path, "")).api_uploads == UploadLimits()
    config = NodeConfig.load(write(tmp_path, "max_upload_mb = 64\nuploads_per_minute = 0\n"
                                             "upload_mb_per_hour = 128\n"))
    assert config.api_uploads == UploadLimits(64 * MIB, 0, 128 * MIB)
    for lines, expected in (("max_upload_mb = 0\n", "[api] max_upload_mb must be at least 1"),
                            ("uploads_per_minute = -1\n",
                             "[api] uploads_per_minute must be at least 0"),
                            ("max_upload_mb = 64\nupload_mb_per_hour = 32\n",
                             "[api] upload_mb_per_hour (32) is below max_upload_mb (64)"),
                            ('max_upload_mb = "64"\n', "[api] max_upload_mb must be int"),
                            ("uploads_per_minute = true\n",
                             "[api] uploads_per_minute must be int")):
        with pytest.raises(ConfigError) as caught:
            NodeConfig.load(write(tmp_path, lines))
        assert expected in str(caught.value), (lines, caught.value)


def test_api_auth_5_node_token_writes_a_fit_owner_only_file_once(tmp_path: Path) -> None:
    """[API-AUTH.5] ``learningchain node token FILE``: 64 hex characters, mode 0600, that
    the config then reads; an existing file is never overwritten."""
    path = tmp_path / "api_token"
    out = run(["node", "token", str(path)]).output
    assert "export LC_API_TOKEN=$(cat" in out and str(path) in out
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = path.read_text().strip()
    assert len(token) == 64 and int(token, 16) >= 0
    config = NodeConfig.load(write(tmp_path, 'host = "0.0.0.0"\ntoken_file = "api_token"\n'))
    assert config.api_token() == token
    assert "already exists" in run(["node", "token", str(path)], code=1).output
    assert path.read_text().strip() == token
    other = tmp_path / "other_token"
    assert json.loads(run(["node", "token", str(other), "--json"]).stdout) == {
        "token_file": str(other)}


def test_api_auth_1_5_node_start_prints_each_refusal_as_one_error_line(
        tmp_path: Path) -> None:
    """[API-AUTH.1] [API-AUTH.5] What an operator sees: the node does not start, and one
    line says what to add or fix (no bind is attempted)."""
    path = write(tmp_path, 'host = "0.0.0.0"\nport = 8601\n')
    out = run(["node", "start", "--config", str(path)], code=1).output
    assert 'Add token_file = "api_token" to [api]' in out
    path = write(tmp_path, 'host = "0.0.0.0"\nport = 8601\ntoken_file = "api_token"\n')
    token_file(tmp_path, mode=0o644)
    out = run(["node", "start", "--config", str(path)], code=1).output
    assert f"chmod 600 {tmp_path / 'api_token'}" in out
