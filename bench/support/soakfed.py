"""The soak's federated job (bench/soak.py, issue 48 §6: "jobs of every kind").

As ``make demo-federated`` runs one (client/devnet/federated/demo.py), on the soak's hosts:

- ``prepare``: the digits template built on the machine's engine with its ``federate``
  entry (``build_template``) and its training rows dealt to ``OWNERS``, non-IID
  (``deal_shards``), one folder per data owner;
- ``DataOwner``: each data owner's own node on a host of its own (``add_owner_hosts``, WAN
  links to every other host), a ``full`` node with its member key whose p2p listens on
  its host's address and bootstraps to the graph's hosts; it runs only while a job runs
  (``learningchain federated join JOB --data DIR --config CFG`` stops the node when the job
  is done), so the soak's restart and cut schedule never touches it;
- ``FedStream``: the job owner (``JOB_OWNER``, through v0) posts a ``federated/v1`` job of
  ``ROUNDS`` rounds (``post_federated_job``: initial model blob, holdout pool committed),
  the data owners join, the owner publishes the public holdout part once the split seed is
  drawn and the hidden part in the ``hidden`` phase (``publish_part``); the bonded verifiers
  (the soak's worker nodes w4-w6, ``[worker] federated`` on by default) aggregate and vote
  each round, and the end ballot pays. The next job is posted when the last one is done,
  at most ``MAX_JOBS`` in all, while it can end within the run.

Each job is recorded (``FedRecord``): its phase, rounds accepted, and the credits the end
ballot paid; one not done within ``FedStream.timeout_s()`` of its post is an error.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from subprocess import Popen, TimeoutExpired
from typing import Any

from chain.jobspec import JobSpec
from chain.keyfile import read_key_file
from chain.types import TimeMs
from client.api.http_client import ApiClient, ApiError
from client.devnet.federated import posting
from client.devnet.federated import setup as fed_setup
from client.devnet.network import API_PORT_OFFSET
from client.node.config import render_config
from tests.hosts.linkmodel import LinkSpec
from tests.hosts.testbed import Host, TestBed

OWNERS = posting.OWNERS[:4]
"""The data owners: four nodes, each on a host of its own."""
JOB_OWNER = "fedowner"
USERS = {JOB_OWNER: 100_000, **dict.fromkeys(OWNERS, 10_000)}
"""Funded in the genesis: the job owner pays ``posting.BOUNTY`` and the holdout deposit per
job; each commitment of a data owner locks a reveal deposit [FED-DEPOSIT.1]."""
ROUNDS = 5
MAX_JOBS = 2
"""One job early in the soak, and one more after it if the run is long enough for it."""
MIN_PARTICIPANTS = 3
"""Updates a round needs [FED-ROUND.2]: one of the four owners may miss a commit window
(a slow sandbox on a loaded machine) without voiding the round."""
OWNER_CPU_MILLIS = 250
"""Each owner's local round gets a quarter of a core ([JOB-FED.1] runs under the job's
``limits``): four owners then take at most one of the machine's two cores when their
rounds start together, and the validators keep the other. At a full core each, four
gVisor starts at once left the validators no CPU and stalled the chain 3.5-4.1 s (seed
399004326, b35cc52). One round of the template takes 7.4-7.8 s alone at 1,000 millicores
and 45-51 s at 250 (runsc, this machine)."""
OWNER_TIME_S = 150
"""The wall-clock limit of one owner's round: three times the 250-millicore round."""
WINDOWS_MS = {"commit": 80_000, "reveal": 8_000, "aggregate": 12_000, "vote_commit": 8_000,
              "vote_reveal": 8_000}
