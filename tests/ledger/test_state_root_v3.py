"""[STATE-ROOT.2] [STATE-CONTENT.1] [STATE-CONTENT.2] [GENESIS-VERSION.1] Version 3's roots.

Checked against an implementation written here from the spec's words (SHAKE-128 leaves
summed per lane modulo 2^16 with plain Python ints, no numpy, no ContentTracker): the
root of every block, the content digest at each digest height recomputed from a full
scan, the next set's hash, and the flag a validator-set change raises.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from chain.crypto import PrivateKey
from chain.encoding import encode
from chain.genesis import Genesis, InvalidGenesis, genesis_state
from chain.governance.bodies import GovernanceAction, GovernancePropose
from chain.state import State
from chain.statesync.roots import DIGEST_INTERVAL
from chain.transactions import Transfer
from chain.transition import BlockOutput, build_block
from chain.types import Amount, TimeMs
from tests.ledger.harness import Chain, make_genesis


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def spec_content_digest(state: State) -> bytes:
    """[STATE-CONTENT.1] from its text: every record's leaf, summed lane by lane."""
    lanes = [0] * 1024
    for change in state.records():
        leaf = hashlib.shake_128(encode(["learningchain/v1", "state-leaf", change.table,
                                         change.key, change.value])).digest(2048)
        for i in range(1024):
            lanes[i] = (lanes[i] + int.from_bytes(leaf[2 * i:2 * i + 2], "little")) % 65536
    raw = b"".join(v.to_bytes(2, "little") for v in lanes)
    return _sha(encode(["learningchain/v1", "state-content", raw]))


def spec_set_hash(state: State) -> bytes:
    members = [[v.pubkey, v.power] for _, v in sorted(state.validators().items())]
    return _sha(encode(["learningchain/v1", "validator-set", members]))


def spec_root(prev: bytes, height: int, output: BlockOutput, set_hash: bytes,
              digest: bytes) -> bytes:
    changes = _sha(encode([c.to_wire() for c in output.changes]))
    return _sha(encode(["learningchain/v1", "state-root/3", prev, height, changes, set_hash,
                        digest]))


def _step(chain: Chain, *txs: Any) -> tuple[BlockOutput, bytes]:
    prev = chain.state.state_root
    block, output, dropped = build_block(chain.state, txs, TimeMs(chain.now + 1_000),
                                         chain.addr("v0"), chain.cache)
    assert not dropped
    chain.block(*txs)
    assert block.hash == chain.blocks[-1].hash
    return output, prev


def test_state_root_2_every_block_and_the_digest_heights_follow_the_spec() -> None:
    chain = Chain(protocol_version=3)
    assert chain.state.protocol_version == 3
    seen_digest = 0
    for i in range(1, 2 * DIGEST_INTERVAL + 1):
        txs = [chain.tx("alice", Transfer(chain.addr("bob"), Amount(1)))] if i % 7 == 0 else []
        output, prev = _step(chain, *txs)
        assert chain.blocks[-1].header.version == 3
        h = chain.state.height
        digest = spec_content_digest(chain.state) if h % DIGEST_INTERVAL == 0 else bytes(32)
        assert output.parts is not None and output.parts.content_digest == digest
        seen_digest += h % DIGEST_INTERVAL == 0
        assert chain.state.state_root == spec_root(prev, h, output, spec_set_hash(chain.state),
                                                   digest)
        assert not output.set_changed
    assert seen_digest == 2


def test_state_content_2_a_tracker_built_midway_agrees_with_one_kept_all_along() -> None:
    """The tracker is derived data: a node that starts (scans) at any height computes the
    same digest as one that noted every merge since genesis."""
    chain = Chain(protocol_version=3)
    for _ in range(DIGEST_INTERVAL - 3):
        chain.block(chain.tx("alice", Transfer(chain.addr("carol"), Amount(1))))
    chain.state.content = None  # as after a restart
    for _ in range(3):
        output, _ = _step(chain, chain.tx("carol", Transfer(chain.addr("bob"), Amount(1))))
    assert output.parts is not None
    assert output.parts.content_digest == spec_content_digest(chain.state)


def test_state_root_2_a_validator_set_change_is_flagged_where_it_takes_effect() -> None:
    chain = Chain(validators=1, protocol_version=3)
    newcomer = PrivateKey.from_seed(b"new validator")
    chain.block(chain.tx("v0", GovernancePropose(
        GovernanceAction("add_validator", newcomer.public_key, 1))))
    flagged = []
    for _ in range(6):
        before = spec_set_hash(chain.state)
        output, _ = _step(chain)
        flagged.append(output.set_changed)
        assert output.set_changed == (spec_set_hash(chain.state) != before)
    assert flagged.count(True) == 1


def test_genesis_version_1_names_a_known_version_and_only_a_new_one_is_hashed() -> None:
    """[GENESIS-VERSION.1] Absent or 1: the document and its hash are as before; 3: hashed
    after the node-rules map, recorded as meta protocol_version; unknown: refused."""
    plain, _ = make_genesis()
    three, _ = make_genesis(protocol_version=3)
    assert "protocol_version" not in plain.to_json()
    assert three.hashed_form()[-1] == 3 and three.hashed_form()[:-2] == plain.hashed_form()
    assert Genesis.from_json(three.to_json()) == three
    assert genesis_state(three).protocol_version == 3
    assert genesis_state(plain).protocol_version == 1
    doc = plain.to_json()
    for bad in (0, 99, True, "3"):
        with pytest.raises(InvalidGenesis, match=r"GENESIS-VERSION.1"):
            Genesis.from_json({**doc, "protocol_version": bad})
