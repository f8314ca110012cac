"""A hostile job's writer against the real parsing and serving code, and the channel budget
[THREAT-LEAK.1] (protocol_spec/threat_model.md, "Channel budget").

The job wants its trained model out before a claim is revealed and paid (issue 47 §1-2). It
writes a random payload through every channel it has to someone who can only read what a
worker's node serves to anyone (no API token), and this module counts how many payload bits
that reader gets back:

- progress files (``progress_probe``): each file is written where the worker's copy lands and
  read by ``sandbox.progress.read_progress_file``; the caller hands it to the worker (the
  real ``Trainer._on_progress``) and reads what the API serves. The writer puts 36 payload
  bytes per file in ``step`` (48 bits), ``metric`` (48 bits of a double's mantissa) and
  ``metric_name`` (24 bytes as base64url), and 2 bits per 30 s in the ``fraction``'s rise;
- printed output in many scripts (``printed`` and ``decode``), through ``excerpt``:
  base64-like ASCII words, CJK, Cyrillic, emoji, combining marks, fullwidth digits,
  Arabic-Indic digits, Braille, a choice among Unicode spaces, zero-width characters;
- a file name in ``/output`` (``fifo_named``) that the output check quotes in the detail line;
- the record's numbers the job picks (exit code, bytes printed).

``budget()`` adds up what each channel can carry at most, from the constants the code
enforces; the reader's counts must stay under it. ``bench/leak_probe.py`` prints the figures.
"""

from __future__ import annotations

import base64
import difflib
import io
import json
import math
import random
import re
import struct
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from client.worker.attempt_log import DETAIL_INFO_BYTES, EXCERPT_INFO_BYTES
from client.worker.progress_view import PUBLISH_S, public_bits
from client.worker.text_bound import bits_bound
from sandbox.limits import ResourceLimits
from sandbox.output import OutputRejected, extract_output
from sandbox.progress import read_progress_file
from sandbox.results import JOB_FAULTS

POLL_S = 2
"""[JOB-PROGRESS.4] The worker reads the progress file this often."""
FIELD_BYTES = 36
"""Payload bytes the writer puts in one progress file (step, metric, metric_name)."""
_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
MIN_MATCH_BITS = 16
"""A run of recovered symbols counts once it holds this many bits (chance matches do not)."""


@dataclass(frozen=True, slots=True)
class Script:
    """One way to print bits: ``alphabet[v]`` stands for the value ``v`` of ``bits`` bits."""

    name: str
    alphabet: str
    bits: int
    group: int = 19
    """Symbols per word (a space between words; 19 stays under the old 20-character rule)."""
    carrier: str = ""
    """A character printed before each symbol (a base for combining marks, a letter between
    spaces) or ''."""


