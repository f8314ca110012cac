"""Genesis from a file [GENESIS-*]: chain id, validators, members, balances, parameters.

The file is JSON (addresses in their checksummed text form, public keys in
hex). Credits exist from genesis only: the sum of the balances is the supply
that every later height must conserve.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chain.blocks import MAX_BLOCK_BODY_BYTES
from chain.crypto import address_from_pubkey, address_from_text, address_to_text
from chain.encoding import encode
from chain.errors import ChainError, InvalidGenesis
from chain.records import Account, Params, Validator
from chain.state import (
    META_BURNED,
    META_PROTOCOL_VERSION,
    META_SUPPLY,
    PARAMS_KEY,
    Change,
    State,
    compute_state_root,
)
from chain.types import (
    EMPTY_HASH,
    MAX_AMOUNT,
    Address,
    Amount,
    Hash32,
    Height,
    PublicKeyBytes,
    TimeMs,
)
from chain.versions import GENESIS_PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS

EVAL_RUNTIMES = ("runsc", "runc")
"""[GENESIS-RUNTIME.1] What a genesis may name as the graph's evaluation runtime."""
TIMING_NAMES = ("clock_precision_ms", "empty_block_interval_ms", "message_delay_ms")
"""[GENESIS-TIMING.1] The [CONS-TIME.2] bounds and the [CONS-PACE.3] empty-block interval
a genesis may set."""
TIMING_RANGE_MS = (0, 3_600_000)


@dataclass(frozen=True, slots=True)
class GenesisValidator:
    pubkey: PublicKeyBytes
    power: int
    name: str = ""

    @property
    def address(self) -> Address:
        return address_from_pubkey(self.pubkey)


@dataclass(frozen=True, slots=True)
class Genesis:
    chain_id: str
    genesis_time_ms: TimeMs
    validators: tuple[GenesisValidator, ...]
    members: tuple[Address, ...]
    balances: tuple[tuple[Address, Amount], ...]
    params: Params
    verifiers: tuple[Address, ...] = ()
    """Members that verify from height 0, each bonded with ``params.verifier_bond``
    credits created at genesis beside the balances [GENESIS-VERIFIERS.1]."""
    eval_runtime: str = ""
    """[GENESIS-RUNTIME.1] The sandbox runtime every member evaluates under (``runsc`` or
    ``runc``), so the runtime never changes a verdict [JOB-RUNTIME.13]; "" when the
    document names none (a graph made before issue 47: each node its own)."""
    consensus_timing: tuple[tuple[str, int], ...] = ()
    """[GENESIS-TIMING.1] The [CONS-TIME.2] bounds the document names (``clock_precision_ms``,
    ``message_delay_ms``), sorted by name; a bound it does not name is the default."""
    protocol_version: int = GENESIS_PROTOCOL_VERSION
    """[GENESIS-VERSION.1] The protocol version of block 1 on (1 unless the document names
    a newer one this software knows): a new graph starts with every rule, e.g. the
    content-committing roots of state sync [STATE-ROOT.2]."""

    def node_rules(self) -> dict[str, Any]:
        """[GENESIS-RULES.1] The rules for nodes (not the state machine) the document names:
        hashed as one map after the verifiers, absent when it names none."""
        return {**({"eval_runtime": self.eval_runtime} if self.eval_runtime else {}),
                **({"consensus_timing": dict(self.consensus_timing)}
                   if self.consensus_timing else {})}

    def timing(self, name: str, default: int) -> int:
        """[GENESIS-TIMING.1] The bound ``name`` of [CONS-TIME.2], or ``default``."""
        return dict(self.consensus_timing).get(name, default)

    def hashed_form(self) -> list[Any]:
        """[GENESIS-HASH.1] What the genesis hash covers: validators in document order,
        members (validators included) and balances sorted by raw address, every parameter,
        then the verifiers sorted by raw address, then the node rules when the document
        names any [GENESIS-RULES.1]."""
        form = ["learningchain/v1", "genesis", self.chain_id, self.genesis_time_ms,
                [[v.pubkey, v.power, v.name] for v in self.validators], list(self.members),
                [[a, b] for a, b in self.balances], self.params.to_wire(),
                list(self.verifiers)]
        rules = self.node_rules()
        if self.protocol_version != GENESIS_PROTOCOL_VERSION:  # [GENESIS-VERSION.1]
            return [*form, rules, self.protocol_version]
        return [*form, rules] if rules else form

    @property
    def hash(self) -> Hash32:
        """The id of genesis; block 1's ``prev_hash``."""
        return Hash32(hashlib.sha256(encode(self.hashed_form())).digest())

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "genesis_time_ms": self.genesis_time_ms,
            "validators": [{"pubkey": v.pubkey.hex(), "power": v.power, "name": v.name}
                           for v in self.validators],
            "members": [address_to_text(m) for m in self.members],
            "balances": {address_to_text(a): b for a, b in self.balances},
            "params": dataclasses.asdict(self.params),
            "verifiers": [address_to_text(v) for v in self.verifiers],
            **self.node_rules(),
            **({"protocol_version": self.protocol_version}
               if self.protocol_version != GENESIS_PROTOCOL_VERSION else {}),
        }

    @classmethod
    def from_json(cls, doc: Any) -> Genesis:
        try:
            return _parse(doc)
        except InvalidGenesis:
            raise
        except (ChainError, KeyError, TypeError, ValueError) as e:
            raise InvalidGenesis(f"invalid genesis: {e}") from e

    @classmethod
    def load(cls, path: Path) -> Genesis:
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError as e:
            raise InvalidGenesis(f"no genesis file at {path}") from e
        except (OSError, ValueError) as e:
            raise InvalidGenesis(f"cannot read genesis file {path}: {e}") from e
        return cls.from_json(doc)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")


