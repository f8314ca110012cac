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
        import json, os
        with open("/proc/self/status") as f:
            fields = dict(l.split(":", 1) for l in f if ":" in l)
        mounts = open("/proc/self/mounts").read()
        print(json.dumps({
            "uid": os.getuid(), "gid": os.getgid(),
            "NoNewPrivs": fields["NoNewPrivs"].strip(), "Seccomp": fields["Seccomp"].strip(),
            "CapEff": fields["CapEff"].strip(), "CapBnd": fields["CapBnd"].strip(),
            "ifaces": sorted(os.listdir("/sys/class/net")),
            "mounts": [l.split()[1:4] for l in mounts.splitlines()],
        }))
    """,
}
