"""Upgrade vectors (protocol_spec/vectors/upgrade.json) and their independent check.

A chain of one validator on ``vector-chain``: block 1 passes a plan to version 2 at H = 12,
blocks 2..11 are version 1, block 12 is version 2 and carries a memo transfer. With it: the
plan and cancel transactions (signatures re-derived with the pure-Python ``ecdsa``), the
memo transfer refused at H-1, and blocks forged with the wrong version on either side of H.
A second implementation replays the blocks from the genesis and must reach every root,
accept or refuse as listed. Regenerate with ``LC_WRITE_VECTORS=1``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import ecdsa
from ecdsa.util import sigdecode_string

from chain.blocks import Block
from chain.encoding import decode
from chain.errors import InvalidBlock
from chain.governance.bodies import GovernanceAction, GovernancePropose, UpgradePlan
from chain.transactions import SignedTransaction, Transfer
from chain.transition import apply_block, build_block
from chain.types import Amount, TimeMs
from tests.ledger.harness import Chain
from tests.ledger.vector_files import check_vector_file

H = 12
PLAN = UpgradePlan("v2-memo", 2, H)


def _tx(chain: Chain, seed: str, tx: SignedTransaction) -> dict[str, Any]:
    return {"signer_seed": seed, "nonce": tx.nonce, "type": tx.body.TAG,
            "signing_digest": tx.digest(chain.state.chain_id).hex(),
            "signature": tx.signature.hex(), "wire": tx.wire.hex(), "tx_hash": tx.hash.hex(),
            "pubkey": tx.sender_pubkey.hex()}


def _forged(chain: Chain, version: int) -> dict[str, Any]:
    block, _, _ = build_block(chain.state, [], TimeMs(chain.now + 1_000), chain.addr("v0"))
    bad = Block(dataclasses.replace(block.header, version=version), block.txs)
    try:
        apply_block(chain.state, bad)
    except InvalidBlock as e:
        return {"pre_height": chain.state.height, "block": bad.encode().hex(), "error": e.code}
    raise AssertionError("a forged version was accepted")


def build_vectors() -> dict[str, Any]:
    chain = Chain(validators=1, chain_id="vector-chain")
    seeds = {"v0": "validator-0", "alice": "alice"}
    plan_tx = chain.tx("v0", GovernancePropose(GovernanceAction.schedule(PLAN)))
    cancel = chain.tx("v0", GovernancePropose(GovernanceAction.cancel(PLAN.name)), nonce=1)
    chain._pending.remove(cancel)  # signed for the vectors only, never applied
    txs = [_tx(chain, seeds["v0"], plan_tx), _tx(chain, seeds["v0"], cancel)]
    chain.block(plan_tx)
    wrong: list[dict[str, Any]] = []
    refused: dict[str, Any] = {}
    while chain.state.height < H - 1:
        if chain.state.height == H - 2:
            wrong.append(_forged(chain, 2))  # block H-1 carrying version 2
            memo = chain.tx("alice", Transfer(chain.addr("bob"), Amount(7), b"invoice-17"))
            refused = {**_tx(chain, seeds["alice"], memo), "height": H - 1,
                       "error": chain.reject(memo)}
        chain.block()
    wrong.append(_forged(chain, 1))  # block H carrying version 1
    memo = chain.tx("alice", Transfer(chain.addr("bob"), Amount(7), b"invoice-17"))
    txs.append(_tx(chain, seeds["alice"], memo))
    chain.block(memo)
    chain.block()
    return {
        "about": "An upgrade at a height [UPGRADE-PLAN.1-4] [BLOCK-VERSION.1] "
                 "[TX-TRANSFER.2]: see protocol_spec/vectors/README.md",
        "plan": {"name": PLAN.name, "version": PLAN.version, "height": PLAN.height,
                 "wire": PLAN.to_wire()},
        "genesis": {"doc": chain.genesis.to_json(), "hash": chain.genesis.hash.hex()},
        "transactions": txs,
        "blocks": [{"height": b.header.height, "version": b.header.version,
                    "hex": b.encode().hex(), "state_root": b.header.state_root.hex()}
                   for b in chain.blocks],
        "refused_transaction": refused,
        "wrong_version_blocks": wrong,
    }


def test_upgrade_vectors_match_committed_file() -> None:
    """[UPGRADE-PLAN.1] [UPGRADE-PLAN.4] [BLOCK-VERSION.1] [TX-TRANSFER.2] upgrade.json."""
    check_vector_file("upgrade.json", build_vectors())


def test_upgrade_vectors_check_out_independently() -> None:
    """[UPGRADE-PLAN.4] [BLOCK-VERSION.1] From the file alone: every signature under the
    pure-Python ``ecdsa``; each block's version is what the plan says for its height (a rule
    restated here, not imported); the plan transaction's action decodes to the plan's wire."""
    import json

    from tests.ledger.vector_files import VECTORS_DIR

    v = json.loads((VECTORS_DIR / "upgrade.json").read_text())
    for tx in [*v["transactions"], v["refused_transaction"]]:
        vk = ecdsa.VerifyingKey.from_string(bytes.fromhex(tx["pubkey"]), curve=ecdsa.SECP256k1)
        assert vk.verify_digest(bytes.fromhex(tx["signature"]),
                                bytes.fromhex(tx["signing_digest"]), sigdecode=sigdecode_string)
        assert hashlib.sha256(bytes.fromhex(tx["wire"])).hexdigest() == tx["tx_hash"]
    plan = v["plan"]
    action = decode(bytes.fromhex(v["transactions"][0]["wire"]))[3][0]
    assert action == ["schedule_upgrade", plan["wire"]]
    for block in v["blocks"]:
        header = decode(bytes.fromhex(block["hex"]))[0]
        expected = plan["version"] if header[2] >= plan["height"] else 1
        assert header[0] == block["version"] == expected
    assert v["refused_transaction"]["error"] == "needs_protocol_version"
    assert [w["error"] for w in v["wrong_version_blocks"]] == ["wrong_version"] * 2
