"""Logging setup for the node process: human lines by default, JSON lines on request.

[LOG-LINE.1] One record is one line, whatever it carries. A job's output, a
peer's strings, an error message quoting either: none of it can end the record
early and start what looks like a record of its own ("… verdict on OUR claim:
valid"), nor drive the terminal that tails the log. The human formatter makes
the whole formatted record inert (``client.cli.inert``: newlines, CR, ESC and
every other control, format and separator character become visible escapes,
tracebacks included, so a record never spans two lines); the JSON formatter
writes ASCII-only JSON, in which every such character is a ``\\uXXXX`` escape.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from client.cli.inert import inert

LEVELS = ("debug", "info", "warning", "error")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg (+ exc); ASCII only [LOG-LINE.1]."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return json.dumps(doc, ensure_ascii=True)


class InertFormatter(logging.Formatter):
    """The human line, with untrusted text unable to start a new line [LOG-LINE.1].

    The message, its arguments, the logger name and any traceback are all
    escaped by ``inert`` after formatting: the result never holds a newline.
    """

    def format(self, record: logging.LogRecord) -> str:
        return inert(super().format(record))


def human_formatter(name: str = "") -> logging.Formatter:
    """``<time> [<name>] LEVEL logger: message``, one record per line."""
    prefix = f"{name} ".replace("%", "%%") if name else ""
    formatter = InertFormatter(f"%(asctime)s {prefix}%(levelname)-7s %(name)s: %(message)s")
    formatter.converter = time.localtime
    return formatter


def setup_logging(level: str = "info", *, json_lines: bool = False, name: str = "") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else human_formatter(name))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # p2p connection churn is debug noise at info level
    logging.getLogger("p2p").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
