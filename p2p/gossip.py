"""The gossip driver: carries ``GossipCore`` decisions over a ``Node`` [WIRE-GOSSIP.*].

Usage::

    gossip = Gossip(node)
    gossip.subscribe("tx", validate)   # validate(data, sender) -> Verdict
    await node.start(); gossip.start()
    msg_id = gossip.publish("tx", data)

The validator runs once per new message id; ``ACCEPT`` means the application
took the message (e.g. the mempool admitted the transaction) and it is
forwarded; ``REJECT`` costs the sender score; ``IGNORE`` drops it quietly.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from chain.crypto import sha256
from chain.types import Address
from p2p.config import GossipParams
from p2p.gossip_core import (
    Action,
    Forget,
    GossipCore,
    Receipt,
    SendFull,
    SendGraft,
    SendIHave,
    SendIWant,
    SendPrune,
    Verdict,
)
from p2p.node import Node
from p2p.peer import PeerConnection
from p2p.scoring import Offence
from p2p.wire import MAX_GOSSIP_DATA, Graft, IHave, IWant, Prune, Publish, encode_frame

log = logging.getLogger(__name__)

Validator = Callable[[bytes, Address | None], Verdict | Awaitable[Verdict]]
"""Called with the payload and the peer it came from (None for our own)."""
ReceiveHook = Callable[[str, bytes, Address, Receipt], None]
ForwardHook = Callable[[str, bytes, int], None]


@dataclass(frozen=True, slots=True)
class _Payload:
    topic: str
    frame: bytes
    """The encoded ``Publish`` frame, built once and sent to every target."""


class Gossip:
    """Topic-based gossip with de-duplication, a mesh and lazy IHAVE/IWANT repair."""

    def __init__(
        self,
        node: Node,
        params: GossipParams | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.node = node
        self.params = params or node.config.gossip
        self.core = GossipCore(
            self.params, node.config.topics, rng or random.Random(node.rng.random())
        )
        self._validators: dict[str, Validator] = {}
        self._after_accept: dict[str, Callable[[], None]] = {}
        self._payloads: dict[bytes, _Payload] = {}
        self.on_receive: ReceiveHook | None = None
        """Observer of every full message received (benches count copies with it)."""
        self.on_forward: ForwardHook | None = None
        """Observer of every forward of a received message: (topic, payload, peers sent to)."""
        node.on(Publish, self._on_publish)
        node.on(IHave, self._on_ihave)
        node.on(IWant, self._on_iwant)
        node.on(Graft, self._on_graft)
        node.on(Prune, self._on_prune)
        node.on_connect(self._peer_up)
        node.on_disconnect(self._peer_down)

    def subscribe(self, topic: str, validate: Validator) -> None:
        if topic not in self.core.topics:
            raise ValueError(f"topic {topic!r} is not in the node config's topics")
        self._validators[topic] = validate

    def after_accept(self, topic: str, hook: Callable[[], None]) -> None:
        """``hook()`` once a message of ``topic`` was accepted and forwarded: what the
        validator queued can be handled now, without delaying the forward [NODE-CONS.3]."""
        self._after_accept[topic] = hook

    def start(self) -> None:
        """Starts the heartbeat; it belongs to the node and ends with ``node.stop``."""
        self.node.spawn(self._heartbeat_loop(), name="gossip-heartbeat")

    def publish(self, topic: str, data: bytes) -> bytes:
        """Sends our own (already validated) message; returns its id, SHA-256(data).

        Publishing the same bytes again repeats them to peers that may have missed
        them (``GossipCore.republish``, [WIRE-GOSSIP.10])."""
        limit = self.params.size_limit(topic, MAX_GOSSIP_DATA)
        if len(data) > limit:
            raise ValueError(f"gossip payload over the {limit}-byte limit of {topic!r}")
        msg_id = bytes(sha256(data))
        self._payloads[msg_id] = _Payload(topic, encode_frame(Publish(topic, data)))
        self._execute(self.core.publish(topic, msg_id, self.node.now()))
        return msg_id

    # -- events ------------------------------------------------------------

    def _peer_up(self, peer: PeerConnection) -> None:
        self._execute(self.core.add_peer(peer.address, peer.identity.topics))

    def _peer_down(self, peer: PeerConnection) -> None:
        self.core.remove_peer(peer.address)

    async def _on_publish(self, peer: PeerConnection, message: Publish) -> None:
        if len(message.data) > self.params.size_limit(message.topic, MAX_GOSSIP_DATA):
            self.node.penalize(peer, Offence.REJECTED_MESSAGE)
            return
        msg_id = bytes(sha256(message.data))
        receipt = self.core.on_receive(peer.address, message.topic, msg_id, self.node.now())
        if self.on_receive is not None:
            self.on_receive(message.topic, msg_id, peer.address, receipt)
        if receipt is Receipt.REPEATED_BY_PEER:
            self.node.penalize(peer, Offence.DUPLICATE_FROM_SAME_PEER)
            return
        if receipt is Receipt.NOT_SUBSCRIBED:
            self.node.penalize(peer, Offence.PROTOCOL)
            return
        if receipt is not Receipt.NEW:
            return
        self._payloads[msg_id] = _Payload(message.topic, encode_frame(message))
        verdict = await self._validate(message.topic, message.data, peer.address)
        if verdict is Verdict.REJECT:
            self.node.penalize(peer, Offence.REJECTED_MESSAGE)
        actions = self.core.on_validated(msg_id, verdict)
        if self.on_forward is not None and verdict is Verdict.ACCEPT:
            sent = sum(1 for a in actions if isinstance(a, SendFull))
            self.on_forward(message.topic, message.data, sent)
        self._execute(actions)
        hook = self._after_accept.get(message.topic)
        if hook is not None and verdict is Verdict.ACCEPT:
            hook()

    async def _validate(self, topic: str, data: bytes, sender: Address) -> Verdict:
        validator = self._validators.get(topic)
        if validator is None:
            return Verdict.IGNORE
        try:
            result = validator(data, sender)
            if inspect.isawaitable(result):
                result = await result
        except Exception:
            log.exception("validator for %r failed; ignoring the message", topic)
            return Verdict.IGNORE
        return result if isinstance(result, Verdict) else Verdict.IGNORE

    def _on_ihave(self, peer: PeerConnection, message: IHave) -> None:
        self._execute(self.core.on_ihave(peer.address, message.topic, message.ids, self.node.now()))

    def _on_iwant(self, peer: PeerConnection, message: IWant) -> None:
        self._execute(self.core.on_iwant(peer.address, message.ids))

    def _on_graft(self, peer: PeerConnection, message: Graft) -> None:
        self._execute(self.core.on_graft(peer.address, message.topic))

    def _on_prune(self, peer: PeerConnection, message: Prune) -> None:
        self.core.on_prune(peer.address, message.topic)

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.params.heartbeat)
            self._execute(self.core.heartbeat(self.node.now()))

    # -- actions -----------------------------------------------------------

    def _execute(self, actions: list[Action]) -> None:
        peers = self.node.peers
        for action in actions:
            if isinstance(action, Forget):
                self._payloads.pop(action.msg_id, None)
                continue
            peer = peers.get(Address(action.peer))
            if peer is None:
                continue
            if isinstance(action, SendFull):
                payload = self._payloads.get(action.msg_id)
                if payload is not None:  # [WIRE-GOSSIP.11] consensus ahead of the rest
                    peer.send_frame_nowait(payload.frame,
                                           urgent=payload.topic in self.params.urgent_topics)
            elif isinstance(action, SendIHave):
                peer.send_nowait(IHave(action.topic, list(action.ids)))
            elif isinstance(action, SendIWant):
                peer.send_nowait(IWant(list(action.ids)))
            elif isinstance(action, SendGraft):
                peer.send_nowait(Graft(action.topic))
            elif isinstance(action, SendPrune):
                peer.send_nowait(Prune(action.topic))
