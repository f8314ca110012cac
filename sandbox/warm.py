"""Warm starts under gVisor [JOB-WARM.*]: a job container restored from a checkpoint of a
sandbox that has already imported torch.

Under runsc most of an entry point's start is ``import torch`` reaching about 1,800 files
through the Sentry (testbed.md). A sandbox checkpointed once, right after that import,
restores in a fraction of it, and the entry point then runs in a child of the restored
zygote (``sandbox/warm_zygote.py``) instead of a fresh interpreter. Three parts:

- **The checkpoint** (``WarmStarts.checkpoint_for``), once per machine and per *flavour*
  (the entry's import-time variables, [JOB-WARM.3]): a container of the base image whose
  PID 1 forks the zygote under the job's filter and user, ``docker checkpoint create``
  once its log says ready, the files copied to
  ``$XDG_CACHE_HOME/learningchain/warm/<key>/``. The key names everything the restored
  state depends on (base image id, launcher folder, runsc release and flags, flavour).
- **Eligibility** (``image_eligible``): the job image is the base image plus layers that
  only add files under ``/job``, with the base's ``ENV``; anything else (a layer that
  touches the interpreter or torch, another base) starts cold, since the zygote's
  modules would not be the image's.
- **The restore** (``WarmStarts.restore``): the checkpoint linked into the new
  container's checkpoint folder and ``start?checkpoint=``; the runner then execs the warm
  client instead of the entry point (``launcher.warm_argv``).

Needs an engine with experimental features (``docker checkpoint``), the overlay2 storage
driver and its data root writable by this process (the engine takes a restore's checkpoint
only from the container's own folder); anything else, or any failure, is a cold start,
which is always correct. Never with GPUs (runsc does not run them here).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sandbox import container_ops as ops
from sandbox import launcher, policy
from sandbox.container_ops import EngineErrors
from sandbox.errors import SandboxError
from sandbox.limits import MIB, ResourceLimits
from sandbox.runtime import RUNSC, RUNSC_ARGS, RUNSC_PACKAGE_VERSION
from sandbox.warm_staging import RESTORE_MARK, remove_copies, staging_parents
from sandbox.warm_zygote import READY, import_relevant

log = logging.getLogger("learningchain.sandbox")

WARM_VERSION = 2
"""Bumped whenever what a checkpoint holds changes in a way its key does not name."""
CHECKPOINT_NAME = "lc-warm"
WARM_ENTRIES = ("train", "federate")
"""[JOB-WARM.1] Entry points that start warm: the ones that train, which import torch.
``evaluate`` starts cold: the template's imports numpy alone (an evaluation runs in every
vote), and a restore costs more than that import."""
JOB_FOLDER = "job"
"""[JOB-WARM.5] The only top-level folder a warm image's own layers may add to."""
TEMPLATE_LIMITS = ResourceLimits(memory_bytes=2048 * MIB, nano_cpus=1_000_000_000, pids=64,
                                 wall_time_s=120.0, tmp_bytes=64 * MIB, output_bytes=MIB,
                                 model_bytes=MIB, log_bytes=4096)
