"""Every block-level rule of [BLOCK-APPLY.1]: its exact code, and the state left untouched.

Each test runs one case of ``block_cases.py`` from the block's bytes (as a
peer would deliver it); ``test_block_vectors_match_committed_file`` writes the
same cases to ``protocol_spec/vectors/blocks.json`` and checks it byte for byte.
"""

from __future__ import annotations

from typing import Any

import pytest

from chain.blocks import Block
from chain.encoding import decode, encode
from chain.errors import DecodeError, InvalidBlock, InvalidTransaction
from chain.genesis import genesis_state
from chain.state import State
from chain.transition import apply_block
from chain.versions import MAX_PROTOCOL_VERSION
from tests.ledger import block_cases as bc
from tests.ledger.vector_files import check_vector_file


def _snapshot(state: State) -> tuple[Any, ...]:
    return (state.digest(), state.height, state.block_hash, state.time_ms, state.state_root)


def run_invalid(case: bc.BlockCase) -> None:
    """Applies the case's block to its pre-state: the expected code, and nothing changed."""
    state = case.pre_state()
    before = _snapshot(state)
    with pytest.raises(InvalidBlock) as raised:
        apply_block(state, Block.decode(case.block.encode()))
    assert raised.value.code == case.error, raised.value
    if case.tx_error is not None:
        assert raised.value.tx_index == case.tx_index
        cause = raised.value.__cause__
        assert isinstance(cause, InvalidTransaction) and cause.code == case.tx_error, cause
    assert _snapshot(state) == before, "an invalid block changed the state"


def run_valid(case: bc.BlockCase) -> None:
    state = case.pre_state()
    output = apply_block(state, Block.decode(case.block.encode()))
    assert output.state_root == case.block.header.state_root


def test_valid_block_of_transfers_reaches_the_header_state_root() -> None:
    """[BLOCK-APPLY.1] [STATE-ROOT.1] The control case: an honest block applies."""
    run_valid(bc.case_valid_transfers())


def test_valid_empty_block() -> None:
    """[BLOCK-MERKLE.1] An empty body has tx_root SHA-256(""); the block still applies."""
    case = bc.case_valid_empty_block()
    assert case.block.header.tx_root.hex() == \
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    run_valid(case)


def test_invalid_wrong_chain_id() -> None:
    """[BLOCK-APPLY.1] A block for another chain id: wrong_chain."""
    run_invalid(bc.case_invalid_wrong_chain())


def test_invalid_wrong_height() -> None:
    """[BLOCK-APPLY.1] height must be tip + 1: wrong_height."""
    run_invalid(bc.case_invalid_wrong_height())


def test_invalid_replayed_block_is_wrong_height() -> None:
    """[BLOCK-APPLY.1] Block 1 offered again on top of itself: wrong_height, state untouched."""
    sc = bc.scene()
    replay = bc.BlockCase("replay", ("BLOCK-APPLY.1",), "", sc.genesis, sc.pre_blocks,
                          sc.pre_blocks[0], "wrong_height")
    run_invalid(replay)


def test_invalid_wrong_prev_hash() -> None:
    """[BLOCK-APPLY.1] prev_hash must be the tip's hash: wrong_prev_hash."""
    run_invalid(bc.case_invalid_wrong_prev_hash())


def test_invalid_time_not_increasing() -> None:
    """[BLOCK-APPLY.1] time must exceed the tip's time: time_not_increasing."""
    run_invalid(bc.case_invalid_time_not_increasing())


def test_invalid_proposer_not_a_validator() -> None:
    """[BLOCK-APPLY.1] The proposer must be in the validator set: unknown_proposer."""
    run_invalid(bc.case_invalid_unknown_proposer())


def test_invalid_too_many_transactions() -> None:
    """[BLOCK-APPLY.1] More than max_block_txs transactions: too_many_txs."""
    run_invalid(bc.case_invalid_too_many_txs())


def test_invalid_block_too_large() -> None:
    """[BLOCK-SIZE.1] Transactions summing to more than max_block_bytes: block_too_large."""
    run_invalid(bc.case_invalid_block_too_large())


def test_invalid_tx_root_mismatch() -> None:
    """[BLOCK-MERKLE.1] tx_root over another order of the same transactions: wrong_tx_root."""
    run_invalid(bc.case_invalid_wrong_tx_root())


def test_invalid_state_root_mismatch() -> None:
    """[BLOCK-APPLY.1] [STATE-ROOT.1] A header state root other than the executed one."""
    run_invalid(bc.case_invalid_state_root_mismatch())


def test_invalid_last_commit_hash_not_empty() -> None:
    """[BLOCK-LAST-COMMIT.1] v1 headers carry the empty hash: bad_last_commit_hash."""
    run_invalid(bc.case_invalid_last_commit_hash())


def test_invalid_transaction_bad_signature_inside_block() -> None:
    """[TX-SIG.1] [TX-APPLY.1] A transaction signed for another chain inside a block."""
    run_invalid(bc.case_invalid_tx_bad_signature())


def test_invalid_transaction_replayed_nonce_inside_block() -> None:
    """[TX-NONCE.1] A transaction of an earlier block included again: bad_nonce at index 1."""
    run_invalid(bc.case_invalid_tx_replayed_nonce())


