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


class JsonErrorsGroup(click.Group):
    """The root group: turns any error of a ``--json`` command line into a ``JsonError``."""

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


@click.group(cls=JsonErrorsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="learningchain")
def cli() -> None:
    """LearningChain: train each other's models, earn credits, no middleman."""


def _register_subcommands() -> None:
    """Each subsystem owns its commands; a missing optional one is skipped."""
    import importlib

    for module_name, attr in [
        ("client.cli.key_commands", "keys"),
        ("sandbox.cli", "sandbox"),
        ("sandbox.cli", "job"),
        ("client.cli.node.commands", "node"),
        ("client.cli.node.init", "node"),  # adds `node init`
        ("client.cli.network_commands", "devnet"),
        ("client.cli.chain_commands", "balance"),
        ("client.cli.chain_commands", "transfer"),
        ("client.cli.chain_commands", "chain"),
        ("client.cli.chain_commands", "member"),
        ("client.cli.chain_commands", "validator"),
        ("client.cli.chain_commands", "governance"),
        ("client.cli.network_commands", "network"),
        ("client.cli.verifier_commands", "verifier"),
        ("client.cli.job.commands", "job"),
        ("client.cli.job.holdout", "job"),  # adds `job holdout publish|reveal`
        ("client.cli.predict.model", "model"),
        ("client.cli.predict.commands", "predict"),
        ("client.federated.cli", "federated"),
    ]:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name == module_name:
                continue
            raise
        command = getattr(module, attr, None)
        if command is not None:
            cli.add_command(command)


_register_subcommands()


def main() -> None:
    cli()
