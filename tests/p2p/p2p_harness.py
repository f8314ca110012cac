"""Helpers for p2p tests: in-process nodes on 127.0.0.1 and node processes."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

from chain.crypto import PrivateKey
from p2p.config import GossipParams, P2PConfig
from p2p.node import Node

CHAIN_ID = "lc-test"
REPO = Path(__file__).resolve().parents[2]


def config(**overrides: Any) -> P2PConfig:
    base = P2PConfig(chain_id=CHAIN_ID, gossip=GossipParams())
    return replace(base, **overrides)


def key(name: str) -> PrivateKey:
    return PrivateKey.from_seed(name.encode())


async def start_node(stack: AsyncExitStack, name: str, **overrides: Any) -> Node:
    node = Node(key(name), config(**overrides))
    await stack.enter_async_context(node)
    return node


async def wait_until(
    predicate: Callable[[], bool], timeout: float = 20.0, step: float = 0.02
) -> None:
    """Polls ``predicate`` until true; fails the test after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(step)


class ProcNode:
    """A ``python -m tests.framework.p2p_node`` process and the JSON events it printed."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str) -> None:
        self.proc = proc
        self.name = name
        self.events: list[dict[str, Any]] = []
        self.port = 0
        self.address = ""
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def spawn(cls, name: str, *args: str) -> ProcNode:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.framework.p2p_node",
            "--seed",
            name,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        node = cls(proc, name)
        node._reader = asyncio.create_task(node._read())
        ready = await node.wait_event(lambda e: e["event"] == "ready", timeout=30)
        node.port, node.address = ready["port"], ready["address"]
        return node

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.events.append(json.loads(line))

    def find(self, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
        return next((e for e in self.events if match(e)), None)

    async def wait_event(
        self, match: Callable[[dict[str, Any]], bool], timeout: float = 30
    ) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while (found := self.find(match)) is None:
                if self.proc.returncode is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}")
                await asyncio.sleep(0.02)
        return found

    def height(self) -> int:
        heights = [e["height"] for e in self.events if "height" in e]
        return max(heights, default=0)

    async def send(self, **cmd: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        await self.proc.stdin.drain()

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()

    async def stop(self, timeout: float = 10) -> int:
        """Asks the node to stop cleanly; kills it if it does not."""
        if self.proc.returncode is None:
            try:
                await self.send(cmd="stop")
                async with asyncio.timeout(timeout):
                    await self.proc.wait()
            except (TimeoutError, ConnectionError):
                self.proc.kill()
                await self.proc.wait()
        if self._reader is not None:
            await self._reader
        return self.proc.returncode or 0


def monotonic() -> float:
    return time.monotonic()
