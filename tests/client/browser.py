"""One headless Chromium page for the dashboard's browser tests, with its JavaScript errors.

Every browser test launches Debian's Chromium through Playwright the same way (nothing is
downloaded) and fails on any page error or console error the dashboard raised on the way
(a Content Security Policy violation is a console error). Playwright is imported when a page
is opened, not here: a test module that skips without a browser says so by calling
``require_browser()`` (under ``CI`` it raises), and importing this module must not pre-empt
that choice.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = Path(os.environ.get("LC_CHROMIUM", "/usr/bin/chromium"))
UI_TIMEOUT_MS = 20_000


def require_browser() -> ModuleType:
    """``playwright.sync_api``, or skip the calling module when Playwright or the browser is
    missing; under ``CI`` (which installs both: dev extra, setup_system.sh) raise instead,
    never skip. Called at module level."""
    if os.environ.get("CI"):
        import playwright.sync_api as sync_api

        if not CHROMIUM.exists():
            raise RuntimeError(
                f"no browser at {CHROMIUM}: scripts/setup_system.sh installs chromium")
        return sync_api
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="pip install playwright (dev extra)")
    if not CHROMIUM.exists():
        pytest.skip(f"no browser at {CHROMIUM} (scripts/setup_system.sh installs chromium)",
                    allow_module_level=True)
    return sync_api


def browser_args() -> list[str]:
    # Chromium's sandbox needs user namespaces, which root (CI containers) does not get.
    return ["--no-sandbox"] if os.geteuid() == 0 else []


@contextlib.contextmanager
def headless_page(*, width: int = 1280, height: int = 900, timeout_ms: int = UI_TIMEOUT_MS,
                  console_errors: bool = True,
                  quiet_close: bool = False) -> Iterator[tuple[Page, list[str]]]:
    """A fresh page and the list its errors go to (``page error: ...``, and with
    ``console_errors`` ``console error: ...``); the caller asserts the list is empty after
    the block. The browser closes on the way out (``quiet_close``: a failing close is
    ignored)."""
    import playwright.sync_api as sync_api

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=browser_args())
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(timeout_ms)
            problems: list[str] = []
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            if console_errors:
                page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                        if m.type == "error" else None)
            yield page, problems
        finally:
            if quiet_close:
                with contextlib.suppress(Exception):
                    browser.close()
            else:
                browser.close()
