"""Which OCI runtime runs job containers: gVisor's ``runsc`` or plain ``runc`` [JOB-RUNTIME.*].

Under ``runc`` a job shares the host's kernel: one kernel bug reachable through a system
call the seccomp profile allows gives it the machine. Under ``runsc`` (gVisor) the job's
system calls are answered by a kernel in user space (the Sentry), which itself makes few,
filtered host calls; the job never reaches the host kernel directly. So the default is
``auto`` [JOB-RUNTIME.1]: ``runsc`` wherever the engine has it, and a worker told to use
``runsc`` on an engine without it refuses to start [JOB-RUNTIME.2].

Pure and standard-library only: ``python3 -m sandbox.runtime register FILE`` is what
``scripts/setup_system.sh`` runs (before the project's virtualenv exists) to add the
runtime to the engine's ``daemon.json`` without touching its other keys.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.errors import SandboxError

RUNC = "runc"
RUNSC = "runsc"
AUTO = "auto"
CHOICES = (AUTO, RUNSC, RUNC)
"""What ``[worker] runtime`` may say; ``auto`` is ``runsc`` where the engine has it."""
DEFAULT = AUTO
"""[JOB-RUNTIME.1] What a node uses unless its config says otherwise: gVisor wherever
``make setup`` installed it, plain runc (with a warning at start) elsewhere. It was
``runc`` while runsc 20221219/ptrace made the warm CKKS executor answer
``predict-invalid`` (fixed: [JOB-RUNTIME.10] [JOB-RUNTIME.11]) and doubled every run; the
pinned backport's ``systrap`` platform ([JOB-RUNTIME.4]) brought the cost to 1.6-2.0 times
runc's ([JOB-RUNTIME.9]), what a second kernel between strangers' code and the worker's
machine is worth."""
DEFAULT_ENV = "LC_WORKER_RUNTIME"
"""Replaces ``DEFAULT`` for configs that name no ``[worker] runtime`` (a runtime the config
names always wins). The test suite leaves it as the caller set it, so its graph stories
run under the node's own default (gVisor where runsc is installed, about 12 % more time
for the whole run); ``LC_WORKER_RUNTIME=runc make test`` keeps them on runc."""


def default() -> str:
    """The runtime of a config that names none: ``$LC_WORKER_RUNTIME`` if set, else
    ``DEFAULT`` [JOB-RUNTIME.1]; ``BadRuntime`` if the variable names no runtime."""
    value = os.environ.get(DEFAULT_ENV, "")
    if not value:
        return DEFAULT
    if value not in CHOICES:
        raise BadRuntime(value, f"${DEFAULT_ENV}")
    return value


RUNSC_PATH = "/usr/bin/runsc"
RUNSC_PACKAGE_VERSION = "0.0~20240729.0-4~bpo12+2"
"""[JOB-RUNTIME.4] The Debian package ``make setup`` installs, exactly (from
bookworm-backports; its ``.deb`` has SHA-256
``afdde883e3876ea807e19c708d4432674a20cb10186a7a5b554d62f38ea8de46``). Debian 12's own
``runsc`` (20221219) has no ``systrap`` platform; a release pinned exactly means every
worker's Sentry answers a job's system calls the same way ([JOB-RUNTIME.7])."""
RUNSC_PLATFORM = "systrap"
"""[JOB-RUNTIME.4] How the Sentry intercepts the job's system calls. ``systrap`` (a
seccomp trap in the job's own stub threads, no ptrace round trips): ``import torch`` and
a matmul loop took 2.80 s against runc's 1.17 s, ``ptrace`` 3.43 s (the same runsc) and
3.95 s (Debian 12's 20221219); ``kvm`` hung at boot on the reference machine (nested
KVM)."""
RUNSC_ARGS = (f"--platform={RUNSC_PLATFORM}", "--oci-seccomp", "--network=none")
"""``--oci-seccomp``: the project's profile [JOB-SECCOMP.*] is enforced inside the sandbox
too (gVisor ignores an OCI seccomp profile without it) [JOB-RUNTIME.3]. ``--network=none``:
the Sentry's own network stack has a loopback device only and never touches a host
namespace (every job container has network ``none`` anyway [JOB-SANDBOX.1])."""

RUNSC_EXTRA_PIDS = 96
"""[JOB-RUNTIME.3] Host threads the sandbox itself needs under runsc, on top of the job's
``pids``: the engine's pids limit counts the Sentry's and gofer's host threads and the
platform's stubs, not the job's tasks. Measured on 2 cores under ptrace: 37 idle, 51 after
``import torch``; below about 56 a Python entry point does not even start. The hostile
battery passes with the same room under systrap."""
RUNSC_EXTRA_MEMORY = 32 * 1024 * 1024
"""[JOB-RUNTIME.3] The Sentry's own memory, charged to the same cgroup (measured: 13 MiB
idle, 27 MiB with torch imported), so the job keeps what it declared."""


class RuntimeUnavailable(SandboxError):
    """[JOB-RUNTIME.2] The configured runtime is not registered with the engine."""

    def __init__(self, wanted: str, registered: Sequence[str]) -> None:
        shown = ", ".join(registered) or "none"
        hint = (" (install it with `make setup`, i.e. scripts/setup_system.sh, or set "
                "[worker] runtime = \"runc\")" if wanted == RUNSC else "")
        super().__init__(f"[worker] runtime = {wanted!r} but the Docker engine has no "
                         f"{wanted!r} runtime (registered: {shown}){hint} [JOB-RUNTIME.2]")
        self.wanted = wanted
        self.registered = tuple(registered)


class BadRuntime(SandboxError, ValueError):
    """A runtime name that is not one of ``CHOICES``."""

    def __init__(self, value: object, where: str = "runtime") -> None:
        super().__init__(f"{where} {value!r} is not one of {', '.join(CHOICES)}")
        self.value = value


@dataclass(frozen=True, slots=True)
class RuntimeChoice:
    """The runtime every job container of a node gets, and why."""

    name: str
    """``runsc`` or ``runc``."""
    configured: str
    """What the config said (``auto``, ``runsc`` or ``runc``)."""

    @property
    def isolated(self) -> bool:
        """True when the job does not share the host's kernel."""
        return self.name == RUNSC

    def describe(self) -> str:
        """One line for the node's start-up log."""
        if self.isolated:
            return (f"jobs run under gVisor (runtime {RUNSC}, platform {RUNSC_PLATFORM}; "
                    f"configured {self.configured!r}) [JOB-RUNTIME.1]")
        if self.configured == AUTO:
            why, fix = "the engine has no runsc runtime", "install gVisor with `make setup`"
        else:
            why, fix = ("[worker] runtime = \"runc\"",
                        "set it to \"auto\" to use gVisor where `make setup` installed it")
        return (f"jobs run under plain runc and share this host's kernel ({why}); {fix} "
                f"[JOB-RUNTIME.1]")


