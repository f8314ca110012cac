"""The ledger as consensus sees it (``Application``) and as block sync sees it (``BlockSource``).

Both are thin: the rules live in ``chain``; this module maps consensus's
questions onto the committed state. A proposal is validated by executing it
on the committed state (pure, nothing merged); the executed output is kept,
so the block that is decided is committed without executing it twice.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from chain.blocks import BLOCK_FRAMING_ROOM, Block, BlockHeader, merkle_root
from chain.consensus.actions import CommitDeferred
from chain.consensus.certificate import Decision, decode_certificate, verify_certificate
from chain.consensus.errors import InvalidCertificate
from chain.consensus.messages import MAX_HEAD_BYTES, SHORT_ID_LEN, Proposal, ProposalRefs
from chain.consensus.validators import ValidatorSet
from chain.encoding import decode, encode
from chain.errors import ChainError
from chain.governance.rules import apply_validator_changes
from chain.ledger import Ledger
from chain.mempool import Mempool
from chain.pacing import DEFAULT_EMPTY_BLOCK_INTERVAL_MS, block_due
from chain.state import Overlay
from chain.storage import StorageBusy, StorageError
from chain.transition import BlockOutput, apply_block, build_block
from chain.types import Address, Hash32, Height, Round, TimeMs
from chain.versions import MAX_PROTOCOL_VERSION
from client.node.proposal_size import ProposalSizer
from p2p.sync import LocalApplyFailure

log = logging.getLogger("learningchain.node")

SHORT_ID_TRIES = 8
"""[CONS-MSG.4] Combinations of known transactions tried where short ids are shared."""


class NodeHalted(Exception):
    """The node cannot continue safely (e.g. storage failed while committing a decided block)."""


class UpgradeRequired(NodeHalted):
    """[UPGRADE-HALT.1] The next height needs a protocol version this software does not know."""

    def __init__(self, name: str, version: int, height: int, known: int) -> None:
        super().__init__(f"upgrade required: plan {name!r} needs protocol version {version} at "
                         f"height {height}; this software knows up to {known}")
        self.name, self.version, self.height, self.known = name, version, height, known


@dataclass
class _Executed:
    block: Block
    data: bytes
    output: BlockOutput


class LedgerApp:
    """``chain.consensus.actions.Application`` over a ``Ledger`` and its ``Mempool``."""

    def __init__(
        self,
        ledger: Ledger,
        mempool: Mempool,
        proposer: Address,
        *,
        on_committed: Callable[[Block, bytes], None] | None = None,
        on_synced: Callable[[], None] | None = None,
        max_protocol_version: int = MAX_PROTOCOL_VERSION,
        empty_block_interval_ms: int = DEFAULT_EMPTY_BLOCK_INTERVAL_MS,
    ) -> None:
        self.ledger = ledger
        self.mempool = mempool
        self.proposer = proposer
        self.on_committed = on_committed
        """Called after a block is durably committed (by consensus or by sync)."""
        self.on_synced = on_synced
        """Called after block sync (not consensus) committed a block."""
        self.max_protocol_version = max_protocol_version
        """[UPGRADE-HALT.1] The newest version this software runs (lowered for rehearsals)."""
        self.empty_block_interval_ms = empty_block_interval_ms
        """[CONS-PACE.3] At most one empty block per interval on a graph at rest."""
        self.sizer = ProposalSizer()
        """How many transactions a proposal of this node carries (client/node/proposal_size)."""
        self._executed: dict[Hash32, _Executed] = {}
        self._sets: dict[tuple[int, Hash32], ValidatorSet] = {}

    # -- Application ---------------------------------------------------------

    def validators_at(self, height: Height) -> ValidatorSet:
        """[CONS-VALSET.2] Set of ``height`` from the committed state and scheduled changes.

        The core asks for the committed height + 1 (the current set) and, right
        after a decision it has not yet seen applied, + 2: changes decided in
        block h take effect at h + 2, so both are known from state.
        """
        state = self.ledger.state
        key = (int(height), state.block_hash)
        cached = self._sets.get(key)
        if cached is not None:
            return cached
        if height == state.height + 1:
            members = state.validators()
        elif height == state.height + 2:
            view = Overlay(state)
            apply_validator_changes(view, height)
            members = view.validators()
        else:
            raise ValueError(f"validator set of height {height} unknown at height {state.height}")
        vset = ValidatorSet.from_members((v.pubkey, v.power) for v in members.values())
        self._sets = {key: vset}
        return vset

    def block_due(self, height: Height, now: int) -> bool:
        """[CONS-PACE.1] ``chain.consensus.actions.Pacing``: pending transactions, a due block
        step or the empty-block interval; a height not next to the tip is always due."""
        state = self.ledger.state
        if height != state.height + 1:
            return True
        return bool(block_due(state, len(self.mempool), now, self.empty_block_interval_ms))

    def upgrade_required(self) -> UpgradeRequired | None:
        """[UPGRADE-HALT.1] Why the next height cannot be run by this software, if it cannot."""
        state = self.ledger.state
        height = state.height + 1
        version = state.version_at(height)
        if version <= self.max_protocol_version:
            return None
        plan = state.upgrade_plan
        return UpgradeRequired(plan.name if plan else "?", version, height,
                               self.max_protocol_version)

    def _stop_if_upgrade_required(self) -> None:
        error = self.upgrade_required()
        if error is not None:
            raise error

    def propose(self, height: Height, round_: Round, time_ms: TimeMs) -> tuple[Hash32, bytes]:
        self._stop_if_upgrade_required()  # [UPGRADE-HALT.1] nothing proposed at H
        state = self.ledger.state
        if height != state.height + 1:
            raise NodeHalted(f"asked to propose height {height} at committed height {state.height}")
        txs = self.mempool.reap(self.sizer.limit(round_, state.params.max_block_txs))
        started = time.perf_counter()
        block, output, dropped = build_block(state, txs, time_ms, self.proposer,
                                             self.ledger.signatures)
        self.sizer.observe(len(block.txs), time.perf_counter() - started)
        if dropped:
            log.info("proposal h=%d r=%d dropped %d invalid pending txs", height, round_,
                     len(dropped))
        data = block.encode()
        self._executed[block.hash] = _Executed(block, data, output)
        return block.hash, data

    def validate(self, height: Height, block_hash: Hash32, block: bytes, time_ms: TimeMs) -> bool:
        self._stop_if_upgrade_required()  # [UPGRADE-HALT.1] no vote for a block of H
        state = self.ledger.state
        if height != state.height + 1:
            return False
        known = self._executed.get(block_hash)
        if known is not None:  # executed before: same bytes are the same verdict
            header = known.block.header
            return known.data == block and header.height == height and header.time_ms == time_ms
        try:
            limit = state.params.max_block_bytes + BLOCK_FRAMING_ROOM
            decoded = Block.decode(block, max_size=limit, known=self.mempool.known)
        except ChainError as e:
            log.info("proposal h=%d does not decode: %s", height, e)
            return False
        header = decoded.header
        if decoded.hash != block_hash or header.height != height or header.time_ms != time_ms:
            return False
        if header.proposer not in state.validators():
            return False
        started = time.perf_counter()
        self.ledger.prefill_signatures(decoded.txs)  # [TX-SIG-CACHE.2] on every core first
        try:
            output = apply_block(state, decoded, self.ledger.signatures)
        except ChainError as e:
            log.info("proposal h=%d is invalid: %s", height, e)
            return False
        self.sizer.observe(len(decoded.txs), time.perf_counter() - started)
        self._executed[block_hash] = _Executed(decoded, block, output)
        return True

    def compact(self, proposal: Proposal) -> ProposalRefs | None:
        """[CONS-MSG.3] ``proposal`` by reference, if this node executed its block."""
        found = self._executed.get(proposal.block_hash)
        if found is None:
            return None
        block = found.block
        return ProposalRefs(proposal.height, proposal.round, proposal.pol_round,
                            proposal.block_hash, proposal.time_ms,
                            encode(block.header.to_wire()), tuple(tx.hash for tx in block.txs),
                            proposal.proposer, proposal.signature)

    def refs_consistent(self, refs: ProposalRefs) -> bool:
        """The head is a header hashing to the signed block hash, whose transaction root
        is that of the hashes: what can be checked before the transactions are here (of
        short ids [CONS-MSG.4], only the first: the root is checked as they are resolved)."""
        try:
            header = BlockHeader.from_wire(decode(refs.head, max_size=MAX_HEAD_BYTES))
        except ChainError:
            return False
        return header.hash == refs.block_hash and \
            (refs.short or merkle_root(list(refs.refs)) == header.tx_root)

    def expand(self, refs: ProposalRefs) -> Proposal | None:
        """The full proposal from this node's mempool (pending or held [MEMPOOL-HOLD.1]),
        None while a transaction is missing."""
        hashes = self._resolve_short_ids(refs) if refs.short else refs.refs
        if hashes is None:
            return None
        txs = []
        for tx_hash in hashes:
            tx = self.mempool.known(tx_hash)
            if tx is None:
                return None
            txs.append(tx.wire)
        header = decode(refs.head, max_size=MAX_HEAD_BYTES)
        return refs.with_block(encode([header, txs]))

    def _resolve_short_ids(self, refs: ProposalRefs) -> tuple[bytes, ...] | None:
        """[CONS-MSG.4] The hashes the short ids stand for: the one combination of known
        transactions whose Merkle root is the head's ``tx_root`` (at most
        ``SHORT_ID_TRIES`` combinations tried where prefixes are shared); None while an id
        names nothing known, or when no combination (or more than that many) fits."""
        tx_root = BlockHeader.from_wire(decode(refs.head, max_size=MAX_HEAD_BYTES)).tx_root
        index = self.mempool.known_by_prefix(SHORT_ID_LEN)  # kept by the pool, not rebuilt
        choices: list[list[bytes]] = []
        combinations = 1
        for short_id in refs.refs:
            found = index.get(short_id)
            if found is None:
                return None
            choices.append(found)
            combinations *= len(found)
            if combinations > SHORT_ID_TRIES:
                return None
        for hashes in itertools.product(*choices):
            if merkle_root(list(hashes)) == tx_root:
                return hashes
        return None

    def block_matches(self, block_hash: Hash32, block: bytes) -> bool:
        """[NODE-CONS.2] ``block`` decodes to a block whose hash is ``block_hash``.

        The gossip check of a proposal: its signature covers ``block_hash``, not the
        bytes, so without this a peer could attach other bytes to a signed proposal.
        Structure and hashes only; execution is ``validate``, in the consensus task."""
        if block_hash in self._executed:
            return self._executed[block_hash].data == block
        limit = self.ledger.state.params.max_block_bytes + BLOCK_FRAMING_ROOM
        try:
            return Block.decode(block, max_size=limit, known=self.mempool.known).hash == block_hash
        except ChainError:
            return False

    def decided(self, decision: Decision) -> None:
        """Commits the decided block durably before consensus moves on."""
        state = self.ledger.state
        if decision.height <= state.height:
            return  # block sync got there first
        if decision.height != state.height + 1:
            raise NodeHalted(f"decided height {decision.height} skips past {state.height + 1}")
        self._stop_if_upgrade_required()  # [UPGRADE-HALT.1] block H is never applied here
        certificate = decision.certificate.encode()
        executed = self._executed.get(decision.block_hash)
        try:
            if executed is None:
                block = Block.decode(decision.block)
                if block.hash != decision.block_hash:
                    raise NodeHalted("decided block does not hash to its certificate")
                self.ledger.apply(block, certificate)
            else:
                block = executed.block
                self.ledger.commit_executed(block, executed.output, certificate)
        except StorageBusy as e:
            raise CommitDeferred(str(e)) from e  # [CONS-COMMIT.2] nothing changed; retried
        except ChainError as e:
            raise NodeHalted(f"cannot commit decided block {decision.height}: {e}") from e
        self._executed.clear()
        self._after_commit(block, certificate)

    # -- BlockSource (p2p.sync) ----------------------------------------------

    def height(self) -> int:
        return int(self.ledger.state.height)

    def base_height(self) -> int:
        """[WIRE-SYNC.8] The oldest stored block: sync serves from here [STORE-PRUNE.*]."""
        return self.ledger.storage.base_height()

    def get_blocks(self, start: int, count: int) -> list[tuple[bytes, bytes]]:
        if start < self.base_height():
            return []  # pruned: a range must start where it says [WIRE-SYNC.3]
        out = []
        for data, cert in self.ledger.storage.blocks_range(start, count):
            if cert is None:
                break
            out.append((data, cert))
        return out

    def apply(self, block: bytes, certificate: bytes) -> None:
        """[WIRE-SYNC.5] Verify the certificate with the set of that height, then apply."""
        state = self.ledger.state
        height = Height(state.height + 1)
        upgrade = self.upgrade_required()
        if upgrade is not None:  # [UPGRADE-HALT.1] not the peer's fault: nobody is charged
            raise LocalApplyFailure(str(upgrade))
        decoded = Block.decode(block)
        cert = decode_certificate(certificate)
        if cert.height != height or decoded.header.height != height:
            raise InvalidCertificate("wrong_height", f"expected height {height}")
        if cert.block_hash != decoded.hash:
            raise InvalidCertificate("hash_mismatch", "certificate is for another block")
        verify_certificate(cert, self.validators_at(height), state.chain_id)
        try:
            self.ledger.apply(decoded, certificate)
        except StorageError as e:  # our disk or database, not the peer's block
            raise LocalApplyFailure(f"cannot store block {height}: {e}") from e
        self._executed.clear()
        self._after_commit(decoded, certificate)
        if self.on_synced is not None:
            self.on_synced()

    def _after_commit(self, block: Block, certificate: bytes) -> None:
        output = self.ledger.last_output  # [MEMPOOL-RECHECK.2] what the block wrote
        written = output.overlay.writes if output is not None else None
        self.mempool.update(list(block.txs), int(block.header.time_ms), written)
        if self.on_committed is not None:
            self.on_committed(block, certificate)
