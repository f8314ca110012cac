"""The node's ``config.toml``: unknown, misspelt or missing keys are errors that name them.

Before, a misspelt key was refused with a bare list of names, and a config
without ``key_file`` or ``genesis`` silently used ``node.key`` and
``genesis.json`` beside it. Each case writes a real config file (as
``render_config`` writes them for ``devnet up``), edits its text as an operator
would, and loads it with ``NodeConfig.load``.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

import client.node.config as config_module
from client.node.config import ConfigKeyError, NodeConfig, render_config
from tests.client.cli.test_cli_chain import run

WORKER = {"min_bounty": 5, "max_memory_mb": 1024}
CONSENSUS = {"propose_ms": 800}


def write(tmp_path: Path, old: str = "", new: str = "") -> Path:
    text = render_config(roles=("validator", "worker"), bootstrap=("127.0.0.1:26602",),
                         worker=WORKER, consensus=CONSENSUS)
    if old:
        assert text.count(old) == 1, (old, text)  # the rendered config has what we edit
        text = text.replace(old, new)
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def load_error(path: Path) -> ConfigKeyError:
    with pytest.raises(ConfigKeyError) as caught:
        NodeConfig.load(path)
    assert str(caught.value).startswith(f"{path}: "), caught.value
    return caught.value


@pytest.mark.parametrize("old, new, table, key, suggestion", [
    ("max_memory_mb = 1024", "max_memroy_mb = 1024", "worker", "max_memroy_mb", "max_memory_mb"),
    ("min_bounty = 5", "minbounty = 5", "worker", "minbounty", "min_bounty"),
    ("propose_ms = 800", "propose_msec = 800", "consensus", "propose_msec", "propose_ms"),
    ("bootstrap = [", "bootstrp = [", "p2p", "bootstrp", "bootstrap"),
    ('genesis = "genesis.json"\ndata_dir', 'genesis = "genesis.json"\ndatadir', "node", "datadir",
     "data_dir"),
])
def test_misspelt_key_is_named_with_its_table_and_the_closest_key(
        tmp_path: Path, old: str, new: str, table: str, key: str, suggestion: str) -> None:
    error = load_error(write(tmp_path, old, new))
    assert (error.table, error.key, error.suggestion) == (table, key, suggestion)
    assert str(error).endswith(f": unknown key [{table}] {key}; did you mean {suggestion}?")


def test_unknown_key_without_a_close_one_lists_the_valid_ones(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, "[api]\n", "[api]\ncolour = \"blue\"\n"))
    assert str(error).endswith(": unknown key [api] colour (valid: host, port, token_file, "
                               "max_upload_mb, uploads_per_minute, upload_mb_per_hour)")
    assert error.suggestion is None


@pytest.mark.parametrize("old, new, expected", [
    ("[worker]", "[wroker]", "unknown table [wroker]; did you mean [worker]?"),
    ("[consensus]", "[consenus]", "unknown table [consenus]; did you mean [consensus]?"),
    ("[api]", "[graphics]", "unknown table [graphics] (valid: node, p2p, api, storage, "
                            "consensus, worker, statesync)"),
])
def test_unknown_table_is_named(tmp_path: Path, old: str, new: str, expected: str) -> None:
    error = load_error(write(tmp_path, old, new))
    assert str(error).endswith(": " + expected)
    assert error.key is None


def test_key_above_every_table_says_which_table_it_belongs_in(tmp_path: Path) -> None:
    path = write(tmp_path)
    path.write_text("max_memory_mb = 2048\n" + path.read_text())
    assert str(load_error(path)).endswith(
        ": key outside any table: max_memory_mb; did you mean [worker] max_memory_mb?")


@pytest.mark.parametrize("line, key", [
    ('key_file = "node.key"\n', "key_file"),
    ('genesis = "genesis.json"\n', "genesis"),
])
def test_missing_required_key_is_named(tmp_path: Path, line: str, key: str) -> None:
    error = load_error(write(tmp_path, line, ""))
    assert str(error).endswith(f": missing required key [node] {key}")
    assert (error.table, error.key) == ("node", key)


def test_missing_node_table_is_named(tmp_path: Path) -> None:
    path = write(tmp_path)
    path.write_text("[p2p]" + path.read_text().split("[p2p]", 1)[1])
    assert "[node]" not in path.read_text()
    assert str(load_error(path)).endswith(": missing required table [node]")


def test_a_rendered_config_and_the_documented_example_load(tmp_path: Path) -> None:
    """The positive controls: what ``devnet up`` writes, and the module's own example
    (every key it documents is a valid one), load without error."""
    config = NodeConfig.load(write(tmp_path))
    assert config.worker.max_memory_mb == 1024 and config.consensus.propose_ms == 800
    doc = config_module.__doc__ or ""
    example = textwrap.dedent(doc.split("Example::", 1)[1].split('"""', 1)[0])
    path = tmp_path / "example.toml"
    path.write_text(re.sub(r"(?m)^(\s*\w+ = .*?)\s+#.*$", r"\1", example))
    documented = NodeConfig.load(path)
    assert documented.worker.disk_budget_mb == 16384 and documented.api_port == 8601


def test_node_start_prints_the_misspelt_key_as_one_error_line(tmp_path: Path) -> None:
    """What an operator sees: the node does not start, and says which key on one line."""
    path = write(tmp_path, "max_memory_mb = 1024", "max_memroy_mb = 1024")
    result = run(["node", "start", "--config", str(path)], code=1)
    assert "unknown key [worker] max_memroy_mb; did you mean max_memory_mb?" in result.output

