"""The light-client walk [SNAP-WALK.1-2]: the validator set of any height, trusting only
the genesis.

From version 3 every block's root commits to the set of the next height
[STATE-ROOT.2]. A peer that stores the chain keeps, for every height x whose next set
differs from its own, a *walk entry*: the header and certificate of x, its root parts
and the new set's members. Walking the entries in height order from the genesis set,
each certificate is checked against the set the walk holds for its height, and each
new set against the root of the header it certifies: a set is believed only when the
validators of the set before it signed a header committing to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chain import fields as F
from chain.blocks import BlockHeader
from chain.consensus.certificate import decode_certificate, verify_certificate
from chain.consensus.errors import ConsensusError
from chain.consensus.validators import ValidatorSet
from chain.encoding import decode, encode
from chain.errors import ChainError
from chain.genesis import Genesis
from chain.types import Height, PublicKeyBytes

from .roots import RootParts, members_hash
from .snapshot import SnapshotInvalid

MAX_WALK_ENTRIES = 64
"""[WIRE-SNAP.4] Entries in one ``walk`` answer; a longer walk is asked for in pages."""
MAX_ENTRY_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class WalkEntry:
    """[SNAP-WALK.1] Height ``height`` committed a new set for ``height + 1``."""

    height: Height
    header: bytes
    certificate: bytes
    parts: RootParts
    members: tuple[tuple[PublicKeyBytes, int], ...]
    """The set of ``height + 1``: ``[pubkey, power]`` sorted by address [STATE-ROOT.2]."""

    def to_wire(self) -> list[Any]:
        return [self.height, self.header, self.certificate, self.parts.to_wire(),
                [list(m) for m in self.members]]

    def encode(self) -> bytes:
        return encode(self.to_wire())

    @classmethod
    def decode(cls, data: bytes) -> WalkEntry:
        a = F.array(decode(data, max_size=MAX_ENTRY_BYTES), "walk entry", 5)
        parts = RootParts.from_wire(a[3])
        members = []
        for i, m in enumerate(F.array(a[4], "members", max_len=1024)):
            pair = F.array(m, f"members[{i}]", 2)
            members.append((F.pubkey(pair[0], "pubkey"), F.uint(pair[1], "power", 1)))
        header = F.blob(a[1], "header", max_len=MAX_ENTRY_BYTES)
        certificate = F.blob(a[2], "certificate", max_len=MAX_ENTRY_BYTES)
        return cls(Height(F.uint(a[0], "height", 1)), header, certificate, parts,
                   tuple(members))


@dataclass
class TrustedSets:
    """The sets the walk has proved: ``(first height, set)`` in height order."""

    spans: list[tuple[int, ValidatorSet]]

    def at(self, height: int) -> ValidatorSet:
        chosen = self.spans[0][1]
        for first, vset in self.spans:
            if first <= height:
                chosen = vset
        return chosen

    @property
    def walked_to(self) -> int:
        """The last height whose entry was checked (0: only the genesis set)."""
        return self.spans[-1][0] - 1 if len(self.spans) > 1 else 0


def genesis_sets(genesis: Genesis) -> TrustedSets:
    return TrustedSets([(1, ValidatorSet.from_members(
        (v.pubkey, v.power) for v in genesis.validators))])


def check_certified(header_bytes: bytes, certificate: bytes, sets: TrustedSets,
                    chain_id: str) -> BlockHeader:
    """[SNAP-WALK.2] A header whose certificate carries more than 2/3 of the power of the
    set the walk holds for its height."""
    try:
        header = BlockHeader.from_wire(decode(header_bytes, max_size=MAX_ENTRY_BYTES))
        cert = decode_certificate(certificate)
    except (ChainError, ConsensusError) as e:
        raise SnapshotInvalid(f"a header or certificate does not decode: {e}") from e
    if header.chain_id != chain_id or cert.height != header.height or \
            cert.block_hash != header.hash:
        raise SnapshotInvalid(f"the certificate of height {cert.height} is not the header's "
                              f"(height {header.height})")
    try:
        verify_certificate(cert, sets.at(header.height), chain_id)
    except ConsensusError as e:
        raise SnapshotInvalid(f"header {header.height} is not certified by the set the walk "
                              f"holds for it: {e}") from e
    return header


def extend(sets: TrustedSets, entries: list[WalkEntry], chain_id: str) -> TrustedSets:
    """[SNAP-WALK.1] Checks ``entries`` (each above the last walked height, ascending) and
    returns the sets they prove; raises ``SnapshotInvalid`` at the first that is not."""
    spans = list(sets.spans)
    last = sets.walked_to
    for entry in entries:
        if entry.height <= last:
            raise SnapshotInvalid(f"walk entry {entry.height} is not above {last}")
        header = check_certified(entry.header, entry.certificate, TrustedSets(spans), chain_id)
        if header.height != entry.height or entry.parts.root(entry.height) != header.state_root:
            raise SnapshotInvalid(f"walk entry {entry.height}: its root parts do not hash to "
                                  "the certified header's root [STATE-ROOT.2]")
        members = [list(m) for m in entry.members]
        if members_hash(members) != entry.parts.next_set_hash or not members:
            raise SnapshotInvalid(f"walk entry {entry.height}: the members are not the set "
                                  "its root commits to")
        spans.append((entry.height + 1, ValidatorSet.from_members(entry.members)))
        last = entry.height
    return TrustedSets(spans)
