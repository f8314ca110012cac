"""``learningchain keys``: create, show, import and export passphrase-protected keys."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from chain.crypto import PrivateKey, address_to_text
from chain.errors import KeyFileError
from chain.keyfile import read_key_file, write_key_file
from client.cli.inert import out

PASSPHRASE_ENV = "LC_PASSPHRASE"


def _passphrase(passphrase_file: Path | None, *, confirm: bool) -> str:
    """From a file, from $LC_PASSPHRASE, or asked for (hidden) — never from argv."""
    if passphrase_file is not None:
        try:
            return passphrase_file.read_text().rstrip("\n")
        except OSError as e:
            raise click.ClickException(f"cannot read passphrase file: {e.strerror}") from e
    if PASSPHRASE_ENV in os.environ:
        return os.environ[PASSPHRASE_ENV]
    return str(click.prompt("Passphrase", hide_input=True, confirmation_prompt=confirm))


def _describe(key: PrivateKey, path: Path) -> dict[str, str]:
    return {"address": address_to_text(key.address), "public_key": key.public_key.hex(),
            "file": str(path)}


def _emit(info: dict[str, str], as_json: bool) -> None:
    if as_json:
        out(json.dumps(info))
    else:
        for k, v in info.items():
            out(f"{k:11} {v}")


passphrase_option = click.option(
    "--passphrase-file", type=click.Path(path_type=Path, dir_okay=False),
    help=f"Read the passphrase from this file (else ${PASSPHRASE_ENV}, else a prompt).")
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@click.group()
def keys() -> None:
    """Identities: secp256k1 keys in passphrase-encrypted files (mode 0600)."""


@keys.command("new")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
@passphrase_option
@json_option
def keys_new(path: Path, passphrase_file: Path | None, as_json: bool) -> None:
    """Create a new key and write it, encrypted, to PATH."""
    key = PrivateKey.generate()
    try:
        write_key_file(path, key, _passphrase(passphrase_file, confirm=True))
    except KeyFileError as e:
        raise click.ClickException(str(e)) from e
    _emit(_describe(key, path), as_json)


@keys.command("show")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
@passphrase_option
@json_option
def keys_show(path: Path, passphrase_file: Path | None, as_json: bool) -> None:
    """Unlock the key at PATH and print its address and public key."""
    try:
        key = read_key_file(path, _passphrase(passphrase_file, confirm=False))
    except KeyFileError as e:
        raise click.ClickException(str(e)) from e
    _emit(_describe(key, path), as_json)


@keys.command("import")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--secret-file", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              required=True, help="File holding the 32-byte secret as 64 hex characters.")
@passphrase_option
@json_option
def keys_import(path: Path, secret_file: Path, passphrase_file: Path | None,
                as_json: bool) -> None:
    """Import a raw secp256k1 secret (e.g. from another wallet) into an encrypted key file."""
    try:
        key = PrivateKey(bytes.fromhex(secret_file.read_text().strip().removeprefix("0x")))
    except ValueError as e:
        raise click.ClickException("secret must be 64 hex characters of a valid key") from e
    try:
        write_key_file(path, key, _passphrase(passphrase_file, confirm=True))
    except KeyFileError as e:
        raise click.ClickException(str(e)) from e
    _emit(_describe(key, path), as_json)


@keys.command("export")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--i-understand", is_flag=True, required=True,
              help="Required: the raw secret is printed in clear.")
@passphrase_option
def keys_export(path: Path, i_understand: bool, passphrase_file: Path | None) -> None:
    """Print the raw secret of the key at PATH (hex) for use in another wallet."""
    try:
        key = read_key_file(path, _passphrase(passphrase_file, confirm=False))
    except KeyFileError as e:
        raise click.ClickException(str(e)) from e
    out(key.secret.hex())
