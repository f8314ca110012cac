"""The one decoder of consensus gossip: proposals and votes by their tag [CONS-MSG.1]."""

from __future__ import annotations

from chain.encoding import decode, encode
from chain.errors import DecodeError

from .errors import InvalidMessage
from .messages import (
    MAX_MESSAGE_BYTES,
    VOTE_KINDS,
    Proposal,
    ProposalRefs,
    Vote,
    proposal_from_wire,
    proposal_ids_from_wire,
    proposal_refs_from_wire,
    vote_from_wire,
)

ConsensusMessage = Proposal | Vote
WireMessage = Proposal | Vote | ProposalRefs
"""What the consensus topic carries; a ``ProposalRefs`` never reaches the core."""


def encode_message(message: WireMessage) -> bytes:
    """Canonical bytes of a Proposal or Vote."""
    return encode(message.to_wire())


def decode_message(data: bytes) -> WireMessage:
    """Decodes a Proposal or Vote; raises ``InvalidMessage``/``DecodeError``."""
    try:
        fields = decode(data, max_size=MAX_MESSAGE_BYTES)
    except DecodeError:
        raise
    if not isinstance(fields, list) or not fields:
        raise InvalidMessage("bad_shape", "a consensus message is a non-empty array")
    tag = fields[0]
    if tag == "proposal":
        return proposal_from_wire(fields)
    if tag in VOTE_KINDS:
        return vote_from_wire(fields)
    if tag == "proposal-refs":
        return proposal_refs_from_wire(fields)
    if tag == "proposal-ids":
        return proposal_ids_from_wire(fields)
    raise InvalidMessage("unknown_tag", f"unknown consensus message tag {tag!r}")
