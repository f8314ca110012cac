"""The warm start's two halves inside a job container [JOB-WARM.2-4]: standard library only.

Copied into the launcher folder as ``lc-warm.py`` (``launcher.WARM``) and run by the image's
own ``/usr/bin/python3``, always under ``lc-launch`` and its seccomp filter.

``lc-warm.py --init``: PID 1 of the container ``sandbox/warm.py`` checkpoints, once per
machine. It forks the *zygote*, which takes the job's user, points its standard streams at
``/dev/null``, imports ``PREIMPORTED`` (torch, numpy with it, and what a training's
optimizer imports next) and waits for one connection on the
abstract socket ``SOCKET``; PID 1 then prints ``lc-warm ready`` to the container's log.
Every warm job container is restored from that checkpoint, zygote included, with the
import already done.

``lc-warm.py ENTRY [ARGS...]``: the *client*, what the runner execs in a restored container
instead of the entry point. It hands the zygote its three standard streams (SCM_RIGHTS),
its argv, environment and working folder, and exits with the status PID 1 reports. The
zygote hands the connection to PID 1 and *becomes* the job, without a fork (a fork of a
process holding torch costs gVisor 0.13-0.26 s, and its copied pages would count twice):
it takes the streams, the folder and the environment, and runs ``ENTRY`` with ``runpy``
as ``__main__`` when it is a Python 3 script of this image's interpreter whose
import-time variables match the zygote's [JOB-WARM.3]; otherwise it execs ``ENTRY`` in
its own place, as a cold start would. When that process ends, PID 1, its parent, sends
its status. Without a zygote (nothing listens) the client itself execs ``ENTRY``: a warm
argv is always safe in a cold container.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import json
import os
import signal
import socket
import sys
from typing import NoReturn

SOCKET = b"\0learningchain-warm-zygote"
"""Abstract: no file anywhere, nothing for the job's mounts to hide or expose."""
READY = b"lc-warm ready\n"
PR_CAPBSET_DROP = 24
JOB_ID = 65534
"""``policy.JOB_USER``'s uid and gid: the zygote and every job it starts run as them."""
REQUEST_MAX = 4 * 1024 * 1024
"""argv and environment of one entry point: bounded like the engine's own exec request."""
IMPORT_PREFIXES = ("LD_", "GLIBC_", "MALLOC_", "PYTHON", "OMP_", "KMP_", "GOMP_", "MKL_",
                   "OPENBLAS_", "GOTO", "BLIS_", "VECLIB_", "NUMEXPR_", "TORCH", "PYTORCH_",
                   "CUDA_", "NVIDIA_", "ATEN_", "DNNL_", "ONEDNN_", "LANG", "LC_ALL",
                   "LC_CTYPE", "NPY_", "NUMPY_")
"""[JOB-WARM.3] Variables that change what an import does (a library's threads, the loader,
the interpreter, the C library's heap, numpy's and torch's switches). A warm child runs
in-process only when the request has exactly the zygote's values of these."""
PREIMPORTED = ("torch", "torch._dynamo", "torch._inductor.config")
"""[JOB-WARM.2] What the zygote imports before the checkpoint: torch (numpy with it), then
what a training imports next: ``torch._dynamo`` (every ``torch.optim`` optimizer's first
``add_param_group`` imports it: 840 modules, sympy among them, 1.7 s under runsc) and
``torch._inductor.config`` (``torch.use_deterministic_algorithms`` imports it)."""
PYTHON_SHEBANGS = (b"#!/usr/bin/env python3", b"#!/usr/bin/python3",
                   b"#!/usr/bin/env python3.11", b"#!/usr/bin/python3.11")


def import_relevant(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(IMPORT_PREFIXES)}


def init() -> int:
    """PID 1 of the checkpointed container: fork the zygote, say whether it is ready, then
    report the job's end to the client.

    It runs as root holding only CAP_SETUID, CAP_SETGID and CAP_SETPCAP, already under the
    job's filter (``lc-launch``), and never runs anything else: the zygote, its child,
    empties its bounding set and drops to the job's user before it imports anything, so a
    job can signal neither PID 1 (as with ``policy.HOLD_USER`` in a cold container,
    [JOB-SANDBOX.5]) nor anything but its own processes. The zygote must be PID 1's
    child: gVisor restores the init's tree but not processes started by ``docker exec``
    nor their orphans. In the job's container (the
    zygote returns from here only there, as the job) PID 1 gets the client's connection
    from the zygote and answers it with the job's status when the job's process ends."""
    ready_r, ready_w = os.pipe()
    report, zygote_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        report.close()
        return _zygote(ready_w, zygote_end)  # returns in the job: its exit status
    os.close(ready_w)
    zygote_end.close()
    said = os.read(ready_r, 1)
    os.close(ready_r)
    sys.stdout.buffer.write(READY if said == b"1" else b"lc-warm zygote failed\n")
    sys.stdout.flush()
    _report(pid, report)
    return 0  # never reached


