"""A pytest plugin for tests/framework/test_framework.py: after collection, one line per
test, ``GROUP <node id> <xdist group>``, in the order the run hands the tests out."""

from __future__ import annotations

import pytest


def pytest_collection_finish(session: pytest.Session) -> None:
    for item in session.items:
        groups = [m.args[0] for m in item.iter_markers("xdist_group")]
        print(f"GROUP {item.nodeid} {','.join(groups)}")
