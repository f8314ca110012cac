"""How much a job's text may carry to others: measured in bits, in any script [API-JOBLOG.4].

A failed run's excerpt and its one-line detail are the only job-written text a worker's node
serves to anyone who asks ([API-JOBLOG.1-3]). Counting characters does not bound what they
carry: issue 47 §2 printed a model as CJK characters (3 bytes and about 14 bits each, no
ASCII token, no ASCII digit) and kept about 435 bytes of it per failed attempt in the
720-byte excerpt. So the text is measured by what it can *inform*, not by what it shows:

- ``information_bytes(text)``: the size of the text's UTF-8 bytes compressed with raw
  DEFLATE (zlib level 9, 15-bit window) and the preset dictionary ``DICTIONARY`` (the words
  of Python tracebacks and of this node's own failure lines, so an honest traceback costs
  little). Decompression gives the text back, so the map from text to compressed bytes is
  one-to-one: at most ``256**0 + ... + 256**n`` < ``2**(8n + 1)`` texts measure ``n`` bytes
  or less, and a text kept within ``n`` bytes carries at most ``8n + 1`` bits of anything,
  whatever script, encoding or layout the job chose (``bits_bound``).
- before it is measured, the text is made plain (``plain``): every whitespace character
  becomes a space (the choice among Unicode's spaces is not a channel), invisible format
  characters (zero-width joiners, direction marks) are dropped, private-use, unassigned and
  surrogate code points become U+FFFD; and the token rules of [API-JOBLOG.3] apply to every
  script (``redact``): a run of ``MAX_DIGIT_RUN`` numeric characters of any script
  (fullwidth, Arabic-Indic, Devanagari digits, ``½``) and a run of ``MAX_TOKEN_CHARS``
  token characters (ASCII letters, digits and ``+/=_-`` as before, and every character
  beyond ASCII that is not a space: letters of any script, CJK, emoji, Braille, combining
  marks) become ``…``.

The redaction keeps a printed model out of the usual forms; the measure is the bound that
holds whatever the job prints. protocol_spec/threat_model.md "Channel budget" [THREAT-LEAK.1]
adds up what every channel carries.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections.abc import Callable

MAX_DIGIT_RUN = 4
"""[API-JOBLOG.3] Runs of this many numeric characters (any script) or more are redacted."""
MAX_TOKEN_CHARS = 20
"""[API-JOBLOG.3] Runs of this many token characters (any script) or more are redacted."""
REDACTED = "\u2026"
_ASCII_TOKEN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_-")
"""The ASCII characters of a token: letters, digits and ``+/=_-`` (base64 and hex stay one
token). Every other ASCII character (spaces, punctuation, controls) ends one."""


def _in_token(ch: str) -> bool:
    """[API-JOBLOG.4] A token character: ``_ASCII_TOKEN``, or any character beyond ASCII
    that is not a space and not the redaction mark (letters of every script, CJK, emoji,
    Braille, combining marks)."""
    if ch.isascii():
        return ch in _ASCII_TOKEN
    return not ch.isspace() and ch != REDACTED
_NUMBER = re.compile(r"(?<!\w)[-+]?(?:0+\.?0*|\.0+)(?:[eE][-+]?0+)?")

DICTIONARY = "\n".join((
    "ModuleNotFoundError: No module named ImportError: cannot import name",
    "FileNotFoundError: [Errno 2] No such file or directory: PermissionError: [Errno 13] "
    "Permission denied: OSError: [Errno 28] No space left on device",
    "KeyError: IndexError: list index out of range AttributeError: object has no attribute "
    "NameError: name is not defined TypeError: takes positional argument but were given "
    "unsupported operand type(s) for NotImplementedError AssertionError ZeroDivisionError: "
    "division by zero MemoryError SystemExit: KeyboardInterrupt json.decoder.JSONDecodeError",
    "RuntimeError: CUDA out of memory. Tried to allocate size mismatch shape mismatch "
    "mat1 and mat2 shapes cannot be multiplied Expected all tensors to be on the same device "
    "expected scalar type Float but found Double Long dtype torch.float32 int64 cuda cpu",
    "ValueError: could not convert string to float: invalid literal for int() with base 10: "
    "expected got must be should be not found is not a valid missing required unknown "
    "cannot could not failed invalid empty too many too few columns rows features labels "
    "input output model data file path shape size length batch epoch step loss accuracy",
    "/usr/local/lib/python3.11/site-packages/ /usr/lib/python3/dist-packages/ "
    "torch/nn/modules/module.py numpy/ sklearn/ pandas/ onnx/ onnxruntime/ __init__.py "
    "_call_impl forward_call(*args, **kwargs) return self.forward( return super().",
    "<worker>/runs/ no model file at model is bytes, limit exit code killed; "
    "ran past its s limit; killed printed more than bytes; killed exceeded its byte memory "
    "limit; killed exited but left processes running; killed entry point did not report "
    "an exit output archive exceeds output entry is not a regular file or folder "
    "metrics.json: [JOB-JSON.1] [JOB-CHECKPOINT.4] run 1 (plain): run 2 (variant): "
    "the job's evaluation does not reproduce: the job's evaluation failed on our model: "
    "difference > loss_tolerance nonzero_exit timeout oom bad_output model_missing "
    "s of the s limit spent before the checkpoint it would resume from our sandbox failed: "
    "output holds more than entries output entry appears twice is a sparse file",
    "Traceback (most recent call last):\n  File \"/job/train.py\", line , in <module>\n"
    "    main()\n  File \"/job/evaluate.py\", line , in main\n    raise ",
)).encode("utf-8")
"""[API-JOBLOG.4] The preset dictionary of the measure (fixed: changing it changes what is
kept, never the bound). Common text last: DEFLATE reaches near text for fewer bits."""


def information_bytes(text: str) -> int:
    """[API-JOBLOG.4] The measure: bytes of raw DEFLATE (level 9) of the UTF-8 text with
    ``DICTIONARY`` preset. A text of ``n`` bytes by this measure carries < ``8n + 1`` bits."""
    if not text:
        return 0
    packer = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, DICTIONARY)
    data = text.encode("utf-8", "surrogatepass")
    return len(packer.compress(data) + packer.flush())


def bits_bound(info_bytes: int) -> int:
    """[API-JOBLOG.4] At most this many bits pass in a text kept within ``info_bytes``: the
    texts of measure ``n`` or less number fewer than ``2**(8n + 1)`` (0: the empty text)."""
    return 8 * info_bytes + 1 if info_bytes > 0 else 0


def plain(text: str) -> str:
    """[API-JOBLOG.4] Whitespace as spaces (``\\n`` kept), invisible format characters
    dropped, private-use, unassigned and surrogate code points as U+FFFD."""
    out: list[str] = []
    for ch in text:
        if ch == "\n":
            out.append(ch)
        elif ch.isspace():
            out.append(" ")
        elif ch.isascii():
            out.append(ch)
        else:
            kind = unicodedata.category(ch)
            if kind == "Cf":
                continue
            out.append("\ufffd" if kind in ("Co", "Cn", "Cs") else ch)
    return "".join(out)


def _runs(text: str, inside: list[bool], length: int) -> str:
    """``text`` with every run of at least ``length`` characters marked ``inside`` as one
    ``…``."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if not inside[i]:
            out.append(text[i])
            i += 1
            continue
        j = i
        while j < n and inside[j]:
            j += 1
        out.append(REDACTED if j - i >= length else text[i:j])
        i = j
    return "".join(out)


