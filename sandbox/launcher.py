"""The launcher every entry point starts through [JOB-SECCOMP.5].

``sandbox/launch.c`` is compiled once per machine (statically, so it runs in any image)
next to the job profile compiled to BPF (``seccomp_bpf``), in a folder keyed by both:
``$XDG_CACHE_HOME/learningchain/launcher/<key>/`` (``~/.cache`` by default). The runner
mounts that folder read-only at ``MOUNT`` in every job container and runs
``MOUNT/lc-launch MOUNT/job.bpf ARGV...`` instead of ``ARGV``: the launcher installs the
filter, then execs the entry point. Beside them, ``lc-mapcache.so`` (``sandbox/mapcache.c``)
and ``lc-statcache.so`` (``sandbox/statcache.c``), which the runner preloads into every
entry point (``PRELOAD``): the first keeps small anonymous mappings a job gives back for
reuse, since under gVisor each munmap costs a few hundred microseconds [JOB-MAPCACHE.1];
the second answers repeated stat() calls of read-only files from memory [JOB-STATCACHE.1].
``make setup`` builds them (``learningchain sandbox base-image``); a runner on a machine
where they are missing builds them at first use.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from sandbox.errors import SandboxError
from sandbox.seccomp import PROFILE_FILE, build_profile
from sandbox.seccomp_bpf import compile_profile

SOURCE = Path(__file__).with_name("launch.c")
MAPCACHE_SOURCE = Path(__file__).with_name("mapcache.c")
STATCACHE_SOURCE = Path(__file__).with_name("statcache.c")
PRELOAD_HEADER = Path(__file__).with_name("preload_sys.h")
WARM_SOURCE = Path(__file__).with_name("warm_zygote.py")
MOUNT = "/.learningchain"
"""Where the launcher folder appears in a job container (read-only)."""
BINARY = "lc-launch"
PROGRAM = "job.bpf"
MAPCACHE = "lc-mapcache.so"
STATCACHE = "lc-statcache.so"
WARM = "lc-warm.py"
"""[JOB-WARM.2] The zygote and its client (``sandbox/warm_zygote.py``), run by the image's
own python3."""
WARM_PYTHON = "/usr/bin/python3"
PRELOAD = f"{MOUNT}/{MAPCACHE}:{MOUNT}/{STATCACHE}"
"""``LD_PRELOAD`` of every entry point [JOB-MAPCACHE.1] [JOB-STATCACHE.1]."""
MALLOC_TUNABLES = ("glibc.malloc.trim_threshold=67108864:glibc.malloc.top_pad=16777216:"
                   "glibc.malloc.mmap_threshold=33554432")
"""``GLIBC_TUNABLES`` of every entry point [JOB-MALLOC.1]: the C library's heap grows 16 MiB
ahead and gives memory back to the kernel only above 64 MiB free at its top, since under
gVisor each shrink of touched memory costs a few hundred microseconds; and blocks under
32 MiB come from that heap. The last is not optional: setting either of the first two
turns off glibc's adaptive mapping threshold, which would leave it at 128 KiB, so every
larger block (a tensor) would get a mapping of its own, faulted in and unmapped each time
(a CPU training loop of 4 MiB tensors: 1.8x slower, 4x the page faults)."""
ENTRY_ENV = {"LD_PRELOAD": PRELOAD, "GLIBC_TUNABLES": MALLOC_TUNABLES}
"""What every entry point's environment gets from the launcher; the only import-time
variables [JOB-WARM.3] a training run has unless its caller adds some."""
FILES = (BINARY, PROGRAM, MAPCACHE, STATCACHE, WARM)
"""What the launcher folder holds."""
EXIT_LAUNCH_FAILED = 125
"""The launcher's status when it could not install the filter (the job never ran)."""
COMPILE_TIMEOUT_S = 120.0


class LauncherUnavailable(SandboxError):
    """The launcher could not be built on this machine (no C compiler or static libc)."""


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "learningchain" / "launcher"


def argv(entry: Sequence[str]) -> list[str]:
    """[JOB-SECCOMP.5] The exec's argv: the launcher, its filter, then the entry point."""
    return [f"{MOUNT}/{BINARY}", f"{MOUNT}/{PROGRAM}", *entry]


def warm_argv(entry: Sequence[str]) -> list[str]:
    """[JOB-WARM.4] The exec's argv in a restored container: the launcher and its filter, as
    ever, then the warm client, which hands ``entry`` to the restored zygote (or execs it
    where none listens)."""
    return argv([WARM_PYTHON, "-I", "-S", f"{MOUNT}/{WARM}", *entry])


def zygote_init_argv() -> list[str]:
    """[JOB-WARM.2] PID 1 of the checkpointed container (which forks the zygote), under the
    same launcher and filter as any entry point."""
    return argv([WARM_PYTHON, f"{MOUNT}/{WARM}", "--init"])


@cache
def folder() -> Path:
    """The launcher's folder on this machine, built first if missing (once per process)."""
    program = compile_profile(build_profile())
    sources = (SOURCE, MAPCACHE_SOURCE, STATCACHE_SOURCE, PRELOAD_HEADER, WARM_SOURCE)
    key = hashlib.sha256(b"\0".join([*(s.read_bytes() for s in sources), program])
                         ).hexdigest()[:20]
    target = cache_root() / key
    if all((target / name).is_file() for name in FILES):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=target.parent))
    try:
        _compile(["-static", "-o", str(staging / BINARY), str(SOURCE)])
        for library, source in ((MAPCACHE, MAPCACHE_SOURCE), (STATCACHE, STATCACHE_SOURCE)):
            _compile(["-shared", "-fPIC", "-nostdlib", "-fno-builtin", "-fno-stack-protector",
                      "-o", str(staging / library), str(source)])
        (staging / PROGRAM).write_bytes(program)
        shutil.copyfile(WARM_SOURCE, staging / WARM)
        for path in (staging, *(staging / name for name in FILES)):
            path.chmod(0o755 if path.is_dir() or path.name == BINARY else 0o644)
        try:
            staging.rename(target)  # atomic; another process may have won the race
        except OSError:
            if not all((target / name).is_file() for name in FILES):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _compile(arguments: Sequence[str]) -> None:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise LauncherUnavailable("no C compiler to build the job launcher "
                                  f"({SOURCE}); `make setup` installs gcc [JOB-SECCOMP.5]")
    command = [compiler, "-O2", "-Wall", "-Werror", *arguments]
    try:
        # Its own session: a Ctrl-C or a SIGTERM to the node's process group would kill the
        # compiler mid-build and turn a stop into "install libc6-dev"; the node stops itself.
        done = subprocess.run(command, capture_output=True, text=True,
                              timeout=COMPILE_TIMEOUT_S, check=False, start_new_session=True)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise LauncherUnavailable(f"building the job launcher failed: {e}") from e
    if done.returncode != 0:
        raise LauncherUnavailable(f"building the job launcher failed ({' '.join(command)}): "
                                  f"{done.stderr.strip()[-500:]} (static libc: apt-get "
                                  "install libc6-dev) [JOB-SECCOMP.5]")


__all__ = ["MOUNT", "PRELOAD", "PROFILE_FILE", "LauncherUnavailable", "argv", "folder",
           "warm_argv", "zygote_init_argv"]