"""The checkpointed container's limits: the restored container's own replace them."""
INIT_USER = "0:0"
INIT_CAPABILITIES = ("SETUID", "SETGID", "SETPCAP")
"""[JOB-WARM.2] The checkpointed PID 1's user and its only capabilities: enough for the
zygote to empty its bounding set (SETPCAP) and take the job's user, then used for nothing."""
WARM_EXTRA_MEMORY = 192 * MIB
"""[JOB-WARM.4] Added to a warm container's memory limit: its PID 1 and the waiting client
are Python processes where a cold one's are ``sleep``, the zygote's preloaded modules hold
more than ``import torch`` alone, and the restored Sentry's heap is larger. Measured (the
container's peak, 1 GiB, ``import torch`` then an 850 MiB buffer): cold 1,026 of 1,056 MiB;
warm 1,174 (shared memory +81 MiB, the Sentry +70 MiB), so 128 MiB left 10 MiB spare and
120 was killed; with 192, 74 MiB spare, and 900 MiB passes with 29 spare, as much as cold
has at 850."""
ZYGOTE_START_S = 120.0
KEEP_CHECKPOINTS = 4
"""Checkpoints kept on disk (about 30 MB each): two flavours of two base images."""
ENV_WARM = "LC_WARM_START"
"""[JOB-WARM.1] A node's choice (its runners' default): unset or empty, warm starts for the
images whose author declares them (``WARM_LABEL``); ``1``, for every image that can start
warm; ``0``, none. The author decides by default because what differs is in the job's own
code: an import-time variable it sets in its own process before it imports torch has no
effect in a warm start (torch is imported before it runs)."""
WARM_LABEL = "org.learningchain.warm-start"
"""[JOB-WARM.1] The image label (value ``1``) by which a job says its code may start warm:
the template's Dockerfile sets it."""
OFF, DECLARED, ALL = "off", "declared", "all"
"""[JOB-WARM.1] Which images a runner starts warm: none, those with ``WARM_LABEL``, all."""
_MODES = {"0": OFF, "": DECLARED, "1": ALL}


def warm_mode(value: str | None) -> str:
    """[JOB-WARM.1] The mode ``LC_WARM_START``'s ``value`` names (None: unset)."""
    mode = _MODES.get((value or "").strip())
    if mode is None:
        raise ValueError(f"{ENV_WARM}={value!r}: use 1 (every image that can), 0 (none), or "
                         f"leave it unset (the images labelled {WARM_LABEL}=1)")
    return mode


class WarmUnavailable(SandboxError):
    """A checkpoint could not be made; the message says why (then every run starts cold)."""


def cache_root() -> Path:
    return launcher.cache_root().parent / "warm"


def engine_support(info: Mapping[str, Any]) -> str | None:
    """[JOB-WARM.6] Why the engine ``info`` describes cannot restore warm containers; None
    when it can."""
    if not info.get("ExperimentalBuild"):
        return "the engine runs without experimental features (docker checkpoint)"
    if info.get("Driver") != "overlay2":
        return f"the engine's storage driver is {info.get('Driver')!r}, not overlay2"
    containers = Path(str(info.get("DockerRootDir") or "/var/lib/docker")) / "containers"
    if not os.access(containers, os.W_OK | os.X_OK):
        return f"{containers} is not writable by this process"
    return None


def image_eligible(client: Any, image_id: str, base_ref: str, declared_only: bool = False
                   ) -> str | None:
    """[JOB-WARM.5] Why ``image_id`` cannot start warm from the zygote of ``base_ref``; None
    when it can: the base's layers first, the base's ``ENV``, and every layer of its own
    (read in the overlay2 folders) adding only files and folders under ``/job``; with
    ``declared_only`` [JOB-WARM.1], also its label ``WARM_LABEL`` set to ``1``."""
    try:
        image = client.api.inspect_image(image_id)
        base = client.api.inspect_image(base_ref)
    except EngineErrors as e:
        return f"cannot inspect the images: {e}"
    if declared_only and ((image.get("Config") or {}).get("Labels") or {}).get(WARM_LABEL) != "1":
        return f"its image does not declare warm starts (label {WARM_LABEL}=1)"
    layers = list((image.get("RootFS") or {}).get("Layers") or [])
    base_layers = list((base.get("RootFS") or {}).get("Layers") or [])
    if not base_layers or layers[:len(base_layers)] != base_layers:
        return "not built on the base image"
    if (image.get("Config") or {}).get("Env") != (base.get("Config") or {}).get("Env"):
        return "its ENV differs from the base image's"
    own = len(layers) - len(base_layers)
    if own == 0:
        return None
    driver = image.get("GraphDriver") or {}
    data = driver.get("Data") or {}
    if driver.get("Name") != "overlay2" or not data.get("UpperDir"):
        return "its layers are not overlay2 folders"
    folders = [str(data["UpperDir"]), *str(data.get("LowerDir") or "").split(":")][:own]
    for folder in folders:
        problem = _layer_outside_job(Path(folder))
        if problem:
            return problem
    if not any(_imports_torch(Path(folder) / JOB_FOLDER) for folder in folders):
        return ("no Python file under /job imports torch: a warm start would add torch's "
                "memory to a job that never uses it")
    return None