def _parse(doc: Any) -> Genesis:
    if not isinstance(doc, dict):
        raise InvalidGenesis("genesis must be a JSON object")
    chain_id = doc["chain_id"]
    if not isinstance(chain_id, str) or not 1 <= len(chain_id) <= 64:
        raise InvalidGenesis("chain_id must be a string of 1..64 characters")
    time_ms = doc["genesis_time_ms"]
    if not isinstance(time_ms, int) or time_ms < 0:
        raise InvalidGenesis("genesis_time_ms must be a non-negative integer")
    validators = []
    for v in doc["validators"]:
        pubkey = PublicKeyBytes(bytes.fromhex(v["pubkey"]))
        address_from_pubkey(pubkey)
        power = v.get("power", 1)
        if not isinstance(power, int) or not 1 <= power <= 1000:
            raise InvalidGenesis("validator power must be an integer in 1..1000")
        validators.append(GenesisValidator(pubkey, power, str(v.get("name", ""))))
    if not validators:
        raise InvalidGenesis("genesis needs at least one validator")
    if len({v.address for v in validators}) != len(validators):
        raise InvalidGenesis("duplicate validator")
    members = sorted({address_from_text(m) for m in doc.get("members", [])}
                     | {v.address for v in validators})
    balances = []
    for text, amount in sorted(doc.get("balances", {}).items()):
        if not isinstance(amount, int) or not 0 <= amount <= MAX_AMOUNT:
            raise InvalidGenesis(f"balance of {text} must be an integer in 0..2**63-1")
        balances.append((address_from_text(text), Amount(amount)))
    if sum(b for _, b in balances) > MAX_AMOUNT:
        raise InvalidGenesis("total supply exceeds 2**63-1")
    known = {f.name for f in dataclasses.fields(Params)}
    overrides = doc.get("params", {})
    unknown = set(overrides) - known
    if unknown:
        raise InvalidGenesis(f"unknown params: {sorted(unknown)}")
    params = Params(**overrides)
    if not isinstance(params.max_block_bytes, int) or \
            not 1 <= params.max_block_bytes <= MAX_BLOCK_BODY_BYTES:
        raise InvalidGenesis(f"params.max_block_bytes must be an integer in "
                             f"1..{MAX_BLOCK_BODY_BYTES} (what one consensus proposal "
                             f"carries), got {params.max_block_bytes!r}")
    bond = params.verifier_bond
    if not isinstance(bond, int) or isinstance(bond, bool) or not 0 <= bond <= MAX_AMOUNT:
        raise InvalidGenesis(f"params.verifier_bond must be an integer in 0..2**63-1, "
                             f"got {bond!r}")
    verifiers = _parse_verifiers(doc.get("verifiers", []), members)
    supply = sum(b for _, b in balances) + len(verifiers) * params.verifier_bond
    if supply > MAX_AMOUNT:
        raise InvalidGenesis("total supply (balances and verifier bonds) exceeds 2**63-1")
    eval_runtime = doc.get("eval_runtime", "")
    if eval_runtime != "" and eval_runtime not in EVAL_RUNTIMES:
        raise InvalidGenesis(f"eval_runtime must be one of {', '.join(EVAL_RUNTIMES)} "
                             f"[GENESIS-RUNTIME.1], got {eval_runtime!r}")
    version = doc.get("protocol_version", GENESIS_PROTOCOL_VERSION)
    if isinstance(version, bool) or version not in SUPPORTED_PROTOCOL_VERSIONS:
        raise InvalidGenesis(f"protocol_version must be a version this software knows "
                             f"({', '.join(map(str, SUPPORTED_PROTOCOL_VERSIONS))}) "
                             f"[GENESIS-VERSION.1], got {version!r}")
    return Genesis(chain_id, TimeMs(time_ms), tuple(validators), tuple(members),
                   tuple(sorted(balances)), params, verifiers, eval_runtime,
                   _parse_timing(doc.get("consensus_timing", {})), version)


