"""The one way tests wait for something: ``wait_until`` with a global timeout factor.

Why one helper: a slow machine (CI under load, a laptop on battery, a run
under ``coverage``) needs longer timeouts everywhere at once, and a timeout
must say *what* never happened, not just "timed out". As bitcoin's
``test_framework.util.wait_until_helper`` does, every bound is multiplied by
``LC_TIMEOUT_FACTOR`` (default 1), e.g. ``LC_TIMEOUT_FACTOR=3 pytest ...``.

``wait_until`` polls from plain code (threads, subprocess tests);
``wait_until_async`` polls from a coroutine without blocking the event loop.
Both share the deadline and the failure message.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

T = TypeVar("T")

TIMEOUT_FACTOR_ENV = "LC_TIMEOUT_FACTOR"
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_STEP_S = 0.05


def timeout_factor() -> float:
    """``LC_TIMEOUT_FACTOR``: above 1 lengthens every wait on a slow machine, below 1
    shortens them (to hunt flaky bounds); a value that is not a positive number fails
    loudly rather than silently meaning 1."""
    raw = os.environ.get(TIMEOUT_FACTOR_ENV, "1")
    try:
        factor = float(raw)
    except ValueError:
        raise ValueError(f"{TIMEOUT_FACTOR_ENV}={raw!r} is not a number") from None
    if factor <= 0:
        raise ValueError(f"{TIMEOUT_FACTOR_ENV}={raw!r} must be positive")
    return factor


def scaled(seconds: float) -> float:
    """A bound in seconds, times the timeout factor: for timeouts passed to other APIs."""
    return seconds * timeout_factor()


class WaitTimeout(AssertionError):
    """A ``wait_until`` that never saw its condition; an AssertionError so pytest shows it."""


def describe(predicate: Callable[..., object], what: str | None = None) -> str:
    """``what``, or the first line of the predicate's source: a failure says what it waited for."""
    if what:
        return what
    try:
        line = inspect.getsource(predicate).strip().splitlines()[0]
    except (OSError, TypeError):
        return getattr(predicate, "__qualname__", repr(predicate))
    return line[:160]


class _Deadline:
    def __init__(self, timeout: float, what: str,
                 detail: Callable[[], object] | None) -> None:
        self.bound = scaled(timeout)
        self.what = what
        self.detail = detail
        self.end = time.monotonic() + self.bound

    def check(self) -> None:
        if time.monotonic() <= self.end:
            return
        message = f"timed out after {self.bound:.1f} s waiting for {self.what}"
        factor = timeout_factor()
        if factor != 1:
            message += f" ({TIMEOUT_FACTOR_ENV}={factor:g})"
        if self.detail is not None:
            message += f"; {self.detail()}"
        raise WaitTimeout(message)


def wait_until(predicate: Callable[[], T | None], *, timeout: float = DEFAULT_TIMEOUT_S,
               what: str | None = None, step: float = DEFAULT_STEP_S,
               detail: Callable[[], object] | None = None) -> T:
    """Polls ``predicate`` until it returns something truthy, and returns that.

    ``timeout`` is scaled by ``LC_TIMEOUT_FACTOR``; ``what`` names the condition in
    the failure (default: the predicate's source line); ``detail`` is called only on
    failure to add the state that explains it (e.g. the workers' summaries).
    """
    deadline = _Deadline(timeout, describe(predicate, what), detail)
    while True:
        value = predicate()
        if value:
            return value
        deadline.check()
        time.sleep(step)


async def wait_until_async(predicate: Callable[[], T | Awaitable[T | None] | None], *,
                           timeout: float = DEFAULT_TIMEOUT_S, what: str | None = None,
                           step: float = DEFAULT_STEP_S,
                           detail: Callable[[], object] | None = None) -> T:
    """``wait_until`` for coroutines: sleeps with ``asyncio.sleep`` so the loop runs on.

    The predicate may be a coroutine function (e.g. one that scrapes ``/metrics``)."""
    deadline = _Deadline(timeout, describe(predicate, what), detail)
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return cast(T, value)
        deadline.check()
        await asyncio.sleep(step)
