"""[JOB-STATCACHE.1] The stat cache every entry point is preloaded with (no engine).

The real ``lc-statcache.so`` from the launcher folder, preloaded into a Python child that
runs in a private mount namespace of its own (``unshare -m``: the test's folder bound
read-only there, a tmpfs mounted writable inside it), so the cache meets the mounts it
meets in a container without a container. Every answer is compared with the kernel's own
(``os.stat`` through a directory descriptor, which the library passes through), and the
library's counters (``lc_statcache_hits``) say which answers came from memory.
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
    import ctypes, json, os, stat, sys, threading
    ro, rw, inner = sys.argv[1], sys.argv[2], sys.argv[3]
    lib = ctypes.CDLL(None)
    def hits():
        return ctypes.c_ulong.in_dll(lib, "lc_statcache_hits").value
    def kernel(path, follow=True):
        """The kernel's answer: a relative path through a directory descriptor."""
        fd = os.open("/", os.O_PATH)
        try:
            return os.stat(path.lstrip("/"), dir_fd=fd, follow_symlinks=follow)
        except OSError as e:
            return e.errno
        finally:
            os.close(fd)
    def mine(path, follow=True):
        try:
            return os.stat(path, follow_symlinks=follow)
        except OSError as e:
            return e.errno
    def same(a, b):
        if isinstance(a, int) or isinstance(b, int):
            return a == b
        return (a.st_ino, a.st_dev, a.st_mode, a.st_size, a.st_mtime_ns, a.st_nlink) == \\
               (b.st_ino, b.st_dev, b.st_mode, b.st_size, b.st_mtime_ns, b.st_nlink)
    out = {}
    def check(name, path, follow=True):
        """Ask twice; record whether both answers are the kernel's and how many hits."""
        before = hits()
        first, second = mine(path, follow), mine(path, follow)
        out[name] = {"right": same(first, kernel(path, follow)) and same(second,
                     kernel(path, follow)), "hits": hits() - before}
    check("file", f"{ro}/dir/file")
    check("dir", f"{ro}/dir")
    check("missing", f"{ro}/dir/missing", follow=False)
    check("link_lstat", f"{ro}/link", follow=False)
    check("link_stat", f"{ro}/link")
    check("through_dir_link", f"{ro}/dirlink/target")
    check("unclean", f"{ro}/dir/../dir/file")
    check("trailing_slash", f"{ro}/dir/")
    check("on_rw", f"{rw}/target")
    check("rw_inside_ro", f"{inner}/made")
    # a symbolic link on the read-only mount into a writable folder is never answered stale
    with open(f"{rw}/target", "ab") as f:
        f.write(b"grown")
    size = os.path.getsize(f"{rw}/target")
    out["through_link_fresh"] = mine(f"{ro}/link").st_size == size
    out["through_dir_link_fresh"] = mine(f"{ro}/dirlink/target").st_size == size
    # a writable mount inside the read-only one: a file appears and goes
    before = hits()
    seen = [mine(f"{inner}/late")]
    open(f"{inner}/late", "w").close()
    seen.append(mine(f"{inner}/late"))
    os.remove(f"{inner}/late")
    seen.append(mine(f"{inner}/late"))
    out["inner_fresh"] = [isinstance(s, int) for s in seen] == [True, False, True]
    out["inner_hits"] = hits() - before
    os.chdir(f"{ro}/dir")
    before = hits()
    out["relative"] = {"right": same(mine("file"), kernel(f"{ro}/dir/file")),
                       "hits": hits() - before}
    pid = os.fork()
    if pid == 0:
        os._exit(0 if same(mine(f"{ro}/dir/file"), kernel(f"{ro}/dir/file")) else 3)
    out["fork_child"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    paths = [f"{ro}/dir/f{i}" for i in range(40)] + [f"{ro}/dir/gone{i}" for i in range(40)]
    expected = {p: kernel(p) for p in paths}
    wrong = []
    def hammer(seed):
        for k in range(400):
            p = paths[(seed * 7 + k) % len(paths)]
            if not same(mine(p), expected[p]):
                wrong.append(p)
    threads = [threading.Thread(target=hammer, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out["threads_wrong"] = len(wrong)
    # past the table's 8,192 paths: still the kernel's answers, at one call each
    many = sorted(os.listdir(f"{ro}/many"))
    before_misses = ctypes.c_ulong.in_dll(lib, "lc_statcache_misses").value
    out["many_wrong"] = sum(not same(mine(f"{ro}/many/{n}"), kernel(f"{ro}/many/{n}"))
                            for n in many for _ in range(2))
    out["many_asked"] = ctypes.c_ulong.in_dll(lib, "lc_statcache_misses").value - before_misses
    out["many"] = len(many)
    print(json.dumps(out))
''')


def run_in_namespace(tmp_path: Path) -> dict[str, object]:
    """The child in a mount namespace where everything is read-only, as a job's root is,
    but ``rw`` (a tmpfs) and ``ro/inner`` (a tmpfs inside the read-only folder)."""
    ro, rw = tmp_path / "ro", tmp_path / "rw"
    for folder in (ro / "dir", ro / "inner", rw):
        folder.mkdir(parents=True)
    (ro / "dir" / "file").write_text("abc")
    for i in range(40):
        (ro / "dir" / f"f{i}").write_text("x" * i)
    (ro / "many").mkdir()
    for i in range(9_000):
        (ro / "many" / f"m{i}").touch()
    (ro / "link").symlink_to(rw / "target")
    (ro / "dirlink").symlink_to(rw)
    (tmp_path / "child.py").write_text(CHILD)
    library = launcher.folder() / launcher.STATCACHE
    holder = subprocess.run(["findmnt", "-n", "-o", "TARGET", "-T", str(tmp_path)],
                            capture_output=True, text=True, check=True).stdout.strip()
    # remount,bind changes only this namespace's copy of each mount, never the machine's
    script = (f'mount -o remount,bind,ro / && mount -o remount,bind,ro "{holder}" && '
              f'mount -t tmpfs -o size=1m lc-test-rw "{rw}" && printf t > "{rw}/target" && '
              f'mount -t tmpfs -o size=1m lc-test-inner "{ro}/inner" && '
              f'exec env PYTHONDONTWRITEBYTECODE=1 LD_PRELOAD="{library}" '
              f'"{sys.executable}" "{tmp_path}/child.py" "{ro}" "{rw}" "{ro}/inner"')
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                           script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    out: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def test_job_statcache_1_answers_read_only_paths_from_memory_and_nothing_stale(
        tmp_path: Path) -> None:
    out = run_in_namespace(tmp_path)
    for name in ("file", "dir", "missing", "link_lstat", "link_stat", "through_dir_link",
                 "unclean",
                 "trailing_slash", "on_rw", "rw_inside_ro", "relative"):
        assert out[name]["right"], (name, out)  # type: ignore[index]
    # kept: a file, a folder, a missing name and a link itself, each asked again
    for name in ("file", "dir", "missing", "link_lstat"):
        assert out[name]["hits"] >= 1, (name, out)  # type: ignore[index]
    # never kept: what a link points at, unclean or relative paths, writable mounts
    for name in ("link_stat", "through_dir_link", "unclean", "trailing_slash", "on_rw",
                 "rw_inside_ro", "relative"):
        assert out[name]["hits"] == 0, (name, out)  # type: ignore[index]
    assert out["through_link_fresh"] and out["through_dir_link_fresh"], out
    assert out["inner_fresh"] and out["inner_hits"] == 0, out
    assert out["fork_child"] == 0 and out["threads_wrong"] == 0, out
    # a full table sends new paths to the kernel once per call, and answers them rightly
    assert out["many"] == 9_000 and out["many_wrong"] == 0, out
    assert out["many_asked"] < 9_000, out  # the kernel was not asked for every one twice


def test_job_statcache_1_a_writable_root_keeps_nothing(tmp_path: Path) -> None:
    """On this machine's own (writable) file systems every call goes to the kernel."""
    (tmp_path / "f").write_text("x")
    probe = ("import ctypes, os, sys\n"
             "for _ in range(3): os.stat(sys.argv[1]); os.stat('/usr/lib')\n"
             "print(ctypes.c_ulong.in_dll(ctypes.CDLL(None), 'lc_statcache_hits').value)\n")
    mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    assert any(line.split()[4] == "/" and "rw" in line.split()[5].split(",")
               for line in mounts), "this test needs a writable root"
    done = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "f")],
                          env={**os.environ, "LD_PRELOAD": str(launcher.folder()
                                                               / launcher.STATCACHE)},
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0"
