"""What a node not yet admitted tells its operator [NODE-JOIN.1-2].

The graph refuses a key that is not a member with ``not_admitted`` [WIRE-HANDSHAKE.5];
the dialler hears it as a refused dial and retries with backoff [WIRE-HANDSHAKE.7].
A log line per retry would be noise in a protocol's words; this says once, in the
operator's words, what is going on and what to do (send the address to a validator),
and once more when a peer lets the node in (it syncs and works from there, without a
restart). Other refusals (``chain_id``, ``banned``, ``version``) are said once per
peer and code: they are configuration errors an operator must see.
"""

from __future__ import annotations

import logging

from p2p.addrbook import Endpoint
from p2p.handshake import HandshakeRefused
from p2p.peer import PeerConnection

log = logging.getLogger("learningchain.node")

NOT_A_MEMBER = ("this node ({address}) is not a member of graph {chain_id} yet: send this "
                "address to a validator, who runs `learningchain member admit {address}`; "
                "until then this node keeps asking its peers, less and less often "
                "(at most every 30 s)")
ADMITTED = ("this node ({address}) is now a member of graph {chain_id}: connected to "
            "{peer}; syncing")


class JoinNotice:
    """Feeds on the p2p node's refusals and connections; logs at most once per state."""

    def __init__(self, address: str, chain_id: str) -> None:
        self.address = address
        self.chain_id = chain_id
        self.refused_as_non_member = False
        """True from the first ``not_admitted`` until a peer lets us in."""
        self._said: set[tuple[Endpoint, str]] = set()

    def on_refused(self, endpoint: Endpoint, error: HandshakeRefused) -> None:
        """[NODE-JOIN.1] ``not_admitted`` once in words; any other code once per peer."""
        if error.code == "not_admitted":
            if not self.refused_as_non_member:
                self.refused_as_non_member = True
                log.warning(NOT_A_MEMBER.format(address=self.address, chain_id=self.chain_id))
            return
        if (endpoint, error.code) not in self._said:
            self._said.add((endpoint, error.code))
            log.warning("peer %s:%d refused this node: %s: %s", endpoint[0], endpoint[1],
                        error.code, error.reason)

    def on_connect(self, peer: PeerConnection) -> None:
        """[NODE-JOIN.2] The first peer that lets a refused node in: it is a member now."""
        if self.refused_as_non_member:
            self.refused_as_non_member = False
            where = peer.remote_host + (f":{peer.dialled_port}" if peer.dialled_port else "")
            log.info(ADMITTED.format(address=self.address, chain_id=self.chain_id, peer=where))
