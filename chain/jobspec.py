"""The job specification a submitter posts [JOB-SPEC.*].

A job kind is a tagged type (``kind``) so later kinds (hidden test sets,
prediction requests, federated jobs) fit without changing the envelope; the
entry points are a map so a kind can name more than train and evaluate.
Every field is bounded, so a spec can never bloat a block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chain import fields as F
from chain.errors import DecodeError, FieldError
from chain.federated.spec import FEDERATED_V1, FederatedSpec
from chain.train.holdout.spec import MAX_FINALISTS, MAX_POOL, MIN_POOL, Holdout
from chain.types import Amount, Hash32, TimeMs

JOB_KINDS = ("train/v1", "train/v2", "train/v3", FEDERATED_V1)
"""Every kind a spec may carry [JOB-KIND.1]; a new kind is added, never an old one changed."""
TRAIN_V1 = "train/v1"
TRAIN_V2 = "train/v2"
"""train/v1 plus the job's data as blobs [JOB-DATA.1]: a 13-element wire array."""
TRAIN_V3 = "train/v3"
"""train/v2 plus a hidden test set [HOLDOUT-SPEC.1]: a 14-element wire array."""
WIRE_LENGTHS = {TRAIN_V1: 12, TRAIN_V2: 13, TRAIN_V3: 14, FEDERATED_V1: 13}
"""[JOB-KIND.1] The kind fixes the spec's wire array: v1's 12 fields, then the kind's own
(federated/v1 [FED-SPEC.1]: v1's 12, then its ``FederatedSpec``)."""
__all__ = ["FEDERATED_V1", "MAX_FINALISTS", "MAX_POOL", "MIN_POOL", "FederatedSpec", "Holdout"]
DATA_ROLES_REQUIRED = ("train", "valid")
"""[JOB-DATA.1] Roles every train/v2 job names: training data, public validation data."""
DATA_ROLES_REQUIRED_V3 = ("train",)
"""[HOLDOUT-SPEC.1] train/v3 names its training data; its public validation data is the
public part of its holdout pool, published after the split (so ``valid`` is not a role)."""
MAX_DATA_BLOBS = 8
"""[JOB-DATA.1] At most this many data blobs per job."""
MAX_ROLE_LEN = 32
MAX_DATA_BYTES = 1 << 40
"""[JOB-DATA.1] Largest declared data blob: 1 TiB."""
ROLE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")
PARAM_KINDS = ("choice", "uniform", "log_uniform", "int")
MAX_PARAMS = 16
MAX_CHOICES = 32
MAX_COMMAND_ARGS = 32
MAX_ARG_LEN = 256


DEFAULT_IMAGE_MB = 4096
"""``image_mb`` of a ``ResourceLimits`` built without one (tests, old callers); on the wire
every field is explicit."""
DEFAULT_IMAGE_UNPACKED_MB = 8192
"""``image_unpacked_mb`` of a ``ResourceLimits`` built without one."""
MAX_MB = 1 << 20
"""Largest size field: 1 TiB in MiB."""
MAX_GPUS = 16
"""[JOB-GPU.1] Most GPUs one run may request."""
LIMITS_WIRE = 7
"""[JOB-GPU.1] A job without GPUs: the 7-element ``limits`` every spec had before GPUs."""
LIMITS_WIRE_GPU = 9
"""[JOB-GPU.1] A job with GPUs: the 7 elements, then ``gpu_count, gpu_memory_mb``."""


