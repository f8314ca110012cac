"""Where peers can be reached and when to try them again [WIRE-PEX.*]. Pure: time is passed in."""

from __future__ import annotations

import random
from dataclasses import dataclass

from chain.types import Address

Endpoint = tuple[str, int]


@dataclass(slots=True)
class _Entry:
    endpoint: Endpoint
    address: Address | None
    """None for bootstrap endpoints whose key we do not know yet."""
    failures: int = 0
    next_try: float = 0.0
    bootstrap: bool = False


class AddressBook:
    """Known endpoints with exponential backoff per endpoint [WIRE-PEX.3]."""

    def __init__(
        self,
        *,
        backoff_base: float,
        backoff_max: float,
        rng: random.Random,
        max_entries: int = 1024,
    ) -> None:
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.rng = rng
        self.max_entries = max_entries
        self.entries: dict[Endpoint, _Entry] = {}

    def add(
        self, endpoint: Endpoint, address: Address | None = None, *, bootstrap: bool = False
    ) -> None:
        entry = self.entries.get(endpoint)
        if entry is None:
            if len(self.entries) >= self.max_entries and not bootstrap:
                return
            self.entries[endpoint] = _Entry(endpoint, address, bootstrap=bootstrap)
        elif address is not None:
            entry.address = address

    def candidates(
        self, now: float, connected: set[Address], own: Address, banned: set[Address]
    ) -> list[Endpoint]:
        """Endpoints due for a dial, bootstrap first, then shuffled."""
        due = [
            e
            for e in self.entries.values()
            if e.next_try <= now
            and e.address != own
            and (e.address is None or (e.address not in connected and e.address not in banned))
        ]
        self.rng.shuffle(due)
        due.sort(key=lambda e: not e.bootstrap)
        return [e.endpoint for e in due]

    def dialing(self, endpoint: Endpoint, now: float) -> None:
        """Nobody dials the same endpoint twice at once: push its next try out while dialing."""
        entry = self.entries.get(endpoint)
        if entry is not None:
            entry.next_try = now + self.backoff_max

    def failed(self, endpoint: Endpoint, now: float) -> None:
        entry = self.entries.get(endpoint)
        if entry is None:
            return
        entry.failures += 1
        delay = min(self.backoff_max, self.backoff_base * 2 ** (entry.failures - 1))
        entry.next_try = now + delay * (0.5 + self.rng.random() / 2)

    def succeeded(self, endpoint: Endpoint, address: Address, now: float) -> None:
        entry = self.entries.get(endpoint)
        if entry is not None:
            entry.failures = 0
            entry.address = address
            entry.next_try = now + self.backoff_base

    def disconnected(self, endpoint: Endpoint, now: float) -> None:
        """[WIRE-PEX.3] A lost peer is redialled after the backoff, not at once."""
        self.failed(endpoint, now)
