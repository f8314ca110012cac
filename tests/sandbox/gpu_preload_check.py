"""GPU check of every entry point's settings: [JOB-MAPCACHE.1] ``lc-mapcache.so``,
[JOB-STATCACHE.1] ``lc-statcache.so`` and [JOB-MALLOC.1] ``GLIBC_TUNABLES``.

A CUDA training loop (convolution, linear layer, SGD, device and host allocations churned
every step) runs plain, with the mapping cache alone, and with all three settings as the
runner sets them, twice each in turn. Every run must end with the same weights, bit for bit;
each library must be loaded exactly when preloaded; and the stat cache must answer calls
from memory. The CUDA driver maps, re-protects and unmaps memory, and looks at its own
files, in ways CPython does not, so this is the settings' test on a machine with a GPU (no
Docker needed: both libraries are built here with the launcher's flags).

Every run is made inside a private mount namespace (``unshare -m``) where each mount but
the kernel's is bound read-only again, as a container's root is, under a fresh ``/tmp``: there the
stat cache keeps what it may ([JOB-STATCACHE.1] keeps nothing from a writable mount).
``remount,bind`` changes only the namespace's copy of each mount, never the machine's.
Last line: ``same_weights``, ``loaded_when_preloaded``, ``statcache_answered`` and each
variant's best time.

    python3 tests/sandbox/gpu_preload_check.py   (a machine with an NVIDIA GPU and torch)

Not a pytest module: the GPU machines have CUDA torch but not the project's test
dependencies. Run on an H200 (driver 580.159.04, torch 2.11.0+cu130, 16 cores), 2026-11-26:
the same weights in all six runs, each library loaded exactly where preloaded, 23,484 of
26,547 stat calls answered from memory in each run with all three, and the run (start,
CUDA's set-up and 300 steps) best 11.20 s plain, 11.33 s with the mapping cache, 8.08 s
with all three. Without a GPU it runs the same loop on the CPU (a dry run of the check);
that dry run here is what found [JOB-MALLOC.1]'s missing mapping threshold. Earlier, as
gpu_mapcache_check.py (the mapping cache alone), on an H100
(driver 580.159, torch 2.11.0+cu130), 2026-11-26: the same weights in all four runs, the
library loaded exactly in the two preloaded ones.
"""
import ast
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SANDBOX = ROOT / "sandbox"
BUILT = Path("/dev/shm/lc-gpu-preload")
"""Outside every mount the namespace binds read-only, and outside its fresh /tmp."""


