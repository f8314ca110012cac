"""The participant loop of ``federated join`` steps on quiet seconds, not only on blocks.

A graph at rest commits no block for minutes [CONS-PACE.1]; the participant fetches each
round's new global model between blocks, and when it stepped only on blocks the fetched
model waited for the commit window's closing block: every round after an accepted one was
void in ``make demo-federated`` (5 of 10, 2026-11-29). The graph itself is
``tests/federated/test_federated_graph.py`` (``make test-slow``), which asks that at most 2
rounds of 10 be void.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from client.federated.participant.node_loop import FederatedJoin


class _Listeners:
    """The node handle's two hooks ``FederatedJoin.start`` uses."""

    def __init__(self) -> None:
        self.blocks: list[Callable[..., None]] = []
        self.ticks: list[Callable[[], None]] = []

    def add_block_listener(self, listener: Callable[..., None]) -> None:
        self.blocks.append(listener)

    def add_tick_listener(self, listener: Callable[[], None]) -> None:
        self.ticks.append(listener)


class _Steps:
    def __init__(self) -> None:
        self.count = 0

    def step(self) -> str:
        self.count += 1
        return "model_missing" if self.count < 3 else "training"


def test_the_participant_steps_on_every_quiet_second() -> None:
    node, steps = _Listeners(), _Steps()
    join = object.__new__(FederatedJoin)  # the wiring alone: no engine, no trainer
    join.node, join.job_id, join.participant = node, b"\x01" * 32, steps  # type: ignore[assignment]
    join.last, join.finished = "", asyncio.Event()
    join.start()
    assert steps.count == 1 and join.last == "model_missing"
    assert len(node.blocks) == 1 and len(node.ticks) == 1
    node.ticks[0]()  # a second without a block: the fetched model is seen now
    node.ticks[0]()
    assert steps.count == 3 and join.last == "training"
