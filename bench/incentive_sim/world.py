"""The simulation loop: members with strategies act on a real ledger, block by block.

Each block, every member looks at the committed state (as a node does) and
sends the transactions its strategy calls for; ``ChainDriver.step`` then
applies them with the real rules. What the ledger cannot know (the true loss
of a model, what training and evaluating cost) lives here, as ground truth
and as costs; the payments, bans, refunds and forfeits are the ledger's own.
No I/O: the result is a ``Tally`` for ``accounting`` to summarise.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from bench.incentive_sim.agents import (
    STRATEGIES,
    Economy,
    Strategy,
    Vote,
    VoteChoice,
    Work,
    challenge_loss,
    claim_loss,
    self_vote,
    vote,
)
from bench.incentive_sim.driver import BLOCK_MS, ChainDriver, Voting, job_spec
from chain.records import Job, JobStatus, Outcome, Params
from chain.train.bodies import PostJob, VoteReveal
from chain.train.challenge import ChallengeAnswer, challenge_seed, turn_rewards
from chain.transactions import SignedTransaction
from chain.types import Address, Hash32

MEMBER_BALANCE = 1_000
PAYING = (Outcome.VALID, Outcome.CHEAT, Outcome.WITHDRAWN, Outcome.INCONSISTENT)


@dataclass(frozen=True, slots=True)
class Scenario:
    """One population and one set of protocol parameters."""

    name: str
    adversaries: tuple[tuple[str, int], ...] = ()
    """(strategy, members) pairs; every other member is honest."""
    members: int = 12
    voting: Voting = Voting()
    economy: Economy = Economy()
    verifier_bond: int = 10
    submitter_voting: Voting | None = None
    """The second submitter's own job parameters (None: ``voting``), e.g. a quorum of
    1000 permille that one withholding verifier could block, which [JOB-POST.1] rejects."""
    withholding_submitter: bool = False
    """The second submitter counts on its colluding verifiers (withholding_voter)
    to force 'no quorum' refunds after it has seen the revealed models."""
    rules: str = "current"
    """'current': voter rewards as the ledger pays them (the challenge rule
    [VOTE-REWARD.2]); 'vote-reward-1': the counterfactual, what the rule it replaced
    [VOTE-REWARD.1] would have paid on the same votes (agreement with the verdict
    alone), to show what the challenge changed."""
    post_every: int = 2
    """Blocks between two job posts."""


@dataclass
class MemberBook:
    strategy: Strategy
    start_wealth: int
    train_cost: float = 0.0
    eval_cost: float = 0.0
    chain_voter_income: int = 0
    counterfactual_voter_income: int = 0
    """What [VOTE-REWARD.1] would have paid (rules 'vote-reward-1' only)."""
    bonds_forfeited: int = 0
    claims: int = 0
    won: int = 0
    banned_at_job: int | None = None
    end_wealth: int = 0


@dataclass
class ClaimInfo:
    name: str
    model_hash: bytes
    salt: bytes
    reached: float | None
    """True loss of the model it holds; None for a copier (it holds none)."""
    claimed: float
    honest: bool
    revealed: bool = False


@dataclass
class TurnInfo:
    claimer: str
    seed: bytes
    choices: dict[str, VoteChoice] = field(default_factory=dict)
    salts: dict[str, bytes] = field(default_factory=dict)
    opened: set[str] = field(default_factory=set)
    reveal_sent: set[str] = field(default_factory=set)


@dataclass
class JobInfo:
    serial: int
    submitter: str
    claims: dict[str, ClaimInfo] = field(default_factory=dict)
    claimers_chosen: bool = False
    copied: set[str] = field(default_factory=set)
    revealed_models: set[bytes] = field(default_factory=set)
    turns: dict[tuple[str, int], TurnInfo] = field(default_factory=dict)
    verdicts_seen: int = 0
    settled: JobStatus | None = None
    winner: str | None = None


@dataclass
class Tally:
    """Everything measured in one run."""

    scenario: Scenario
    jobs: int
    books: dict[str, MemberBook]
    submitters: dict[str, dict[str, float]]
    outcomes: dict[str, int]
    settled: dict[str, int]
    honest_slashed: int = 0
    honest_bonds_lost: int = 0
    deserving_jobs: int = 0
    honest_paid_jobs: int = 0
    honest_votes: int = 0
    honest_votes_paid: int = 0
    evaluations: int = 0
    voter_rewards_paid: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    transactions: int = 0
    blocks: int = 0


def _current(job: Job) -> Address:
    if job.current is None:
        raise ValueError(f"job {job.job_id.hex()} has no turn in progress ({job.status})")
    return job.current


class World:
    """Runs one scenario for ``jobs`` jobs with seed ``seed``."""

    def __init__(self, scenario: Scenario, jobs: int, seed: int,
                 verify_blocks: bool = False) -> None:
        self.sc, self.jobs, self.seed = scenario, jobs, seed
        self.rng = random.Random(f"world-{seed}-{scenario.name}")
        self.econ = scenario.economy
        strategies: list[Strategy] = []
        for name, count in scenario.adversaries:
            strategies += [STRATEGIES[name]] * count
        if len(strategies) >= scenario.members:
            raise ValueError(f"{scenario.name}: {len(strategies)} adversaries leave no honest "
                             f"member among {scenario.members}")
        strategies += [STRATEGIES["honest"]] * (scenario.members - len(strategies))
        self.strategy = {f"m{i:02d}": s for i, s in enumerate(strategies)}
        self.outsiders = {n: [f"{n}-sybil{k}" for k in range(s.outsider_keys)]
                          for n, s in self.strategy.items()}
        escrow = max(v.bounty + v.voter_reward * v.max_turns
                     for v in (scenario.voting, scenario.submitter_voting or scenario.voting))
        self.submitters = ("sub_a", "sub_b")
        balances = {n: MEMBER_BALANCE for n in self.strategy}
        balances.update({s: escrow * (jobs // 2 + 2) for s in self.submitters})
        self.d = ChainDriver(
            verifiers=self.strategy, members=(*self.strategy, *self.submitters),
            outsiders=[o for keys in self.outsiders.values() for o in keys],
            balances=balances, params=Params(verifier_bond=scenario.verifier_bond), seed=seed,
            verify_blocks=verify_blocks)
        self.books = {n: MemberBook(s, self.d.wealth(n)) for n, s in self.strategy.items()}
        self.sub_start = {s: self.d.wealth(s) for s in self.submitters}
        self.sub_models = {s: 0 for s in self.submitters}
        self.info: dict[bytes, JobInfo] = {}
        self.truth: dict[bytes, float] = {}
        self.posted = 0
        self.tally = Tally(scenario, jobs, self.books, {}, {}, {})
        self._included_reveals: set[tuple[str, bytes]] = set()
        self._posting: JobInfo | None = None

    # --- the loop --------------------------------------------------------------------
    def run(self) -> Tally:
        block = 0
        limit = self.jobs * self.sc.post_every + 200 * self.sc.voting.window_blocks
        while block < limit and (self.posted < self.jobs or self.d.active_jobs()):
            if self.posted < self.jobs and block % self.sc.post_every == 0:
                self._post()
            active = self.d.active_jobs()
            for job in active:
                self._act(job)
            self._rejoin()
            before = {n: (self.d.wealth(n), self.d.bond(n)) for n in self.strategy}
            included = self.d.step()
            self._note_included(included)
            if self._posting is not None:  # the job id is the posting transaction's id
                post = next((tx for tx in included if isinstance(tx.body, PostJob)), None)
                if post is not None:  # else the ledger rejected it (counted in d.rejected)
                    self.info[post.hash] = self._posting
                self._posting = None
            self._observe([j.job_id for j in active], before)
            block += 1
        self.tally.blocks = block
        return self._finish()

    def _post(self) -> None:
        submitter = self.submitters[self.posted % 2]
        voting = self.sc.voting
        if submitter == "sub_b" and self.sc.submitter_voting is not None:
            voting = self.sc.submitter_voting
        expiry = self.d.now + BLOCK_MS * (1 + voting.claim_blocks)
        self.d.post_job(submitter, job_spec(voting, expiry, self.posted))
        self._posting = JobInfo(self.posted, submitter)
        self.posted += 1

    def _alive(self, name: str) -> bool:
        return not self.d.banned(name)

    # --- acting ----------------------------------------------------------------------
    def _act(self, job: Job) -> None:
        info = self.info.get(job.job_id)
        if info is None:
            return
        if job.status == JobStatus.OPEN:
            self._claim(job, info)
        elif job.status == JobStatus.REVEAL:
            self._reveal(job, info)
        elif job.status == JobStatus.VOTE_COMMIT:
            self._vote_commit(job, info)
        elif job.status == JobStatus.VOTE_REVEAL:
            self._vote_reveal(job, info)

    def _claim(self, job: Job, info: JobInfo) -> None:
        if not info.claimers_chosen:
            info.claimers_chosen = True
            # One stream per job, drawn whoever is banned or deviating: a run and its
            # all-honest counterpart see the same jobs, workers and losses.
            jr = random.Random(f"job-{self.seed}-{info.serial}")
            chosen = jr.sample(sorted(self.strategy),
                               min(self.econ.claimers_per_job, len(self.strategy)))
            low, high = self.econ.base_loss
            base = jr.uniform(low, high)
            for name in chosen:
                reached = base + abs(jr.gauss(0.0, self.econ.loss_spread))
                model, salt = jr.randbytes(32), jr.randbytes(32)
                work = self.strategy[name].work
                if not self._alive(name):
                    continue
                if work == Work.COPY:
                    info.copied.add(name)  # copies once others' claims are on the ledger
                    continue
                self.truth[model] = reached
                claimed = claim_loss(work, reached, self.econ)
                # An exhauster's claims on jobs other than its target are honest ones.
                info.claims[name] = ClaimInfo(name, model, salt, reached, claimed,
                                              honest=work in (Work.HONEST, Work.WITHHOLD,
                                                              Work.EXHAUST))
                self.books[name].train_cost += self.econ.train_cost
                self.books[name].claims += 1
                self.d.claim(name, job.job_id, claimed,
                             self.d.commitment_for(name, job.job_id, model, salt))
            for name in sorted(self.strategy):  # the coalition targets the first job
                if self.strategy[name].work == Work.EXHAUST and info.serial == 0:
                    self._exhaust(job, info, name, base)
            for name in chosen:
                for sybil in self.outsiders[name]:  # unadmitted identities: rejected
                    self.d.claim(sybil, job.job_id, 0.0, Hash32(self.rng.randbytes(32)))
            return
        if self.d.now + BLOCK_MS >= job.spec.expiry_ms:
            return  # the next block closes the claims
        for name in sorted(info.copied):
            on_ledger = [c for c in job.ranked_claims() if c.claimer != self.d.addr(name)]
            if not on_ledger or job.claim_of(self.d.addr(name)) is not None \
                    or not self._alive(name):
                continue
            best = on_ledger[0]  # front-run: the best claim's commitment, a lower loss
            info.claims[name] = ClaimInfo(name, self.rng.randbytes(32), self.rng.randbytes(32),
                                          None, best.loss - 0.001, honest=False)
            self.books[name].claims += 1
            self.d.claim(name, job.job_id, best.loss - 0.001, best.commitment)

    def _exhaust(self, job: Job, info: JobInfo, name: str, base: float) -> None:
        """A sacrificial claim: far below the job's reachable loss, for a model that is
        far worse; it will be revealed, judged a cheat, and use up one of the job's turns."""
        model, salt = self.rng.randbytes(32), self.rng.randbytes(32)
        self.truth[model] = base + 0.3
        claimed = base - 0.1 - 0.001 * len(info.claims)
        info.claims[name] = ClaimInfo(name, model, salt, base + 0.3, claimed, honest=False)
        self.books[name].claims += 1
        self.d.claim(name, job.job_id, claimed,
                     self.d.commitment_for(name, job.job_id, model, salt))

    def _reveal(self, job: Job, info: JobInfo) -> None:
        name = self.d.name_of(job.current) if job.current else None
        if name is None or name not in info.claims or info.claims[name].revealed:
            return
        claim = info.claims[name]
        work = self.strategy[name].work
        if work == Work.WITHHOLD:
            return
        claim.revealed = True  # a copier tries its own bytes once: commitment_mismatch
        self.d.reveal(name, job.job_id, claim.model_hash, claim.salt)

    def _turn(self, job: Job, info: JobInfo) -> TurnInfo:
        claimer = self.d.name_of(job.current) if job.current else ""
        key = (claimer, len(job.verdicts))
        if key not in info.turns:
            # [VOTE-CHALLENGE.1] first seen in VOTE_COMMIT, right after the block that
            # included the reveal: the tip's hash is that block's hash.
            seed = challenge_seed(self.d.state.block_hash, job.job_id, job.current or b"",
                                  job.model_hash or b"")
            info.turns[key] = TurnInfo(claimer, seed)
            if job.model_hash is not None:
                info.revealed_models.add(job.model_hash)
        return info.turns[key]

    def _vote_commit(self, job: Job, info: JobInfo) -> None:
        turn = self._turn(job, info)
        claim = info.claims.get(turn.claimer)
        if claim is None or job.model_hash is None:
            return
        true_loss = self.truth.get(job.model_hash)
        tol = job.spec.loss_tolerance
        challenge = None if true_loss is None else \
            challenge_loss(job.model_hash, turn.seed, true_loss, self.econ)
        coalition = self.strategy[turn.claimer].vote == Vote.CARTEL
        voters = [self.d.name_of(a) for a in job.eligible_voters]
        for name in voters:
            if name in turn.choices or not self._alive(name):
                continue
            policy = self.strategy[name].vote
            if policy == Vote.NOSHOW and self.sc.withholding_submitter \
                    and info.submitter != "sub_b":
                policy = Vote.HONEST  # withholds only to refund its own submitter's jobs
            choice = vote(policy, claimed=claim.claimed, true_loss=true_loss,
                          tolerance=tol, coalition_claim=coalition, challenge_truth=challenge,
                          economy=self.econ, rng=self._noise(info, job, name))
            if choice is None:
                turn.choices[name] = VoteChoice(False, None, False)  # withheld: never sent
                continue
            self._commit(job, turn, name, choice)
            for sybil in self.outsiders[name]:  # unadmitted identities cannot vote
                self.d.vote_commit(sybil, job.job_id, _current(job), False, None,
                                   self.d.salt())
        owner = turn.claimer
        if owner not in turn.choices and claim.reached is not None and self._alive(owner):
            own = self_vote(self.strategy[owner].work, claimed=claim.claimed,
                            true_loss=claim.reached, tolerance=tol, economy=self.econ,
                            rng=self._noise(info, job, owner))
            if own is not None:
                self._commit(job, turn, owner, own)

    def _noise(self, info: JobInfo, job: Job, name: str) -> random.Random:
        """The measurement noise of one evaluation, the same in every run of this seed."""
        return random.Random(f"noise-{self.seed}-{info.serial}-{len(job.verdicts)}-{name}")

    def _commit(self, job: Job, turn: TurnInfo, name: str, choice: VoteChoice) -> None:
        turn.choices[name] = choice
        turn.salts[name] = self.d.salt()
        if choice.evaluated:
            self.books[name].eval_cost += self.econ.eval_cost
            self.tally.evaluations += 1
        self.d.vote_commit(name, job.job_id, _current(job), choice.valid,
                           choice.measured, turn.salts[name], choice.challenge)

    def _vote_reveal(self, job: Job, info: JobInfo) -> None:
        turn = self._turn(job, info)
        for record in job.votes:
            name = self.d.name_of(record.voter)
            if record.revealed or name in turn.reveal_sent or name not in turn.salts:
                continue
            choice = turn.choices[name]
            turn.reveal_sent.add(name)
            self.d.vote_reveal(name, job.job_id, _current(job), choice.valid,
                               choice.measured, turn.salts[name], choice.challenge)

    def _rejoin(self) -> None:
        """A withholding voter re-bonds after each forfeit, to keep its place in E."""
        for name, strategy in self.strategy.items():
            if strategy.vote == Vote.NOSHOW and self._alive(name) and self.d.bond(name) == 0 \
                    and self.d.balance(name) >= self.sc.verifier_bond:
                self.d.verifier_join(name)

    # --- observing -------------------------------------------------------------------
    def _note_included(self, included: list[SignedTransaction]) -> None:
        self._included_reveals = {(self.d.name_of(tx.sender), bytes(tx.body.job_id))
                                  for tx in included if isinstance(tx.body, VoteReveal)}

    def _observe(self, job_ids: list[Hash32], before: dict[str, tuple[int, int]]) -> None:
        bounties: dict[str, int] = {}
        for job_id in job_ids:
            job, info = self.d.job(job_id), self.info[job_id]
            for turn in info.turns.values():
                for name in list(turn.reveal_sent - turn.opened):
                    if (name, bytes(job_id)) in self._included_reveals:
                        turn.opened.add(name)
            for verdict in job.verdicts[info.verdicts_seen:]:
                self._judge(job, info, verdict.outcome, self.d.name_of(verdict.claimer),
                            info.verdicts_seen)
                info.verdicts_seen += 1
            if job.status in (JobStatus.PAID, JobStatus.REFUNDED, JobStatus.BROKEN) \
                    and info.settled is None:
                info.settled = job.status
                if job.winner is not None:
                    info.winner = self.d.name_of(job.winner)
                    bounties[info.winner] = bounties.get(info.winner, 0) + job.paid
                    self.books[info.winner].won += 1
                self._settle(job, info)
        for name, (wealth, bond) in before.items():
            book = self.books[name]
            if self.d.banned(name):
                if book.banned_at_job is None:
                    book.banned_at_job = self.posted
                continue
            forfeited = bond if bond and self.d.bond(name) == 0 else 0
            book.bonds_forfeited += forfeited
            delta = self.d.wealth(name) - wealth
            book.chain_voter_income += delta - bounties.get(name, 0) + forfeited

    def _judge(self, job: Job, info: JobInfo, outcome: Outcome, claimer: str,
               index: int) -> None:
        """One turn's verdict: slashing of honest claims, who was paid, the counterfactual
        split of [VOTE-REWARD.1] (the same votes without their challenge answers)."""
        t = self.tally
        t.outcomes[outcome.value] = t.outcomes.get(outcome.value, 0) + 1
        claim = info.claims.get(claimer)
        if outcome == Outcome.CHEAT and claim is not None and claim.honest:
            t.honest_slashed += 1
        turn = info.turns.get((claimer, index))
        if turn is None:
            return
        opened = [(n, c) for n, c in sorted(turn.choices.items())
                  if n != claimer and n in turn.opened]

        def qualified(with_answers: bool) -> set[Address]:
            """Who the reward rule pays on this turn's votes (a nominal pool: who, not how
            much)."""
            if outcome not in PAYING:
                return set()
            answers = [ChallengeAnswer(self.d.addr(n), outcome == Outcome.INCONSISTENT or
                                       c.valid == (outcome == Outcome.VALID),
                                       c.challenge if with_answers else None)
                       for n, c in opened]
            return set(turn_rewards(answers, job.spec.loss_tolerance,
                                    job.spec.voting.supermajority_permille, 1 << 20))

        paid = qualified(with_answers=True)  # [VOTE-REWARD.2], as the ledger pays
        for name, _ in opened:
            if self.strategy[name].vote == Vote.HONEST:
                t.honest_votes += 1
                t.honest_votes_paid += self.d.addr(name) in paid
        if outcome in PAYING and self.sc.rules == "vote-reward-1":
            answers = [ChallengeAnswer(self.d.addr(n), outcome == Outcome.INCONSISTENT or
                                       c.valid == (outcome == Outcome.VALID), None)
                       for n, c in sorted(turn.choices.items())
                       if n != claimer and n in turn.opened]
            pay = turn_rewards(answers, job.spec.loss_tolerance,
                               job.spec.voting.supermajority_permille,
                               job.spec.voting.voter_reward)
            for address, amount in pay.items():
                self.books[self.d.name_of(address)].counterfactual_voter_income += amount

    def _settle(self, job: Job, info: JobInfo) -> None:
        """A settled job: did the honest work get the bounty; did the submitter get a model."""
        t = self.tally
        t.settled[job.status.value] = t.settled.get(job.status.value, 0) + 1
        honest = [c for c in info.claims.values() if c.honest
                  and self.strategy[c.name].work == Work.HONEST]
        if honest:
            t.deserving_jobs += 1
            winner = info.claims.get(info.winner) if info.winner else None
            t.honest_paid_jobs += winner is not None and winner.honest
        if any(self.truth.get(m) is not None for m in info.revealed_models):
            self.sub_models[info.submitter] += 1

    def _finish(self) -> Tally:
        t = self.tally
        t.rejected = dict(self.d.rejected)
        t.transactions = self.d.included
        for name, book in self.books.items():
            book.end_wealth = self.d.wealth(name)
        t.voter_rewards_paid = sum(b.chain_voter_income for b in self.books.values())
        t.honest_bonds_lost = sum(b.bonds_forfeited for b in self.books.values()
                                  if b.strategy.vote == Vote.HONEST)
        for s in self.submitters:
            spent = self.sub_start[s] - self.d.wealth(s)
            jobs = (self.jobs + (1 if s == "sub_a" else 0)) // 2
            t.submitters[s] = {"jobs": jobs, "credits_spent": spent,
                               "models": self.sub_models[s],
                               "profit": self.econ.model_value * self.sub_models[s] - spent}
        return t


def run(scenario: Scenario, jobs: int, seed: int) -> Tally:
    return World(scenario, jobs, seed).run()