TORCH_IMPORT = re.compile(rb"^[ \t]*(?:import[ \t]+torch\b|from[ \t]+torch[\w.]*[ \t]+import\b)",
                          re.MULTILINE)
CODE_BYTES_MAX = 4 * MIB
"""Larger files under /job are data, not code: not read."""


def _imports_torch(job: Path) -> bool:
    """[JOB-WARM.5] Whether a Python file under ``job`` (``.py``, or a ``python`` shebang)
    has an ``import torch`` or ``from torch... import`` line. A job that never imports
    torch would carry the zygote's torch (its memory) for nothing, and a job near its
    memory limit would die of it (a 256 MiB job filling 120 MiB: fine cold, killed warm)."""
    for here, _dirs, files in os.walk(job, followlinks=False):
        for name in files:
            path = Path(here) / name
            try:
                if path.is_symlink() or not path.is_file() \
                        or path.stat().st_size > CODE_BYTES_MAX:
                    continue
                text = path.read_bytes()
            except OSError:
                continue
            python = name.endswith(".py") or (text.startswith(b"#!")
                                              and b"python" in text.split(b"\n", 1)[0])
            if python and TORCH_IMPORT.search(text):
                return True
    return False


def _layer_outside_job(diff: Path) -> str | None:
    try:
        top = sorted(os.listdir(diff))
    except OSError as e:
        return f"cannot read layer folder {diff}: {e}"
    for name in top:
        if name != JOB_FOLDER:
            return f"a layer of its own adds /{name}"
    for here, dirs, files in os.walk(diff / JOB_FOLDER, followlinks=False):
        for name in (*dirs, *files):
            path = Path(here) / name
            if not (path.is_symlink() or path.is_dir() or path.is_file()):
                return f"a layer of its own holds {path.relative_to(diff)}, not a plain file"
    return None


def prune(folder: Path, keep: int) -> list[Path]:
    """[JOB-WARM.2] Remove all but the ``keep`` most recently used checkpoints (by their
    folder's time, which each process touches at its first use): a new base image or
    launcher makes a new key, and the old ones would otherwise stay for ever. A restore
    already linked keeps its files; one that loses the race starts cold."""
    folders = sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
                     key=lambda p: p.stat().st_mtime, reverse=True)
    removed = folders[keep:]
    for old in removed:
        shutil.rmtree(old, ignore_errors=True)
        (folder / f"{old.name}.lock").unlink(missing_ok=True)
    return removed


def checkpoint_key(base_id: str, env: Mapping[str, str], volumes: Sequence[str] = ()) -> str:
    """Names everything a checkpoint's state depends on."""
    parts = {"base": base_id, "launcher": launcher.folder().name, "runsc":
             [RUNSC_PACKAGE_VERSION, *RUNSC_ARGS], "flavour": sorted(flavour(env).items()),
             "version": WARM_VERSION}
    if volumes:  # keys made before [JOB-WARM.8] stay those of the runs without one
        parts["volumes"] = sorted(volumes)
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def extra_volumes(kwargs: Mapping[str, Any]) -> tuple[str, ...]:
    """[JOB-WARM.8] The writable volumes of a container's creation arguments besides every
    run's /tmp and /output (a training's /checkpoint [JOB-CHECKPOINT.1]), sorted."""
    return tuple(sorted(
        str(m["Target"]) for m in kwargs.get("mounts") or ()
        if m.get("Type") == "volume" and not m.get("ReadOnly")
        and m["Target"] not in (policy.SCRATCH_DIR, policy.OUTPUT_DIR)))


