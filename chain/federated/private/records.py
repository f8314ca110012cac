"""Private mode's ``fed_priv`` table [FED-PRIV.10]: the running private round's published
keys, share blob ids and unmask blob ids. Apart from its handlers so that ``chain.state``
lists the table without an import cycle."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chain.types import Address, Hash32


@dataclass(frozen=True, slots=True)
class FedPrivate:
    """[FED-PRIV.10] ``fed_priv`` (key: job id): the running private round's published keys
    (K), share blobs (the mask set M) and unmask blobs, each ascending by address. A record
    of an earlier round counts as empty."""

    round: int
    keys: tuple[tuple[Address, bytes, bytes], ...] = ()
    """(participant, mask key, encryption key) [FED-PRIV.6]."""
    shares: tuple[tuple[Address, Hash32, int], ...] = ()
    """(participant, share blob id, size) [FED-PRIV.7]."""
    unmasks: tuple[tuple[Address, Hash32, int], ...] = ()
    """(survivor, unmask blob id, size) [FED-PRIV.8]."""

    def to_wire(self) -> list[Any]:
        return [self.round, [list(k) for k in self.keys], [list(s) for s in self.shares],
                [list(u) for u in self.unmasks]]

    @classmethod
    def from_wire(cls, a: list[Any]) -> FedPrivate:
        return cls(a[0], tuple((Address(p), bytes(m), bytes(e)) for p, m, e in a[1]),
                   tuple((Address(p), Hash32(b), s) for p, b, s in a[2]),
                   tuple((Address(p), Hash32(b), s) for p, b, s in a[3]))

    def keyed(self) -> tuple[Address, ...]:
        return tuple(k[0] for k in self.keys)

    def mask_set(self) -> tuple[Address, ...]:
        return tuple(s[0] for s in self.shares)