"""The demo's windows (``posting.WINDOWS_MS``), the short ones doubled for WAN links (a
transaction crosses 50-150 ms links to a block) and the commit window longer: four sandboxed
trainings share 2 cores with 7 node processes and the template jobs' trainings, each
capped at ``OWNER_CPU_MILLIS``: the window holds the 45-51 s round with room for a slow one."""
FIRST_COMMIT_MS = 120_000
"""Round 1's commit window, from the post: the data owners' nodes start, sync the soak's
chain so far over the WAN, and train once."""
END_S = 60.0
"""The end: the hidden part's reveal window, the end ballot's vote windows, slack."""
P2P_PORT = 26700
"""Each data owner's node's p2p port on its host (its API: + ``API_PORT_OFFSET``)."""
EXIT_WAIT_S = 60.0
"""How long a data owner's node may take to stop by itself once its job is done."""


def round_s() -> float:
    return sum(WINDOWS_MS.values()) / 1000


def expected_s() -> float:
    """A job's span from post to payout when every phase lasts its whole window."""
    first = FIRST_COMMIT_MS / 1000 + round_s() - WINDOWS_MS["commit"] / 1000
    return first + (ROUNDS - 1) * round_s() + END_S


def soak_terms(spec: JobSpec) -> JobSpec:
    """The demo's spec (``posting.federated_spec``) with the soak's windows (round 1's
    commit window ``FIRST_COMMIT_MS`` from the post, not the demo's), four owners,
    ``MIN_PARTICIPANTS`` and each owner's round capped at ``OWNER_CPU_MILLIS``."""
    assert spec.federated is not None
    fed = replace(spec.federated, min_participants=MIN_PARTICIPANTS,
                  max_participants=len(OWNERS), commit_window_ms=WINDOWS_MS["commit"],
                  reveal_window_ms=WINDOWS_MS["reveal"],
                  aggregate_window_ms=WINDOWS_MS["aggregate"])
    voting = replace(spec.voting, reveal_window_ms=WINDOWS_MS["vote_commit"],
                     commit_window_ms=WINDOWS_MS["vote_commit"],
                     vote_reveal_window_ms=WINDOWS_MS["vote_reveal"])
    expiry = spec.expiry_ms + FIRST_COMMIT_MS - posting.FIRST_COMMIT_MS
    limits = replace(spec.limits, cpu_millis=OWNER_CPU_MILLIS, time_s=OWNER_TIME_S)
    return replace(spec, federated=fed, voting=voting, expiry_ms=TimeMs(expiry), limits=limits,
                   description="soak: federated digits, four non-IID owners")


# -- set-up ----------------------------------------------------------------------------

@dataclass(frozen=True)
class FedPrep:
    """The built template job, its image, and each data owner's shard."""

    job_dir: Path
    image_id: str
    shards: list[fed_setup.Shard]


def prepare(work: Path) -> FedPrep:
    """The federated template built on the machine's engine in ``work/fed-job`` and its
    training rows dealt to ``OWNERS`` (``work/owners/NAME/data``)."""
    job_dir = work / "fed-job"
    image_id = posting.build_template(job_dir)
    shards = fed_setup.deal_shards(job_dir / "data" / "train.csv", OWNERS, work / "owners")
    return FedPrep(job_dir, image_id, shards)


def add_owner_hosts(bed: TestBed) -> list[Host]:
    """A host per data owner (before the links are set)."""
    return [bed.add_host(name) for name in OWNERS]


def link_owner_hosts(bed: TestBed, owners: Sequence[Host], others: Sequence[Host],
                     rng: random.Random, *, rtt_ms: tuple[float, float], jitter_ms: float,
                     loss: float) -> None:
    """Every link of a data owner's host, to the graph's hosts and to the other owners, a
    WAN one as ``TestBed.set_wan_links`` draws them (from an rng of its own, so the graph's
    links are those of a soak without a federated job)."""
    for i, a in enumerate(owners):
        for b in [*others, *owners[i + 1:]]:
            spec = LinkSpec.from_rtt(rng.uniform(*rtt_ms), jitter_ms=jitter_ms, loss=loss)
            bed.set_link(a, b, spec)


