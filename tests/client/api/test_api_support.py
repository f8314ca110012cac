"""Shared helpers of the API and CLI tests (this module holds no tests).

* ``running_api``: a real ``SoloNode`` and ``ApiServer`` on 127.0.0.1 in the
  test's event loop (blocks are committed by hand, so tests are exact);
* ``ApiThread``: the same in a background thread with its own loop and
  timed blocks, for driving the synchronous CLI with ``CliRunner``;
* ``check_schema``: a small JSON Schema checker for the subset
  ``client.api.openapi`` uses, so responses are checked against the document.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from chain.crypto import PrivateKey
from chain.genesis import Genesis
from chain.jobspec import JobSpec
from client.api.server import ApiServer
from tests.framework.solo import SoloNode
from tests.ledger.harness import job_spec, make_genesis

T = TypeVar("T")


@dataclass
class Api:
    node: SoloNode
    server: ApiServer
    genesis: Genesis
    keys: dict[str, PrivateKey]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/api/v1"


@contextlib.asynccontextmanager
async def running_api(tmp_path: Path, *, validators: int = 1, block_interval: float = 3600.0,
                      host: str = "127.0.0.1", **server_kw: Any) -> AsyncIterator[Api]:
    """A solo node whose blocks the test commits (``await api.node.commit_block()``); the
    server binds ``host`` (``0.0.0.0`` is still dialled on 127.0.0.1)."""
    genesis, keys = make_genesis(validators=validators)
    node = SoloNode(genesis, keys["v0"], tmp_path / "node", block_interval=block_interval)
    await node.start()
    server = ApiServer(node, host, 0, **server_kw)
    await server.start()
    try:
        yield Api(node, server, genesis, keys)
    finally:
        await server.stop()
        await node.stop()


def future_spec(now_ms: int, *, bounty: int = 100, expires_in_ms: int = 60_000,
                **kw: Any) -> JobSpec:
    return job_spec(bounty=bounty, expiry_ms=now_ms + expires_in_ms, **kw)


class ApiThread:
    """A solo node and its API in a background thread (own event loop, timed blocks)."""

    def __init__(self, tmp_path: Path, *, validators: int = 1, block_interval: float = 0.1,
                 host: str = "127.0.0.1", protocol_version: int = 1,
                 **server_kw: Any) -> None:
        self.genesis, self.keys = make_genesis(validators=validators,
                                               protocol_version=protocol_version)
        self._host = host
        self._server_kw = server_kw
        self._tmp = tmp_path
        self._interval = block_interval
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="api-thread")
        self.node: SoloNode | None = None
        self.server: ApiServer | None = None

    def __enter__(self) -> ApiThread:
        self._thread.start()
        self.call(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> None:
        self.node = SoloNode(self.genesis, self.keys["v0"], self._tmp / "node",
                             block_interval=self._interval)
        await self.node.start()
        self.server = ApiServer(self.node, self._host, 0, **self._server_kw)
        await self.server.start()

    async def _stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
        if self.node is not None:
            await self.node.stop()

    def call(self, coro: Awaitable[T], timeout: float = 30.0) -> T:
        async def run() -> T:
            return await coro

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    def in_loop(self, fn: Callable[[], T]) -> T:
        """Runs ``fn`` in the node's loop (the node is not thread-safe)."""

        async def run() -> T:
            return fn()

        return self.call(run())

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}"


# --- a JSON Schema checker for the subset client.api.openapi uses --------------------------

_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}
_KNOWN = {"type", "properties", "required", "additionalProperties", "items", "enum", "const",
          "oneOf", "$ref", "pattern", "minimum", "maximum", "description", "format", "default",
          "minLength", "maxLength", "minItems", "maxItems", "maxProperties"}


def check_schema(value: Any, schema: dict[str, Any], doc: dict[str, Any],
                 where: str = "$") -> None:
    """Raises AssertionError naming the first place ``value`` breaks ``schema``."""
    unknown = set(schema) - _KNOWN
    assert not unknown, f"{where}: schema uses unsupported keywords {unknown}"
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        check_schema(value, doc["components"]["schemas"][name], doc, where)
        return
    if "oneOf" in schema:
        errors = []
        matches = 0
        for option in schema["oneOf"]:
            try:
                check_schema(value, option, doc, where)
                matches += 1
            except AssertionError as e:
                errors.append(str(e))
        assert matches == 1, f"{where}: matches {matches} of oneOf: {errors}"
        return
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        assert any(_TYPES[t](value) for t in types), f"{where}: {value!r} is not {types}"
    if "const" in schema:
        assert value == schema["const"], f"{where}: {value!r} != {schema['const']!r}"
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
    if "pattern" in schema and isinstance(value, str):
        assert re.search(schema["pattern"], value), f"{where}: {value!r} !~ {schema['pattern']}"
    if "minimum" in schema and isinstance(value, int | float):
        assert value >= schema["minimum"], f"{where}: {value} < {schema['minimum']}"
    if "maximum" in schema and isinstance(value, int | float):
        assert value <= schema["maximum"], f"{where}: {value} > {schema['maximum']}"
    if isinstance(value, str):
        assert schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value)), \
            f"{where}: length {len(value)} outside the schema's bounds"
    if isinstance(value, list):
        assert schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value)), \
            f"{where}: {len(value)} items outside the schema's bounds"
    if isinstance(value, dict):
        assert len(value) <= schema.get("maxProperties", len(value)), f"{where}: too many keys"
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            assert key in value, f"{where}: missing {key!r}"
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                check_schema(item, props[key], doc, f"{where}.{key}")
            elif extra is False:
                raise AssertionError(f"{where}: undocumented field {key!r}")
            elif isinstance(extra, dict):
                check_schema(item, extra, doc, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            check_schema(item, schema["items"], doc, f"{where}[{i}]")


def response_schema(doc: dict[str, Any], method: str, route: str, status: int) -> dict[str, Any]:
    """The documented JSON schema of ``method route`` answering ``status``."""
    responses = doc["paths"][route][method.lower()]["responses"]
    assert str(status) in responses, f"{method} {route}: status {status} is not documented"
    return dict(responses[str(status)]["content"]["application/json"]["schema"])
