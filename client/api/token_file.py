"""The node's API token as a file [API-AUTH.5]: read, checked, written (mode 0600).

Apart from ``client.api.access`` (the per-request check, which needs aiohttp) so that
reading a node's config (``client.node.config``: every ``devnet``, ``network`` and
``node init`` command) does not import the HTTP server.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import stat
from pathlib import Path

TOKEN_ENV = "LC_API_TOKEN"
"""Where the CLI (``client.api.http_client``) takes the token from."""
MIN_TOKEN_CHARS = 32
TOKEN_RE = re.compile(r"^[\x21-\x7e]+$")


class TokenError(ValueError):
    """The API token is missing where it is needed, or its file is not fit to hold it."""


def is_loopback_host(host: str) -> bool:
    """[API-AUTH.1] Whether binding ``host`` reaches only this machine."""
    name = host.strip().lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name (or "" = every address): not known to be local


def no_token_message(host: str) -> str:
    return (f"the API binds {host!r}, which is not a loopback address: anyone who reaches it "
            "could post transactions and upload blobs, so writes need a token. Add "
            'token_file = "api_token" to [api] and create it with `learningchain node token '
            'api_token` (beside the config; clients send it from $LC_API_TOKEN), or bind '
            'host = "127.0.0.1"')


def check_token(token: str, where: str) -> str:
    """[API-AUTH.5] A token fit to use, or ``TokenError`` saying what is wrong with it."""
    if len(token) < MIN_TOKEN_CHARS or not TOKEN_RE.match(token):
        raise TokenError(f"{where}: the API token must be one line of at least "
                         f"{MIN_TOKEN_CHARS} visible ASCII characters (no spaces); make one "
                         "with `learningchain node token FILE`")
    return token


def read_token_file(path: Path) -> str:
    """[API-AUTH.5] The token in ``path``: owner-only mode, one line, long enough."""
    try:
        info = path.stat()
        text = path.read_bytes().decode("ascii", "replace")  # not ASCII: refused below
    except FileNotFoundError:
        raise TokenError(f"[api] token_file {path} does not exist: create it with "
                         f"`learningchain node token {path}`") from None
    except OSError as e:
        raise TokenError(f"cannot read [api] token_file {path}: {e}") from None
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise TokenError(f"[api] token_file {path} is readable by others (mode {mode:04o}): "
                         f"chmod 600 {path}")
    return check_token(text.strip(), f"[api] token_file {path}")


def new_token() -> str:
    return secrets.token_hex(32)


def write_token_file(path: Path) -> None:
    """A fresh token in a new file, created 0600 (never over an existing file)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(new_token() + "\n")
