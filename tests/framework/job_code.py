"""A job folder's own Python files (``lcdata.py``, ``lcjob.py``, ``evaluate``), imported on
the host: our template's code, not untrusted bytes, so tests can score the same rows or
call the same functions a container runs."""

from __future__ import annotations

import importlib.util
import sys
from importlib.machinery import SourceFileLoader
from pathlib import Path
from types import ModuleType

import pytest


def import_job_file(path: Path, name: str,
                    monkeypatch: pytest.MonkeyPatch | None = None) -> ModuleType:
    """``path`` (any file name, ``evaluate`` included) as module ``name``. Its folder's
    ``lcdata.py`` is imported first as ``lcdata``, the name ``lcjob`` and ``evaluate`` import
    it by, replacing any other folder's. With ``monkeypatch`` both names are unregistered
    after the test; without, they stay registered."""
    lcdata = path.parent / "lcdata.py"
    if path != lcdata and lcdata.is_file():
        import_job_file(lcdata, "lcdata", monkeypatch)
    loader = SourceFileLoader(name, str(path))
    spec = importlib.util.spec_from_loader(name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    if monkeypatch is not None:
        monkeypatch.setitem(sys.modules, name, module)
    else:
        sys.modules[name] = module
    loader.exec_module(module)
    return module