def check_name(value: object) -> str:
    """``value`` if it is a runtime ``[worker] runtime`` may name, else ``BadRuntime``."""
    if not isinstance(value, str) or value not in CHOICES:
        raise BadRuntime(value)
    return value


def registered(info: Mapping[str, Any]) -> tuple[str, ...]:
    """The runtimes a ``docker info`` answer names, sorted."""
    runtimes = info.get("Runtimes") or {}
    return tuple(sorted(str(name) for name in runtimes)) if isinstance(runtimes, dict) else ()


def choose(configured: str, info: Mapping[str, Any]) -> RuntimeChoice:
    """[JOB-RUNTIME.1-2] The runtime for ``configured`` on an engine whose ``docker info`` is
    ``info``: ``auto`` is ``runsc`` when registered, else ``runc``; a named runtime must be
    registered (``runc`` always is), else ``RuntimeUnavailable``."""
    check_name(configured)
    names = registered(info)
    if configured == AUTO:
        return RuntimeChoice(RUNSC if RUNSC in names else RUNC, AUTO)
    if configured == RUNSC and RUNSC not in names:
        raise RuntimeUnavailable(RUNSC, names)
    return RuntimeChoice(configured, configured)


def resolve(client: Any, configured: str | None = None) -> RuntimeChoice:
    """``choose`` against the engine ``client`` talks to (one ``docker info``);
    ``configured`` None: ``default()``."""
    return choose(configured if configured is not None else default(), client.info())


