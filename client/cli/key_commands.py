"""``learningchain keys``: create, show, import and export passphrase-protected keys."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from chain.crypto import PrivateKey, address_to_text
from chain.errors import KeyFileError
from chain.keyfile import read_key_file, write_key_file
from chain.local_file import MAX_SECRET_FILE_BYTES, LocalFileError, read_local_text
from client.cli.common import (
    PASSPHRASE_ENV,
    UserError,
    json_option,
    note,
    passphrase_option,
    read_passphrase_file,
)
from client.cli.inert import out

EMPTY_PASSPHRASE_WARNING = (
    "warning: the passphrase is empty: anyone who gets a copy of {path} can sign with it; "
    "re-create the key with a passphrase unless this is a throwaway key")


def _passphrase(passphrase_file: Path | None, *, confirm: bool) -> str:
    """From a file, from $LC_PASSPHRASE, or asked for (hidden) — never from argv."""
    if passphrase_file is not None:
        return read_passphrase_file(passphrase_file)
    if PASSPHRASE_ENV in os.environ:
        return os.environ[PASSPHRASE_ENV]
    return str(click.prompt("Passphrase", hide_input=True, confirmation_prompt=confirm))


def _write(path: Path, key: PrivateKey, passphrase_file: Path | None) -> None:
    """Writes the encrypted key; warns (stderr) when it is protected by nothing."""
    passphrase = _passphrase(passphrase_file, confirm=True)
    if not passphrase:
        note(EMPTY_PASSPHRASE_WARNING.format(path=path))
    try:
        write_key_file(path, key, passphrase)
    except KeyFileError as e:
        raise UserError(str(e), code=e.code) from e


def _read(path: Path, passphrase_file: Path | None) -> PrivateKey:
    try:
        return read_key_file(path, _passphrase(passphrase_file, confirm=False))
    except KeyFileError as e:
        raise UserError(str(e), code=e.code) from e


def _describe(key: PrivateKey, path: Path) -> dict[str, str]:
    return {"address": address_to_text(key.address), "public_key": key.public_key.hex(),
            "file": str(path)}


def _emit(info: dict[str, str], as_json: bool) -> None:
    if as_json:
        out(json.dumps(info))
    else:
        for k, v in info.items():
            out(f"{k:11} {v}")


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
    _write(path, key, passphrase_file)
    _emit(_describe(key, path), as_json)


@keys.command("show")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
@passphrase_option
@json_option
def keys_show(path: Path, passphrase_file: Path | None, as_json: bool) -> None:
    """Unlock the key at PATH and print its address and public key."""
    _emit(_describe(_read(path, passphrase_file), path), as_json)


@keys.command("import")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--secret-file", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              required=True, help="File holding the 32-byte secret as 64 hex characters.")
@passphrase_option
@json_option
def keys_import(path: Path, secret_file: Path, passphrase_file: Path | None,
                as_json: bool) -> None:
    """Import a raw secp256k1 secret (e.g. from another wallet) into an encrypted key file."""
    try:  # [NODE-READ.1] a regular file of at most MAX_SECRET_FILE_BYTES
        text = read_local_text(secret_file, MAX_SECRET_FILE_BYTES, what="secret file")
    except LocalFileError as e:
        raise UserError(str(e), code=e.code) from None
    try:
        key = PrivateKey(bytes.fromhex(text.strip().removeprefix("0x")))
    except ValueError as e:
        raise UserError(f"{secret_file}: the secret must be 64 hex characters of a valid key",
                        code="bad_secret") from e
    _write(path, key, passphrase_file)
    _emit(_describe(key, path), as_json)


@keys.command("export")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--i-understand", is_flag=True, required=True,
              help="Required: the raw secret is printed in clear.")
@passphrase_option
@json_option
def keys_export(path: Path, i_understand: bool, passphrase_file: Path | None,
                as_json: bool) -> None:
    """Print the raw secret of the key at PATH (hex) for use in another wallet."""
    key = _read(path, passphrase_file)
    if as_json:
        out(json.dumps({"address": address_to_text(key.address), "secret": key.secret.hex(),
                        "file": str(path)}))
    else:
        out(key.secret.hex())