@dataclass(frozen=True, slots=True)
class ResourceLimits:
    """What one run of the job may use; workers compare this with their policy.

    Every size the job declares is here and enforced [JOB-LIMITS.1], [JOB-IMAGE.5]:
    the model bounds the model file, the image sizes bound the blob a worker
    fetches and what its engine writes when loading it.
    """

    memory_mb: int
    """Memory limit of the container, no swap."""
    cpu_millis: int
    """CPU quota in thousandths of a core."""
    time_s: int
    """Wall-time limit of one train run."""
    disk_mb: int
    """Bound on scratch space plus output (the model)."""
    model_mb: int = 0
    """Largest model file, at most ``disk_mb``; 0 when constructed means ``disk_mb``."""
    image_mb: int = DEFAULT_IMAGE_MB
    """Size of the saved-image tar (the ``image_blob``), MiB rounded up."""
    image_unpacked_mb: int = DEFAULT_IMAGE_UNPACKED_MB
    """What the engine may write loading the image: the layers' unpacked size, MiB."""
    gpu_count: int = 0
    """[JOB-GPU.1] GPUs one training run needs; 0: none (the 7-element wire form)."""
    gpu_memory_mb: int = 0
    """[JOB-GPU.1] Least memory of each of those GPUs, MiB; 0: any. Only with GPUs."""

    def __post_init__(self) -> None:
        if self.model_mb == 0:
            object.__setattr__(self, "model_mb", self.disk_mb)
        if self.gpu_count == 0 and self.gpu_memory_mb != 0:
            raise ValueError(f"limits: gpu_memory_mb {self.gpu_memory_mb} without GPUs "
                             f"(gpu_count 0) [JOB-GPU.1]")

    def to_wire(self) -> list[Any]:
        """[JOB-GPU.1] 7 elements without GPUs, so every spec posted before GPUs keeps its
        bytes and id; 9 with them."""
        wire = [self.memory_mb, self.cpu_millis, self.time_s, self.disk_mb, self.model_mb,
                self.image_mb, self.image_unpacked_mb]
        if self.gpu_count:
            wire += [self.gpu_count, self.gpu_memory_mb]
        return wire

    @classmethod
    def from_wire(cls, v: Any) -> ResourceLimits:
        a = F.array(v, "limits", max_len=LIMITS_WIRE_GPU)
        if len(a) not in (LIMITS_WIRE, LIMITS_WIRE_GPU):
            raise FieldError("limits", f"array of {LIMITS_WIRE} or {LIMITS_WIRE_GPU} items "
                             "[JOB-GPU.1]", f"{len(a)} items")
        disk_mb = F.uint(a[3], "limits.disk_mb", 1, MAX_MB)
        gpus = (0, 0)
        if len(a) == LIMITS_WIRE_GPU:  # a GPU-less job has one encoding: the 7 elements
            gpus = (F.uint(a[7], "limits.gpu_count", 1, MAX_GPUS),
                    F.uint(a[8], "limits.gpu_memory_mb", 0, MAX_MB))
        return cls(
            F.uint(a[0], "limits.memory_mb", 16, 1 << 20),
            F.uint(a[1], "limits.cpu_millis", 100, 256_000),
            F.uint(a[2], "limits.time_s", 1, 7 * 24 * 3600),
            disk_mb,
            F.uint(a[4], "limits.model_mb", 1, disk_mb),
            F.uint(a[5], "limits.image_mb", 1, MAX_MB),
            F.uint(a[6], "limits.image_unpacked_mb", 1, MAX_MB),
            *gpus,
        )


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One hyperparameter the worker may vary: a choice list or a numeric range."""

    name: str
    kind: str
    values: tuple[Any, ...]
    """choice: the options; uniform/log_uniform/int: (low, high)."""

    def to_wire(self) -> list[Any]:
        return [self.name, self.kind, list(self.values)]

    @classmethod
    def from_wire(cls, v: Any) -> ParamSpec:
        a = F.array(v, "param", 3)
        name = F.text(a[0], "param.name", 64, 1)
        kind = F.one_of(a[1], "param.kind", PARAM_KINDS)
        raw = F.array(a[2], "param.values", max_len=MAX_CHOICES)
        if kind == "choice":
            if not raw:
                raise DecodeError(f"param {name!r}: empty choice", code="bad_field")
            for x in raw:
                if isinstance(x, bool) or not isinstance(x, int | float | str):
                    raise DecodeError(f"param {name!r}: choices are numbers or strings",
                                      code="bad_field")
                if isinstance(x, str):
                    F.text(x, "param.choice", 64)
        else:
            if len(raw) != 2:
                raise DecodeError(f"param {name!r}: range needs [low, high]", code="bad_field")
            lo: float
            hi: float
            if kind == "int":
                lo, hi = (F.uint(x, "param.range", -(2**31), 2**31) for x in raw)
            else:
                lo, hi = (F.finite_float(x, "param.range") for x in raw)
                if kind == "log_uniform" and lo <= 0:
                    raise DecodeError(f"param {name!r}: log range must be > 0", code="bad_field")
            if not lo < hi:
                raise DecodeError(f"param {name!r}: low must be < high", code="bad_field")
        return cls(name, kind, tuple(raw))


@dataclass(frozen=True, slots=True)
class VotingParams:
    """How the winner is verified; bounded by the protocol parameters [JOB-VOTE-PARAMS.1]."""

    reveal_window_ms: int
    """Time the current winner has to reveal its model."""
    commit_window_ms: int
    """Time voters have to commit to their (hidden) vote."""
    vote_reveal_window_ms: int
    """Time voters have to open their commitment."""
    quorum_permille: int
    """Votes revealed / eligible voters needed for any verdict."""
    supermajority_permille: int
    """Share of revealed votes needed to call a claim valid or a cheat."""
    voter_reward: Amount
    """Paid per turn, split among voters who agree with the verdict."""
    max_turns: int
    """How many claims, best first, may be tried before the bounty returns."""

    def to_wire(self) -> list[Any]:
        return [self.reveal_window_ms, self.commit_window_ms, self.vote_reveal_window_ms,
                self.quorum_permille, self.supermajority_permille, self.voter_reward,
                self.max_turns]

    @classmethod
    def from_wire(cls, v: Any) -> VotingParams:
        a = F.array(v, "voting", 7)
        day = 24 * 3600 * 1000
        return cls(
            F.uint(a[0], "voting.reveal_window_ms", 1, day),
            F.uint(a[1], "voting.commit_window_ms", 1, day),
            F.uint(a[2], "voting.vote_reveal_window_ms", 1, day),
            F.uint(a[3], "voting.quorum_permille", 1, 1000),
            F.uint(a[4], "voting.supermajority_permille", 500, 1000),
            F.amount(a[5], "voting.voter_reward", 0),
            F.uint(a[6], "voting.max_turns", 1, 16),
        )

    @property
    def turn_window_ms(self) -> int:
        return self.reveal_window_ms + self.commit_window_ms + self.vote_reveal_window_ms


@dataclass(frozen=True, slots=True)
class DataRef:
    """One data blob of a job [JOB-DATA.1]: which blob, and how large it is declared to be."""

    blob: Hash32
    """Blob id (``chain.content``) of the data tar [JOB-DATA.2]."""
    size: int
    """The blob's exact size in bytes: a worker refuses too-large data before fetching it, and
    a blob of another size is not this one."""

    def to_wire(self) -> list[Any]:
        return [self.blob, self.size]

    @classmethod
    def from_wire(cls, v: Any, role: str) -> DataRef:
        a = F.array(v, f"spec.data.{role}", 2)
        return cls(F.hash32(a[0], f"spec.data.{role}.blob"),
                   F.uint(a[1], f"spec.data.{role}.size", 1, MAX_DATA_BYTES))


def data_role(v: Any) -> str:
    """[JOB-DATA.1] A role: 1..32 of ``a-z 0-9 _ -``, starting with a letter (a path name)."""
    role = F.text(v, "spec.data role", MAX_ROLE_LEN, 1)
    if not role[0].isalpha() or not set(role) <= ROLE_CHARS:
        raise DecodeError(f"bad data role {role!r}: 1..{MAX_ROLE_LEN} of a-z 0-9 _ -, "
                          "starting with a letter", code="bad_field")
    return role


@dataclass(frozen=True, slots=True)
class JobSpec:
    """Everything a worker needs to run a job and every node needs to judge it."""

    kind: str
    image_digest: Hash32
    """The image id (SHA-256 of the image config, [JOB-IMAGE.2]): what the engine checks."""
    image_blob: Hash32
    """Blob id (``chain.content``) of the saved-image tar that workers fetch by."""
    image_ref: str
    """Human-readable name of the image; informational only."""
    entry_points: tuple[tuple[str, tuple[str, ...]], ...]
    """Sorted (name, argv) pairs; ``train`` and ``evaluate`` for train/v1."""
    limits: ResourceLimits
    search_space: tuple[ParamSpec, ...]
    bounty: Amount
    expiry_ms: TimeMs
    """Block time after which no claim is accepted and the first turn starts."""
    loss_tolerance: float
    """A claim is valid when measured loss <= claimed loss + tolerance."""
    voting: VotingParams
    description: str
    data: tuple[tuple[str, DataRef], ...] = ()
    """train/v2: sorted (role, data blob) pairs [JOB-DATA.1]; empty for train/v1 (not on its
    wire)."""
    holdout: Holdout | None = None
    """train/v3 only: the hidden test set [HOLDOUT-SPEC.1]."""
    federated: FederatedSpec | None = None
    """federated/v1 only: the rounds, rule and evaluation commitment [FED-SPEC.1]."""

    def __post_init__(self) -> None:
        if self.kind in (TRAIN_V1, FEDERATED_V1) and self.data:
            raise ValueError(f"a {self.kind} spec has no data blobs (its wire has no place "
                             "for them)")
        if (self.kind == FEDERATED_V1) != (self.federated is not None):
            raise ValueError("a FederatedSpec is what federated/v1 adds; other kinds have none")
        if (self.kind == TRAIN_V3) != (self.holdout is not None):
            raise ValueError("a holdout is what train/v3 adds; other kinds have none")
        object.__setattr__(self, "data", tuple(sorted(self.data, key=lambda pair: pair[0])))

    def entry_point(self, name: str) -> tuple[str, ...]:
        for key, argv in self.entry_points:
            if key == name:
                return argv
        raise KeyError(name)

    def data_ref(self, role: str) -> DataRef | None:
        return next((ref for key, ref in self.data if key == role), None)

    @property
    def data_bytes(self) -> int:
        """Declared size of every data blob together [JOB-DATA.1]."""
        return sum(ref.size for _, ref in self.data)

    @property
    def escrow(self) -> Amount:
        """Bounty plus one voter reward per possible turn [JOB-POST-ESCROW.1], plus the
        holdout deposit of a train/v3 or federated/v1 job [HOLDOUT-DEPOSIT.1] [TX-FED.1]."""
        holdout = self.federated.holdout if self.federated is not None else self.holdout
        deposit = holdout.deposit if holdout is not None else 0
        return Amount(self.bounty + self.voting.voter_reward * self.voting.max_turns + deposit)

    def to_wire(self) -> list[Any]:
        """[JOB-SPEC-WIRE.1] train/v1: 12 fields; train/v2: the same 12, then ``data``;
        train/v3: v2's 13, then ``holdout``; federated/v1: v1's 12, then ``federated``."""
        wire = [
            self.kind, self.image_digest, self.image_blob, self.image_ref,
            {k: list(v) for k, v in self.entry_points},
            self.limits.to_wire(), [p.to_wire() for p in self.search_space],
            self.bounty, self.expiry_ms, self.loss_tolerance, self.voting.to_wire(),
            self.description,
        ]
        if self.kind not in (TRAIN_V1, FEDERATED_V1):
            wire.append({role: ref.to_wire() for role, ref in self.data})
        if self.holdout is not None:
            wire.append(self.holdout.to_wire())
        if self.federated is not None:
            wire.append(self.federated.to_wire())
        return wire

    @classmethod
    def from_wire(cls, v: Any) -> JobSpec:
        """[JOB-KIND.1] The kind (first element) fixes the array's length and the rest."""
        if not isinstance(v, list) or not v:
            raise DecodeError("bad field 'spec': expected a non-empty array", code="bad_field")
        kind = F.one_of(v[0], "spec.kind", JOB_KINDS)
        a = F.array(v, "spec", WIRE_LENGTHS[kind])
        eps = a[4]  # [JOB-ENTRY.3] at most 8 names of 1..32 chars, argv 1..32 of <= 256 chars
        if not isinstance(eps, dict) or len(eps) > 8:
            raise DecodeError("bad field 'spec.entry_points': map of at most 8", code="bad_field")
        entry_points = tuple(
            (F.text(k, "entry_point", 32, 1),
             F.text_list(eps[k], f"entry_points.{k}", MAX_COMMAND_ARGS, MAX_ARG_LEN))
            for k in sorted(eps)
        )
        names = {k for k, _ in entry_points}
        if not {"train", "evaluate"} <= names:
            raise DecodeError(f"{kind} jobs need 'train' and 'evaluate' entry points",
                              code="bad_field")
        if any(not argv for _, argv in entry_points):
            raise DecodeError("entry point command is empty", code="bad_field")
        params = tuple(
            ParamSpec.from_wire(p) for p in F.array(a[6], "spec.search_space", max_len=MAX_PARAMS)
        )
        if len({p.name for p in params}) != len(params):
            raise DecodeError("duplicate hyperparameter name", code="bad_field")
        tolerance = F.finite_float(a[9], "spec.loss_tolerance")
        if tolerance < 0:
            raise DecodeError("loss tolerance must be >= 0", code="bad_field")
        return cls(
            kind=kind,
            image_digest=F.hash32(a[1], "spec.image_digest"),
            image_blob=F.hash32(a[2], "spec.image_blob"),
            image_ref=F.text(a[3], "spec.image_ref", 256),
            entry_points=entry_points,
            limits=ResourceLimits.from_wire(a[5]),
            search_space=params,
            bounty=F.amount(a[7], "spec.bounty"),
            expiry_ms=TimeMs(F.uint(a[8], "spec.expiry_ms")),
            loss_tolerance=tolerance,
            voting=VotingParams.from_wire(a[10]),
            description=F.text(a[11], "spec.description", 1024),
            data=_data_from_wire(a[12], kind) if kind in (TRAIN_V2, TRAIN_V3) else (),
            holdout=Holdout.from_wire(a[13]) if kind == TRAIN_V3 else None,
            federated=FederatedSpec.from_wire(a[12]) if kind == FEDERATED_V1 else None,
        )


