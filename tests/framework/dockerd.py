"""A private Docker engine a test starts, stops, restarts and removes, leaving the host's alone.

Why: a test of "the engine stops mid-training" must stop *an* engine, and on a
developer's machine that must never be theirs (``make test`` would stop every
container they run). And a real graph has one engine per machine: a worker on
an engine of its own has to fetch a job's image as a blob and load it, which a
test with every node on one engine never exercises.

The private engine shares nothing it could fight over with the host's:

- its own API socket, ``--data-root`` (images, containers), ``--exec-root``
  (its managed containerd and its sockets), ``--pidfile`` and a ``--config-file``
  of its own, empty but for gVisor's ``runsc`` runtime where it is installed (the
  host's /etc/docker/daemon.json does not apply);
- no networking of its own: ``--bridge=none --iptables=false --ip6tables=false
  --ip-forward=false --ip-masq=false`` (the sandbox runs jobs with network
  ``none`` anyway), so it adds no bridge, no NAT rules, no sysctl;
- its own containerd namespaces and cgroup parent, in case the machine runs a
  system containerd that dockerd would otherwise share.

``close()`` stops it (SIGTERM, then SIGKILL), kills what it left running under
its directories (containerd, shims: found by their command line naming our
root), unmounts what is still mounted below the root, removes the cgroups it
created and the directory. It needs root, like dockerd itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
from pathlib import Path
from types import TracebackType

import docker
import docker.errors
import docker.models.images
import requests.exceptions

from sandbox.runtime import RUNSC, RUNSC_PATH, runsc_entry
from tests.framework.engine_seed import SeedError, clone_seed, ensure_seed
from tests.framework.wait import scaled, wait_until

DOCKERD = shutil.which("dockerd") or "/usr/sbin/dockerd"
ROOT_PARENT = "/tmp"
ROOT_PREFIX = "lcd-"
OWNER_FILE = "owner.pid"
"""The pid of the test process that made the root: a root whose owner died is an orphan."""
CACHE_ENV = "LC_TEST_CACHE"
CGROUP_ROOT = Path("/sys/fs/cgroup")


def engine_config() -> dict[str, object]:
    """The private engine's ``daemon.json``, as ``make system`` configures the host's:
    experimental features (``docker checkpoint``, for warm starts [JOB-WARM.6]), and gVisor's
    runtime where it is installed, so a worker on it gets runsc [JOB-RUNTIME.4]."""
    if not Path(RUNSC_PATH).exists():
        return {"experimental": True}
    return {"experimental": True, "runtimes": {RUNSC: runsc_entry()}}


def _new_root() -> Path:
    """A fresh root whose name is also a valid containerd namespace and cgroup name:
    containerd wants ``^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$``, and ``mkdtemp``'s
    names may end in ``_`` (seen: ``lcd-quch6tx_`` refused every container start)."""
    while True:
        root = Path(ROOT_PARENT) / f"{ROOT_PREFIX}{secrets.token_hex(5)}"
        try:
            root.mkdir(mode=0o700)
        except FileExistsError:
            continue
        return root


class PrivateDockerdError(RuntimeError):
    """The private engine did not start or stop; carries the tail of its log."""


class PrivateDockerd:
    """One dockerd process under a temporary root; ``with PrivateDockerd() as engine``."""

    def __init__(self, *, log_file: Path | None = None, root: Path | None = None) -> None:
        # /tmp, not pytest's tmp_path: containerd's unix sockets live below the exec
        # root and a socket path must stay under 108 bytes.
        self.root = root or _new_root()
        (self.root / OWNER_FILE).write_text(f"{os.getpid()}\n")
        self.name = self.root.name
        self.socket = self.root / "docker.sock"
        self.pidfile = self.root / "dockerd.pid"
        self.log_file = log_file or self.root / "dockerd.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._clients: list[docker.DockerClient] = []
        self.seed: Path | None = None
        """The seed whose clone this engine's data root is (``load_from_host``), if any."""

    @property
    def host(self) -> str:
        """The ``DOCKER_HOST`` of this engine, for a node process's environment."""
        return f"unix://{self.socket}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def argv(self) -> list[str]:
        config = self.root / "daemon.json"
        config.write_text(json.dumps(engine_config()) + "\n")
        return [
            DOCKERD, f"--host={self.host}", f"--data-root={self.root / 'data'}",
            f"--exec-root={self.root / 'exec'}", f"--pidfile={self.pidfile}",
            f"--config-file={config}", "--bridge=none", "--iptables=false",
            "--ip6tables=false", "--ip-forward=false", "--ip-masq=false",
            f"--containerd-namespace={self.name}",
            f"--containerd-plugins-namespace={self.name}-plugins",
            f"--cgroup-parent=/{self.name}", "--shutdown-timeout=5", "--log-level=warn",
        ]

    @property
    def temp_dir(self) -> Path:
        """The engine's (and its containerd's) temporary folder, under its own root: what
        they leave there, a restore's checkpoint copy [JOB-WARM.7] among it, goes with the
        root instead of staying in the machine's ``/tmp``."""
        return self.root / "tmp"

    def environment(self) -> dict[str, str]:
        """The caller's environment with ``TMPDIR`` this engine's own (and no
        ``XDG_RUNTIME_DIR``, which containerd would prefer to it)."""
        self.temp_dir.mkdir(exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
        env["TMPDIR"] = str(self.temp_dir)
        return env

    # -- life cycle ------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> None:
        """Starts dockerd (again, after ``stop``: same root, images kept) and waits for it."""
        if self.pid is not None:
            return
        with open(self.log_file, "ab") as log:
            # close_fds (the default) matters: dockerd must not inherit the flock
            # of a caller's `flock LOCK pytest`, or the lock outlives the run.
            self._proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True,
                                          env=self.environment())
        wait_until(self._answers, timeout=timeout,
                   what=f"the private dockerd {self.name} to answer", step=0.2,
                   detail=self.log_tail)

    def _answers(self) -> bool:
        if self._proc is not None and self._proc.poll() is not None:
            raise PrivateDockerdError(f"private dockerd exited with {self._proc.returncode}: "
                                      f"{self.log_tail()}")
        try:
            # a new client each time: its constructor already asks the engine its version
            client = docker.DockerClient(base_url=self.host, timeout=10)
        except (docker.errors.DockerException, requests.exceptions.RequestException, OSError):
            return False
        try:
            return bool(client.ping())
        except (docker.errors.DockerException, requests.exceptions.RequestException, OSError):
            return False
        finally:
            client.close()

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, as an init system stops an engine; SIGKILL if it does not go."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=scaled(timeout))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self, timeout: int = 60) -> docker.DockerClient:
        """A client for this engine (closed by ``close``)."""
        client = docker.DockerClient(base_url=self.host, timeout=timeout)
        self._clients.append(client)
        return client

    def reset(self, keep_images: set[str]) -> None:
        """Back to a fresh engine holding only ``keep_images`` (ids): every container and
        every other image removed, so the next test that shares it finds what a new
        engine with those images would hold. Starts the engine if a test left it stopped."""
        self.start()
        client = docker.DockerClient(base_url=self.host, timeout=120)
        try:
            for container in client.containers.list(ignore_removed=True, all=True):
                with contextlib.suppress(docker.errors.NotFound):
                    container.remove(force=True, v=True)
            # children first: a built image's intermediate parents refuse removal (409)
            # while a child stands, and go with the child's removal (untagged parents)
            for _ in range(8):
                others = [image.id for image in client.images.list(all=True)
                          if image.id not in keep_images]
                if not others:
                    break
                for image_id in others:
                    with contextlib.suppress(docker.errors.ImageNotFound,
                                             docker.errors.APIError):
                        client.images.remove(image_id, force=True)
            left = {image.id for image in client.images.list(all=True)} - keep_images
            if left or client.containers.list(ignore_removed=True, all=True):
                raise PrivateDockerdError(f"private dockerd {self.name} not reset: "
                                          f"images {sorted(left)} left")
            client.volumes.prune()
        finally:
            client.close()

    def close(self) -> None:
        """Stops the engine and removes every trace of it: processes, mounts, cgroups, files."""
        for client in self._clients:
            with contextlib.suppress(Exception):
                client.close()
        self.stop()
        self._remove_traces()

    def _remove_traces(self) -> None:
        self._kill_leftovers()
        self._unmount_below_root()
        self._remove_cgroups()
        shutil.rmtree(self.root, ignore_errors=True)

    @classmethod
    def sweep_orphans(cls) -> list[Path]:
        """Removes private engines whose test process died (SIGKILL, a killed CI job) before
        it could close them; engines of live test processes (other sessions) are left alone.
        Returns the roots removed."""
        removed = []
        for root in Path(ROOT_PARENT).glob(f"{ROOT_PREFIX}*"):
            try:
                owner = int((root / OWNER_FILE).read_text())
            except (OSError, ValueError):
                continue
            if Path(f"/proc/{owner}").exists():
                continue
            orphan = cls.__new__(cls)
            orphan.root, orphan.name = root, root.name
            orphan._remove_traces()
            removed.append(root)
        return removed

    def __enter__(self) -> PrivateDockerd:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- teardown helpers ------------------------------------------------------------------

    def _kill_leftovers(self) -> None:
        """containerd and shims outlive a SIGKILLed dockerd; ours name our root in argv."""
        marker = str(self.root).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                if marker in (entry / "cmdline").read_bytes():
                    os.kill(int(entry.name), signal.SIGKILL)

    def _unmount_below_root(self) -> None:
        prefix = str(self.root) + "/"
        mounts = []
        with contextlib.suppress(OSError):
            for line in Path("/proc/self/mountinfo").read_text().splitlines():
                point = line.split()[4].replace("\\040", " ")
                if point.startswith(prefix):
                    mounts.append(point)
        for point in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)

    def _remove_cgroups(self) -> None:
        """cgroupfs leaves the (empty) parent cgroup behind in every hierarchy. A container
        whose shim was killed (an orphaned engine) still runs in it: those go first."""
        parents = [p for p in [*CGROUP_ROOT.glob(f"*/{self.name}"), CGROUP_ROOT / self.name]
                   if p.is_dir()]
        for parent in parents:
            for procs in parent.rglob("cgroup.procs"):
                with contextlib.suppress(OSError, ValueError):
                    for pid in procs.read_text().split():
                        os.kill(int(pid), signal.SIGKILL)
        for parent in parents:
            for child in sorted(parent.rglob("*"), key=lambda p: len(str(p)), reverse=True):
                if child.is_dir():
                    with contextlib.suppress(OSError):
                        child.rmdir()
            with contextlib.suppress(OSError):
                parent.rmdir()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "(no dockerd log)"
        return "dockerd log: " + " | ".join(text.strip().splitlines()[-lines:])

    # -- images ----------------------------------------------------------------------------

    def load_from_host(self, host: docker.DockerClient, ref: str) -> str:
        """Copies image ``ref`` from ``host`` into this engine with its tags; returns its id.

        An engine that holds nothing yet restarts on a clone of a data root holding the
        image (``engine_seed``: a second or two instead of the engine unpacking a gigabyte);
        one that does, or whose clone fails, loads the ``docker save`` tar, cached per image
        (``cached_image_tar``). Reading an image does not change the host engine.
        """
        image = host.images.get(ref)
        if self._is_empty() and self._restart_on_seed(host, ref, image):
            return str(image.id)
        self._load_tar(cached_image_tar(host, ref), image)
        return str(image.id)

    def _load_tar(self, tar: Path, image: docker.models.images.Image) -> None:
        client = self.client(timeout=600)
        with open(tar, "rb") as data:
            client.images.load(data)
            loaded = client.images.get(image.id)
            for tag in image.tags:
                repository, _, version = tag.rpartition(":")
                loaded.tag(repository, version)

    def _is_empty(self) -> bool:
        client = docker.DockerClient(base_url=self.host, timeout=60)
        try:
            return not client.images.list(all=True) and \
                not client.containers.list(all=True, ignore_removed=True)
        finally:
            client.close()

    def _restart_on_seed(self, host: docker.DockerClient, ref: str,
                         image: docker.models.images.Image) -> bool:
        """Stops this (empty) engine, puts a clone of the seed of ``ref`` (``image`` on
        ``host``) in place of its data root and starts it again; False (the engine running on
        a fresh data root again) if the seed cannot be cloned here."""
        key = image_cache_key(image)
        seed = ensure_seed(cache_dir(), key, lambda data: _build_seed(host, ref, data))
        self.stop()
        data_root = self.root / "data"
        shutil.rmtree(data_root)
        try:
            clone_seed(seed, data_root)
        except SeedError:
            shutil.rmtree(data_root, ignore_errors=True)
            self.start()
            return False
        self.start()
        self.seed = seed
        client = docker.DockerClient(base_url=self.host, timeout=60)
        try:
            held = client.images.get(str(image.id))
            if set(held.tags) != set(image.tags):
                raise PrivateDockerdError(f"engine {self.name} started on seed {seed} holds "
                                          f"{held.tags}, not {image.tags}")
        finally:
            client.close()
        return True