@dataclass
class DataOwner:
    """A data owner's node: its host, files, shard and (while a job runs) its process."""

    name: str
    host: Host
    directory: Path
    config: Path
    shard: fed_setup.Shard
    proc: Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.directory / "node-data"

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = (self.directory / "node.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def data_owners(prep: FedPrep, hosts: Sequence[Host], genesis: Path,
                users: dict[str, Any], bootstrap: Sequence[str]) -> list[DataOwner]:
    """Each owner's node config in its shard's folder's parent: p2p on its host's address,
    the API on the host's loopback, bootstrapping to ``bootstrap`` (the graph's hosts)."""
    owners = []
    for name, host in zip(OWNERS, hosts, strict=True):
        user = users[name]
        shard = next(s for s in prep.shards if s.owner == name)
        directory = shard.folder.parent
        config = directory / "config.toml"
        config.write_text(render_config(
            key_file=str(user.key_file), passphrase_file=str(user.passphrase_file),
            genesis=str(genesis), data_dir="node-data", roles=("full",), p2p_port=P2P_PORT,
            api_port=P2P_PORT + API_PORT_OFFSET, host=host.address, api_host="127.0.0.1",
            bootstrap=tuple(bootstrap)))
        owners.append(DataOwner(name, host, directory, config, shard))
    return owners


# -- the jobs --------------------------------------------------------------------------

@dataclass
class FedRecord:
    """One federated job of the soak, as its owner saw it on v0."""

    job_id: str
    posted_s: float
    phase: str = "posted"
    rounds_accepted: int = 0
    rounds_recorded: int = 0
    paid: int = 0
    """Credits the end ballot paid the data owners (the rest refunded)."""
    done_s: float | None = None

    @property
    def is_paid(self) -> bool:
        return self.phase == "done" and self.paid > 0


def read_outcome(record: FedRecord, fed: dict[str, Any]) -> None:
    """``record`` updated from the API's view of the job [API-FED.2] [API-FED.3]."""
    record.phase = str(fed["phase"])
    verdicts = [r["verdict"] for r in fed["rounds"] if r["verdict"] is not None]
    record.rounds_recorded = len(verdicts)
    record.rounds_accepted = sum(1 for v in verdicts if v == "accepted")
    payout = fed.get("payout") or {}
    record.paid = sum(int(p["amount"]) for p in payout.get("paid") or [])


