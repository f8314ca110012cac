"""Untrusted text made inert before it reaches a terminal or a log line [TERM-INERT.1].

A job's name, description, image ref, entry points and search-space values,
a peer's strings and whatever a node answers are chosen by someone else. Written
raw to a terminal they can set the window title (OSC), clear the screen (CSI),
ask the terminal to type a report back into the shell's input, ring the bell,
move the cursor back over what was printed (backspace, CR), reorder what the
reader sees (bidi overrides) or start what looks like a new log line.

``inert`` is the one function every CLI output line and every human log record
goes through (``client.cli.common.out``, ``client.observe.logs``). It keeps
printable text as it is and replaces each character that is not printable by a
visible escape:

- C0 controls (U+0000..U+001F, tab, newline and CR included) and DEL → ``\\xNN``
  (``\\n``, ``\\r``, ``\\t`` for the three common ones);
- C1 controls (U+0080..U+009F) → ``\\xNN``;
- format characters (Unicode category Cf: bidi embeddings, overrides and isolates,
  zero-width joiners and spaces, the BOM, soft hyphen …), line and paragraph
  separators (Zl, Zp), lone surrogates (Cs, which JSON can carry and a UTF-8
  terminal write would choke on) → ``\\uNNNN``.

A backslash is kept: the result is for a human to read, never to be parsed
back (``--json`` output stays JSON, escaped by the encoder).
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

import click

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


@lru_cache(maxsize=4096)
def _escape(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def is_unsafe(ch: str) -> bool:
    """True for a character ``inert`` escapes (a control, format or separator character)."""
    return unicodedata.category(ch) in _UNSAFE_CATEGORIES


def inert(text: object) -> str:
    """``text`` (anything; ``str()`` of it) with every unsafe character visibly escaped.

    Printable text, including non-ASCII letters and emoji, passes unchanged.
    """
    s = text if isinstance(text, str) else str(text)
    if s.isprintable():  # fast path: no Cc, Cf, Cs, Zl, Zp (nor other separators but space)
        return s
    return "".join(_escape(ch) if is_unsafe(ch) else ch for ch in s)


def out(line: object = "", *, err: bool = False) -> None:
    """One line for humans (stdout, or stderr with ``err``), made inert [TERM-INERT.1]."""
    click.echo(inert(line), err=err)
