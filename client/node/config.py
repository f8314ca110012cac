"""Node configuration: one TOML file, every field checked, one clear error.

An unknown table or key is an error naming it with its table and the closest valid
name (``unknown key [worker] max_memroy_mb; did you mean max_memory_mb?``): a typo
must not silently leave a default in force. ``[node] key_file`` and ``genesis``
are required.

Relative paths are relative to the directory of the config file, so a node
directory (config + key + genesis + data) can be moved as a whole.

``[api]`` (protocol_spec/api.md §9): the HTTP API binds ``host`` (127.0.0.1 by
default). Reads and the dashboard are open to whoever reaches it; writes (posting
transactions, uploading blobs, having the node fetch a blob from its peers) need
``Authorization: Bearer <token>`` with the token in ``token_file`` once one is
configured. A ``host`` that is not a loopback address (127.0.0.0/8, ::1,
``localhost``; ``0.0.0.0`` and a LAN address are not) without ``token_file`` is
refused at load, saying what to add. The file must be readable by its owner only
(``chmod 600``) and hold one line of at least 32 visible ASCII characters;
``learningchain node token FILE`` writes a fresh one. It is read at start, not from
the environment: the CLI's ``$LC_API_TOKEN`` is the client's side. Uploads are bounded
per client address: ``max_upload_mb`` per blob (413 beyond), ``uploads_per_minute``
and ``upload_mb_per_hour`` (429 with ``Retry-After`` beyond; 0 turns one off), and two
under way at once. The token travels in clear over plain HTTP: off a trusted network,
reach the API through an SSH tunnel or a TLS reverse proxy (and keep the token then:
behind a proxy on the machine every client looks local). Example::

    [node]
    key_file = "node.key"            # required: scrypt+AES-GCM key file (keys new)
    passphrase_file = "passphrase"   # or $LC_PASSPHRASE
    genesis = "genesis.json"         # required
    data_dir = "data"
    roles = ["validator", "worker"]  # any of validator, full, worker

    [p2p]
    host = "127.0.0.1"
    port = 26601
    bootstrap = ["127.0.0.1:26602"]

    [api]
    host = "127.0.0.1"               # any other address needs token_file
    port = 8601
    token_file = "api_token"         # writes need it (learningchain node token api_token)
    max_upload_mb = 4096             # largest blob one upload may carry
    uploads_per_minute = 60          # per client address (an IPv6 one by /64); 0 = no limit
    upload_mb_per_hour = 16384       # per client address; 0 = no limit

    [storage]
    url = ""                         # default: SQLite under data_dir
    retain_blocks = 0                # keep only the newest N blocks; 0 = all (see pruning.py)

    [consensus]
    propose_ms = 1000                # base timeouts; the same on every node

    [worker]
    min_bounty = 1
    min_time_left_s = 20
    max_memory_mb = 2048
    max_cpu_millis = 2000
    max_time_s = 900
    max_disk_mb = 2048
    accept_submitters = []           # addresses (lc1…); empty = everyone
    accept_images = []               # image ids; empty = any
    max_attempts = 3                 # training runs per job
    max_given_back = 3               # extra runs given back after an engine failure
    max_image_mb = 4096              # largest image blob fetched
    max_image_unpacked_mb = 8192     # largest unpacked image loaded
    disk_budget_mb = 16384           # job images and blobs kept for settled jobs
    gpus = 0                         # GPUs offered to jobs (needs the NVIDIA runtime)
    gpu_memory_mb = 0                # memory of each offered GPU, MiB
    detect_gpus = false              # ask nvidia-smi instead of gpus / gpu_memory_mb
    runtime = "auto"                 # auto: runsc (gVisor) where installed; runsc; runc
"""

from __future__ import annotations

import difflib
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from chain.errors import ChainError
from chain.local_file import (
    MAX_CONFIG_FILE_BYTES,
    MAX_SECRET_FILE_BYTES,
    LocalFileError,
    read_local_text,
)
from client.api.token_file import TokenError, is_loopback_host, no_token_message, read_token_file
from client.api.upload_limits import MIB, UPLOAD_MB_PER_HOUR, UPLOADS_PER_MINUTE, UploadLimits
from client.node.retention import min_retain_blocks, retain_reason
from client.node.statesync_policy import MODES as STATE_SYNC_MODES
from client.node.statesync_policy import StateSyncPolicy
from sandbox.runtime import CHOICES as RUNTIME_CHOICES
from sandbox.runtime import default as default_runtime

ROLES = ("validator", "full", "worker")
PASSPHRASE_ENV = "LC_PASSPHRASE"