class FedStream(threading.Thread):
    """The federated jobs of the soak: posted through ``api`` as ``JOB_OWNER``, the data
    owners' nodes joined on their hosts, the holdout parts published, the payout read."""

    def __init__(self, api: ApiClient, users: dict[str, Any], owners: list[DataOwner],
                 prep: FedPrep, work: Path, stop_posting: threading.Event,
                 abort: threading.Event, clock: Callable[[], float], post_until: float,
                 log: Callable[[str], None], node_names: dict[str, str]) -> None:
        super().__init__(name="federated", daemon=True)
        self.api, self.owners, self.prep, self.work = api, owners, prep, work
        self.stop_posting, self.abort, self.clock = stop_posting, abort, clock
        self.post_until, self.log = post_until, log
        me = users[JOB_OWNER]
        key = read_key_file(me.key_file, me.passphrase_file.read_text().strip())
        names = {u.address: name for name, u in users.items()}
        self.owner = posting.Owner(api, key, names)
        self.names = {**names, **node_names}
        """Every address's name, the graph's nodes' (``node_names``) included: the log's."""
        self.jobs: list[FedRecord] = []
        self.errors: list[str] = []

    @staticmethod
    def timeout_s() -> float:
        return 2 * expected_s() + 120.0

    def run(self) -> None:
        while (not self.stop_posting.is_set() and not self.abort.is_set()
               and len(self.jobs) < MAX_JOBS
               and (not self.jobs or self.clock() + expected_s() < self.post_until)):
            try:
                self._one(len(self.jobs))
            except Exception as e:  # a thread that dies says why, and the soak fails
                self.errors.append(f"{self.clock():.0f} s: federated job "
                                   f"{len(self.jobs)}: {type(e).__name__}: {str(e)[-1500:]}")
            finally:
                self._stop_owners()
            if self.errors:
                return

    def _one(self, index: int) -> None:
        root = self.work / f"fed-{index}"
        root.mkdir(parents=True, exist_ok=True)
        posted = posting.post_federated_job(self.owner, root, self.prep.job_dir,
                                            self.prep.image_id, ROUNDS, soak_terms)
        record = FedRecord(posted.job_id, self.clock())
        self.jobs.append(record)
        self.log(f"federated job {posted.job_id[:12]} posted: {ROUNDS} rounds, "
                 f"{len(self.owners)} data owners, expected {expected_s():.0f} s")
        for owner in self.owners:
            owner.proc = owner.host.popen(
                [sys.executable, "-m", "client", "federated", "join", posted.job_id,
                 "--data", str(owner.shard.folder), "--config", str(owner.config)],
                log=owner.directory / "node.log")
        deadline = time.monotonic() + self.timeout_s()
        published: set[str] = set()
        while not self.abort.is_set():
            try:
                fed = self.api.federated_job(posted.job_id)
            except (ApiError, OSError, ValueError):
                self.abort.wait(2.0)
                continue
            seen = record.rounds_recorded
            read_outcome(record, fed)
            for rnd in fed["rounds"][seen:record.rounds_recorded]:
                updates = sum(1 for u in rnd.get("participants") or [] if u.get("revealed"))
                self.log(f"federated job {posted.job_id[:12]} round {rnd['round']}: "
                         f"{rnd['verdict']}, {updates} updates, aggregator "
                         f"{self.names.get(rnd.get('aggregator') or '', '-')}")
            if fed["seed"] is not None and "public" not in published:
                posting.publish_part(self.owner, posted, fed, "public", root)
                published.add("public")
            if fed["phase"] == "hidden" and "hidden" not in published:
                posting.publish_part(self.owner, posted, fed, "hidden", root)
                published.add("hidden")
            if fed["phase"] == "done":
                record.done_s = self.clock()
                self.log(f"federated job {posted.job_id[:12]} done: "
                         f"{record.rounds_accepted}/{record.rounds_recorded} rounds accepted, "
                         f"{record.paid} paid")
                if not record.is_paid:
                    self.errors.append(f"federated job {posted.job_id[:12]} done unpaid: "
                                       f"{fed.get('payout')}")
                return
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {o.name} ---\n{o.log_tail(10)}" for o in self.owners)
                raise RuntimeError(f"not done {self.timeout_s():.0f} s after its post: phase "
                                   f"{fed['phase']}, round {fed['round']}\n{tails}")
            self.abort.wait(2.0)

    def _stop_owners(self) -> None:
        """Each data owner's node stops by itself once the job is done; one that has not
        after ``EXIT_WAIT_S`` (or on an abort) is stopped (SIGTERM, then SIGKILL)."""
        until = time.monotonic() + (0.0 if self.abort.is_set() else EXIT_WAIT_S)
        for owner in self.owners:
            proc = owner.proc
            if proc is None:
                continue
            try:
                proc.wait(timeout=max(0.1, until - time.monotonic()))
            except TimeoutExpired:
                if not self.abort.is_set():
                    self.errors.append(f"{owner.name}'s node still running "
                                       f"{EXIT_WAIT_S:.0f} s after its job: stopped")
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
                continue
            if proc.returncode != 0 and not self.abort.is_set():
                self.errors.append(f"{owner.name}'s node exited with {proc.returncode}:\n"
                                   f"{owner.log_tail(10)}")

    def processes(self) -> list[tuple[str, int | None, Path]]:
        """Each data owner whose node has run: its name, its process id while it runs, and
        its data directory (for the soak's samples)."""
        return [(o.name, o.proc.pid if o.running() and o.proc is not None else None,
                 o.data_dir) for o in self.owners if o.proc is not None]

    def paid(self) -> list[FedRecord]:
        return [j for j in self.jobs if j.is_paid]

    def line(self) -> str:
        return (f"federated {len(self.paid())}/{len(self.jobs)} paid, "
                f"{sum(j.rounds_accepted for j in self.jobs)} rounds accepted")
