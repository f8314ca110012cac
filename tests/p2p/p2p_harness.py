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
from tests.framework import seed as seeds
from tests.framework.wait import describe, wait_until_async

CHAIN_ID = "lc-test"
REPO = Path(__file__).resolve().parents[2]


def config(**overrides: Any) -> P2PConfig:
    base = P2PConfig(chain_id=CHAIN_ID, gossip=GossipParams())
    return replace(base, **overrides)


def key(name: str) -> PrivateKey:
    return PrivateKey.from_seed(name.encode())


async def start_node(stack: AsyncExitStack, name: str, **overrides: Any) -> Node:
    """An in-process node whose random choices (gossip peers, backoff) follow the test seed."""
    node = Node(key(name), config(**overrides), rng=seeds.rng(f"node:{name}"))
    await stack.enter_async_context(node)
    return node


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
            "--rng-seed",
            str(seeds.rng(f"process:{name}").getrandbits(32)),
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
        def found() -> dict[str, Any] | None:
            if self.proc.returncode is not None and self.find(match) is None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}")
            return self.find(match)

        return await wait_until_async(found, timeout=timeout, step=0.02,
                                      what=f"an event of {self.name}: {describe(match)}")

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