SECTIONS = ("node", "p2p", "api", "storage", "consensus", "worker", "statesync")
TABLE_KEYS = {"node": ("key_file", "passphrase_file", "genesis", "data_dir", "roles"),
              "p2p": ("host", "port", "bootstrap", "peer_exchange"),
              "api": ("host", "port", "token_file", "max_upload_mb", "uploads_per_minute",
                      "upload_mb_per_hour"),
              "storage": ("url", "retain_blocks")}
"""The keys of the tables read here; [consensus] and [worker] are their dataclasses' fields."""
STR_CHOICES = {("worker", "runtime"): RUNTIME_CHOICES, ("statesync", "mode"): STATE_SYNC_MODES}
"""Text fields that take one of a few values."""
NODE_REQUIRED = ("key_file", "genesis")
"""Keys a config must set: a node without its own key and the graph's genesis cannot start,
and a default next to the config would hide a config written for another directory."""


class ConfigError(ChainError):
    """A config file is missing, unreadable or holds a bad value."""


class ConfigKeyError(ConfigError):
    """A key or table of the config that is not one, or a required key left out.

    Carries the table, the key and the closest valid name, so a typo such as
    ``[worker] max_memroy_mb`` is fixed from the message alone.
    """

    def __init__(self, path: Path, problem: str, table: str, key: str | None,
                 suggestion: str | None = None, valid: tuple[str, ...] = ()) -> None:
        where = " ".join(w for w in (f"[{table}]" if table else "", key or "") if w)
        text = f"{path}: {problem} {where}"
        if suggestion is not None:
            text += f"; did you mean {suggestion}?"
        elif valid:
            text += f" (valid: {', '.join(valid)})"
        super().__init__(text)
        self.path = path
        self.problem = problem
        self.table = table
        self.key = key
        self.suggestion = suggestion


@dataclass(frozen=True, slots=True)
class WorkerPolicy:
    """Which jobs a worker takes and how much of this machine it gives each."""

    min_bounty: int = 1
    min_time_left_s: float = 20.0
    """Skip jobs whose claim window closes sooner than this."""
    max_memory_mb: int = 4096
    max_cpu_millis: int = 2000
    max_time_s: int = 1800
    max_disk_mb: int = 4096
    accept_submitters: tuple[str, ...] = ()
    """``lc1…`` addresses; empty accepts everyone."""
    accept_images: tuple[str, ...] = ()
    """Image ids (``sha256:…``); empty accepts any image."""
    max_attempts: int = 3
    """Training runs per job (each with fresh hyperparameters) while time is left."""
    max_given_back: int = 3
    """[WORK-ATTEMPTS.1] Runs spoilt by this node's own engine or host (``WORKER_FAULTS``)
    that are given back; a job is never run more than ``max_attempts + max_given_back``
    times by this worker, whatever the cause, across restarts."""
    max_image_mb: int = 4096
    """[WORK-IMAGE.1] Largest image blob (declared ``image_mb``) this worker fetches."""
    max_image_unpacked_mb: int = 8192
    """[WORK-IMAGE.1] Largest declared ``image_unpacked_mb`` this worker loads."""
    disk_budget_mb: int = 16384
    """[WORK-GC.1] Images and blobs this worker loaded or fetched for jobs now settled are
    removed, oldest first, while all it keeps exceeds this many MiB."""
    gpus: int = 0
    """[WORK-GPU.1] GPUs offered to jobs; only if the engine has the NVIDIA runtime."""
    gpu_memory_mb: int = 0
    """[WORK-GPU.1] Memory of each offered GPU in MiB (the smallest, if they differ)."""
    detect_gpus: bool = False
    """[WORK-GPU.1] At start, ``nvidia-smi`` says what is offered instead of the two above."""
    runtime: str = field(default_factory=default_runtime)
    """[JOB-RUNTIME.1-2] The OCI runtime of every sandbox this node starts: ``auto`` (the
    default, ``sandbox.runtime.default``: ``runsc`` where the engine has it, else
    ``runc`` with a warning), ``runsc`` (gVisor; on an engine without it the node refuses
    to start) or ``runc``."""
    verify: bool = True
    """Re-evaluate revealed models and vote (when this node is an eligible voter)."""
    cheat_loss_factor: float = 0.0
    """DEMO/TEST ONLY: when > 0, claim ``factor * measured loss`` (a lie the vote must catch)."""
    overfit_public: bool = False
    """DEMO/TEST ONLY: train on a train/v3 job's public validation part instead of its
    training data (an honest claim of an overfit model, which the hidden part must beat)."""
    predict: bool = False
    """Offer prediction service [PRED-OFFER.1] (locks the executor bond) and answer the
    requests this node is drawn for from warm sandboxes (``client.predict.executor.loop``)."""
    cheat_predictions: bool = False
    """DEMO/TEST ONLY: answer every prediction wrongly (labels shifted by one, values off by
    more than the tolerance): the majority must outvote it [PRED-PAY.1]."""
    federated: bool = True
    """With ``verify``: aggregate when drawn and vote on federated rounds and end ballots
    (``client.federated.member.node_loop``)."""
    cheat_federated_aggregate: bool = False
    """DEMO/TEST ONLY: when drawn as a federated aggregator, post a wrong aggregate (the
    model off by one step): the members must vote it down and slash it [FED-ROUND.5]."""
    cheat_federated_first_draw: bool = False
    """DEMO/TEST ONLY: the same wrong aggregate, only as a job's first drawn aggregator
    (``client.federated.member.compute.first_draw``). Set on every verifier, exactly the one
    the chain draws first cheats: ``make demo-federated`` always shows a cheat caught."""