def _parse_timing(doc: Any) -> tuple[tuple[str, int], ...]:
    """[GENESIS-TIMING.1] Known bounds only, each an integer in ``TIMING_RANGE_MS``."""
    if not isinstance(doc, dict):
        raise InvalidGenesis("consensus_timing must be an object [GENESIS-TIMING.1]")
    unknown = sorted(set(doc) - set(TIMING_NAMES))
    if unknown:
        raise InvalidGenesis(f"unknown consensus_timing bounds: {unknown} (known: "
                             f"{', '.join(TIMING_NAMES)}) [GENESIS-TIMING.1]")
    low, high = TIMING_RANGE_MS
    for name, value in doc.items():
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InvalidGenesis(f"consensus_timing.{name} must be an integer in {low}..{high} "
                                 f"ms [GENESIS-TIMING.1], got {value!r}")
    return tuple(sorted(doc.items()))


def _parse_verifiers(texts: Any, members: list[Address]) -> tuple[Address, ...]:
    """[GENESIS-VERIFIERS.1] Distinct members, sorted by raw address."""
    if not isinstance(texts, list):
        raise InvalidGenesis("verifiers must be a list of member addresses")
    verifiers = [address_from_text(t) for t in texts]
    if len(set(verifiers)) != len(verifiers):
        raise InvalidGenesis("duplicate verifier")
    for address in verifiers:
        if address not in members:
            raise InvalidGenesis(f"verifier {address_to_text(address)} is not a member")
    return tuple(sorted(verifiers))


def genesis_records(genesis: Genesis) -> list[Change]:
    """[GENESIS-STATE.1] The records of height 0, sorted by (table, key); root(0) hashes them."""
    return genesis_state(genesis).records()


def genesis_state(genesis: Genesis) -> State:
    """[GENESIS-STATE.1] The state at height 0, its root over every record.

    Validators, members (validators included), accounts with a non-zero balance
    (a zero balance creates no record), verifiers with their bonds, the parameters,
    and meta supply (balances + bonds) and burned.
    """
    state = State(chain_id=genesis.chain_id)
    t = state.tables
    for v in genesis.validators:
        t["validator"][v.address] = Validator(v.pubkey, v.power)
    for m in genesis.members:
        t["member"][m] = True
    for address, amount in genesis.balances:
        if amount:
            t["account"][address] = Account(balance=amount)
    for address in genesis.verifiers:
        t["verifier"][address] = genesis.params.verifier_bond
    t["params"][PARAMS_KEY] = genesis.params
    t["meta"][META_SUPPLY] = (sum(b for _, b in genesis.balances)
                              + len(genesis.verifiers) * genesis.params.verifier_bond)
    t["meta"][META_BURNED] = 0
    if genesis.protocol_version != GENESIS_PROTOCOL_VERSION:  # [GENESIS-VERSION.1]
        t["meta"][META_PROTOCOL_VERSION] = genesis.protocol_version
    state.state_root = compute_state_root(EMPTY_HASH, 0, state.records())
    state.height = Height(0)
    state.block_hash = genesis.hash
    state.time_ms = genesis.genesis_time_ms
    return state
