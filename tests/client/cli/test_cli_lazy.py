"""The ``learningchain`` root imports a subsystem's commands only when one is named
(``client.cli.main.SUBCOMMANDS``): every call used to import all of them, 1.8 s of CPU
before ``balance`` or ``keys`` did anything; and ``--help`` lists them from one line each
(``SUMMARIES``), not by importing them all (2.4 s of CPU, 0.4 s since). Checked by what a
fresh process imported, never by timing it."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from client.cli.main import SUBCOMMANDS, SUMMARIES, cli

HEAVY = ("sqlalchemy", "docker", "numpy", "torch", "aiohttp")
"""What a key or chain read command never needs (the node, the sandbox, the models)."""


def _imported_after(args: list[str]) -> set[str]:
    """Every module a fresh interpreter imported to run ``learningchain ARGS``."""
    script = (
        "import sys\nfrom click.testing import CliRunner\nfrom client.cli.main import cli\n"
        f"result = CliRunner().invoke(cli, {args!r})\n"
        "assert result.exit_code == 0, result.output\n"
        "import json; print(json.dumps(sorted(sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return set(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.parametrize("args", [["balance", "--help"], ["keys", "new", "--help"],
                                  ["chain", "status", "--help"], ["--version"], ["--help"]])
def test_light_commands_import_no_heavy_package(args: list[str]) -> None:
    imported = {name.split(".")[0] for name in _imported_after(args)}
    assert not imported & set(HEAVY), f"{args} imported {sorted(imported & set(HEAVY))}"


@pytest.mark.parametrize("args", [["devnet", "status", "--help"],
                                  ["network", "create", "--help"], ["node", "init", "--help"],
                                  ["federated", "--help"]])
def test_commands_that_read_a_node_config_import_neither_database_nor_http_server(
        args: list[str]) -> None:
    """``client.node.config`` checks the token file and the retained blocks without the
    API server (aiohttp) or the storage (SQLAlchemy): ``client.api.token_file``,
    ``client.node.retention``. ``devnet status`` took 1.2 s of CPU, 0.45 s since. The
    federated commands name the node's interface for types only (it imports the ledger,
    numpy among it)."""
    imported = {name.split(".")[0] for name in _imported_after(args)}
    assert not imported & set(HEAVY), f"{args} imported {sorted(imported & set(HEAVY))}"


@pytest.mark.parametrize("args", [["job", "--help"], ["job", "submit", "--help"]])
def test_the_job_commands_import_docker_and_numpy_only_when_they_run(args: list[str]) -> None:
    """``job submit`` names ``BlobFile`` (``sandbox.blob_file``, not the Docker-bound
    ``sandbox.image_publish``) and reads ``DEPLOYABLE_FORMATS`` (numpy's module) only for
    the line that prints it: ``job --help`` took 1.33 s of CPU, 0.56 s since."""
    imported = {name.split(".")[0] for name in _imported_after(args)}
    assert not imported & set(HEAVY), f"{args} imported {sorted(imported & set(HEAVY))}"


def test_a_named_command_loads_only_its_modules() -> None:
    """``node`` loads the node's modules, not the federated or prediction CLIs."""
    imported = _imported_after(["node", "--help"])
    assert "client.cli.node.init" in imported
    assert "client.federated.cli" not in imported
    assert "client.cli.predict.commands" not in imported


def test_every_listed_command_loads_and_the_help_lists_them_all() -> None:
    """The table and the modules agree: each name loads a command of that name, the merged
    groups keep every module's subcommands, and ``--help`` shows each name once."""
    ctx = click.Context(cli)
    for name in SUBCOMMANDS:
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name, name
    job, node = cli.commands["job"], cli.commands["node"]
    assert isinstance(job, click.Group) and isinstance(node, click.Group)
    assert {"init", "submit", "status", "watch", "holdout"} <= set(job.commands)
    assert {"init", "start", "status", "token"} <= set(node.commands)
    shown = CliRunner().invoke(cli, ["--help"]).output
    listed = [line.split()[0] for line in shown.split("Commands:")[1].splitlines()
              if line.strip()]
    assert listed == sorted(SUBCOMMANDS)


def test_the_root_help_reads_as_the_commands_own_help_at_every_width() -> None:
    """``learningchain --help`` lists the commands from ``SUMMARIES`` without importing
    them; what it prints is what the loaded commands print (a summary that drifted from
    its command's docstring fails here), narrow and wide."""
    script = (
        "import json\nfrom click.testing import CliRunner\nfrom client.cli.main import cli\n"
        "widths = (40, 60, 80, 120)\n"
        "lazy = [CliRunner().invoke(cli, ['--help'], terminal_width=w).output for w in widths]\n"
        "assert not set(cli.commands) & {'job', 'node', 'federated'}, sorted(cli.commands)\n"
        "cli.load_all()\n"
        "loaded = [CliRunner().invoke(cli, ['--help'], terminal_width=w).output "
        "for w in widths]\n"
        "print(json.dumps([lazy, loaded]))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    lazy, loaded = json.loads(done.stdout.splitlines()[-1])
    assert lazy == loaded
    assert all("Commands:" in text and "verifier" in text for text in lazy)


def test_every_command_has_a_summary() -> None:
    assert set(SUMMARIES) == set(SUBCOMMANDS)


def test_an_unknown_command_is_a_usage_error_naming_it() -> None:
    result = CliRunner().invoke(cli, ["balanse"])
    assert result.exit_code == 2
    assert "No such command 'balanse'" in result.output