def test_invalid_transaction_same_nonce_twice_in_one_block() -> None:
    """[TX-NONCE.1] Two transactions with one nonce in one block: the second is bad_nonce."""
    run_invalid(bc.case_invalid_tx_same_nonce_twice())


def test_invalid_transaction_insufficient_balance_inside_block() -> None:
    """[TX-TRANSFER.1] [TX-APPLY.1] Balances seen by a transaction include earlier ones."""
    run_invalid(bc.case_invalid_tx_insufficient_balance())


def test_invalid_transaction_unknown_job_inside_block() -> None:
    """[JOB-CLAIM.1] A claim on a job that does not exist makes the whole block invalid."""
    run_invalid(bc.case_invalid_tx_unknown_job())


def test_invalid_transaction_quorum_too_high_inside_block() -> None:
    """[JOB-POST.1] [THREAT-QUORUM.1] A post asking for a quorum above 667 permille makes
    the block invalid (a proposer must leave it out)."""
    run_invalid(bc.case_invalid_tx_quorum_too_high())


def test_invalid_transaction_supermajority_too_high_inside_block() -> None:
    """[JOB-POST.1] A post asking for a unanimous supermajority makes the block invalid."""
    run_invalid(bc.case_invalid_tx_supermajority_too_high())


def test_valid_post_at_the_largest_quorum_and_supermajority() -> None:
    """[JOB-POST.1] 667 permille of both is the largest a block may carry."""
    run_valid(bc.case_valid_post_at_the_largest_quorum())


def test_invalid_block_version_is_a_decode_error() -> None:
    """[BLOCK-APPLY.1] [BLOCK-VERSION.2] A header with a version this software does not know
    (0, or above its newest) does not decode (bad_field)."""
    case = bc.case_valid_transfers()
    header, txs = decode(case.block.encode())
    for version in (0, MAX_PROTOCOL_VERSION + 1):
        with pytest.raises(DecodeError) as raised:
            Block.decode(encode([[version, *header[1:]], txs]))
        assert raised.value.code == "bad_field"


def test_every_block_case_has_a_test() -> None:
    """Each case in the vector file is run by one of the tests above (by its code)."""
    codes = {bc_case().error for bc_case in bc.CASES}
    assert codes == {None, "wrong_chain", "wrong_height", "wrong_prev_hash",
                     "time_not_increasing", "unknown_proposer", "too_many_txs",
                     "block_too_large", "wrong_tx_root", "state_root_mismatch",
                     "bad_last_commit_hash", "invalid_transaction"}


def build_block_vectors() -> dict[str, Any]:
    geneses = {name: bc.vector_genesis(name)[0] for name in bc.GENESES}
    return {
        "about": "LearningChain block state-transition vectors; format: "
                 "protocol_spec/vectors/README.md#blocksjson",
        "geneses": {name: {"doc": g.to_json(), "hash": g.hash.hex(),
                           "state_root": genesis_state(g).state_root.hex()}
                    for name, g in geneses.items()},
        "cases": [build().to_vector() for build in bc.CASES],
    }


def test_block_vectors_match_committed_file() -> None:
    """[BLOCK-APPLY.1] protocol_spec/vectors/blocks.json is exactly what the cases give."""
    check_vector_file("blocks.json", build_block_vectors())


def test_block_size_2_the_fullest_block_the_ledger_accepts_fits_one_proposal() -> None:
    """[BLOCK-SIZE.2] [CONS-MSG.2] A block filled to max_block_bytes (2 MiB of transfers)
    encodes within consensus's block bound, so an honest proposer is never refused; a
    genesis asking for more than consensus carries is refused."""
    import dataclasses

    import pytest

    from chain.blocks import BLOCK_FRAMING_ROOM, MAX_BLOCK_BODY_BYTES
    from chain.consensus.messages import MAX_BLOCK_BYTES
    from chain.errors import InvalidGenesis
    from chain.genesis import Genesis
    from chain.records import Params
    from chain.transactions import Transfer, sign_transaction
    from chain.transition import body_size, build_block
    from chain.types import Amount, TimeMs
    from tests.ledger.harness import Chain, make_genesis

    chain = Chain(balance=100_000)
    alice = chain.keys["alice"]
    txs: list = []
    while sum(len(t.wire) for t in txs) < MAX_BLOCK_BODY_BYTES + 4096:
        txs.append(sign_transaction(alice, chain.state.chain_id, len(txs),
                                    Transfer(chain.addr("bob"), Amount(1))))
    block, _, _ = build_block(chain.state, txs, TimeMs(chain.now + 1_000), chain.addr("v0"),
                              chain.cache)
    assert MAX_BLOCK_BODY_BYTES - 200 < body_size(block.txs) <= MAX_BLOCK_BODY_BYTES
    assert len(block.encode()) <= MAX_BLOCK_BYTES == MAX_BLOCK_BODY_BYTES + BLOCK_FRAMING_ROOM
    genesis, _ = make_genesis()
    doc = genesis.to_json()
    doc["params"] = {**dataclasses.asdict(Params()), "max_block_bytes": MAX_BLOCK_BODY_BYTES + 1}
    with pytest.raises(InvalidGenesis, match="max_block_bytes"):
        Genesis.from_json(doc)
