"""The ``learningchain`` command line. Subsystems register their groups here."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
        ("client.cli.node_commands", "node"),
        ("client.cli.node_commands", "devnet"),
        ("client.cli.chain_commands", "balance"),
        ("client.cli.chain_commands", "transfer"),
        ("client.cli.chain_commands", "chain"),
        ("client.cli.chain_commands", "member"),
        ("client.cli.chain_commands", "validator"),
        ("client.cli.chain_commands", "governance"),
        ("client.cli.network_commands", "network"),
        ("client.cli.job_commands", "job"),
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
