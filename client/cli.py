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
        ("client.cli_keys", "keys"),
        ("sandbox.cli", "sandbox"),
        ("sandbox.cli", "job"),
        ("client.cli_node", "node"),
        ("client.cli_node", "devnet"),
        ("client.cli_chain", "balance"),
        ("client.cli_chain", "transfer"),
        ("client.cli_chain", "chain"),
        ("client.cli_chain", "member"),
        ("client.cli_chain", "validator"),
        ("client.cli_chain", "governance"),
        ("client.cli_network", "network"),
        ("client.cli_job", "job"),
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