SCRIPTS = (
    Script("ascii", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef", 5),
    Script("cjk", "".join(chr(0x4E00 + i) for i in range(1 << 14)), 14),
    Script("cyrillic", "".join(chr(0x0410 + i) for i in range(64)), 6),
    Script("emoji", "".join(chr(0x1F300 + i) for i in range(256)), 8),
    Script("combining", "".join(chr(0x0300 + i) for i in range(64)), 6, carrier="a"),
    Script("fullwidth_digits", "".join(chr(0xFF10 + i) for i in range(8)), 3, group=3),
    Script("arabic_indic_digits", "".join(chr(0x0660 + i) for i in range(8)), 3, group=3),
    Script("braille", "".join(chr(0x2800 + i) for i in range(256)), 8),
    Script("unicode_spaces", "".join(chr(0x2000 + i) for i in range(8)), 3, carrier="x"),
    Script("zero_width", "\u200b\u200c\u200d\u2060", 2, carrier="x"),
)


def symbols(payload: bytes, bits: int) -> list[int]:
    """The payload as values of ``bits`` bits, most significant first (the tail dropped)."""
    text = "".join(f"{b:08b}" for b in payload)
    return [int(text[i:i + bits], 2) for i in range(0, len(text) - bits + 1, bits)]


def printed(payload: bytes, script: Script, line_chars: int = 120) -> bytes:
    """What the hostile ``train`` prints before it exits 1: the payload in ``script``, in
    words of ``script.group`` symbols, lines of at most ``line_chars`` characters."""
    words: list[str] = []
    values = symbols(payload, script.bits)
    for i in range(0, len(values), script.group):
        words.append("".join(script.carrier + script.alphabet[v]
                             for v in values[i:i + script.group]))
    lines: list[str] = []
    line = ""
    for word in words:
        if line and len(line) + 1 + len(word) > line_chars:
            lines.append(line)
            line = ""
        line = f"{line} {word}" if line else word
    lines.append(line)
    return ("\n".join(lines) + "\n").encode("utf-8")


def decode(text: str, script: Script) -> list[int]:
    """What a reader who knows the script takes back from served text: every symbol of the
    alphabet, in order (``\\uXXXX`` escapes, as ``repr`` writes them, read as the
    character)."""
    text = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
    index = {ch: i for i, ch in enumerate(script.alphabet)}
    return [index[ch] for ch in text if ch in index]


def recovered_bits(sent: list[int], got: list[int], bits: int) -> int:
    """Payload bits the reader has in order: symbols in runs that match the payload's, each
    run at least ``MIN_MATCH_BITS`` long."""
    least = math.ceil(MIN_MATCH_BITS / bits)
    matcher = difflib.SequenceMatcher(None, sent, got, autojunk=False)
    return sum(block.size * bits for block in matcher.get_matching_blocks()
               if block.size >= least)


def byte_bits(payload: bytes, got: bytes) -> int:
    """Payload bits back through a channel that carries bytes: matching runs of 2+ bytes."""
    return recovered_bits(list(payload), list(got), 8)


# -- the output's file names -----------------------------------------------------------------


def fifo_named(name: str) -> bytes:
    """A tar of ``/output`` as the engine would send it, holding one FIFO called ``name``
    (the output check refuses it and quotes its name in the detail line)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        folder = tarfile.TarInfo("output")
        folder.type = tarfile.DIRTYPE
        archive.addfile(folder)
        fifo = tarfile.TarInfo(f"output/{name}")
        fifo.type = tarfile.FIFOTYPE
        archive.addfile(fifo)
    return buffer.getvalue()


def output_name(payload: bytes, script: Script) -> str:
    """A path in ``/output`` that carries the payload: words of the script, names of at
    most 255 bytes, `` / `` between them (a space each side keeps words apart), under the
    output check's 1,024 bytes a path."""
    words = printed(payload, script).decode().replace("\n", " ").split(" ")
    parts: list[str] = []
    part = ""
    for word in words:
        if part and len((part + " " + word).encode()) > 255:
            parts.append(part)
            part = ""
            if len(" / ".join(parts).encode()) > 1024 - 2 * 255:
                break
        part = f"{part} {word}" if part else word
    else:
        parts.append(part)
    return " / ".join(parts)


def refusal_detail(name: str, folder: Path) -> str:
    """The detail line a run gets when its ``/output`` holds a FIFO called ``name``: the
    real output check's refusal (``sandbox.output.extract_output``), as the runner keeps it."""
    try:
        extract_output([fifo_named(name)], folder, 1 << 20)
    except OutputRejected as e:
        return str(e)
    return ""


# -- progress ------------------------------------------------------------------------------


def progress_file(payload: bytes, index: int, percent: int) -> bytes:
    """The hostile progress file of poll ``index``: 36 payload bytes while any are left."""
    chunk = payload[index * FIELD_BYTES:(index + 1) * FIELD_BYTES].ljust(FIELD_BYTES, b"\0") \
        if index * FIELD_BYTES < len(payload) else b""
    doc: dict[str, Any] = {"fraction": percent / 100, "step": 0}
    if chunk:
        doc["step"] = int.from_bytes(chunk[:6], "big")
        doc["metric"] = struct.unpack(">d", b"\x3f\xf0" + chunk[6:12])[0]
        doc["metric_name"] = base64.urlsafe_b64encode(chunk[12:36]).decode()
    return json.dumps(doc).encode()


def fields_of(view: dict[str, Any]) -> bytes:
    """What a reader takes back from one served view's step, metric and metric name."""
    step, metric, name = view.get("step"), view.get("metric"), view.get("metric_name")
    if not isinstance(step, int) or not isinstance(metric, float) or not isinstance(name, str) \
            or len(name) != 32:
        return b""
    try:
        return (step.to_bytes(6, "big") + struct.pack(">d", metric)[2:]
                + base64.urlsafe_b64decode(name))
    except (ValueError, OverflowError):
        return b""


@dataclass(frozen=True, slots=True)
class ProgressLeak:
    """What the reader got back from one run's progress."""

    field_bits: int
    """Payload bits back from step, metric and metric name."""
    percent_bits: int
    """Payload bits back from the fraction's rises."""
    run_s: int

    @property
    def bits(self) -> int:
        return self.field_bits + self.percent_bits


def progress_probe(payload: bytes, run_s: int, folder: Path,
                   deliver: Callable[[Any, int], None],
                   read: Callable[[int], dict[str, Any] | None]) -> ProgressLeak:
    """One hostile run of ``run_s`` seconds: every ``POLL_S`` the job's file is written to
    ``folder``, read by the real reader and handed to ``deliver(progress, now_ms)``; the
    reader calls ``read(now_ms)`` (the served view, or None) after each file and once a
    second past each tick. The run starts at ``now_ms`` 0 (the caller's feed too)."""
    rises = symbols(payload, 2)
    sent_rises: list[int] = []
    percent = 0
    for window in range(run_s // PUBLISH_S):
        if window < len(rises) and percent + rises[window] <= 100:
            percent += rises[window]
            sent_rises.append(rises[window])
        else:
            break
    schedule = [sum(sent_rises[:w + 1]) for w in range(len(sent_rises))]
    path = folder / "progress.json"
    views: list[dict[str, Any]] = []
    ticks: list[int] = []
    for index in range(run_s // POLL_S):
        now_ms = index * POLL_S * 1000
        window = now_ms // (PUBLISH_S * 1000)
        shown = schedule[min(window, len(schedule) - 1)] if schedule else 0
        path.write_bytes(progress_file(payload, index, shown))
        progress, _why = read_progress_file(path)
        if progress is not None:
            deliver(progress, now_ms)
        view = read(now_ms)
        if view is not None and (not views or view != views[-1]):
            views.append(view)
        if (now_ms + POLL_S * 1000) // (PUBLISH_S * 1000) > window:  # a tick comes next
            at_tick = read((window + 1) * PUBLISH_S * 1000 + 1000)
            fraction = at_tick.get("fraction") if at_tick is not None else None
            ticks.append(round(100 * fraction) if isinstance(fraction, int | float) else 0)
    got_fields = b"".join(dict.fromkeys(fields_of(v) for v in views))
    got_rises = [b - a for a, b in zip([0, *ticks], ticks, strict=False)]
    best = max(recovered_bits(sent_rises, got_rises[shift:], 2) for shift in range(3))
    return ProgressLeak(byte_bits(payload, got_fields), best, run_s)


# -- the budget -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    """One channel: the most it carries per run of the job on one worker."""

    channel: str
    per_run: float
    note: str


def budget(run_s: int = 3600) -> list[Row]:
    """[THREAT-LEAK.1] What a hostile job can move to anyone who reads a worker's node,
    channel by channel, per run of ``run_s`` seconds (a run is a training attempt, or one
    given back after a worker fault)."""
    log_limit = ResourceLimits().log_bytes
    return [
        Row("progress (public view)", public_bits(run_s),
            f"whole percent, non-decreasing, one value per {PUBLISH_S} s tick"),
        Row("failed-run excerpt", bits_bound(EXCERPT_INFO_BYTES),
            f"{EXCERPT_INFO_BYTES} bytes of DEFLATE with the fixed dictionary"),
        Row("detail line (file names, metrics.json, self-check)",
            bits_bound(DETAIL_INFO_BYTES), f"{DETAIL_INFO_BYTES} bytes of the same measure"),
        Row("exit code", 8.0, "0-255"),
        Row("failure reason and stage", math.log2(len(JOB_FAULTS) + 1) + 1,
            f"{len(JOB_FAULTS)} job-fault reasons or inconsistent; train or self-check"),
        Row("bytes printed (log_bytes)", math.log2(log_limit + 1), f"0 to {log_limit}"),
        Row("timings (seconds, the record's appearance)", math.log2(run_s * 1000 + 1),
            "the run's end, to the millisecond"),
        Row("measured loss of an unclaimed attempt", 64.0,
            "a float; only when no claim can be made (window closed, better claims)"),
        Row("resumed_from of a given-back run", 53.0,
            "a checkpoint step; only after a worker fault the job cannot cause"),
    ]


def totals(rows: list[Row], run_s: int = 3600, max_attempts: int = 3,
           max_given_back: int = 3) -> dict[str, float]:
    """Per run (the loss and resumed_from rows are not both possible with a failed run:
    a run ends once), per job per worker (``max_runs`` runs), and bits per second over
    a run of ``run_s``."""
    by = {row.channel: row.per_run for row in rows}
    failed = sum(v for k, v in by.items()
                 if not k.startswith(("measured loss", "resumed_from")))
    measured = (by["progress (public view)"] + by["measured loss of an unclaimed attempt"]
                + by["detail line (file names, metrics.json, self-check)"]
                + by["timings (seconds, the record's appearance)"] + 1)
    per_run = max(failed, measured)
    runs = max_attempts + max_given_back
    per_job = per_run * runs + by["resumed_from of a given-back run"] * max_given_back
    return {"per_run_bits": per_run, "per_job_worker_bits": per_job,
            "bits_per_s": per_run / run_s,
            "progress_bits_per_s_peak": public_bits(PUBLISH_S) / PUBLISH_S}


def random_payload(size: int = 1024, seed: int = 47) -> bytes:
    """The model the job wants out: ``size`` random bytes (incompressible)."""
    return random.Random(seed).randbytes(size)

