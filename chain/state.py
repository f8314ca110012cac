"""The ledger state as named tables of records, a block-scoped overlay, and the state root.

``State`` is the committed state. A block is executed against an ``Overlay``
that records every write and can roll back to a savepoint, so an invalid
block (or a transaction the proposer drops) leaves the committed state
untouched. The changes a block made, sorted, are what storage writes and
what the state root hashes [STATE-ROOT.1]:

    state_root(h) = SHA-256(encode(["learningchain/v1", "state-root",
                                    state_root(h-1), h, sorted changes]))

so the root commits to the whole state history, costs O(changes) per block,
and two nodes that diverge disagree at the very next block.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from chain.encoding import decode, encode
from chain.federated.open.records import FedJob, FedRound
from chain.federated.private.records import FedPrivate
from chain.governance.bodies import UpgradePlan
from chain.governance.records import Proposal
from chain.predict.records import DeployedModel, Prediction
from chain.records import Account, Job, Params, Validator, ValidatorChange
from chain.train.holdout.records import HoldoutState
from chain.types import EMPTY_HASH, Address, Amount, Hash32, Height, TimeMs
from chain.versions import GENESIS_PROTOCOL_VERSION


def _codec(cls: Any) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    return (lambda v: v.to_wire(), cls.from_wire)


def _plain() -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    return (lambda v: v, lambda v: v)


TABLE_CODECS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    "account": _codec(Account),
    "member": _plain(),
    "verifier": _plain(),
    "validator": _codec(Validator),
    "job": _codec(Job),
    "active_job": _plain(),
    "proposal": _codec(Proposal),
    "valset_change": (
        lambda v: [c.to_wire() for c in v],
        lambda v: [ValidatorChange.from_wire(c) for c in v],
    ),
    "params": _codec(Params),
    "meta": _plain(),
    "evidence": _plain(),
    "holdout": _codec(HoldoutState),
    "model": _codec(DeployedModel),
    "predictor": _plain(),
    "prediction": _codec(Prediction),
    "active_prediction": _plain(),
    "fed_job": _codec(FedJob),
    "fed_round": _codec(FedRound),
    "fed_priv": _codec(FedPrivate),
    "active_fed": _plain(),
    "upgrade_plan": _codec(UpgradePlan),
}
"""Every table of the state, with how its records become canonical values and back."""

META_BURNED = b"burned"
META_SUPPLY = b"supply"
META_PROTOCOL_VERSION = b"protocol_version"
"""[UPGRADE-PLAN.4] The version in force; absent until the first upgrade (then genesis's 1)."""
PARAMS_KEY = b""
UPGRADE_PLAN_KEY = b""


def encode_record(table: str, value: Any) -> bytes:
    return encode(TABLE_CODECS[table][0](value))


def decode_record(table: str, data: bytes) -> Any:
    return TABLE_CODECS[table][1](decode(data))


def height_key(height: int) -> bytes:
    return height.to_bytes(8, "big")


@dataclass(frozen=True, slots=True)
class Change:
    """One state write of a block: the new encoded record, or None for a deletion."""

    table: str
    key: bytes
    value: bytes | None

    def to_wire(self) -> list[Any]:
        return [self.table, self.key, self.value]


def compute_state_root(prev_root: bytes, height: int, changes: list[Change]) -> Hash32:
    payload = encode(["learningchain/v1", "state-root", prev_root, height,
                      [c.to_wire() for c in changes]])
    return Hash32(hashlib.sha256(payload).digest())


class StateReader:
    """Read accessors shared by the committed state and a block's overlay."""

    def get(self, table: str, key: bytes) -> Any:
        raise NotImplementedError

    def keys(self, table: str) -> list[bytes]:
        raise NotImplementedError

    def account(self, address: Address) -> Account:
        return self.get("account", address) or Account()

    def holdout(self, job_id: bytes) -> HoldoutState | None:
        """[HOLDOUT-STATE.1] A train/v3 job's hidden-test-set record."""
        value: HoldoutState | None = self.get("holdout", job_id)
        return value

    def job(self, job_id: bytes) -> Job | None:
        return self.get("job", job_id)  # type: ignore[no-any-return,unused-ignore]

    def is_member(self, address: Address) -> bool:
        return self.get("member", address) is not None

    def verifier_bond(self, address: Address) -> Amount | None:
        """The bond of a member that opted in to verify [VERIFY-JOIN.1]; None otherwise."""
        bond = self.get("verifier", address)
        return None if bond is None else Amount(bond)

    def validators(self) -> dict[Address, Validator]:
        return {Address(k): self.get("validator", k) for k in sorted(self.keys("validator"))}

    def proposal(self, proposal_id: bytes) -> Proposal | None:
        return self.get("proposal", proposal_id)  # type: ignore[no-any-return,unused-ignore]

    @property
    def params(self) -> Params:
        return self.get("params", PARAMS_KEY) or Params()

    @property
    def protocol_version(self) -> int:
        """[BLOCK-VERSION.1] The protocol version whose rules this state's blocks run under."""
        return int(self.get("meta", META_PROTOCOL_VERSION) or GENESIS_PROTOCOL_VERSION)

    @property
    def upgrade_plan(self) -> UpgradePlan | None:
        """[UPGRADE-PLAN.3] The one plan that passed and has not taken effect, if any."""
        plan: UpgradePlan | None = self.get("upgrade_plan", UPGRADE_PLAN_KEY)
        return plan

    def version_at(self, height: int) -> int:
        """[BLOCK-VERSION.1] The version block ``height`` (above this state) carries: the
        pending plan's from its height on, else the version in force."""
        plan = self.upgrade_plan
        if plan is not None and height >= plan.height:
            return plan.version
        return self.protocol_version

    @property
    def burned(self) -> Amount:
        return Amount(self.get("meta", META_BURNED) or 0)

    @property
    def supply(self) -> Amount:
        return Amount(self.get("meta", META_SUPPLY) or 0)


@dataclass
class State(StateReader):
    """The committed state after block ``height``: what storage holds, in memory."""

    chain_id: str
    height: Height = Height(0)
    block_hash: Hash32 = EMPTY_HASH
    time_ms: TimeMs = TimeMs(0)
    state_root: Hash32 = EMPTY_HASH
    tables: dict[str, dict[bytes, Any]] = field(
        default_factory=lambda: {t: {} for t in TABLE_CODECS})
    content: Any = field(default=None, compare=False, repr=False)
    """[STATE-CONTENT.2] A ``chain.statesync.content.ContentTracker`` (the LtHash of the
    records), built on first need under version 3; None until then. Typed loosely because
    the tracker's module reads this one."""

    def get(self, table: str, key: bytes) -> Any:
        return self.tables[table].get(key)

    def keys(self, table: str) -> list[bytes]:
        return list(self.tables[table])

    def merge(self, overlay: Overlay) -> None:
        """Makes a block's writes part of the committed state (after storage committed)."""
        for (table, key), value in overlay.writes.items():
            if value is None:
                self.tables[table].pop(key, None)
            else:
                self.tables[table][key] = value

    def total_credits(self) -> int:
        """Balances + escrow + bonds + burned; equals the genesis supply at every height
        [BANK.1]. Escrow includes open prediction fees, bonds the executors' [PRED-STATE.1]."""
        balances = sum(a.balance for a in self.tables["account"].values())
        escrow = sum(j.escrow for j in self.tables["job"].values())
        escrow += sum(p.escrow for p in self.tables["prediction"].values())
        bonds = sum(self.tables["verifier"].values()) + sum(self.tables["predictor"].values())
        return balances + escrow + bonds + self.burned

    def records(self) -> list[Change]:
        """Every record as a change, sorted by (table, key): the genesis root hashes these."""
        return [Change(table, key, encode_record(table, self.tables[table][key]))
                for table in sorted(self.tables) for key in sorted(self.tables[table])]

    def digest(self) -> Hash32:
        """SHA-256 over every record, sorted: to compare two nodes' states directly."""
        h = hashlib.sha256()
        for table in sorted(self.tables):
            for key in sorted(self.tables[table]):
                h.update(encode([table, key, encode_record(table, self.tables[table][key])]))
        return Hash32(h.digest())


_MISSING = object()


class Overlay(StateReader):
    """A block's writes over the committed state, with savepoints for rollback."""

    def __init__(self, base: State) -> None:
        self.base = base
        self.writes: dict[tuple[str, bytes], Any] = {}
        self._journal: list[tuple[tuple[str, bytes], Any]] = []

    def get(self, table: str, key: bytes) -> Any:
        value = self.writes.get((table, key), _MISSING)
        if value is _MISSING:
            return self.base.tables[table].get(key)
        return value

    def keys(self, table: str) -> list[bytes]:
        present = set(self.base.tables[table])
        for (t, k), v in self.writes.items():
            if t == table:
                if v is None:
                    present.discard(k)
                else:
                    present.add(k)
        return sorted(present)

    def put(self, table: str, key: bytes, value: Any) -> None:
        k = (table, key)
        self._journal.append((k, self.writes.get(k, _MISSING)))
        self.writes[k] = value

    def delete(self, table: str, key: bytes) -> None:
        self.put(table, key, None)

    def savepoint(self) -> int:
        return len(self._journal)

    def rollback(self, savepoint: int) -> None:
        while len(self._journal) > savepoint:
            k, previous = self._journal.pop()
            if previous is _MISSING:
                del self.writes[k]
            else:
                self.writes[k] = previous

    def changes(self) -> list[Change]:
        """The net writes, sorted by (table, key), skipping deletes of absent keys."""
        out = []
        for (table, key) in sorted(self.writes):
            value = self.writes[(table, key)]
            if value is None:
                if key in self.base.tables[table]:
                    out.append(Change(table, key, None))
            else:
                out.append(Change(table, key, encode_record(table, value)))
        return out

    # Convenience writers used by the rules.
    def put_account(self, address: Address, account: Account) -> None:
        self.put("account", address, account)

    def put_job(self, job: Job) -> None:
        self.put("job", job.job_id, job)

    def add_burned(self, amount: int) -> None:
        self.put("meta", META_BURNED, self.burned + amount)

    def iter_active_jobs(self) -> Iterator[Job]:
        for key in self.keys("active_job"):
            job = self.job(key)
            if job is not None:
                yield job
