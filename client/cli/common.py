"""What the CLI commands share: options, key loading, errors, output.

Exit codes: 0 ok, 1 a user error (the node said no, a wrong passphrase, an
unreachable node: one ``Error: …`` line, never a traceback), 2 a usage error
(click's own: a missing or malformed argument).

With ``--json`` every error, of any command, is instead one JSON object on
stderr, ``{"error": {"code": "...", "message": "..."}}`` (the shape of the
node's API errors), with the same exit code: ``JsonError``, raised for every
command by the root group in ``client.cli.main``. ``code`` is the node's or the
ledger's code when there is one, else ``usage`` (exit 2), ``aborted`` or
``user_error``.

Every line a command prints for humans goes through ``out`` / ``note`` and every
error through ``UserError``: all three make untrusted text inert
[TERM-INERT.1] (``client.cli.inert``), so nothing a job, a peer or the node
chose reaches the terminal as a control sequence. ``--json`` output is
``json.dumps`` with its default ``ensure_ascii``: every control and non-ASCII
character is a ``\\uXXXX`` escape, so it stays one inert JSON document.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from chain.crypto import PrivateKey, address_from_pubkey, address_from_text
from chain.errors import ChainError, InvalidAddress, KeyFileError
from chain.keyfile import read_key_file
from chain.local_file import MAX_SECRET_FILE_BYTES, LocalFileError, read_local_text
from chain.transactions import Body, SignedTransaction
from chain.types import Address, PublicKeyBytes
from client.api.http_client import DEFAULT_NODE, NODE_ENV, ApiClient, ApiError
from client.cli.inert import inert, out

__all__ = ["inert", "json_option", "out", "passphrase_option"]

F = TypeVar("F", bound=Callable[..., Any])
KEY_ENV = "LC_KEY"
PASSPHRASE_ENV = "LC_PASSPHRASE"
JSON_FLAG = "--json"

json_option = click.option(JSON_FLAG, "as_json", is_flag=True,
                           help="Machine-readable output (and errors as one JSON object).")
passphrase_option = click.option(
    "--passphrase-file", type=click.Path(path_type=Path, dir_okay=False),
    help=f"Read the passphrase from this file (else ${PASSPHRASE_ENV}, else a prompt).")

node_option = click.option(
    "--node", "node_url", envvar=NODE_ENV, default=DEFAULT_NODE, show_default=True,
    metavar="URL", help=f"The node's HTTP API (else ${NODE_ENV}).")


def key_option(required: bool = True, help: str = "Key file that signs (learningchain keys new)."
               ) -> Callable[[F], F]:
    help = f"{help.rstrip('.')} (else ${KEY_ENV})."
    return click.option("--key", "key_path", required=required, metavar="PATH", envvar=KEY_ENV,
                        type=click.Path(path_type=Path, dir_okay=False), help=help)


def wait_option(what: str = "the transaction") -> Callable[[F], F]:
    return click.option("--wait/--no-wait", default=True, show_default=True,
                        help=f"Wait until {what} is in a block.")


def read_passphrase_file(path: Path) -> str:
    """[NODE-READ.1] A passphrase file's first line ending removed: a regular file of at most
    ``MAX_SECRET_FILE_BYTES`` (a FIFO or a device is refused, never read)."""
    try:
        return read_local_text(path, MAX_SECRET_FILE_BYTES,
                               what="passphrase file").rstrip("\n")
    except LocalFileError as e:
        raise UserError(f"cannot read passphrase file {e}", code=e.code) from None


def load_key(key_path: Path, passphrase_file: Path | None) -> PrivateKey:
    """Unlocks a key file; the passphrase from the file (read as [NODE-READ.1] says), else
    $LC_PASSPHRASE, else a prompt."""
    if passphrase_file is not None:
        passphrase = read_passphrase_file(passphrase_file)
    else:
        import os

        env = os.environ.get(PASSPHRASE_ENV)
        passphrase = env if env is not None else str(
            click.prompt(f"Passphrase for {key_path}", hide_input=True))
    try:
        return read_key_file(key_path, passphrase)
    except KeyFileError as e:
        raise UserError(str(e), code=e.code) from e


class UserError(click.ClickException):
    """``Error: <message>`` on stderr and exit code 1; the message made inert [TERM-INERT.1].

    ``code`` is what a script reads under ``--json`` (``JsonError``)."""

    def __init__(self, message: str, code: str = "user_error") -> None:
        super().__init__(inert(message))
        self.raw_message = message
        self.code = code


class JsonError(click.ClickException):
    """Any error of a command run with ``--json``: one JSON object on stderr, same exit code.

    ``json.dumps`` escapes every control and non-ASCII character, so the message
    is inert [TERM-INERT.1] and a script still reads its exact text."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

    def document(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}

    def show(self, file: Any = None) -> None:
        click.echo(json.dumps(self.document()), err=True)

    @staticmethod
    def of(e: click.ClickException | click.Abort) -> JsonError:
        """The JSON form of any error a command ends with (same exit code)."""
        if isinstance(e, JsonError):
            return e
        if isinstance(e, click.Abort):
            return JsonError("aborted", "aborted (no input)")
        if isinstance(e, UserError):
            return JsonError(e.code, e.raw_message)
        if isinstance(e, click.UsageError):
            command = f" (see {e.ctx.command_path} --help)" if e.ctx is not None else ""
            return JsonUsageError("usage", e.format_message() + command)
        return JsonError("user_error", e.format_message())