class GraphRuntimeUnavailable(RuntimeUnavailable):
    """[JOB-RUNTIME.13] The graph's genesis names an evaluation runtime the engine lacks."""

    def __init__(self, wanted: str, registered: Sequence[str]) -> None:
        super().__init__(wanted, registered)
        shown = ", ".join(registered) or "none"
        hint = " (install gVisor with `make setup`)" if wanted == RUNSC else ""
        self.args = (f"the graph's genesis names eval_runtime {wanted!r}: every member "
                     f"evaluates claims under it, so the runtime never changes a verdict, but "
                     f"this Docker engine has no {wanted!r} runtime (registered: {shown})"
                     f"{hint}; this node cannot claim or vote [JOB-RUNTIME.13]",)


def for_evaluation(named: str, info: Mapping[str, Any]) -> str | None:
    """[JOB-RUNTIME.13] The runtime of every evaluation (self-checks and votes) on a graph whose
    genesis names ``named`` (``runsc``/``runc``; "" names none: None, the node's own runtime),
    on an engine whose ``docker info`` is ``info``; ``GraphRuntimeUnavailable`` if it lacks
    it."""
    if not named:
        return None
    check_name(named)
    names = registered(info)
    if named == RUNSC and RUNSC not in names:
        raise GraphRuntimeUnavailable(named, names)
    return named


def graph_default(worker_runtime: str | None) -> str:
    """[GENESIS-RUNTIME.1] The evaluation runtime a new local graph's genesis names: the
    runtime its workers are given (``worker_runtime``, else ``default()``), ``auto`` being
    ``runsc`` where gVisor is installed (``make setup`` installs and registers it together;
    a node whose engine lacks it refuses to start its worker [JOB-RUNTIME.13])."""
    configured = worker_runtime or default()
    if configured == AUTO:
        return RUNSC if Path(RUNSC_PATH).exists() else RUNC
    return check_name(configured)


def runsc_entry(path: str = RUNSC_PATH) -> dict[str, Any]:
    """The ``runtimes.runsc`` entry of a ``daemon.json`` [JOB-RUNTIME.4]."""
    return {"path": path, "runtimeArgs": list(RUNSC_ARGS)}


def with_runsc(config: Mapping[str, Any], path: str = RUNSC_PATH) -> dict[str, Any]:
    """``config`` (a ``daemon.json``) with ``runtimes.runsc`` set; every other key kept."""
    merged = dict(config)
    runtimes = dict(merged.get("runtimes") or {})
    runtimes[RUNSC] = runsc_entry(path)
    merged["runtimes"] = runtimes
    return merged


def register(config_file: Path, path: str = RUNSC_PATH) -> bool:
    """Add the runsc runtime to ``config_file`` (created if missing); True when it changed
    (the caller then reloads the engine with SIGHUP: ``runtimes`` is reloadable)."""
    text = config_file.read_text() if config_file.exists() else ""
    current = json.loads(text) if text.strip() else {}
    if not isinstance(current, dict):
        raise ValueError(f"{config_file} does not hold a JSON object")
    merged = with_runsc(current, path)
    if merged == current:
        return False
    config_file.parent.mkdir(parents=True, exist_ok=True)
    temp = config_file.with_name(config_file.name + ".lc-new")
    temp.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
    temp.replace(config_file)
    return True


def main(argv: Sequence[str]) -> int:
    """``register FILE``: prints ``changed`` or ``unchanged``; ``package-version``: prints
    the runsc package ``make setup`` installs."""
    if list(argv) == ["package-version"]:
        print(RUNSC_PACKAGE_VERSION)
        return 0
    if len(argv) != 2 or argv[0] != "register":
        print("usage: python3 -m sandbox.runtime register /etc/docker/daemon.json\n"
              "       python3 -m sandbox.runtime package-version", file=sys.stderr)
        return 2
    print("changed" if register(Path(argv[1])) else "unchanged")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
