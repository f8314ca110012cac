"""The digits template's own job code (lcjob, federate), imported on the host.

Our code and our shipped data, not untrusted bytes: the experiments run the very
``local_update`` a participant's container runs, without a container, so they fit
in CI. The ``.tmpl`` files are plain Python; ``federate`` imports ``lcjob`` and ``lcjob``
imports ``lcdata`` by name, so those modules are registered under their own names first.
"""

from __future__ import annotations

import importlib.util
import sys
from importlib.machinery import SourceFileLoader
from pathlib import Path
from types import ModuleType

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "sandbox" / "templates" / "digits"


def _load(name: str, file: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    loader = SourceFileLoader(name, str(TEMPLATE_DIR / file))
    spec = importlib.util.spec_from_loader(name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module


def lcdata() -> ModuleType:
    return _load("lcdata", "lcdata.py.tmpl")


def lcjob() -> ModuleType:
    lcdata()
    return _load("lcjob", "lcjob.py.tmpl")


def federate() -> ModuleType:
    lcjob()
    return _load("lc_template_federate", "federate.py.tmpl")