class JsonUsageError(JsonError):
    """A usage error under ``--json``: exit code 2, as click's own."""

    exit_code = 2


def wants_json(args: Sequence[str]) -> bool:
    """Whether a command line asks for ``--json`` (options end at ``--``)."""
    head = list(args)
    if "--" in head:
        head = head[:head.index("--")]
    return JSON_FLAG in head


def one_line(e: ApiError) -> str:
    """``code: message`` without repeating a code the message already starts with."""
    return e.message if e.message.startswith(e.code) else f"{e.code}: {e.message}"


@contextlib.contextmanager
def user_errors(prefix: str = "") -> Iterator[None]:
    """Turns the errors a user can cause into one ``Error:`` line and exit code 1."""
    try:
        yield
    except ApiError as e:
        raise UserError(prefix + one_line(e), code=e.code) from None
    except ChainError as e:
        raise UserError(prefix + str(e), code=e.code) from None
    except OSError as e:
        raise UserError(prefix + str(e), code="os_error") from None


def client_for(node_url: str) -> ApiClient:
    try:
        return ApiClient(node_url)
    except ApiError as e:
        raise click.BadParameter(e.message, param_hint="--node") from None


def emit(data: Any, as_json: bool, text: Callable[[], None]) -> None:
    """One JSON document for scripts, else the human-readable lines."""
    if as_json:
        click.echo(json.dumps(data))  # ensure_ascii: every control character escaped
    else:
        text()


def note(message: str) -> None:
    """Progress for humans: on stderr, so ``--json`` output stays one clean document."""
    out(message, err=True)


# -- parameter types --------------------------------------------------------------------

class AddressType(click.ParamType):
    name = "ADDRESS"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Address:
        if isinstance(value, bytes):
            return Address(value)
        try:
            return address_from_text(str(value))
        except InvalidAddress as e:
            self.fail(e.message, param, ctx)


class HashType(click.ParamType):
    """A 32-byte id (job, transaction, proposal, blob) as 64 hex characters."""

    name = "HEX32"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> bytes:
        text = str(value).strip().lower().removeprefix("0x")
        if not re.fullmatch(r"[0-9a-f]{64}", text):
            self.fail(f"expected 64 hex characters, got {value!r}", param, ctx)
        return bytes.fromhex(text)


class PubkeyType(click.ParamType):
    name = "PUBKEY"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> PublicKeyBytes:
        try:
            raw = bytes.fromhex(str(value).strip().removeprefix("0x"))
            address_from_pubkey(raw)
        except (ValueError, InvalidAddress):
            self.fail("expected a compressed secp256k1 public key: 66 hex characters "
                      "(see learningchain keys show)", param, ctx)
        return PublicKeyBytes(raw)


_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


class DurationType(click.ParamType):
    """``90s``, ``10m``, ``2h``, ``1d``, ``1500ms``; a bare number is seconds. Gives ms."""

    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*", str(value))
        if not match:
            self.fail(f"expected a duration like 90s, 10m, 2h or 1d, got {value!r}", param, ctx)
        ms = int(float(match.group(1)) * _UNITS_MS[match.group(2) or "s"])
        if ms <= 0:
            self.fail("a duration must be positive", param, ctx)
        return ms


ADDRESS = AddressType()
HASH32 = HashType()
PUBKEY = PubkeyType()
DURATION = DurationType()


# -- sending transactions -------------------------------------------------------------------

def send(client: ApiClient, key: PrivateKey, body: Body, *, wait: bool,
         what: str = "transaction", timeout: float = 60.0) -> tuple[SignedTransaction,
                                                                    dict[str, Any] | None]:
    """Signs with the next nonce, submits, and (``wait``) waits for the block. A nonce taken
    meanwhile by another client of the same key is retried with the next (``sign_and_submit``).

    A rejection becomes ``Error: <what> rejected: <code>: <reason>`` (exit 1).
    """
    with user_errors(f"{what} rejected: "):
        tx = client.sign_and_submit(key, body)
    if not wait:
        return tx, None
    with user_errors(f"{what} {tx.hash.hex()[:16]}…: "):
        return tx, client.wait_for_tx(tx.hash, timeout=timeout)


def iso_time(ms: object) -> str:
    """A chain time (ms since the epoch) as ISO-8601 UTC, ``2026-11-22T09:14:03.250Z``.

    What a node sends is shown as it is when it is not such a time (not a number,
    out of range): the CLI reports, it does not crash on a node's answer."""
    if ms is None:
        return "-"
    if isinstance(ms, bool) or not isinstance(ms, int | float):
        return inert(ms)
    try:
        moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return str(ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def table(header: Sequence[str], rows: Sequence[Sequence[object]],
          right: Sequence[int] = ()) -> None:
    """Rows under a header row, columns as wide as their widest cell; every cell inert."""
    cells = [[inert(str(c)) for c in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        parts = [c.rjust(w) if i in right else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        out("  ".join(parts).rstrip())


def short(address: str) -> str:
    return address[:10] + "…" + address[-6:] if len(address) > 20 else address


def when(ms: int | None, now_ms: int) -> str:
    """``in 4m 10s`` / ``2m ago`` relative to the node's clock."""
    if ms is None:
        return "-"
    delta = (ms - now_ms) / 1000
    text = span(abs(delta))
    return f"in {text}" if delta >= 0 else f"{text} ago"


def span(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    if seconds < 86_400:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 86_400}d {seconds % 86_400 // 3600}h"