def image_cache_key(image: docker.models.images.Image) -> str:
    """A file name part for an image and its tags: a re-tag or a rebuild changes it."""
    key = hashlib.sha256(json.dumps([image.id, sorted(image.tags)]).encode()).hexdigest()[:16]
    return f"{image.id.removeprefix('sha256:')[:16]}-{key}"


def _build_seed(host: docker.DockerClient, ref: str, data_root: Path) -> None:
    """A stopped engine's data root (``data_root``) holding ``ref`` with its tags."""
    builder = PrivateDockerd()
    try:
        builder.start()
        builder._load_tar(cached_image_tar(host, ref), host.images.get(ref))
        builder.stop()
        if builder.pid is not None:
            raise PrivateDockerdError(f"seed engine {builder.name} did not stop")
        (builder.root / "data").rename(data_root)
    finally:
        builder.close()


def cache_dir() -> Path:
    """``LC_TEST_CACHE`` or ~/.cache/learningchain/tests: files tests may keep between runs."""
    configured = os.environ.get(CACHE_ENV)
    path = Path(configured) if configured else Path.home() / ".cache/learningchain/tests"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cached_image_tar(host: docker.DockerClient, ref: str) -> Path:
    """``docker save`` of ``ref`` (with its tags), kept under ``cache_dir()`` by image id."""
    image = host.images.get(ref)
    path = cache_dir() / f"image-{image_cache_key(image)}.tar"
    if path.exists():
        return path
    partial = path.with_name(path.name + f".{os.getpid()}.partial")
    with open(partial, "wb") as out:
        for chunk in image.save(chunk_size=1 << 20, named=True):
            out.write(chunk)
    os.replace(partial, path)
    return path
