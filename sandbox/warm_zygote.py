"""The warm start's two halves inside a job container [JOB-WARM.2-4]: standard library only.

Copied into the launcher folder as ``lc-warm.py`` (``launcher.WARM``) and run by the image's
own ``/usr/bin/python3``, always under ``lc-launch`` and its seccomp filter.

``lc-warm.py --init``: PID 1 of the container ``sandbox/warm.py`` checkpoints, once per
machine. It forks the *zygote*, which takes the job's user, points its standard streams at
``/dev/null``, imports ``torch`` (and with it numpy) and waits for one connection on the
abstract socket ``SOCKET``; PID 1 then prints ``lc-warm ready`` to the container's log.
Every warm job container is restored from that checkpoint, zygote included, with the
import already done.

``lc-warm.py ENTRY [ARGS...]``: the *client*, what the runner execs in a restored container
instead of the entry point. It hands the zygote its three standard streams (SCM_RIGHTS),
its argv, environment and working folder, and exits with the status the zygote reports.
The zygote forks once; the child takes the streams, the folder and the environment, and
runs ``ENTRY`` with ``runpy`` as ``__main__`` when it is a Python 3 script of this image's
interpreter whose import-time variables match the zygote's [JOB-WARM.3]; otherwise it
execs ``ENTRY`` as a cold start would. Without a zygote (nothing listens) the client
itself execs ``ENTRY``: a warm argv is always safe in a cold container.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
from typing import NoReturn

SOCKET = b"\0learningchain-warm-zygote"
"""Abstract: no file anywhere, nothing for the job's mounts to hide or expose."""
READY = b"lc-warm ready\n"
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
PYTHON_SHEBANGS = (b"#!/usr/bin/env python3", b"#!/usr/bin/python3",
                   b"#!/usr/bin/env python3.11", b"#!/usr/bin/python3.11")


def import_relevant(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(IMPORT_PREFIXES)}


def init() -> int:
    """PID 1 of the checkpointed container: fork the zygote, say whether it is ready, wait.

    It runs as root holding only CAP_SETUID and CAP_SETGID, already under the job's filter
    (``lc-launch``), and never runs anything else: the zygote, its child, drops to the
    job's user before it imports anything, so a job can signal neither PID 1 (as with
    ``policy.HOLD_USER`` in a cold container, [JOB-SANDBOX.5]) nor anything but its own
    processes and the zygote. The zygote must be PID 1's child: gVisor restores the
    init's tree but not processes started by ``docker exec`` nor their orphans."""
    ready_r, ready_w = os.pipe()
    if os.fork() == 0:
        os.close(ready_r)
        code = 1
        try:
            code = _zygote(ready_w)
        finally:
            os._exit(code)
    os.close(ready_w)
    said = os.read(ready_r, 1)
    os.close(ready_r)
    sys.stdout.buffer.write(READY if said == b"1" else b"lc-warm zygote failed\n")
    sys.stdout.flush()
    while True:
        try:
            os.wait()
        except ChildProcessError:
            signal.pause()


def _zygote(ready_w: int) -> int:
    """Drop to the job's user, take /dev/null for the streams, import, listen, say ready,
    serve one request."""
    os.setgroups([])
    os.setresgid(JOB_ID, JOB_ID, JOB_ID)
    os.setresuid(JOB_ID, JOB_ID, JOB_ID)
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    import torch  # noqa: F401  (the point of the zygote)

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(SOCKET)
    listener.listen(1)
    os.write(ready_w, b"1")
    os.close(ready_w)
    return _serve_one(listener)


def _serve_one(listener: socket.socket) -> int:
    """[JOB-WARM.4] One request: fork the entry's child, wait for it, report its status."""
    conn, _ = listener.accept()
    listener.close()
    try:
        fds, request = _receive(conn)
    except (OSError, ValueError) as e:
        conn.sendall(json.dumps({"error": str(e)[:500]}).encode())
        return 1
    pid = os.fork()
    if pid == 0:
        conn.close()
        _child(fds, request)  # never returns
    for fd in fds:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    reply = ({"signal": os.WTERMSIG(status)} if os.WIFSIGNALED(status)
             else {"exit": os.waitstatus_to_exitcode(status)})
    conn.sendall(json.dumps(reply).encode())
    conn.close()
    return 0


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


def _child(fds: list[int], request: dict[str, object]) -> None:
    code = 1
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        raw_argv, raw_env = request["argv"], request["env"]
        if not isinstance(raw_argv, list) or not raw_argv or not isinstance(raw_env, dict):
            raise ValueError("a warm request needs a non-empty argv and an environment")
        argv = [str(a) for a in raw_argv]
        env = {str(k): str(v) for k, v in raw_env.items()}
        os.chdir(str(request["cwd"]))
        zygote_env = import_relevant(dict(os.environ))
        os.environ.clear()
        os.environ.update(env)
        script = _python_script(argv, env.get("PATH", os.defpath))
        if script is None or import_relevant(env) != zygote_env:
            _exec(argv, env)  # a cold start, in this warm container
        code = _run_python(*script)
    except SystemExit as e:
        code = _exit_code(e.code)
    except BaseException:  # the job's own error, printed as python3 would
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)


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


def _run_python(script: str | None, code_text: str | None, args: list[str]) -> int:
    """The entry as ``python3 SCRIPT ARGS`` (or ``-c``) would run it: ``__main__``, the
    script's folder (or "") first on the path, its argv; atexit handlers run at the end."""
    import atexit
    import runpy

    sys.argv = args
    sys.path[0] = os.path.dirname(os.path.abspath(script)) if script else ""
    try:
        if script is not None:
            runpy.run_path(script, run_name="__main__")
        else:
            import types

            main = types.ModuleType("__main__")
            sys.modules["__main__"] = main
            exec(compile(code_text or "", "<string>", "exec"), main.__dict__)
        code = 0
    except SystemExit as e:
        code = _exit_code(e.code)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
    return code


def _exit_code(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


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
