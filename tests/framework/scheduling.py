"""How ``make test``'s xdist processes share the suite: ``--dist loadfile``, except that
the graph stories are one unit (``tests/conftest.py`` ``GRAPH_STORIES``).

A unit is handed whole to one process, units in collection order (pyproject's
``--no-loadscope-reorder``). Every module is a unit, as ``loadfile`` has it; the graph
stories (a module, or one case of a module) are a single unit, so one process runs them
one after another and two never stretch each other's claim windows.

Why a scheduler of our own, not ``--dist loadgroup`` and ``xdist_group`` marks: under
pytest 9.2 loadgroup silently stops grouping (pytest-xdist issue 1386: it appends the group
to ``item._nodeid``, which pytest's structured node ids no longer read), and CI run 8 of
2026-11-25 ran every test on its own, modules split across both processes.
"""

from __future__ import annotations

from collections.abc import Collection

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadScopeScheduling

GRAPH_GROUP = "graph-stories"


def unit_of(nodeid: str, stories: Collection[str]) -> str:
    """The unit of the test ``nodeid``: ``GRAPH_GROUP`` when it or its module is one of
    ``stories``, else its module's path."""
    module = nodeid.split("::", 1)[0]
    return GRAPH_GROUP if nodeid in stories or module in stories else module


class StoriesTogetherScheduling(LoadScopeScheduling):
    """``LoadScopeScheduling`` with ``unit_of`` as the scope of each test."""

    def __init__(self, config: pytest.Config, log: Producer | None,
                 stories: Collection[str]) -> None:
        super().__init__(config, log)
        self.stories = frozenset(stories)

    def _split_scope(self, nodeid: str) -> str:
        return unit_of(nodeid, self.stories)
