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