def _report(pid: int, report: socket.socket) -> NoReturn:
    """[JOB-WARM.4] PID 1's duty: take the client's connection, wait for the job's process
    (the zygote become the job) to end, send its status; then only reap."""
    conn: socket.socket | None = None
    with contextlib.suppress(OSError, ValueError):
        _msg, fds, _flags, _addr = socket.recv_fds(report, 16, 1)
        conn = socket.socket(fileno=fds[0]) if fds else None
    while True:
        try:
            ended, status = os.wait()
        except ChildProcessError:
            signal.pause()
            continue
        if ended == pid and conn is not None:
            reply = ({"signal": os.WTERMSIG(status)} if os.WIFSIGNALED(status)
                     else {"exit": os.waitstatus_to_exitcode(status)})
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps(reply).encode())
                conn.close()
            conn = None


def _zygote(ready_w: int, report: socket.socket) -> int:
    """Drop to the job's user, take /dev/null for the streams, import, listen, say ready;
    then, restored in a job's container, take one request and become that job."""
    _empty_bounding_set()
    os.setgroups([JOB_ID])  # what the engine gives a cold job of user 65534:65534
    os.setresgid(JOB_ID, JOB_ID, JOB_ID)
    os.setresuid(JOB_ID, JOB_ID, JOB_ID)
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    imported_with = import_relevant(dict(os.environ))  # before the imports change it
    import torch  # noqa: F401  (the point of the zygote)
    for module in PREIMPORTED[1:]:
        importlib.import_module(module)

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(SOCKET)
    listener.listen(1)
    os.write(ready_w, b"1")
    os.close(ready_w)
    conn, _ = listener.accept()
    listener.close()
    try:
        fds, request = _receive(conn)
    except (OSError, ValueError) as e:
        conn.sendall(json.dumps({"error": str(e)[:500]}).encode())
        return 1
    socket.send_fds(report, [b"c"], [conn.fileno()])  # PID 1 answers it when we end
    report.close()
    conn.close()
    return _become(fds, request, imported_with)


def _empty_bounding_set() -> None:
    """[JOB-WARM.2] Give up every capability for good before taking the job's user: PID 1's
    two (and CAP_SETPCAP, which this needs) would otherwise stay in the bounding set the
    job inherits, where a cold job's is empty. A failure ends the zygote: no checkpoint."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in range(64):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            err = ctypes.get_errno()
            if err != errno.EINVAL:  # EINVAL: past the kernel's last capability
                raise OSError(err, f"prctl(PR_CAPBSET_DROP, {cap}): {os.strerror(err)}")


def _receive(conn: socket.socket) -> tuple[list[int], dict[str, object]]:
    data, fds, _flags, _addr = socket.recv_fds(conn, REQUEST_MAX, 3)
    while not data.endswith(b"\n"):
        more = conn.recv(REQUEST_MAX)
        if not more or len(data) + len(more) > REQUEST_MAX:
            raise ValueError("incomplete or oversized warm request")
        data += more
    if len(fds) != 3:
        raise ValueError(f"warm request carried {len(fds)} streams, not 3")
    request = json.loads(data)
    if not isinstance(request, dict):
        raise ValueError("warm request is not an object")
    return list(fds), request


def _become(fds: list[int], request: dict[str, object], imported_with: dict[str, str]) -> int:
    """[JOB-WARM.4] Take the client's streams, folder and environment, then run the entry:
    in this process when [JOB-WARM.3] holds and it is Python this interpreter would run,
    else exec'd in its place. Returns the exit status of an in-process run; its own
    exceptions are printed as python3 prints them (from the script's frame on).
    ``imported_with``: the zygote's import-time variables before its imports (which set some:
    ``torch._dynamo`` sets ``TORCHINDUCTOR_CACHE_DIR``); the job gets the client's variables
    only, as a cold process has before its own imports."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    raw_argv, raw_env = request.get("argv"), request.get("env")
    if not isinstance(raw_argv, list) or not raw_argv or not isinstance(raw_env, dict):
        print("lc-warm: a request needs a non-empty argv and an environment", file=sys.stderr)
        return 1
    argv = [str(a) for a in raw_argv]
    env = {str(k): str(v) for k, v in raw_env.items()}
    os.chdir(str(request.get("cwd", "/")))
    os.environ.clear()
    os.environ.update(env)
    found = _python_script(argv, env.get("PATH", os.defpath))
    if found is None or import_relevant(env) != imported_with:
        _exec(argv, env)  # a cold start, in this warm container
    script, code_text, args = found
    _fresh_randomness()
    sys.argv = args
    sys.path[0] = os.path.dirname(os.path.abspath(script)) if script else ""
    try:
        if script is not None:
            import runpy

            runpy.run_path(script, run_name="__main__")
        else:
            import types

            main = types.ModuleType("__main__")
            sys.modules["__main__"] = main
            exec(compile(code_text or "", "<string>", "exec"), main.__dict__)
    except SystemExit:
        raise
    except BaseException as e:  # the job's own error
        _print_from(e, script or "<string>")
        return 1
    return 0