def redact_tokens(text: str) -> str:
    """[API-JOBLOG.3] [API-JOBLOG.4] Every run of ``MAX_TOKEN_CHARS`` or more token
    characters (``_in_token``: any script) replaced by ``…``."""
    return _runs(text, [_in_token(c) for c in text], MAX_TOKEN_CHARS)


def redact(text: str) -> str:
    """[API-JOBLOG.3] [API-JOBLOG.4] Long tokens, then runs of ``MAX_DIGIT_RUN`` or more
    numeric characters of any script, replaced by ``…`` (a hex or base64 string goes
    whole)."""
    text = redact_tokens(text)
    return _runs(text, [c.isnumeric() for c in text], MAX_DIGIT_RUN)


def numbers_in(line: str) -> int:
    """[API-JOBLOG.3] How many numbers a line holds, in any script: the numbers of
    ``[-+]?digits[.digits][e[-+]digits]`` once every numeric character reads as ``0``, but
    not the digits that end a name (``mat1``, ``conv2d``, ``64x784``)."""
    return len(_NUMBER.findall("".join("0" if c.isnumeric() else c for c in line)))


def keep_end(lines: list[str], max_info: int) -> list[str]:
    """[API-JOBLOG.4] The last lines whose text measures at most ``max_info`` bytes; a last
    line that does not fit alone keeps its end (where the exception's message is)."""
    kept: list[str] = []
    for line in reversed(lines):
        if information_bytes("\n".join([line, *kept])) > max_info:
            break
        kept.insert(0, line)
    if not kept and lines:
        last = lines[-1]
        end = _fit(last, max_info, lambda n: last[len(last) - n:])
        kept = [end] if end else []
    return kept


def keep_start(text: str, max_info: int, mark: str = "...") -> str:
    """[API-JOBLOG.4] ``text`` when it measures at most ``max_info`` bytes, else a start of
    it that does with ``mark`` appended (the mark counted)."""
    if information_bytes(text) <= max_info:
        return text
    return _fit(text, max_info, lambda n: text[:n] + mark)


def _fit(text: str, max_info: int, cut: Callable[[int], str]) -> str:
    """``cut(n)`` for a long ``n`` whose text measures at most ``max_info`` ('' if none).

    DEFLATE sizes are not monotone in the length, so this bisects with the invariant "``lo``
    fits, ``hi`` does not" and returns a text that was measured: the bound always holds,
    though a slightly longer cut might have fitted too."""
    lo, hi = 0, len(text)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if information_bytes(cut(mid)) <= max_info:
            lo = mid
        else:
            hi = mid
    best = cut(lo) if lo else ""
    return best if information_bytes(best) <= max_info else ""
