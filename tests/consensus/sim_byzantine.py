"""Byzantine validators of the simulator: what they do with what their driver sends [CONS-SIM].

- ``silent``: never runs;
- ``equivocate``: as proposer sends two different (valid) blocks to two halves of
  the network, and splits its votes between them;
- ``double_vote``: signs every vote twice, for two values: the first to all,
  the second to a random half (which so holds the evidence);
- ``phantom``: votes for random block hashes it never saw;
- ``amnesia``: forgets its lock (``AmnesiaCore``, injected into its driver);
- ``forger`` (full-signature mode only): also sends votes in other
  validators' names with bad signatures;
- ``sync_liar``: honest in consensus, but its block sync (``LyingSync``) serves
  blocks whose certificates it broke (dedicated scenarios only, [WIRE-SYNC.6]).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chain.consensus.codec import encode_message
from chain.consensus.messages import Proposal, Vote, sign_proposal, sign_vote
from chain.crypto import sha256
from chain.transition import build_block
from chain.types import Hash32, TimeMs
from p2p.sync import BlockSync

if TYPE_CHECKING:
    from tests.consensus.sim import SimNetwork, SimNode


class LyingSync(BlockSync):
    """The node's own block sync, except that every certificate it serves has its last
    byte flipped (a forged signature): whoever applies one must refuse it and charge us."""

    def serve(self, start: int, count: int) -> list[list[bytes]]:
        return [[block, cert[:-1] + bytes([cert[-1] ^ 1])]
                for block, cert in super().serve(start, count)]


class Byzantine:
    def __init__(self, net: SimNetwork) -> None:
        self.net = net

    def act(self, node: SimNode, message: Proposal | Vote, data: bytes, kind: str) -> None:
        getattr(self, "_" + node.behaviour)(node, message, data, kind)

    def _halves(self, node: SimNode) -> tuple[list[SimNode], list[SimNode]]:
        others = [x for x in self.net.nodes if x is not node]
        self.net.rng.shuffle(others)
        cut = len(others) // 2
        return others[:cut], others[cut:]

    def _conflicting(self, node: SimNode, vote: Vote, value: Hash32 | None) -> bytes:
        chain_id = self.net.config.chain_id
        return encode_message(sign_vote(node.key, chain_id, vote.kind, vote.height, vote.round,
                                        value))

    def _silent(self, node: SimNode, message: Proposal | Vote, data: bytes, kind: str) -> None:
        return

    def _sync_liar(self, node: SimNode, message: Proposal | Vote, data: bytes,
                   kind: str) -> None:
        self.net.broadcast(node, data, kind)

    def _amnesia(self, node: SimNode, message: Proposal | Vote, data: bytes, kind: str) -> None:
        self.net.broadcast(node, data, kind)

    def _equivocate(self, node: SimNode, message: Proposal | Vote, data: bytes, kind: str) -> None:
        net = self.net
        a, b = self._halves(node)
        if isinstance(message, Proposal):
            state = node.ledger.state
            if message.pol_round >= 0 or message.height != state.height + 1:
                net.broadcast(node, data, kind)
                return
            t = TimeMs(message.time_ms + 1)
            block, _, _ = build_block(state, [], t, node.key.address, node.ledger.signatures)
            other = sign_proposal(node.key, net.config.chain_id, message.height, message.round,
                                  message.pol_round, block.hash, t, block.encode())
            net.broadcast(node, data, kind, a)
            net.broadcast(node, encode_message(other), kind, b)
            return
        net.broadcast(node, data, kind, a)
        other_value = None if message.block_hash is not None else sha256(b"%d" % net.seq)
        net.broadcast(node, self._conflicting(node, message, other_value), kind, b)

    def _double_vote(self, node: SimNode, message: Proposal | Vote, data: bytes,
                     kind: str) -> None:
        net = self.net
        net.broadcast(node, data, kind)
        if isinstance(message, Vote):
            _, b = self._halves(node)
            other_value = None if message.block_hash is not None else sha256(b"x%d" % net.seq)
            net.broadcast(node, self._conflicting(node, message, other_value), kind, b)

    def _phantom(self, node: SimNode, message: Proposal | Vote, data: bytes, kind: str) -> None:
        if isinstance(message, Proposal):
            self.net.broadcast(node, data, kind)
            return
        phantom = sha256(b"phantom-%d-%d" % (message.height, message.round))
        self.net.broadcast(node, self._conflicting(node, message, phantom), kind)

    def _forger(self, node: SimNode, message: Proposal | Vote, data: bytes, kind: str) -> None:
        net = self.net
        net.broadcast(node, data, kind)
        if isinstance(message, Vote):
            victim = net.rng.choice([x for x in net.nodes if x is not node])
            forged = Vote(message.kind, message.height, message.round, sha256(b"forged"),
                          victim.key.address, message.signature)
            net.broadcast(node, encode_message(forged), kind)