def _fresh_randomness() -> None:
    """[JOB-WARM.4] Every warm job is restored from the same checkpoint, so whatever the
    zygote's imports seeded from the system's entropy would be the same in each: ``random``'s
    generator (torch imports it), numpy's global one if imported, a temporary name sequence
    if made, and ``multiprocessing``'s authentication key. Each is drawn again here, as a
    cold start's imports would draw it. The string hash secret cannot be: every warm job
    has the checkpoint's."""
    modules = sys.modules
    random = modules.get("random")
    if random is not None:
        random.seed()
    numpy_random = modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()
    tempfile = modules.get("tempfile")
    if tempfile is not None:
        tempfile._name_sequence = None  # type: ignore[attr-defined]  # made anew on first use
    process = modules.get("multiprocessing.process")
    if process is not None:
        process.current_process().authkey = os.urandom(32)


def _print_from(error: BaseException, filename: str) -> None:
    """The traceback python3 would print: from the job's own first frame on."""
    import traceback

    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != filename:
        tb = tb.tb_next
    traceback.print_exception(type(error), error, tb or error.__traceback__)


def _exec(argv: list[str], env: dict[str, str]) -> NoReturn:
    """What ``lc-launch`` does after its filter: exec, or 127 with its message."""
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as e:
        print(f"lc-launch: cannot run {argv[0]}: {e.strerror}", file=sys.stderr)
        os._exit(127)


def _python_script(argv: list[str], path: str) -> tuple[str | None, str | None, list[str]] | None:
    """(script path, or None; ``-c`` code, or None; sys.argv) when ``argv`` is what this
    zygote's interpreter would run: a Python 3 script of it, ``python3 SCRIPT ARGS`` or
    ``python3 -c CODE ARGS``; None for anything else (then it is exec'd)."""
    found = _resolve(argv[0], path)
    if found is None:
        return None
    if _same_interpreter(found):
        if len(argv) >= 3 and argv[1] == "-c":
            return None, argv[2], ["-c", *argv[3:]]
        if len(argv) >= 2 and not argv[1].startswith("-") and os.path.isfile(argv[1]):
            return argv[1], None, argv[1:]
        return None
    return (found, None, [found, *argv[1:]]) if _ours(found) else None


def _resolve(name: str, path: str) -> str | None:
    if "/" in name:
        return name if os.path.isfile(name) else None
    for folder in path.split(os.pathsep):
        candidate = os.path.join(folder or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _ours(entry: str) -> bool:
    """A Python 3 script whose interpreter is this zygote's: what ``execvp`` would run."""
    try:
        with open(entry, "rb") as f:
            first = f.readline(256).rstrip(b"\r\n").rstrip()
    except OSError:
        return False
    if first not in PYTHON_SHEBANGS:
        return False
    if first.startswith(b"#!/usr/bin/env"):
        found = _resolve(first.split()[-1].decode(), os.environ.get("PATH", os.defpath))
        return found is not None and _same_interpreter(found)
    return _same_interpreter(first[2:].decode())


def _same_interpreter(path: str) -> bool:
    return os.path.realpath(path) == os.path.realpath(sys.executable)


def client(argv: list[str]) -> int:
    try:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(SOCKET)
    except OSError:
        _exec(argv, dict(os.environ))  # no zygote here: a cold start
    request = json.dumps({"argv": argv, "env": dict(os.environ), "cwd": os.getcwd()})
    socket.send_fds(conn, [request.encode() + b"\n"], [0, 1, 2])
    for fd in (0, 1, 2):  # the child holds them now; the exec's output ends with it
        os.close(fd)
    reply = b""
    while chunk := conn.recv(4096):
        reply += chunk
    try:
        status = json.loads(reply) if reply else {}
    except ValueError:
        status = {}
    if "signal" in status:
        return 128 + int(status["signal"])
    if "exit" in status:
        return int(status["exit"]) & 0xFF
    return 1  # the zygote went away without a status


def main(argv: list[str]) -> int:
    if argv[:1] == ["--init"]:
        return init()
    if not argv:
        print("usage: lc-warm.py --init | ENTRY [ARGS...]", file=sys.stderr)
        return 2
    return client(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


__all__ = ["IMPORT_PREFIXES", "READY", "SOCKET", "import_relevant", "main"]
