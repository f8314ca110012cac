"""Every tunable of the p2p layer in one record, with the protocol's defaults."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from chain.types import Address


def admit_everyone(address: Address) -> bool:
    """Admission for open test networks; a permissioned node passes its member set."""
    return True


@dataclass(frozen=True, slots=True)
class GossipParams:
    """Mesh sizes and timings of the gossip core [WIRE-GOSSIP.2]."""

    d: int = 3
    """Target mesh degree per topic."""
    d_lo: int = 3
    """Below this many mesh peers the heartbeat grafts more."""
    d_hi: int = 4
    """Above this many mesh peers the heartbeat prunes down to ``d``."""
    d_lazy: int = 3
    """Non-mesh peers that receive IHAVE announcements each heartbeat."""
    heartbeat: float = 0.1
    """Seconds between heartbeats (mesh upkeep, IHAVE emission)."""
    history_gossip: int = 3
    """Heartbeats during which a message is announced by IHAVE."""
    history_length: int = 6
    """Heartbeats during which a message can be served to IWANT."""
    seen_ttl: float = 120.0
    """Seconds a message id stays in the de-duplication set."""
    iwant_timeout: float = 0.5
    """Seconds before an unanswered IWANT is asked of another announcer."""
    max_iwant_serve: int = 3
    """How many times one message is served to the same peer by IWANT."""
    max_message_size: tuple[tuple[str, int], ...] = (("tx", 64 * 1024), ("consensus", 3 * 1024**2))
    """[WIRE-GOSSIP.6] Per-topic payload limits; larger messages are rejected unread."""

    urgent_topics: tuple[str, ...] = ("consensus",)
    """[WIRE-GOSSIP.11] Topics whose messages leave ahead of every other frame queued for
    the same peer (a vote behind megabytes of transaction batches waited seconds)."""

    held_relay_topics: tuple[str, ...] = ("tx",)
    """[WIRE-GOSSIP.12] Topics whose relayed messages are announced to the mesh at once and
    sent in full only ``relay_hold_heartbeats`` later, to the mesh peers that did not
    announce them meanwhile (bulk that every peer mostly has from its author already)."""
    relay_hold_heartbeats: int = 2
    """[WIRE-GOSSIP.12] Heartbeats a relayed message of a held topic waits before its push."""

    def size_limit(self, topic: str, default: int) -> int:
        return dict(self.max_message_size).get(topic, default)


@dataclass(frozen=True, slots=True)
class P2PConfig:
    """Configuration of one node's p2p layer."""

    chain_id: str
    host: str = "127.0.0.1"
    port: int = 0
    """0 picks a free port (tests)."""
    bootstrap: tuple[str, ...] = ()
    """``host:port`` of peers to dial at start."""
    is_admitted: Callable[[Address], bool] = admit_everyone
    """[WIRE-HANDSHAKE.5] Only addresses this accepts may complete a handshake."""
    topics: tuple[str, ...] = ("tx", "consensus")
    peer_exchange: bool = True
    """[WIRE-PEX.3] Dial peers learned from others. Off: dial only ``bootstrap`` (fixed
    topologies, e.g. links through proxies in fault-injection tests)."""
    max_inbound: int = 32
    target_outbound: int = 4
    max_pending_handshakes: int = 16
    handshake_timeout: float = 5.0
    """[WIRE-HANDSHAKE.6] Seconds from TCP accept to a completed handshake."""
    http_header_timeout: float = 5.0
    """Seconds a connection may take to send its HTTP upgrade request (slowloris)."""
    heartbeat: float = 10.0
    """WebSocket ping interval; a peer that does not answer in time is dropped."""
    request_timeout: float = 10.0
    dial_interval: float = 0.5
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    ban_seconds: float = 300.0
    ban_threshold: float = -100.0
    score_decay_per_second: float = 1.0
    """Negative scores recover this many points per second."""
    rate_msgs_per_second: float = 2000.0
    rate_burst: float = 4000.0
    rate_bytes_per_second: float = 512 * 1024 * 1024
    send_queue: int = 4096
    gossip: GossipParams = field(default_factory=GossipParams)
    tune_allocator: bool = True
    """Raise glibc's mmap/trim thresholds at start (see p2p.tuning); process-wide."""
    agent: str = "learningchain-py/0.1"
