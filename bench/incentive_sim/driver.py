"""A chain driven in memory through the real rules: signed transactions in real blocks.

The simulation never touches ``State`` itself: every move an agent makes is a
``SignedTransaction`` that ``chain.transition.build_block`` executes with the
ledger's own handlers, and every consequence (payment, ban, refund, forfeited
bond) is whatever those rules wrote. Rejected transactions are counted by
their rejection code, as a proposer drops them.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from chain.crypto import PrivateKey, address_to_text
from chain.genesis import Genesis, genesis_state
from chain.jobspec import JobSpec, ParamSpec, ResourceLimits, VotingParams
from chain.records import Job, Params
from chain.state import State
from chain.train.bodies import (
    ClaimLoss,
    PostJob,
    RevealModel,
    VoteCommit,
    VoteReveal,
    model_commitment,
    vote_commitment,
)
from chain.transactions import Body, SignedTransaction, sign_transaction
from chain.transition import SignatureCache, advance, apply_block, build_block
from chain.types import Address, Amount, Hash32, TimeMs
from chain.verifiers.bodies import VerifierJoin

GENESIS_TIME_MS = 1_700_000_000_000
BLOCK_MS = 1_000
"""The simulated block clock: one block per second of block time."""


@dataclass(frozen=True, slots=True)
class Voting:
    """The job parameters a sweep varies (see ledger.md §5 VotingParams)."""

    quorum_permille: int = 667
    supermajority_permille: int = 667
    voter_reward: int = 33
    max_turns: int = 3
    window_blocks: int = 2
    """Each of the reveal, commit and vote-reveal windows, in blocks."""
    claim_blocks: int = 3
    """Blocks between posting and expiry: the time workers have to claim."""
    loss_tolerance: float = 0.01
    bounty: int = 100


def job_spec(voting: Voting, expiry_ms: int, serial: int) -> JobSpec:
    """A train/v1 spec; ``serial`` makes every job (and so its id) distinct."""
    window = voting.window_blocks * BLOCK_MS
    return JobSpec(
        kind="train/v1",
        image_digest=Hash32(serial.to_bytes(32, "big")),
        image_blob=Hash32(b"\x12" * 32),
        image_ref="learningchain/job-template:latest",
        entry_points=(("evaluate", ("python", "/job/evaluate.py")),
                      ("train", ("python", "/job/train.py"))),
        limits=ResourceLimits(memory_mb=512, cpu_millis=1000, time_s=60, disk_mb=64),
        search_space=(ParamSpec("lr", "log_uniform", (1e-4, 1e-1)),),
        bounty=Amount(voting.bounty),
        expiry_ms=TimeMs(expiry_ms),
        loss_tolerance=voting.loss_tolerance,
        voting=VotingParams(window, window, window, voting.quorum_permille,
                            voting.supermajority_permille, Amount(voting.voter_reward),
                            voting.max_turns),
        description=f"incentive simulation job {serial}",
    )


class ChainDriver:
    """One in-memory ledger, named keys, automatic nonces, one ``step`` per block."""

    def __init__(self, *, verifiers: Iterable[str], members: Iterable[str],
                 outsiders: Iterable[str], balances: dict[str, int], params: Params,
                 seed: int, verify_blocks: bool = False) -> None:
        self.verify_blocks = verify_blocks
        """Also apply every block as a validator does (``apply_block``: header, tx root,
        re-execution, state root) before committing it."""
        self.rng = random.Random(f"driver-{seed}")
        members = tuple(members)
        names = ("validator", *members, *outsiders)
        self.keys = {n: PrivateKey.from_seed(f"sim-{seed}-{n}".encode()) for n in names}
        self.names = {k.address: n for n, k in self.keys.items()}
        doc = {
            "chain_id": f"incentive-sim-{seed}",
            "genesis_time_ms": GENESIS_TIME_MS,
            "validators": [{"pubkey": self.keys["validator"].public_key.hex(), "power": 1,
                            "name": "validator"}],
            "members": [address_to_text(self.keys[n].address) for n in members],
            "balances": {address_to_text(self.keys[n].address): balances.get(n, 0)
                         for n in names if balances.get(n, 0) > 0},
            "params": asdict(params),
            "verifiers": [address_to_text(self.keys[n].address) for n in verifiers],
        }
        self.genesis = Genesis.from_json(doc)
        self.state: State = genesis_state(self.genesis)
        self.cache = SignatureCache()
        self._queue: list[tuple[str, Body]] = []
        self.rejected: Counter[str] = Counter()
        self.rejected_by: Counter[tuple[str, str]] = Counter()
        self.included = 0

    # --- reading ---------------------------------------------------------------------
    def addr(self, name: str) -> Address:
        return self.keys[name].address

    def name_of(self, address: Address) -> str:
        return self.names[address]

    def balance(self, name: str) -> int:
        return self.state.account(self.addr(name)).balance

    def bond(self, name: str) -> int:
        return self.state.verifier_bond(self.addr(name)) or 0

    def wealth(self, name: str) -> int:
        """Balance plus verifier bond: what a member holds on the ledger."""
        return self.balance(name) + self.bond(name)

    def banned(self, name: str) -> bool:
        return self.state.account(self.addr(name)).banned

    def job(self, job_id: bytes) -> Job:
        job = self.state.job(job_id)
        if job is None:
            raise KeyError(f"no job {job_id.hex()}")
        return job

    def active_jobs(self) -> list[Job]:
        return [j for k in self.state.keys("active_job") if (j := self.state.job(k)) is not None]

    @property
    def now(self) -> int:
        return self.state.time_ms

    # --- sending ---------------------------------------------------------------------
    def send(self, name: str, body: Body) -> None:
        """Queues ``body`` from ``name`` for the next block; it is signed when the block is
        built, with the sender's next nonce (as a node re-signs after a rejection)."""
        self._queue.append((name, body))

    def _signed(self, queue: list[tuple[str, Body]]) -> list[SignedTransaction]:
        nonces: dict[str, int] = {}
        out = []
        for name, body in queue:
            nonce = nonces.get(name, self.state.account(self.addr(name)).nonce)
            nonces[name] = nonce + 1
            out.append(sign_transaction(self.keys[name], self.state.chain_id, nonce, body))
        return out

    def salt(self) -> bytes:
        return self.rng.randbytes(32)

    def post_job(self, name: str, spec: JobSpec) -> None:
        self.send(name, PostJob(spec))

    def claim(self, name: str, job_id: bytes, loss: float, commitment: Hash32) -> None:
        self.send(name, ClaimLoss(Hash32(job_id), loss, commitment))

    def commitment_for(self, name: str, job_id: bytes, model_hash: bytes, salt: bytes) -> Hash32:
        return model_commitment(job_id, self.addr(name), model_hash, salt)

    def reveal(self, name: str, job_id: bytes, model_hash: bytes, salt: bytes) -> None:
        self.send(name, RevealModel(Hash32(job_id), Hash32(model_hash), salt))

    def vote_commit(self, name: str, job_id: bytes, claimer: Address, valid: bool,
                    measured: float | None, salt: bytes,
                    challenge: float | None = None) -> None:
        c = vote_commitment(job_id, claimer, self.addr(name), valid, measured, salt, challenge)
        self.send(name, VoteCommit(Hash32(job_id), claimer, c))

    def vote_reveal(self, name: str, job_id: bytes, claimer: Address, valid: bool,
                    measured: float | None, salt: bytes,
                    challenge: float | None = None) -> None:
        """[VOTE-CHALLENGE.1] ``challenge``: the answer to the turn's challenge, if any."""
        self.send(name, VoteReveal(Hash32(job_id), claimer, valid, measured, salt, challenge))

    def verifier_join(self, name: str) -> None:
        self.send(name, VerifierJoin())

    # --- blocks ----------------------------------------------------------------------
    def step(self) -> list[SignedTransaction]:
        """Builds the next block from the queue with the real rules and commits it.

        A transaction the rules reject is counted by its code (overall and by sender)
        and left out; the block is then rebuilt without it, so that the sender's later
        transactions carry the right nonces, as a node re-signs them. Returns the
        transactions the block included.
        """
        time_ms = TimeMs(self.state.time_ms + BLOCK_MS)
        queue = self._queue
        while True:
            txs = self._signed(queue)
            block, output, dropped = build_block(self.state, txs, time_ms,
                                                 self.addr("validator"), self.cache)
            failed = {id(tx) for tx, e in dropped if getattr(e, "code", "") != "bad_nonce"}
            if not failed:
                break
            for (name, _), tx in zip(queue, txs, strict=True):
                if id(tx) in failed:
                    error = next(e for t, e in dropped if t is tx)
                    code = getattr(error, "code", type(error).__name__)
                    self.rejected[code] += 1
                    self.rejected_by[(name, code)] += 1
            queue = [item for item, tx in zip(queue, txs, strict=True) if id(tx) not in failed]
        for tx, _ in dropped:  # bad nonces left after the rebuild: counted as such
            self.rejected["bad_nonce"] += 1
            self.rejected_by[(self.name_of(tx.sender), "bad_nonce")] += 1
        if self.verify_blocks:
            output = apply_block(self.state, block, self.cache)
        advance(self.state, block, output)
        self.included += len(block.txs)
        self._queue = []
        return list(block.txs)