@dataclass(frozen=True, slots=True)
class ConsensusTimeouts:
    propose_ms: int = 1000
    prevote_ms: int = 500
    precommit_ms: int = 500
    commit_ms: int = 200
    """Pause after a commit before the next height (collects transactions)."""


@dataclass(frozen=True, slots=True)
class NodeConfig:
    path: Path
    """The config file itself."""
    key_file: Path
    genesis: Path
    data_dir: Path
    roles: tuple[str, ...] = ("full",)
    passphrase_file: Path | None = None
    p2p_host: str = "127.0.0.1"
    p2p_port: int = 0
    bootstrap: tuple[str, ...] = ()
    peer_exchange: bool = True
    api_host: str = "127.0.0.1"
    api_port: int = 0
    api_token_file: Path | None = None
    """[API-AUTH.5] The token writes need; required when ``api_host`` is not loopback."""
    api_uploads: UploadLimits = field(default_factory=UploadLimits)
    """[API-UPLOAD.1-3] What one client may upload."""
    storage_url: str = ""
    retain_blocks: int = 0
    """[STORE-PRUNE.1] Keep only the newest this many blocks (0: all); checked at load against
    ``client.node.retention.min_retain_blocks`` of the roles."""
    consensus: ConsensusTimeouts = field(default_factory=ConsensusTimeouts)
    worker: WorkerPolicy = field(default_factory=WorkerPolicy)
    statesync: StateSyncPolicy = field(default_factory=StateSyncPolicy)
    """[SNAP-*] ``client/node/statesync_policy.py``."""

    @property
    def is_validator(self) -> bool:
        return "validator" in self.roles

    @property
    def is_worker(self) -> bool:
        return "worker" in self.roles

    def passphrase(self) -> str:
        """From ``passphrase_file`` (read as [NODE-READ.1] says), else $LC_PASSPHRASE; never
        from the command line."""
        if self.passphrase_file is not None:
            try:
                return read_local_text(self.passphrase_file, MAX_SECRET_FILE_BYTES,
                                       what="passphrase file").rstrip("\n")
            except LocalFileError as e:
                raise ConfigError(f"cannot read passphrase file {e}") from None
        value = os.environ.get(PASSPHRASE_ENV)
        if value is None:
            raise ConfigError(
                f"{self.path}: no passphrase for {self.key_file}: set [node] passphrase_file "
                f"or ${PASSPHRASE_ENV}"
            )
        return value

    def api_token(self) -> str | None:
        """[API-AUTH.5] The token in ``[api] token_file`` (checked: owner-only, long
        enough), or None without one; ``ConfigError`` says what to fix."""
        if self.api_token_file is None:
            return None
        try:
            return read_token_file(self.api_token_file)
        except TokenError as e:
            raise ConfigError(f"{self.path}: {e}") from None

    @classmethod
    def load(cls, path: Path) -> NodeConfig:
        try:  # [NODE-READ.1] a regular file of at most MAX_CONFIG_FILE_BYTES
            doc = tomllib.loads(read_local_text(path, MAX_CONFIG_FILE_BYTES,
                                                what="config file"))
        except LocalFileError as e:
            raise ConfigError(f"no config file at {path}" if e.code == "no_file"
                              else f"cannot read config {e}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML: {e}") from e
        return cls.from_dict(doc, path)

    @classmethod
    def from_dict(cls, doc: dict[str, Any], path: Path) -> NodeConfig:
        base = path.parent
        for name, value in doc.items():
            if name in SECTIONS:
                continue
            if not isinstance(value, dict):  # a key above every [table] header
                home = _home_of(name)
                raise ConfigKeyError(path, "key outside any table:", "", name,
                                     f"[{home}] {name}" if home else None, SECTIONS)
            close = difflib.get_close_matches(name, SECTIONS, n=1)
            raise ConfigKeyError(path, "unknown table", name, None,
                                 f"[{close[0]}]" if close else None, SECTIONS)
        if "node" not in doc:
            raise ConfigKeyError(path, "missing required table", "node", None)
        node = _section(doc, "node", path)
        for key in NODE_REQUIRED:
            if key not in node:
                raise ConfigKeyError(path, "missing required key", "node", key)
        p2p = _section(doc, "p2p", path)
        api = _section(doc, "api", path)
        storage = _section(doc, "storage", path)
        roles = tuple(_get(node, "roles", list, path, "node", ["full"]))
        bad = [r for r in roles if r not in ROLES]
        if bad or not roles:
            raise ConfigError(
                f"{path}: [node] roles must be a non-empty subset of {ROLES}, got {roles}"
            )
        passphrase_file = _get(node, "passphrase_file", str, path, "node", None)
        api_host = _get(api, "host", str, path, "api", "127.0.0.1")
        token_file = _get(api, "token_file", str, path, "api", None)
        if not token_file and not is_loopback_host(api_host):  # [API-AUTH.1]
            raise ConfigError(f"{path}: {no_token_message(api_host)}")
        return cls(
            path=path,
            key_file=base / _get(node, "key_file", str, path, "node", None),
            genesis=base / _get(node, "genesis", str, path, "node", None),
            data_dir=base / _get(node, "data_dir", str, path, "node", "data"),
            roles=roles,
            passphrase_file=base / passphrase_file if passphrase_file else None,
            p2p_host=_get(p2p, "host", str, path, "p2p", "127.0.0.1"),
            p2p_port=_port(_get(p2p, "port", int, path, "p2p", 0), path, "p2p"),
            bootstrap=tuple(
                _endpoint(e, path) for e in _get(p2p, "bootstrap", list, path, "p2p", [])
            ),
            peer_exchange=_get(p2p, "peer_exchange", bool, path, "p2p", True),
            api_host=api_host,
            api_port=_port(_get(api, "port", int, path, "api", 0), path, "api"),
            api_token_file=base / token_file if token_file else None,
            api_uploads=_upload_limits(api, path),
            storage_url=_get(storage, "url", str, path, "storage", ""),
            retain_blocks=_retain_blocks(storage, roles, path),
            consensus=_record(ConsensusTimeouts, doc.get("consensus", {}), path, "consensus"),
            worker=_record(WorkerPolicy, doc.get("worker", {}), path, "worker"),
            statesync=_statesync(doc.get("statesync", {}), path),
        )


