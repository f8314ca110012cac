"""train/v3 jobs on a real ledger: publish, race, expiry, hidden reveal, holdout votes.

The same driver as world.py (signed transactions in real blocks built by
``chain.transition``): the split, the finalists, the hidden-loss agreement, the
winner, the forfeited deposits and the voter rewards are the ledger's own
[HOLDOUT-*]. What lives here is ground truth (public and hidden loss of each
model, whether a revealed hidden part matches its root) and costs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from bench.incentive_sim.agents import Vote, challenge_loss, vote
from bench.incentive_sim.driver import BLOCK_MS, ChainDriver, Voting, job_spec
from bench.incentive_sim.holdout_agents import (
    HOLDOUT_STRATEGIES,
    HoldoutChoice,
    HoldoutEconomy,
    HStrategy,
    HVote,
    HWork,
    Submitter,
    Truth,
    holdout_vote,
    model_truth,
)
from chain.jobspec import TRAIN_V3, DataRef, Holdout, JobSpec
from chain.records import Job, JobStatus, Outcome, Params
from chain.train.bodies import PostJob, VoteCommit
from chain.train.challenge import challenge_seed
from chain.train.holdout.bodies import (
    HoldoutPublish,
    HoldoutReveal,
    HoldoutVoteReveal,
    holdout_vote_commitment,
)
from chain.train.holdout.records import HoldoutState
from chain.types import Amount, Hash32

MEMBER_BALANCE = 1_000
PUBLIC = DataRef(Hash32(b"\x21" * 32), 1000)
HIDDEN = DataRef(Hash32(b"\x22" * 32), 1000)
FORGED = DataRef(Hash32(b"\x2f" * 32), 1000)
"""A hidden part that does not match the root (the mismatched reveal)."""


@dataclass(frozen=True, slots=True)
class HoldoutScenario:
    name: str
    adversaries: tuple[tuple[str, int], ...] = ()
    members: int = 12
    voting: Voting = Voting(claim_blocks=6)
    economy: HoldoutEconomy = HoldoutEconomy()
    finalists: int = 2
    deposit: int = 100
    """[HOLDOUT-POST.1]: voter_reward x max_turns + 1 (33 x 3 + 1), the least allowed."""
    tie_tolerance: float = 0.02
    submitter: Submitter = Submitter.HONEST
    """What the second submitter does (the first is always honest)."""
    post_every: int = 2
    verifier_bond: int = 10
    hidden_challenge: bool = True
    """Voters answer the hidden challenge [HOLDOUT-CHALLENGE.1]; False: holdout votes as
    before the rule (7 elements, paid by [VOTE-REWARD.1]), for the before/after figures."""


def v3_spec(sc: HoldoutScenario, expiry_ms: int, serial: int) -> JobSpec:
    window = sc.voting.window_blocks * BLOCK_MS
    return replace(job_spec(sc.voting, expiry_ms, serial), kind=TRAIN_V3,
                   data=(("train", DataRef(Hash32(b"\x20" * 32), 500)),),
                   holdout=Holdout(Hash32(b"\x23" * 32), 10, 500, sc.finalists,
                                   Amount(sc.deposit), window, sc.tie_tolerance))


@dataclass
class HBook:
    strategy: HStrategy
    start_wealth: int
    train_cost: float = 0.0
    eval_cost: float = 0.0
    end_wealth: int = 0
    won: int = 0


@dataclass
class HClaim:
    name: str
    model_hash: bytes
    salt: bytes
    truth: Truth
    claimed: float
    work: HWork


@dataclass
class HTurn:
    claimer: str
    live: bool
    seed: bytes
    choices: dict[str, HoldoutChoice] = field(default_factory=dict)
    salts: dict[str, bytes] = field(default_factory=dict)
    sent: set[str] = field(default_factory=set)


@dataclass
class HJob:
    serial: int
    submitter: str
    claims: dict[str, HClaim] = field(default_factory=dict)
    chosen: bool = False
    published: bool = False
    hidden_sent: bool = False
    revealed: set[str] = field(default_factory=set)
    turns: dict[tuple[str, int], HTurn] = field(default_factory=dict)
    verdicts_seen: int = 0
    settled: bool = False
    value: float = 0.0
    """What the best model the submitter received on this job is worth to it."""


@dataclass
class HTally:
    scenario: HoldoutScenario
    jobs: int
    books: dict[str, HBook]
    submitters: dict[str, dict[str, float]] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    settled: dict[str, int] = field(default_factory=dict)
    holdout: dict[str, int] = field(default_factory=dict)
    """Final holdout status of every job (verified, withheld, rejected...)."""
    honest_slashed: int = 0
    deserving_jobs: int = 0
    honest_paid_jobs: int = 0
    overfit_wins: int = 0
    evaluations: int = 0
    rejected: dict[str, int] = field(default_factory=dict)


class HoldoutWorld:
    """Runs one train/v3 scenario for ``jobs`` jobs with seed ``seed``."""

    def __init__(self, sc: HoldoutScenario, jobs: int, seed: int) -> None:
        self.sc, self.jobs, self.seed = sc, jobs, seed
        self.econ = sc.economy
        strategies = [HOLDOUT_STRATEGIES[n] for n, k in sc.adversaries for _ in range(k)]
        if len(strategies) >= sc.members:
            raise ValueError(f"{sc.name}: no honest member left")
        strategies += [HOLDOUT_STRATEGIES["honest"]] * (sc.members - len(strategies))
        self.strategy = {f"m{i:02d}": s for i, s in enumerate(strategies)}
        self.submitters = ("sub_a", "sub_b")
        v = sc.voting
        escrow = v.bounty + v.voter_reward * v.max_turns + sc.deposit
        balances = {n: MEMBER_BALANCE for n in self.strategy}
        balances.update({s: escrow * (jobs // 2 + 2) for s in self.submitters})
        self.d = ChainDriver(verifiers=self.strategy, members=(*self.strategy, *self.submitters),
                             outsiders=(), balances=balances,
                             params=Params(verifier_bond=sc.verifier_bond), seed=seed)
        self.books = {n: HBook(s, self.d.wealth(n)) for n, s in self.strategy.items()}
        self.sub_start = {s: self.d.wealth(s) for s in self.submitters}
        self.sub_value = {s: 0.0 for s in self.submitters}
        self.info: dict[bytes, HJob] = {}
        self.truth: dict[bytes, Truth] = {}
        self.posted = 0
        self.tally = HTally(sc, jobs, self.books)

    def run(self) -> HTally:
        block, posting = 0, None
        limit = self.jobs * self.sc.post_every + 400 * self.sc.voting.window_blocks
        while block < limit and (self.posted < self.jobs or self.d.active_jobs()):
            if self.posted < self.jobs and block % self.sc.post_every == 0:
                posting = self._post()
            active = self.d.active_jobs()
            for job in active:
                if job.job_id in self.info:
                    self._act(job, self.info[job.job_id])
            included = self.d.step()
            if posting is not None:
                post = next((tx for tx in included if isinstance(tx.body, PostJob)), None)
                if post is not None:
                    self.info[post.hash] = posting
                posting = None
            for job in active:
                if job.job_id in self.info:
                    self._observe(self.d.job(job.job_id), self.info[job.job_id])
            block += 1
        return self._finish()

    def _post(self) -> HJob:
        submitter = self.submitters[self.posted % 2]
        expiry = self.d.now + BLOCK_MS * (1 + self.sc.voting.claim_blocks)
        self.d.post_job(submitter, v3_spec(self.sc, expiry, self.posted))
        self.posted += 1
        return HJob(self.posted - 1, submitter)

    def _holdout(self, job: Job) -> HoldoutState:
        state = self.d.state.holdout(job.job_id)
        if state is None:
            raise KeyError(f"job {job.job_id.hex()} has no holdout record")
        return state

    def _policy(self, job: Job) -> Submitter:
        info = self.info[job.job_id]
        return self.sc.submitter if info.submitter == "sub_b" else Submitter.HONEST

    # --- acting ----------------------------------------------------------------------
    def _act(self, job: Job, info: HJob) -> None:
        holdout = self._holdout(job)
        if job.status == JobStatus.OPEN:
            if holdout.seed is not None and not info.published:
                info.published = True
                self.d.send(info.submitter, HoldoutPublish(Hash32(job.job_id), PUBLIC))
            elif holdout.public is not None and not info.chosen \
                    and self.d.now + BLOCK_MS < job.spec.expiry_ms:
                self._claim(job, info)
        elif job.status == JobStatus.HOLDOUT and not info.hidden_sent:
            info.hidden_sent = True
            policy = self._policy(job)
            if policy != Submitter.WITHHOLD:
                part = FORGED if policy == Submitter.MISMATCH else HIDDEN
                self.d.send(info.submitter, HoldoutReveal(Hash32(job.job_id), part))
        elif job.status == JobStatus.REVEAL and job.current is not None:
            name = self.d.name_of(job.current)
            claim = info.claims.get(name)
            if claim is not None and claim.work != HWork.NOSHOW and name not in info.revealed:
                info.revealed.add(name)
                self.d.reveal(name, job.job_id, claim.model_hash, claim.salt)
        elif job.status == JobStatus.VOTE_COMMIT:
            self._vote_commit(job, info, holdout)
        elif job.status == JobStatus.VOTE_REVEAL:
            self._vote_reveal(job, info)

    def _claim(self, job: Job, info: HJob) -> None:
        """Workers race on the public part once it is published [HOLDOUT-PUBLISH.1]; the
        stream is per job, so a run and its all-honest counterpart see the same draws."""
        info.chosen = True
        jr = random.Random(f"v3job-{self.seed}-{info.serial}")
        base_econ = self.econ.base
        chosen = jr.sample(sorted(self.strategy),
                           min(base_econ.claimers_per_job, len(self.strategy)))
        base = jr.uniform(*base_econ.base_loss)
        for name in chosen:
            reached = base + abs(jr.gauss(0.0, base_econ.loss_spread))
            model, salt = jr.randbytes(32), jr.randbytes(32)
            work = self.strategy[name].work
            truth = model_truth(work, reached, self.econ, jr)
            if self.d.banned(name):
                continue
            self.truth[model] = truth
            info.claims[name] = HClaim(name, model, salt, truth, truth.public, work)
            self.books[name].train_cost += base_econ.train_cost
            self.d.claim(name, job.job_id, truth.public,
                         self.d.commitment_for(name, job.job_id, model, salt))

    def _turn(self, job: Job, info: HJob, holdout: HoldoutState) -> HTurn:
        claimer = self.d.name_of(job.current) if job.current else ""
        key = (claimer, len(job.verdicts))
        if key not in info.turns:
            seed = challenge_seed(self.d.state.block_hash, job.job_id, job.current or b"",
                                  job.model_hash or b"")
            info.turns[key] = HTurn(claimer, holdout.live, seed)
            if job.model_hash is not None and (t := self.truth.get(job.model_hash)):
                info.value = max(info.value, self.econ.base.model_value if t.generalises
                                 else self.econ.overfit_value)
        return info.turns[key]

    def _vote_commit(self, job: Job, info: HJob, holdout: HoldoutState) -> None:
        turn = self._turn(job, info, holdout)
        claim = info.claims.get(turn.claimer)
        if claim is None or job.model_hash is None or job.current is None:
            return
        truth = self.truth.get(job.model_hash)
        tol = job.spec.loss_tolerance
        part_ok = self._policy(job) != Submitter.MISMATCH
        for address in job.eligible_voters:
            name = self.d.name_of(address)
            if name in turn.choices or name not in self.strategy or self.d.banned(name):
                continue
            policy = self.strategy[name].vote
            rng = random.Random(f"v3noise-{self.seed}-{info.serial}-{len(job.verdicts)}-{name}")
            salt = self.d.salt()
            turn.salts[name] = salt
            if turn.live:
                answers = None if truth is None or not self.sc.hidden_challenge else (
                    challenge_loss(job.model_hash, turn.seed, truth.public, self.econ.base),
                    challenge_loss(job.model_hash, b"hidden" + turn.seed, truth.hidden,
                                   self.econ.base))
                choice = holdout_vote(policy, claimed=claim.claimed, truth=truth,
                                      part_ok=part_ok, tolerance=tol, econ=self.econ, rng=rng,
                                      answers=answers)
                commitment = holdout_vote_commitment(
                    job.job_id, job.current, address, choice.valid, choice.measured,
                    choice.holdout_ok, choice.hidden, salt, choice.hidden_challenge,
                    choice.public_challenge)
                self.d.send(name, VoteCommit(Hash32(job.job_id), job.current, commitment))
                turn.choices[name] = choice
            else:  # withheld or rejected: the turns run as train/v2's, with the challenge
                plain = Vote.LAZY_ECHO if policy == HVote.LAZY else Vote.HONEST
                answer = None if truth is None else \
                    challenge_loss(job.model_hash, turn.seed, truth.public, self.econ.base)
                v = vote(plain, claimed=claim.claimed,
                         true_loss=None if truth is None else truth.public, tolerance=tol,
                         coalition_claim=False, challenge_truth=answer, economy=self.econ.base,
                         rng=rng)
                if v is None:
                    continue
                # a plain vote: ``hidden`` carries the challenge answer [VOTE-CHALLENGE.1]
                turn.choices[name] = HoldoutChoice(v.valid, v.measured, True, v.challenge,
                                                   int(v.evaluated))
                self.d.vote_commit(name, job.job_id, job.current, v.valid, v.measured, salt,
                                   v.challenge)
            evals = turn.choices[name].evaluations
            self.books[name].eval_cost += evals * self.econ.base.eval_cost
            self.tally.evaluations += evals

    def _vote_reveal(self, job: Job, info: HJob) -> None:
        key = (self.d.name_of(job.current) if job.current else "", len(job.verdicts))
        turn = info.turns.get(key)
        if turn is None or job.current is None:
            return
        for record in job.votes:
            name = self.d.name_of(record.voter)
            if record.revealed or name in turn.sent or name not in turn.choices:
                continue
            turn.sent.add(name)
            c = turn.choices[name]
            if turn.live:
                self.d.send(name, HoldoutVoteReveal(Hash32(job.job_id), job.current, c.valid,
                                                    c.measured, c.holdout_ok, c.hidden,
                                                    turn.salts[name], c.hidden_challenge,
                                                    c.public_challenge))
            else:
                self.d.vote_reveal(name, job.job_id, job.current, c.valid, c.measured,
                                   turn.salts[name], c.hidden)

    # --- observing -------------------------------------------------------------------
    def _observe(self, job: Job, info: HJob) -> None:
        t = self.tally
        for verdict in job.verdicts[info.verdicts_seen:]:
            info.verdicts_seen += 1
            t.outcomes[verdict.outcome.value] = t.outcomes.get(verdict.outcome.value, 0) + 1
            claim = info.claims.get(self.d.name_of(verdict.claimer))
            if verdict.outcome == Outcome.CHEAT and claim is not None \
                    and claim.work != HWork.OVERFIT:
                t.honest_slashed += 1  # every claim here states its true public loss
        if info.settled or job.status not in (JobStatus.PAID, JobStatus.REFUNDED,
                                              JobStatus.BROKEN):
            return
        info.settled = True
        self.sub_value[info.submitter] += info.value
        t.settled[job.status.value] = t.settled.get(job.status.value, 0) + 1
        status = self._holdout(job).status.value
        t.holdout[status] = t.holdout.get(status, 0) + 1
        winner = info.claims.get(self.d.name_of(job.winner)) if job.winner else None
        if winner is not None:
            self.books[winner.name].won += 1
            t.overfit_wins += winner.work == HWork.OVERFIT
        if any(c.work == HWork.HONEST for c in info.claims.values()):
            # Paid: the bounty went to a model that generalises, i.e. the hidden winner
            # (an overfit model never wins on the hidden part against one).
            t.deserving_jobs += 1
            t.honest_paid_jobs += winner is not None and winner.work == HWork.HONEST

    def _finish(self) -> HTally:
        t = self.tally
        t.rejected = dict(self.d.rejected)
        for name, book in self.books.items():
            book.end_wealth = self.d.wealth(name)
        for s in self.submitters:
            spent = self.sub_start[s] - self.d.wealth(s)
            t.submitters[s] = {"credits_spent": spent, "model_value": self.sub_value[s],
                               "profit": self.sub_value[s] - spent}
        return t


def run_holdout(sc: HoldoutScenario, jobs: int, seed: int) -> HTally:
    return HoldoutWorld(sc, jobs, seed).run()
