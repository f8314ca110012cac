"""One consistent chain for the vectors: governance, a job from post to payment, evidence.

Four validators v0..v3 (power 1 each) and members submitter, alice, bob,
carol; mallory is admitted by governance; erin holds a zero balance in the
genesis document (so it is no record). Every block carries a commit
certificate signed by the whole validator set of its height. Nothing random:
keys come from seeds, salts are fixed, so ``protocol_spec/vectors/chain.json``
is reproducible byte for byte.

    1  submitter -> alice 50; v0 proposes admit_member(mallory)
    2  v1, v2 approve (3 of 4 > 2/3: mallory is a member); submitter posts the job
    3  alice claims 0.125, bob claims 0.25
    4  the job expires (empty block at its expiry): alice's turn, REVEAL
    5  alice reveals: VOTE_COMMIT, 7 eligible voters
    6  bob, carol, v0, v1, v2 commit hidden votes
    7  the commit window ends (VOTE_REVEAL); carol sends evidence that v3 equivocated:
       v3 banned, its credits burned, its removal scheduled
    8  the five voters open their votes: valid, alice is paid, voters rewarded, rest refunded;
       v3 leaves the validator set at the end of the block
    9  an empty block decided by v0..v2 alone
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from chain.blocks import Block
from chain.consensus.certificate import CommitCertificate, certificate_from_precommits
from chain.consensus.messages import PRECOMMIT, PREVOTE, sign_vote
from chain.consensus.validators import ValidatorSet
from chain.crypto import PrivateKey, address_to_text
from chain.encoding import encode
from chain.genesis import Genesis, genesis_state
from chain.governance.bodies import (
    Evidence,
    GovernanceAction,
    GovernanceApprove,
    GovernancePropose,
)
from chain.jobspec import JobSpec
from chain.state import Change, State
from chain.train.bodies import (
    ClaimLoss,
    PostJob,
    RevealModel,
    VoteCommit,
    VoteReveal,
    model_commitment,
    vote_commitment,
)
from chain.transactions import SignedTransaction, Transfer, sign_transaction
from chain.transition import advance, apply_block, build_block
from chain.types import Address, Amount, Hash32, Height, Round, TimeMs
from chain.verifiers.bodies import VerifierJoin, VerifierLeave
from tests.ledger.harness import job_spec

CHAIN_ID = "vector-chain"
GENESIS_TIME = 1_700_000_000_000
VALIDATORS = ("v0", "v1", "v2", "v3")
MEMBERS = ("submitter", "alice", "bob", "carol")
VOTERS = ("bob", "carol", "v0", "v1", "v2")
MEASURED_LOSS = 0.126


def seed_of(name: str) -> str:
    """The key seed of a name (``PrivateKey.from_seed``): validators have their own prefix."""
    return f"validator-{name[1:]}" if name in VALIDATORS else name


def story_keys() -> dict[str, PrivateKey]:
    names = (*VALIDATORS, *MEMBERS, "mallory", "erin")
    return {n: PrivateKey.from_seed(seed_of(n).encode()) for n in names}


def story_genesis(keys: dict[str, PrivateKey]) -> Genesis:
    balances = {address_to_text(keys[n].address): 1_000 for n in (*VALIDATORS, *MEMBERS)}
    balances[address_to_text(keys["mallory"].address)] = 300
    balances[address_to_text(keys["erin"].address)] = 0
    return Genesis.from_json({
        "chain_id": CHAIN_ID,
        "genesis_time_ms": GENESIS_TIME,
        "validators": [{"pubkey": keys[v].public_key.hex(), "power": 1, "name": v}
                       for v in VALIDATORS],
        "members": [address_to_text(keys[n].address) for n in MEMBERS],
        "balances": balances,
        "params": {"validator_change_delay": 2},
        "verifiers": [address_to_text(keys[n].address) for n in (*VALIDATORS, *MEMBERS)],
    })


def story_spec() -> JobSpec:
    return job_spec(bounty=100, expiry_ms=GENESIS_TIME + 10_000, voter_reward=6, max_turns=2,
                    window_ms=2_000)


def salt(label: str) -> bytes:
    """A fixed 32-byte salt per purpose: SHA-256 of the label."""
    return hashlib.sha256(label.encode()).digest()


def model_hash(name: str) -> Hash32:
    return Hash32(hashlib.sha256(f"model of {name}".encode()).digest())


@dataclass(frozen=True, slots=True)
class StoryBlock:
    block: Block
    certificate: CommitCertificate
    validator_set: ValidatorSet
    """The set of this height: the one that signed the certificate."""
    changes: list[Change]
    state_root: Hash32
    note: str


@dataclass(slots=True)
class Story:
    keys: dict[str, PrivateKey]
    genesis: Genesis
    state: State
    blocks: list[StoryBlock] = field(default_factory=list)
    commitments: dict[str, Any] = field(default_factory=dict)
    _nonces: dict[str, int] = field(default_factory=dict)

    def tx(self, name: str, body: Any) -> SignedTransaction:
        nonce = self._nonces.get(name, 0)
        self._nonces[name] = nonce + 1
        return sign_transaction(self.keys[name], CHAIN_ID, nonce, body)

    def block(self, note: str, *txs: SignedTransaction, at: int) -> Block:
        validator_set = ValidatorSet.from_members(
            (v.pubkey, v.power) for v in self.state.validators().values())
        height = Height(self.state.height + 1)
        proposer = validator_set.proposer(height, Round(0)).address
        block, _, dropped = build_block(self.state, txs, TimeMs(at), proposer)
        if dropped:
            raise AssertionError(f"story block {height} dropped {[str(e) for _, e in dropped]}")
        output = apply_block(self.state, Block.decode(block.encode()))
        advance(self.state, block, output)
        signers = [k for k in self.keys.values() if k.address in validator_set]
        certificate = certificate_from_precommits(
            sign_vote(k, CHAIN_ID, PRECOMMIT, height, Round(0), block.hash) for k in signers)
        self.blocks.append(StoryBlock(block, certificate, validator_set, output.changes,
                                      output.state_root, note))
        return block

    def addr(self, name: str) -> Address:
        return self.keys[name].address


def equivocation(keys: dict[str, PrivateKey], name: str) -> Evidence:
    """Two prevotes of ``name`` at height 2, round 0, for two different blocks, in wire order."""
    one = sign_vote(keys[name], CHAIN_ID, PREVOTE, Height(2), Round(0), Hash32(b"\x01" * 32))
    two = sign_vote(keys[name], CHAIN_ID, PREVOTE, Height(2), Round(0), Hash32(b"\x02" * 32))
    a, b = sorted([encode(one.to_wire()), encode(two.to_wire())])
    return Evidence(a, b)


def tell_story() -> Story:
    keys = story_keys()
    genesis = story_genesis(keys)
    s = Story(keys, genesis, genesis_state(genesis))
    t = GENESIS_TIME
    propose = s.tx("v0", GovernancePropose(GovernanceAction("admit_member", s.addr("mallory"))))
    s.block("transfer; governance proposal (1 of 4 approvals)",
            s.tx("submitter", Transfer(keys["alice"].address, Amount(50))), propose, at=t + 1_000)
    post = s.tx("submitter", PostJob(story_spec()))
    s.block("two approvals execute the proposal; a job is posted",
            s.tx("v1", GovernanceApprove(propose.hash)),
            s.tx("v2", GovernanceApprove(propose.hash)), post, at=t + 2_000)
    job_id = post.hash
    claims = {"alice": 0.125, "bob": 0.25}
    claim_txs = []
    for name, loss in claims.items():
        commitment = model_commitment(job_id, s.addr(name), model_hash(name), salt(f"{name}/claim"))
        claim_txs.append(s.tx(name, ClaimLoss(job_id, loss, commitment)))
    s.block("two claims", *claim_txs, at=t + 3_000)
    s.block("expiry: alice's turn (REVEAL)", at=story_spec().expiry_ms)
    s.block("alice reveals: VOTE_COMMIT",
            s.tx("alice", RevealModel(job_id, model_hash("alice"), salt("alice/claim"))),
            at=t + 11_000)
    votes = []
    for voter in VOTERS:
        c = vote_commitment(job_id, s.addr("alice"), s.addr(voter), True, MEASURED_LOSS,
                            salt(f"{voter}/vote"))
        votes.append(s.tx(voter, VoteCommit(job_id, s.addr("alice"), c)))
    vote_block = s.block("five of seven eligible voters commit", *votes, at=t + 12_000)
    evidence = s.tx("carol", equivocation(keys, "v3"))
    s.block("commit window ends (VOTE_REVEAL); evidence bans v3", evidence, at=t + 13_000)
    s.block("votes opened: valid verdict, alice paid; v3 leaves the set",
            *(s.tx(v, VoteReveal(job_id, s.addr("alice"), True, MEASURED_LOSS,
                                 salt(f"{v}/vote"))) for v in VOTERS), at=t + 14_000)
    s.block("decided by v0..v2; mallory opts in to verify, bob opts out",
            s.tx("mallory", VerifierJoin()), s.tx("bob", VerifierLeave()), at=t + 15_000)
    s.commitments = {
        "model": {
            "inputs": {"job_id": job_id.hex(), "claimer": s.addr("alice").hex(),
                       "model_hash": model_hash("alice").hex(), "salt": salt("alice/claim").hex()},
            "commitment": model_commitment(job_id, s.addr("alice"), model_hash("alice"),
                                           salt("alice/claim")).hex(),
            "carried_by_tx": claim_txs[0].hash.hex(),
        },
        "vote": {
            "inputs": {"job_id": job_id.hex(), "claimer": s.addr("alice").hex(),
                       "voter": s.addr("bob").hex(), "valid": True,
                       "measured_loss": MEASURED_LOSS, "salt": salt("bob/vote").hex()},
            "commitment": vote_commitment(job_id, s.addr("alice"), s.addr("bob"), True,
                                          MEASURED_LOSS, salt("bob/vote")).hex(),
            "carried_by_tx": vote_block.txs[0].hash.hex(),
        },
    }
    return s