def _statesync(table: Any, path: Path) -> StateSyncPolicy:
    policy: StateSyncPolicy = _record(StateSyncPolicy, table, path, "statesync")
    problem = policy.problem()
    if problem is not None:
        raise ConfigError(f"{path}: [statesync] {problem}")
    return policy


def _section(doc: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    value = doc.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: [{name}] must be a table")
    _check_keys(value, name, path, TABLE_KEYS[name])
    return value


def _home_of(key: str) -> str | None:
    """The table a key written outside any table belongs in, if any."""
    for name, keys in TABLE_KEYS.items():
        if key in keys:
            return name
    for name, cls in (("consensus", ConsensusTimeouts), ("worker", WorkerPolicy)):
        if key in {f.name for f in fields(cls)}:
            return name
    return None


def _check_keys(table: dict[str, Any], name: str, path: Path, allowed: tuple[str, ...]) -> None:
    """The first unknown key of ``[name]``, in file order, with the closest valid one."""
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            raise ConfigKeyError(path, "unknown key", name, key, close[0] if close else None,
                                 allowed)


def _get(table: dict[str, Any], key: str, kind: type, path: Path, section: str,
         default: Any) -> Any:
    if key not in table:
        return default
    value = table[key]
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise ConfigError(f"{path}: [{section}] {key} must be {kind.__name__}, got {value!r}")
    return value


def _retain_blocks(storage: dict[str, Any], roles: tuple[str, ...], path: Path) -> int:
    """[STORE-PRUNE.1] 0 keeps every block; otherwise at least what the roles need."""
    value: int = _get(storage, "retain_blocks", int, path, "storage", 0)
    least = min_retain_blocks(roles)
    if value < 0 or 0 < value < least:
        raise ConfigError(
            f"{path}: [storage] retain_blocks must be 0 (keep every block) or at least {least} "
            f"for roles {', '.join(roles)}, got {value}: {retain_reason(roles)}")
    return value


def _port(value: int, path: Path, section: str) -> int:
    if not 0 <= value <= 65535:
        raise ConfigError(f"{path}: [{section}] port must be 0..65535, got {value}")
    return value


def _upload_limits(api: dict[str, Any], path: Path) -> UploadLimits:
    """[API-UPLOAD.1-2] ``[api]``'s per-client upload bounds (MiB and counts, 0 = off)."""
    values = {}
    for key, default in (("max_upload_mb", UploadLimits().max_upload_bytes // MIB),
                         ("uploads_per_minute", UPLOADS_PER_MINUTE),
                         ("upload_mb_per_hour", UPLOAD_MB_PER_HOUR)):
        value = _get(api, key, int, path, "api", default)
        if value < (1 if key == "max_upload_mb" else 0):
            raise ConfigError(f"{path}: [api] {key} must be at least "
                              f"{1 if key == 'max_upload_mb' else 0}, got {value}")
        values[key] = value
    limits = UploadLimits(values["max_upload_mb"] * MIB, values["uploads_per_minute"],
                          values["upload_mb_per_hour"] * MIB)
    problem = limits.problem()
    if problem is not None:
        raise ConfigError(f"{path}: [api] {problem}")
    return limits


def _endpoint(value: Any, path: Path) -> str:
    if not isinstance(value, str) or ":" not in value:
        raise ConfigError(f"{path}: [p2p] bootstrap entries are 'host:port', got {value!r}")
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise ConfigError(f"{path}: [p2p] bootstrap entry {value!r} is not 'host:port'")
    return value


def _record(cls: Any, table: Any, path: Path, section: str) -> Any:
    """Builds a dataclass from a TOML table, checking names and types of every field."""
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [{section}] must be a table")
    _check_keys(table, section, path, tuple(f.name for f in fields(cls)))
    values: dict[str, Any] = {}
    for name, raw in table.items():
        default = getattr(cls(), name)
        if isinstance(default, bool):
            ok = isinstance(raw, bool)
        elif isinstance(default, int):
            ok = isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0
        elif isinstance(default, float):
            ok = isinstance(raw, int | float) and not isinstance(raw, bool) and raw >= 0
            raw = float(raw)
        elif isinstance(default, tuple):
            ok = isinstance(raw, list) and all(isinstance(x, str) for x in raw)
            raw = tuple(raw) if ok else raw
        else:
            ok = isinstance(raw, type(default)) and raw in STR_CHOICES.get((section, name), (raw,))
        if not ok:
            choices = STR_CHOICES.get((section, name))
            raise ConfigError(f"{path}: [{section}] {name} = {raw!r} is not a valid "
                              + (f"choice ({', '.join(choices)})" if choices else
                                 f"{type(default).__name__} (>= 0)"))
        values[name] = raw
    return cls(**values)


def render_config(
    *,
    key_file: str = "node.key",
    passphrase_file: str | None = "passphrase",
    genesis: str = "genesis.json",
    data_dir: str = "data",
    roles: tuple[str, ...] = ("full",),
    p2p_port: int = 0,
    bootstrap: tuple[str, ...] = (),
    peer_exchange: bool = True,
    api_port: int = 0,
    host: str = "127.0.0.1",
    api_host: str | None = None,
    api_token_file: str | None = None,
    worker: dict[str, Any] | None = None,
    consensus: dict[str, int] | None = None,
) -> str:
    """A config file's text (``network create``, ``devnet up`` and ``node init`` write
    these); ``host`` is the p2p one and, unless ``api_host`` is given, the API's too."""

    def toml_value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list | tuple):
            return "[" + ", ".join(toml_value(x) for x in v) + "]"
        raise TypeError(v)

    lines = ["[node]", f"key_file = {toml_value(key_file)}"]
    if passphrase_file:
        lines.append(f"passphrase_file = {toml_value(passphrase_file)}")
    lines += [
        f"genesis = {toml_value(genesis)}",
        f"data_dir = {toml_value(data_dir)}",
        f"roles = {toml_value(list(roles))}",
        "",
        "[p2p]",
        f"host = {toml_value(host)}",
        f"port = {p2p_port}",
        f"bootstrap = {toml_value(list(bootstrap))}",
        f"peer_exchange = {toml_value(peer_exchange)}",
        "",
        "[api]",
        f"host = {toml_value(host if api_host is None else api_host)}",
        f"port = {api_port}",
    ]
    if api_token_file:
        lines.append(f"token_file = {toml_value(api_token_file)}")
    for name, table in (("consensus", consensus), ("worker", worker)):
        if table:
            lines += ["", f"[{name}]"] + [f"{k} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"
