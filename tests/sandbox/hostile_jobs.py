"""Hostile job code, run inside the sandbox by test_hostile.py.

Convention: a script that gets what it wants prints ``ESCAPED`` and exits
0; a script that is stopped dies of an exception (non-zero exit), is
killed, or trips a limit. Every test checks both the reported reason and
the host side.
"""

from __future__ import annotations

HOSTILE_SCRIPTS: dict[str, str] = {
    "dns": """
        import socket, sys
        for name in ("localhost.invalid", "deb.debian.org"):
            try:
                print("resolved", socket.getaddrinfo(name, 80))
            except OSError as e:
                print("dns blocked:", name, e)
                continue
            if name != "localhost.invalid":
                print("ESCAPED: dns works")
                sys.exit(0)
        sys.exit(1)
    """,
    "tcp_host": """
        import socket, sys
        port = int(sys.argv[1])
        s = socket.create_connection(("127.0.0.1", port), timeout=3)
        s.sendall(b"ESCAPED")
        print("ESCAPED: reached host port", port)
    """,
    "raw_socket": """
        import socket
        for family, kind, proto in ((socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
                                    (socket.AF_PACKET, socket.SOCK_RAW, 0)):
            try:
                socket.socket(family, kind, proto)
                print("ESCAPED: raw socket", family)
            except OSError as e:
                print("raw socket blocked:", e)
        raise SystemExit(1)
    """,
    "write_outside": """
        import os, sys
        wrote = []
        for path in ("/job/evil", "/etc/evil", "/usr/bin/evil", "/input/evil",
                     "/input/data.txt", "/evil"):
            try:
                with open(path, "w") as f:
                    f.write("ESCAPED")
                wrote.append(path)
            except OSError as e:
                print("write blocked:", path, e.strerror)
        if wrote:
            print("ESCAPED: wrote", wrote)
            sys.exit(0)
        sys.exit(1)
    """,
    "read_host": """
        import os, sys
        token = sys.argv[1]
        skip = {"/proc", "/sys", "/dev"}
        for root, dirs, files in os.walk("/", onerror=lambda e: None):
            dirs[:] = [d for d in dirs if os.path.join(root, d) not in skip]
            if token in files or token in dirs:
                print("ESCAPED: found host file in", root)
                sys.exit(0)
        for path in ("/proc/1/root/etc/shadow", "/etc/shadow", "/root/.bash_history"):
            try:
                open(path).read()
                print("ESCAPED: read", path)
                sys.exit(0)
            except OSError as e:
                print("read blocked:", path, e.strerror)
        sys.exit(1)
    """,
    "memory_bomb": """
        hog = []
        while True:
            hog.append(b"x" * (1 << 20))
    """,
    "memory_bomb_in_a_child": """
        import os, time
        if os.fork() == 0:
            hog = []
            while True:
                hog.append(b"x" * (1 << 20))
        os.wait()  # the child's death is ignored: the job would run on to its deadline
        time.sleep(600)
    """,
    "fill_tmp": """
        with open("/tmp/fill", "wb") as f:
            while True:
                f.write(b"x" * (1 << 20))
                f.flush()
    """,
    "fill_output": """
        with open("/output/junk", "wb") as f:
            while True:
                f.write(b"x" * (1 << 20))
                f.flush()
    """,
    "sleep_forever": """
        import time
        time.sleep(3600)
    """,
    "silent_sleeper": """
        import os, time
        os.close(1)
        os.close(2)
        time.sleep(3600)
    """,
    "spew_stdout": """
        import os
        chunk = b"x" * (1 << 20)
        for _ in range(4096):  # 4 GiB
            os.write(1, chunk)
    """,
    "big_model": """
        import sys
        with open("/output/model.pt", "wb") as f:
            f.write(b"\\0" * int(sys.argv[1]))
    """,
    "setuid": """
        import os, sys
        print("uid", os.getuid(), "euid", os.geteuid())
        if os.geteuid() == 0:
            print("ESCAPED: became root")
            sys.exit(0)
        with open("/proc/self/status") as f:
            print([l for l in f if l.startswith(("NoNewPrivs", "CapEff", "Seccomp:"))])
        sys.exit(1)
    """,
    "docker_socket": """
        import os, socket, sys
        for path in ("/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock"):
            if os.path.exists(path):
                try:
                    s = socket.socket(socket.AF_UNIX)
                    s.connect(path)
                    print("ESCAPED: connected to", path)
                    sys.exit(0)
                except OSError as e:
                    print("socket blocked:", path, e)
            else:
                print("no", path)
        sys.exit(1)
    """,
    "status": """
        import json, os, shutil, socket, subprocess
        with open("/proc/self/status") as f:
            fields = dict(l.split(":", 1) for l in f if ":" in l)
        mounts = open("/proc/self/mounts").read()
        shutil.copy("/bin/true", "/tmp/true")  # [JOB-RUNTIME.7] run from a noexec tmpfs?
        os.chmod("/tmp/true", 0o755)
        try:
            tmp_exec = subprocess.run(["/tmp/true"]).returncode
        except OSError as e:
            tmp_exec = f"errno {e.errno}"
        print(json.dumps({
            "uid": os.getuid(), "gid": os.getgid(),
            "NoNewPrivs": fields.get("NoNewPrivs", "absent").strip(),
            "Seccomp": fields["Seccomp"].strip(),
            "CapEff": fields["CapEff"].strip(), "CapBnd": fields["CapBnd"].strip(),
            "ifaces": sorted(name for _, name in socket.if_nameindex()),  # not sysfs (gVisor)
            "mounts": [l.split()[1:4] for l in mounts.splitlines()],
            "tmp_exec": tmp_exec, "kernel": os.uname().release,
        }))
    """,
    # -- issue 13: output the host cannot take, metrics bombs, irreproducible evaluation --
    "deep_output": """
        import os, sys
        depth, width = int(sys.argv[1]), int(sys.argv[2])
        os.chdir("/output")
        for i in range(depth):  # relative steps: inside, no single path is too long
            name = (str(i % 10) * width)[:width]
            os.mkdir(name)
            os.chdir(name)
        with open("leaf", "w") as f:
            f.write("x")
        with open("/output/model.pt", "wb") as f:
            f.write(b"m")
        print("path bytes", depth * (width + 1))
    """,
    "many_files": """
        import sys
        for i in range(int(sys.argv[1])):
            open(f"/output/f{i}", "w").close()
    """,
    "fifo_output": """
        import os
        os.mkfifo("/output/model.pt")
    """,
    "tar_mode": """
        import sys
        with open("/tmp/tar-mode", "w") as f:
            f.write(sys.argv[1])
    """,
    "metrics_bomb": """
        import sys
        kind = sys.argv[1]
        text = {
            "big_int": '{"loss": ' + "9" * 400 + '}',
            "huge_float": '{"loss": 1e400}',
            "nan": '{"loss": NaN}',
            "neg_inf": '{"loss": -Infinity}',
            "deep": '{"loss": 1, "x": ' + "[" * 30000 + "]" * 30000 + '}',
            "large": '{"loss": 1, "x": ' + "[" * 100000 + "]" * 100000 + '}',
            "duplicate": '{"loss": 0.1, "loss": 9.0}',
            "bool": '{"loss": true}',
            "good": '{"loss": 0.25, "accuracy": 0.5}',
        }[kind]
        with open("/output/metrics.json", "w") as f:
            f.write(text)
    """,
    "eval_probe": """
        import hashlib, json, os, socket
        model = os.environ["LC_MODEL"]
        seen = {
            "model_mtime": os.stat(model).st_mtime, "model_atime": os.stat(model).st_atime,
            "model_mode": oct(os.stat(model).st_mode),
            "model_dir_mtime": os.stat("/model").st_mtime,
            "hostname": socket.gethostname(), "uname": os.uname().nodename,
            "env": list(os.environ.items()), "hash_of_str": hash("learningchain"),
            "inputs": sorted((n, os.stat(f"{r}/{n}").st_mtime, oct(os.stat(f"{r}/{n}").st_mode))
                             for r, _d, ns in os.walk("/input") for n in ns),
            "input_dir_mtime": os.stat("/input").st_mtime if os.path.isdir("/input") else None,
        }
        print(json.dumps(seen))
        digest = hashlib.sha256(json.dumps(seen, sort_keys=True).encode()).digest()
        loss = int.from_bytes(digest[:6], "big") / 2**48
        with open("/output/metrics.json", "w") as f:
            json.dump({"loss": loss}, f)
    """,
    "random_eval": """
        import json, random
        with open("/output/metrics.json", "w") as f:
            json.dump({"loss": random.random()}, f)
    """,
    "kernel_eval": """
        import json, os
        # issue 47 §4: a loss keyed on the kernel the job sees (gVisor's 4.4.0, or the host's)
        with open("/output/metrics.json", "w") as f:
            json.dump({"loss": 0.25 if os.uname().release == "4.4.0" else 4.0}, f)
    """,
    "clock_eval": """
        import json, time
        with open("/output/metrics.json", "w") as f:
            json.dump({"loss": float(int(time.time()))}, f)
    """,
    "seccomp_probe": """
        import ctypes, errno, json, os, socket
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        buf = ctypes.create_string_buffer(4096)
        def call(nr, *args):
            ctypes.set_errno(0)
            r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
            if r > 2 and nr != 39:  # a new fd (getpid's result is not one)
                try:
                    os.close(r)
                except OSError:
                    pass
                return 0
            return ctypes.get_errno()
        addr = ctypes.addressof(buf)
        syscalls = {  # x86_64 numbers
            "io_uring_setup": (425, 1, addr), "io_uring_enter": (426, 0, 0, 0, 0, 0, 0),
            "io_uring_register": (427, 0, 0, 0, 0), "userfaultfd": (323, 0),
            "bpf": (321, 0, addr, 128), "perf_event_open": (298, addr, 0, -1, -1, 0),
            "keyctl": (250, 0, 0), "add_key": (248, 0, 0, 0, 0, 0),
            "request_key": (249, 0, 0, 0, 0), "ptrace": (101, 0, 0, 0, 0),
            "process_vm_readv": (310, 1, 0, 0, 0, 0, 0), "kcmp": (312, 1, 1, 0, 0, 0),
            "pidfd_getfd": (438, 0, 0, 0), "memfd_secret": (447, 0),
            "name_to_handle_at": (303, -100, 0, 0, 0, 0), "unshare_user": (272, 0x10000000),
            "unshare_cgroup": (272, 0x02000000), "syslog_read_all": (103, 3, addr, 4096),
            "clone3": (435, 0, 0),  # no arguments: refused, never a fork
            "getpid": (39,), "memfd_create": (319, addr, 0),
        }
        result = {name: call(*args) for name, args in syscalls.items()}
        families = {"AF_VSOCK": (40, socket.SOCK_STREAM, 0), "AF_PACKET": (17, socket.SOCK_RAW, 0),
                    "AF_ALG": (38, socket.SOCK_SEQPACKET, 0), "AF_KEY": (15, socket.SOCK_RAW, 2),
                    "AF_NETLINK_AUDIT": (16, socket.SOCK_RAW, 9),
                    "AF_NETLINK_UEVENT": (16, socket.SOCK_RAW, 15),
                    "AF_BLUETOOTH": (31, socket.SOCK_RAW, 0), "AF_XDP": (44, socket.SOCK_RAW, 0),
                    "AF_NETLINK_ROUTE": (16, socket.SOCK_RAW, 0),
                    "AF_UNIX": (1, socket.SOCK_STREAM, 0), "AF_INET": (2, socket.SOCK_STREAM, 0),
                    "AF_INET6": (10, socket.SOCK_DGRAM, 0)}
        for name, (family, kind, proto) in families.items():
            try:
                socket.socket(family, kind, proto).close()
                result[name] = 0
            except OSError as e:
                result[name] = e.errno
        try:
            a, b = socket.socketpair(socket.AF_UNIX)
            a.close(); b.close()
            result["socketpair_unix"] = 0
        except OSError as e:
            result["socketpair_unix"] = e.errno
        print(json.dumps(result))
    """,
    "container_id_eval": """
        import json
        # [EVAL-ENV.7] the container's id is incidental: /etc/hostname is mounted from its folder
        line = next(l for l in open("/proc/self/mountinfo") if " /etc/hostname " in l)
        cid = line.split("/containers/")[1].split("/")[0]
        with open("/output/metrics.json", "w") as f:
            json.dump({"loss": int(cid[:12], 16) / 2**48}, f)
    """,
    "time_bomb_eval": """
        import json, sys, time
        fires_at = float(sys.argv[1])  # [EVAL-ENV.9] honest until then
        with open("/output/metrics.json", "w") as f:
            json.dump({"loss": 0.25 if time.time() < fires_at else 0.75}, f)
    """,
    "entry_probe": """
        import ctypes, json, os, socket, sys
        libc = ctypes.CDLL(None)
        def statcache_hits():
            try:
                return ctypes.c_ulong.in_dll(libc, "lc_statcache_hits").value
            except ValueError:
                return None
        def heap_kept_mib():
            # 32 MiB of blocks (past the 16 MiB the heap grows ahead) freed again, top
            # first: the heap shrinks back unless the C library keeps up to 64 MiB at its
            # top [JOB-MALLOC.1] (the pointers sit in an array made before, below them)
            libc.sbrk.restype = ctypes.c_void_p
            libc.malloc.restype = ctypes.c_void_p
            libc.free.argtypes = [ctypes.c_void_p]
            blocks = (ctypes.c_void_p * 8192)()
            start = libc.sbrk(0)
            for i in range(8192):
                blocks[i] = libc.malloc(4096)
            for i in reversed(range(8192)):
                libc.free(blocks[i])
            return (libc.sbrk(0) - start) / 2**20
        def blocks_mapped():
            # 48 blocks of 1 MiB, past the 16 MiB the heap grows ahead: each one glibc
            # gives a mapping of its own has the IS_MMAPPED bit (2) in its chunk's size
            # word, just before it; none should under [JOB-MALLOC.1]'s mapping threshold
            libc.malloc.restype = ctypes.c_void_p
            libc.free.argtypes = [ctypes.c_void_p]
            blocks = [libc.malloc(1 << 20) for _ in range(48)]
            mapped = sum(ctypes.c_size_t.from_address(b - 8).value & 2 != 0 for b in blocks)
            for b in blocks:
                libc.free(b)
            return mapped
        hits_before = statcache_hits()
        os.stat("/usr/lib"), os.stat("/usr/lib")
        try:
            open("/probe-root", "w")
            root_writable = True
        except OSError:
            root_writable = False
        seen = {
            "argv": sys.argv, "uid": os.getuid(), "gid": os.getgid(), "cwd": os.getcwd(),
            "env": dict(os.environ), "hostname": socket.gethostname(),
            "root_writable": root_writable,
            "preloaded": any(line.rstrip().endswith("/lc-mapcache.so")
                             for line in open("/proc/self/maps")),
            "statcache_hits": None if hits_before is None else statcache_hits() - hits_before,
            "heap_kept_mib": heap_kept_mib(),
            "blocks_mapped": blocks_mapped(),
            "ifaces": sorted(name for _, name in socket.if_nameindex()),  # not sysfs (gVisor)
            "leftover": os.path.exists("/tmp/left-by-an-earlier-run"),
            "input": sorted(os.listdir("/input")) if os.path.isdir("/input") else None,
            "model": sorted(os.listdir("/model")) if os.path.isdir("/model") else None,
            "tmp_bytes": os.statvfs("/tmp").f_blocks * os.statvfs("/tmp").f_frsize,
            "output_bytes": os.statvfs("/output").f_blocks * os.statvfs("/output").f_frsize,
        }
        open("/tmp/left-by-an-earlier-run", "w").close()
        print(json.dumps(seen))
        if os.environ.get("LC_ENTRY") == "evaluate":
            with open("/output/metrics.json", "w") as f:
                json.dump({"loss": 0.5}, f)
    """,
    "quota_probe": """
        import json, os
        def read(*paths):
            for path in paths:
                try:
                    return open(path).read().split()
                except OSError:
                    pass
            return None
        seen = {
            "memory": read("/sys/fs/cgroup/memory.max",
                           "/sys/fs/cgroup/memory/memory.limit_in_bytes"),
            "cpu": read("/sys/fs/cgroup/cpu.max", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"),
            "cpu_period": read("/sys/fs/cgroup/cpu/cpu.cfs_period_us"),
            "pids": read("/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids/pids.max"),
            "tmp_bytes": os.statvfs("/tmp").f_blocks * os.statvfs("/tmp").f_frsize,
            "lc_cpus": os.environ["LC_CPUS"],
        }
        print(json.dumps(seen))
        with open("/output/metrics.json", "w") as f:
            json.dump({"loss": 0.5}, f)
    """,
}