def _data_from_wire(v: Any, kind: str) -> tuple[tuple[str, DataRef], ...]:
    """[JOB-DATA.1] role -> [blob, size], at most 8, ``train`` and ``valid`` required;
    train/v3 [HOLDOUT-SPEC.1]: ``train`` required, ``valid`` refused (the pool's public part
    is the public validation data)."""
    if not isinstance(v, dict) or len(v) > MAX_DATA_BLOBS:
        raise DecodeError(f"bad field 'spec.data': map of at most {MAX_DATA_BLOBS}",
                          code="bad_field")
    if not all(isinstance(k, str) for k in v):
        raise DecodeError("bad field 'spec.data': roles are strings", code="bad_field")
    data = tuple((data_role(k), DataRef.from_wire(v[k], k)) for k in sorted(v))
    required = DATA_ROLES_REQUIRED_V3 if kind == TRAIN_V3 else DATA_ROLES_REQUIRED
    missing = [r for r in required if r not in v]
    if missing:
        raise DecodeError(f"{kind} jobs need data roles {list(required)}; "
                          f"missing {missing}", code="bad_field")
    if kind == TRAIN_V3 and "valid" in v:
        raise DecodeError("train/v3 jobs name no 'valid' data: the public part of the holdout "
                          "pool is their validation data [HOLDOUT-SPEC.1]", code="bad_field")
    return data
