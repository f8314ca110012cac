"""Training progress in ``job watch``: a ``rich`` bar per worker on a terminal, plain lines
otherwise [API-PROGRESS.1].

The node answers the progress of its own worker's run (``GET /jobs/{id}/logs``,
``progress``); progress is not gossiped, so a watch against another node shows none.
On a terminal each worker (and attempt) gets a live bar with its step and metric; in a
pipe or a CI log, one plain line each time the step or fraction changes; with ``--json``
one ``progress`` event per change. Step and metric come only to the node's operator (a
request with its API token, ``$LC_API_TOKEN``); anyone else gets the public view: whole
percent, at most one change per 30 s [API-PROGRESS.2-3]. Every shown text comes from
fields the node checked ([JOB-PROGRESS.3]: numbers, a metric name of ``A-Z a-z 0-9 _ .
-``) and is made inert anyway [TERM-INERT.1].
"""

from __future__ import annotations

import json
import sys
from types import TracebackType
from typing import IO, Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn

from client.cli.inert import inert


def progress_event(p: dict[str, Any]) -> dict[str, Any]:
    return {"event": "progress", "worker": p.get("worker"), "attempt": p.get("attempt"),
            "fraction": p.get("fraction"), "step": p.get("step"), "metric": p.get("metric"),
            "metric_name": p.get("metric_name"), "resumed_from": p.get("resumed_from"),
            "view": p.get("view")}


def progress_detail(e: dict[str, Any]) -> str:
    """The step and metric; for a public view, which withholds them [API-PROGRESS.3], that
    they are the worker's operator's to see."""
    metric = e.get("metric")
    name = e.get("metric_name") or "metric"
    if e.get("view") == "public" and e.get("step") is None:
        return "step and metric shown to the worker's operator only"
    text = f"step {e.get('step')}"
    if isinstance(metric, int | float):
        text += f", {name} {metric:.4g}"
    if e.get("resumed_from") is not None:
        text += f" (resumed from step {e['resumed_from']})"
    return text


def progress_text(e: dict[str, Any]) -> str:
    fraction = e.get("fraction")
    pct = f"{100 * fraction:.0f}%" if isinstance(fraction, int | float) else "?"
    return (f"progress  {str(e.get('worker'))[:16]}… attempt {e.get('attempt')}: {pct}, "
            f"{progress_detail(e)}")


class RunProgress:
    """``with RunProgress(as_json) as view: view.show(answer.get("progress"))`` each poll."""

    def __init__(self, as_json: bool, *, stream: IO[str] | None = None,
                 terminal: bool | None = None) -> None:
        self.as_json = as_json
        self.console = Console(file=stream or sys.stdout, highlight=False,
                               force_terminal=terminal)
        self.live = not as_json and self.console.is_terminal
        self._bars: Progress | None = None
        self._tasks: dict[tuple[Any, Any], TaskID] = {}
        self._last: dict[tuple[Any, Any], tuple[Any, Any]] = {}

    def __enter__(self) -> RunProgress:
        if self.live:
            self._bars = Progress(TextColumn("{task.description}"), BarColumn(),
                                  TaskProgressColumn(), TextColumn("{task.fields[detail]}"),
                                  console=self.console, redirect_stdout=True)
            self._bars.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bars is not None:
            self._bars.stop()
            self._bars = None

    def show(self, progress: Any) -> None:
        """One answer's ``progress`` (None or a RunProgress object); shown when it changed."""
        if not isinstance(progress, dict):
            return
        event = progress_event(progress)
        key = (event["worker"], event["attempt"])
        now = (event["fraction"], event["step"])
        if self._last.get(key) == now:
            return
        self._last[key] = now
        if self._bars is not None:
            detail = inert(progress_detail(event))
            fraction = event["fraction"] if isinstance(event["fraction"], int | float) else 0
            if key not in self._tasks:
                label = inert(f"{str(event['worker'])[:16]}… attempt {event['attempt']}")
                self._tasks[key] = self._bars.add_task(label, total=1.0, detail=detail)
            self._bars.update(self._tasks[key], completed=fraction, detail=detail)
            return
        text = json.dumps(event) if self.as_json else inert(progress_text(event))
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)
