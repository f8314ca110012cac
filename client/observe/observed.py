"""What metrics and the dashboard read of a running node [NODE-METRICS.1].

A protocol rather than the node class itself: the node composes the
observers, so the observers must not import the node (that was an import
cycle). Everything named here is a lower-floor type.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Protocol

from chain.mempool import Mempool
from client.node.consensus_driver import ConsensusDriver
from client.node.handle import NodeHandle
from p2p.blobs import BlobService
from p2p.node import Node as P2PNode
from p2p.sync import BlockSync


class ObservedNode(NodeHandle, Protocol):
    """The node's parts an observer reads; ``LedgerNode`` satisfies it."""

    roles: tuple[str, ...]
    driver: ConsensusDriver
    mempool: Mempool
    admissions: Counter[tuple[str, str]]
    p2p: P2PNode
    blobs: BlobService
    sync: BlockSync
    worker: Any
    """The worker (``client.worker.worker.Worker``) on worker nodes, else None."""

    @property
    def address_text(self) -> str: ...
