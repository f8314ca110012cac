"""The ``learningchain`` command line. Subsystems register their groups here.

The root group is where ``--json`` errors are made: whichever command failed,
and however (``UserError``, click's usage errors, a plain ``ClickException``
of a subsystem that cannot import ``client``), a command line holding
``--json`` gets one JSON error object (``client.cli.common.JsonError``).
"""

from __future__ import annotations

from typing import Any

import click

from client.cli.common import JsonError, wants_json

JSON_META = "learningchain.json"
"""``ctx.meta`` key (shared by every sub-context): the command line asked for --json."""


SUBCOMMANDS: dict[str, tuple[str, ...]] = {
    "balance": ("client.cli.chain_commands",),
    "chain": ("client.cli.chain_commands",),
    "devnet": ("client.cli.network_commands",),
    "federated": ("client.federated.cli",),
    "governance": ("client.cli.chain_commands",),
    "job": ("sandbox.cli", "client.cli.job.commands", "client.cli.job.holdout"),
    "keys": ("client.cli.key_commands",),
    "member": ("client.cli.chain_commands",),
    "model": ("client.cli.predict.model",),
    "network": ("client.cli.network_commands",),
    "node": ("client.cli.node.commands", "client.cli.node.init"),
    "predict": ("client.cli.predict.commands",),
    "sandbox": ("sandbox.cli",),
    "transfer": ("client.cli.chain_commands",),
    "validator": ("client.cli.chain_commands",),
    "verifier": ("client.cli.verifier_commands",),
}
"""Each top-level command and the modules that define it, the last one's attribute of
the command's name being the command (``node init`` and ``job holdout`` add themselves to
the group the first module made). Imported when the command is used, not at start: all
of them take 1.8 s of CPU to import (SQLAlchemy, aiohttp, docker, numpy, torch's
neighbours), one of them 0.3-1.4 s, and every ``learningchain`` call and node start
paid the whole."""


SUMMARIES: dict[str, str] = {
    "balance": "Show the balance (and nonce, membership) of ADDRESS or of --key's address.",
    "chain": "Read the chain through a node: status, blocks, transactions.",
    "devnet": "A local graph of node processes on 127.0.0.1, one command.",
    "federated": "Take part in federated jobs with data that stays on this machine.",
    "governance": "Pending governance proposals: list and approve them.",
    "job": "Training jobs: create from the template, build offline.",
    "keys": "Identities: secp256k1 keys in passphrase-encrypted files (mode 0600).",
    "member": "Graph membership: admitted members may post, claim and vote.",
    "model": "Deployed models: list, show, deploy a paid job's winning model.",
    "network": "Create the files of a new graph (genesis, one directory per node).",
    "node": "Run a node of a graph.",
    "predict": "Ask a deployed model (MODEL: its job id) for predictions on the rows of FILE.",
    "sandbox": "Docker sandbox for untrusted jobs: base image, cleanup.",
    "transfer": "Send AMOUNT credits to the address TO, signed with --key.",
    "validator": "The validator set: propose additions and removals, list it.",
    "verifier": "Verify other members' claims: opt in (bond), opt out, list.",
}
"""The first paragraph of each command's help, for ``learningchain --help``: listing the
commands from their modules imported every one of them (2.4 s of CPU on a 2-core machine,
the first command a newcomer types), to read one line each. A test keeps these equal to
the commands' own help (tests/client/cli/test_cli_lazy.py)."""


class JsonErrorsGroup(click.Group):
    """The root group: turns any error of a ``--json`` command line into a ``JsonError``,
    and imports a subsystem's commands only when one of them is named (``SUBCOMMANDS``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[JSON_META] = wants_json(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.Abort) as e:
            if ctx.meta.get(JSON_META):
                raise JsonError.of(e) from e
            raise

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(SUBCOMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in SUBCOMMANDS:
            self._load(cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command table as click writes it, each line from ``SUMMARIES`` unless its
        command is loaded already (then from the command, as click would)."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            # not loaded: its summary, shortened by click's own rule as the command's help
            command = self.commands.get(name) or click.Command(name, help=SUMMARIES[name])
            if not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def load_all(self) -> click.Group:
        """Every command imported (for code that walks ``commands``, such as tests)."""
        ctx = click.Context(self)
        for name in SUBCOMMANDS:
            self.get_command(ctx, name)
        return self

    def _load(self, name: str) -> None:
        """A missing optional subsystem (its module not installed) is skipped."""
        import importlib

        command = None
        for module_name in SUBCOMMANDS[name]:
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as e:
                if e.name == module_name:
                    continue
                raise
            command = getattr(module, name, command)
        if isinstance(command, click.Command):
            self.add_command(command, name)


@click.group(cls=JsonErrorsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="learningchain")
def cli() -> None:
    """LearningChain: train each other's models, earn credits, no middleman."""


def main() -> None:
    cli()