def flavour(env: Mapping[str, str]) -> dict[str, str]:
    """[JOB-WARM.3] The variables of ``env`` that change what an import does."""
    return import_relevant(dict(env))


class WarmStarts:
    """One runner's warm starts: engine support asked once, checkpoints made at start
    (``prepare``) or on first need, images judged once each. Thread-safe; a failure is
    remembered, never retried per run."""

    def __init__(self, client: Any, node_id: str, enabled: bool | None = None) -> None:
        """``enabled``: True, every image that can start warm; False, none; None, as the
        node's ``LC_WARM_START`` says (unset: the images that declare it) [JOB-WARM.1]."""
        self.client = client
        self.node_id = node_id
        self.mode = warm_mode(os.environ.get(ENV_WARM)) if enabled is None else \
            ALL if enabled else OFF
        self._lock = threading.Lock()
        self._support: str | bool | None = False  # False: not asked yet
        self._root = Path("/var/lib/docker")
        self._eligible: dict[str, str | None] = {}
        self._failed: dict[str, str] = {}
        self._used: set[str] = set()
        self._making: set[str] = set()
        """Keys whose checkpoint a thread of this runner is making now."""

    @property
    def enabled(self) -> bool:
        """Whether any image of this runner may start warm."""
        return self.mode != OFF

    def checkpoint_for(self, entry: str, image_id: str, env: Mapping[str, str],
                       limits: ResourceLimits, runtime: str | None,
                       volumes: Sequence[str] = ()) -> Path | None:
        """[JOB-WARM.1] The checkpoint a container of ``image_id`` running ``entry`` with the
        writable ``volumes`` of ``extra_volumes`` [JOB-WARM.8] starts warm from; None: it
        starts cold."""
        if (not self.enabled or entry not in WARM_ENTRIES or runtime != RUNSC
                or limits.gpu_count):
            return None
        with self._lock:
            if self._unsupported():
                return None
            from sandbox.base_image import BASE_TAG

            if image_id not in self._eligible:
                self._eligible[image_id] = image_eligible(self.client, image_id, BASE_TAG,
                                                          self.mode == DECLARED)
                if self._eligible[image_id]:
                    log.info("image %s starts cold: %s", image_id[:19], self._eligible[image_id])
            if self._eligible[image_id]:
                return None
        return self._checkpoint(env, volumes)

    def prepare(self, runtime: str | None, env: Mapping[str, str] = launcher.ENTRY_ENV,
                volumes: Sequence[str] = ()) -> Path | None:
        """[JOB-WARM.2] Find or make, before any job needs it, the checkpoint that runs with
        ``env``'s import-time variables restore (by default a training run's): a worker calls
        it once at start, in the background, so that its first job restores the checkpoint
        instead of waiting for it to be made; ``volumes`` as its runs will have them
        [JOB-WARM.8] (a worker's: /checkpoint). None when warm starts are off, unsupported
        or failed, or the base image is not loaded yet (the first run then makes it)."""
        if not self.enabled or runtime != RUNSC:
            return None
        with self._lock:
            if self._unsupported():
                return None
        checkpoint = self._checkpoint(env, volumes)
        if checkpoint is not None:  # [JOB-WARM.7] what a run that died mid-restore left
            remove_copies(checkpoint, staging_parents())
        return checkpoint

    def prepare_in_background(self, runtime: str | None, volumes: Sequence[str] = ()
                              ) -> threading.Thread | None:
        """``prepare`` on a thread of its own (a checkpoint takes 10-20 s to make); None when
        warm starts are off or ``runtime`` is not runsc. Call it after the node has removed
        its leftover containers: the template container carries the node's labels."""
        if not self.enabled or runtime != RUNSC:
            return None
        thread = threading.Thread(target=self._prepare_logged, args=(runtime, volumes),
                                  name="lc-warm-prepare", daemon=True)
        thread.start()
        return thread

    def _prepare_logged(self, runtime: str | None, volumes: Sequence[str]) -> None:
        try:
            made = self.prepare(runtime, volumes=volumes)
        except Exception:  # a background thread: say what went wrong, runs start cold
            log.exception("preparing the warm start checkpoint failed")
            return
        if made is not None:
            log.info("warm starts ready: %s", made.parent.name)

    def _checkpoint(self, env: Mapping[str, str], volumes: Sequence[str] = ()) -> Path | None:
        """The checkpoint for ``env``'s flavour, made here if missing. None (a cold start)
        while another thread of this runner is making it: a run does not wait 10-20 s for
        what saves it 2-3."""
        from sandbox.base_image import BASE_TAG

        try:
            base_id = self.client.api.inspect_image(BASE_TAG)["Id"]
        except EngineErrors:
            return None
        key = checkpoint_key(base_id, env, volumes)
        target = cache_root() / key
        with self._lock:
            if key in self._failed or key in self._making:
                return None
            if (target / CHECKPOINT_NAME).is_dir():
                if key not in self._used:  # kept by its last use [JOB-WARM.2]
                    self._used.add(key)
                    with contextlib.suppress(OSError):
                        os.utime(target)
                return target / CHECKPOINT_NAME
            self._making.add(key)
        try:
            return self._create(base_id, env, target, volumes)
        except (WarmUnavailable, *EngineErrors) as e:
            with self._lock:
                self._failed[key] = str(e)
            log.warning("warm starts off for this flavour, every run starts cold: %s", e)
            return None
        finally:
            with self._lock:
                self._making.discard(key)

    def restore(self, container: Any, checkpoint: Path) -> None:
        """[JOB-WARM.4] Start ``container`` (created, never started) from ``checkpoint``, in
        a copy of it that carries ``RESTORE_MARK`` (the container's id), so that restores
        of one checkpoint can run at once. Raises what the engine or the file system
        raise; the caller then starts cold."""
        folder = self._root / "containers" / container.id / "checkpoints" / CHECKPOINT_NAME
        folder.mkdir(parents=True, exist_ok=True)
        for item in checkpoint.iterdir():
            try:
                os.link(item, folder / item.name)
            except OSError:
                shutil.copyfile(item, folder / item.name)
        (folder / RESTORE_MARK).write_text(container.id)
        api = self.client.api
        response = api._post(api._url("/containers/{0}/start", container.id),
                             params={"checkpoint": CHECKPOINT_NAME})
        api._raise_for_status(response)

    @staticmethod
    def container_kwargs(kwargs: dict[str, Any], warm: Path | None) -> dict[str, Any]:
        """The creation arguments of a container that ``start`` restores from ``warm``: the
        cold ones (``kwargs``) with ``WARM_EXTRA_MEMORY`` more memory [JOB-WARM.4]."""
        if warm is None or "mem_limit" not in kwargs:
            return kwargs
        memory = int(kwargs["mem_limit"]) + WARM_EXTRA_MEMORY
        return {**kwargs, "mem_limit": memory, "memswap_limit": memory}

    def start(self, container: Any, kwargs: dict[str, Any], warm: Path | None
              ) -> tuple[Any, Callable[[Sequence[str]], list[str]]]:
        """Start ``container`` (made from ``container_kwargs(kwargs, warm)``): restored from
        ``warm`` [JOB-WARM.4], or cold in a fresh container made from ``kwargs`` when the
        checkpoint is busy or the restore fails. Returns the started container and what
        turns an entry's argv into the exec's."""
        if warm is not None:
            restoring = container.id
            try:
                began = time.monotonic()
                self.restore(container, warm)
                log.info("restored checkpoint %s in %.2f s", warm.parent.name,
                         time.monotonic() - began)
                return container, launcher.warm_argv
            except (*EngineErrors, OSError) as e:
                log.warning("warm start failed, starting cold: %s", str(e)[:600])
                ops.remove(container)
                container = self.client.containers.create(**kwargs)
            finally:  # [JOB-WARM.7] the engine has answered: this restore's copy is read
                remove_copies(warm, staging_parents(), mark=restoring)
        container.start()
        return container, launcher.argv

    def _unsupported(self) -> bool:
        if self._support is False:
            try:
                info = self.client.info()
            except EngineErrors as e:
                info = {}
                log.debug("engine info failed: %s", e)
            self._support = engine_support(info)
            self._root = Path(str(info.get("DockerRootDir") or self._root))
            if self._support:
                log.info("runsc containers start cold: %s", self._support)
        return bool(self._support)

    def _create(self, base_id: str, env: Mapping[str, str], target: Path,
                volumes: Sequence[str] = ()) -> Path:
        """[JOB-WARM.2] Make the checkpoint at ``target`` (another process may be making the
        same one: a lock file, then a second look)."""
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target.parent / f"{target.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if (target / CHECKPOINT_NAME).is_dir():
                return target / CHECKPOINT_NAME
            for stale in target.parent.glob(f".{target.name}-*"):  # a process that died making it
                shutil.rmtree(stale, ignore_errors=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
            try:
                self._checkpoint_zygote(base_id, env, staging, volumes)
                staging.rename(target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        log.info("warm start checkpoint made: %s", target)
        prune(target.parent, keep=KEEP_CHECKPOINTS)
        return target / CHECKPOINT_NAME

    def _checkpoint_zygote(self, base_id: str, env: Mapping[str, str], staging: Path,
                           volumes: Sequence[str] = ()) -> None:
        """[JOB-WARM.2] A container of the base image whose PID 1 is the zygote's init (root
        with ``INIT_CAPABILITIES`` alone, for the zygote to give up its bounding set and take
        the job's user), under the ordinary policy otherwise; checkpointed once its log says
        ready."""
        kwargs = policy.container_kwargs(
            base_id, TEMPLATE_LIMITS, policy.labels_for("", self.node_id, "warm-template"),
            {launcher.MOUNT: launcher.folder()}, runtime=RUNSC)
        # [JOB-WARM.8] gVisor restores the checkpoint's mount table: a writable volume the
        # restored container has must be a mount of the checkpointed one too
        kwargs["mounts"] = [*kwargs["mounts"], *(
            policy.tmpfs_volume(target, MIB, policy.OWNED_BY_JOB) for target in volumes)]
        kwargs.update(command=launcher.zygote_init_argv(), user=INIT_USER,
                      cap_add=list(INIT_CAPABILITIES),
                      environment={"HOME": policy.SCRATCH_DIR, **flavour(env)})
        container = self.client.containers.create(**kwargs)
        try:
            container.start()
            said = b""
            deadline = time.monotonic() + ZYGOTE_START_S
            while READY not in said and time.monotonic() < deadline:
                time.sleep(0.1)
                said = container.logs(stdout=True, stderr=True)
                if b"failed" in said:
                    break
            if READY not in said:
                raise WarmUnavailable(f"the zygote did not start within {ZYGOTE_START_S:g} s: "
                                      f"{said[-500:]!r}")
            api = self.client.api
            response = api._post_json(api._url("/containers/{0}/checkpoints", container.id),
                                      data={"CheckpointID": CHECKPOINT_NAME, "Exit": True})
            api._raise_for_status(response)
            made = self._root / "containers" / container.id / "checkpoints" / CHECKPOINT_NAME
            shutil.copytree(made, staging / CHECKPOINT_NAME)
        finally:
            ops.remove(container)


__all__ = ["CHECKPOINT_NAME", "ENV_WARM", "WARM_ENTRIES", "WarmStarts", "WarmUnavailable",
           "checkpoint_key", "engine_support", "flavour", "image_eligible", "prune"]
