"""[JOB-MAPCACHE.1] The mapping cache every entry point is preloaded with (no engine).

The real ``lc-mapcache.so`` from the launcher folder, called through ctypes in a child
process (a wrong reuse would crash the child, not pytest): a small anonymous mapping given
back whole is handed out again zeroed; a file mapping, one whose protection changed or one
unmapped in part is never reused; at most 4 MiB stays mapped; a forked child keeps
working; and CPython's frame-stack churn under LD_PRELOAD stops reaching the kernel.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from sandbox import launcher

CHILD = textwrap.dedent('''
    import ctypes, json, mmap, os, sys
    lib = ctypes.CDLL(sys.argv[1])
    lib.mmap.restype = ctypes.c_void_p
    lib.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                         ctypes.c_int, ctypes.c_long]
    for name in ("munmap", "mprotect"):
        getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_size_t] + (
            [ctypes.c_int] if name == "mprotect" else [])
    RW = mmap.PROT_READ | mmap.PROT_WRITE
    ANON = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
    K16 = 16384

    def anon(size=K16):
        return lib.mmap(None, size, RW, ANON, -1, 0)

    def fill(addr, size, byte):
        ctypes.memset(addr, byte, size)

    def is_zero(addr, size):
        return ctypes.string_at(addr, size) == bytes(size)

    def mapped(addr):
        with open("/proc/self/maps") as f:
            return any(int(line.split("-")[0], 16) <= addr < int(line.split("-")[1].split()[0], 16)
                       for line in f)

    out = {}
    a = anon()
    fill(a, K16, 0xAB)
    out["unmap"] = lib.munmap(a, K16)
    b = anon()
    out["reused_same"] = b == a
    out["reused_zeroed"] = is_zero(b, K16)
    lib.munmap(b, K16)

    path = sys.argv[2]
    with open(path, "wb") as f:
        f.write(b"F" * K16)
    fd = os.open(path, os.O_RDWR)
    f_addr = lib.mmap(None, K16, RW, mmap.MAP_SHARED, fd, 0)
    lib.munmap(f_addr, K16)
    os.close(fd)
    held = [anon() for _ in range(4)]
    for h in held:
        fill(h, K16, 0x11)
    out["file_untouched"] = open(path, "rb").read() == b"F" * K16
    for h in held:
        lib.munmap(h, K16)

    c = anon()
    out["mprotect"] = lib.mprotect(c, 4096, mmap.PROT_READ)
    lib.munmap(c, K16)
    d = [anon() for _ in range(4)]
    for x in d:
        fill(x, K16, 0x22)      # a reused read-only page would kill the child here
    for x in d:
        lib.munmap(x, K16)

    e = anon()
    lib.munmap(e + 4096, 4096)
    lib.munmap(e, K16)
    g = [anon() for _ in range(4)]
    for x in g:
        fill(x, K16, 0x33)      # a reused region with a hole would kill the child here
    for x in g:
        lib.munmap(x, K16)

    big = [anon(1 << 20) for _ in range(12)]
    for x in big:
        fill(x, 1 << 20, 0x44)
    for x in big:
        lib.munmap(x, 1 << 20)
    out["big_still_mapped"] = sum(1 for x in big if mapped(x))

    h = anon()
    pid = os.fork()
    if pid == 0:
        lib.munmap(h, K16)
        i = anon()
        fill(i, K16, 0x55)
        os._exit(0 if i == h else 3)
    out["fork_child"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    fill(h, K16, 0x66)          # the parent's mapping is still its own
    out["fork_parent"] = ctypes.string_at(h, 1) == b"\\x66"
    print(json.dumps(out))
''')

CHURN = textwrap.dedent('''
    import sys
    def depth(n):
        return 0 if n == 0 else depth(n - 1) + 1
    total = sum(depth(n) for n in range(600) for _ in range(20))
    print(total)
''')


def preload() -> Path:
    return launcher.folder() / launcher.MAPCACHE


def test_job_mapcache_1_reuses_only_whole_anonymous_mappings(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", CHILD, str(preload()), str(tmp_path / "f")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["unmap"] == 0 and out["reused_same"] and out["reused_zeroed"], out
    assert out["file_untouched"], "a file mapping given back was handed out as anonymous"
    assert out["mprotect"] == 0
    assert 1 <= out["big_still_mapped"] <= 4, out  # MAX_KEPT_BYTES: at most 4 MiB of 12
    assert out["fork_child"] == 0 and out["fork_parent"], out


def test_job_mapcache_1_python_frame_churn_stays_out_of_the_kernel() -> None:
    """CPython maps and unmaps a 16 KiB frame-stack chunk each time a call crosses its
    edge, and each fresh chunk faults its first page in again. With the cache preloaded
    the answer is the same and those faults are gone (the kernel's count, getrusage)."""
    def run(env: dict[str, str]) -> tuple[str, int]:
        done = subprocess.run(
            ["/usr/bin/env", sys.executable, "-c",
             CHURN + "import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)"],
            capture_output=True, text=True, timeout=120, check=True, env=env)
        answer, faults = done.stdout.split()
        return answer, int(faults)

    base = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    plain_answer, plain_faults = run(base)
    cached_answer, cached_faults = run({**base, "LD_PRELOAD": str(preload())})
    assert cached_answer == plain_answer == str(sum(range(600)) * 20)
    # each chunk mapped afresh faults its pages in again; a reused one does not
    assert cached_faults < plain_faults - 10_000, (plain_faults, cached_faults)