def launcher_constant(name: str) -> str:
    """A string constant of sandbox/launcher.py, read from its source: this runs where the
    project's dependencies are not installed."""
    tree = ast.parse((SANDBOX / "launcher.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == name:
            return str(ast.literal_eval(node.value))
    raise SystemExit(f"no {name} in sandbox/launcher.py")


MALLOC_TUNABLES = launcher_constant("MALLOC_TUNABLES")
KERNEL_FS = {"proc", "sysfs", "devtmpfs", "devpts", "tmpfs", "cgroup", "cgroup2", "mqueue",
             "securityfs", "debugfs", "tracefs", "bpf", "fusectl", "configfs", "pstore",
             "hugetlbfs", "binfmt_misc", "autofs", "nsfs", "efivarfs"}

WORK = r'''
import ctypes, hashlib, json, resource, time
t0 = time.perf_counter()
import torch
torch.manual_seed(0)
torch.use_deterministic_algorithms(True)
dev = "cuda" if torch.cuda.is_available() else "cpu"  # cpu: a dry run of the check
x = torch.randn(4096, 256, device=dev)
y = torch.randint(0, 10, (4096,), device=dev)
net = torch.nn.Sequential(torch.nn.Conv1d(1, 8, 5), torch.nn.ReLU(), torch.nn.Flatten(),
                          torch.nn.Linear(8 * 252, 10)).to(dev)
opt = torch.optim.SGD(net.parameters(), lr=0.01)
for step in range(300):
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(net(x[:, None, :]), y)
    loss.backward()
    opt.step()
    tmp = [torch.empty(1 << k, device=dev) for k in range(10, 20)]
    host = [torch.empty(1 << k) for k in range(10, 18)]
if dev == "cuda":
    torch.cuda.synchronize()
weights = b"".join(p.detach().cpu().numpy().tobytes() for p in net.parameters())
maps = open("/proc/self/maps").read()
libc = ctypes.CDLL(None)
def counter(name):
    try:
        return ctypes.c_ulong.in_dll(libc, name).value
    except ValueError:
        return None
print(json.dumps({"loss": loss.item(), "hash": hashlib.sha256(weights).hexdigest(),
                  "mapcache": "lc-mapcache.so" in maps, "statcache": "lc-statcache.so" in maps,
                  "stat_hits": counter("lc_statcache_hits"),
                  "stat_misses": counter("lc_statcache_misses"),
                  "s": round(time.perf_counter() - t0, 2),
                  "minflt": resource.getrusage(resource.RUSAGE_SELF).ru_minflt,
                  "gpu": torch.cuda.get_device_name() if dev == "cuda" else None}))
'''


def build() -> dict[str, str]:
    """Both libraries, built with the launcher's flags."""
    BUILT.mkdir(exist_ok=True)
    flags = ["-O2", "-Wall", "-Werror", "-shared", "-fPIC", "-nostdlib", "-fno-builtin",
             "-fno-stack-protector", f"-I{SANDBOX}"]
    out = {}
    for name in ("mapcache", "statcache"):
        so = BUILT / f"lc-{name}.so"
        subprocess.run(["gcc", *flags, "-o", str(so), str(SANDBOX / f"{name}.c")], check=True)
        out[name] = str(so)
    return out


def read_only_script() -> str:
    """Shell lines binding every mount but the kernel's and /tmp read-only again."""
    lines = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        target, fstype = fields[4], fields[fields.index("-") + 1]
        if fstype in KERNEL_FS or target.startswith(("/proc", "/sys", "/dev", "/tmp", "/run")):
            continue
        lines.append(f"mount -o remount,bind,ro '{target}' 2>/dev/null || true")
    # a fresh, writable /tmp (torch and CUDA write there), as the runner's tmpfs
    lines += ["mount -t tmpfs -o size=4g lc-gpu-tmp /tmp", 'mkdir -p "$HOME"']
    return " ; ".join(lines)


def run(variant: str, libs: dict[str, str]) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "GLIBC_TUNABLES")}
    env.update(CUBLAS_WORKSPACE_CONFIG=":4096:8", HOME="/tmp/lc-gpu-home",
               PYTHONDONTWRITEBYTECODE="1")
    if variant in ("mapcache", "all"):
        env["LD_PRELOAD"] = libs["mapcache"]
    if variant == "all":  # as the runner sets them (sandbox/runner.py)
        env["LD_PRELOAD"] = f"{libs['mapcache']}:{libs['statcache']}"
        env["GLIBC_TUNABLES"] = MALLOC_TUNABLES
    script = f'{read_only_script()} ; exec "{sys.executable}" -c "$WORK"'
    p = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                       env={**env, "WORK": WORK}, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        print("FAILED", variant, p.returncode, p.stderr[-3000:])
        sys.exit(1)
    r = json.loads(p.stdout.strip().splitlines()[-1])
    r["variant"] = variant
    print(r, flush=True)
    return r


def main() -> None:
    libs = build()
    runs = [run(v, libs) for _ in range(2) for v in ("plain", "mapcache", "all")]
    loaded = all(r["mapcache"] == (r["variant"] != "plain")
                 and r["statcache"] == (r["variant"] == "all") for r in runs)
    answered = all((r["stat_hits"] or 0) > 0 for r in runs if r["variant"] == "all")
    best = {v: min(r["s"] for r in runs if r["variant"] == v) for v in ("plain", "mapcache", "all")}
    print(json.dumps({"same_weights": len({r["hash"] for r in runs}) == 1,
                      "loaded_when_preloaded": loaded, "statcache_answered": answered,
                      "stat_hits": [r["stat_hits"] for r in runs if r["variant"] == "all"],
                      "best_s": best, "gpu": runs[0]["gpu"]}))


if __name__ == "__main__":
    main()
