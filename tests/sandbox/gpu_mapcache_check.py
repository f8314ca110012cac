"""GPU check of the mapping cache [JOB-MAPCACHE.1]: a CUDA training loop (convolution,
linear layer, SGD, device and host allocations churned every step) run with
``lc-mapcache.so`` preloaded and without, twice each, must end with the same weights, bit
for bit, and the library must be loaded exactly when preloaded. The CUDA driver maps,
re-protects and unmaps memory in ways CPython does not, so this is the cache's test on
a machine with a GPU (no Docker needed: the library is built here with the launcher's
flags). Last line: ``same_weights`` and ``loaded_when_preloaded``.

    python3 tests/sandbox/gpu_mapcache_check.py   (a machine with an NVIDIA GPU and torch)

Not a pytest module: the GPU machines have CUDA torch but not the project's test
dependencies. Run on an H100 (driver 580.159, torch 2.11.0+cu130), 2026-11-26: the same
weights in all four runs, the library loaded exactly in the two preloaded ones.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
so = "/tmp/lc-mapcache.so"
subprocess.run(["gcc", "-O2", "-Wall", "-Werror", "-shared", "-fPIC", "-nostdlib", "-fno-builtin",
                "-fno-stack-protector", "-o", so, str(ROOT / "sandbox" / "mapcache.c")],
               check=True)
WORK = r'''
import hashlib, json, resource, time, torch
t0 = time.perf_counter()
torch.manual_seed(0)
torch.use_deterministic_algorithms(True)
dev = "cuda"
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
torch.cuda.synchronize()
weights = b"".join(p.detach().cpu().numpy().tobytes() for p in net.parameters())
h = hashlib.sha256(weights).hexdigest()
loaded = any(l.rstrip().endswith("lc-mapcache.so") for l in open("/proc/self/maps"))
print(json.dumps({"loss": loss.item(), "hash": h, "loaded": loaded,
                  "s": round(time.perf_counter() - t0, 2),
                  "minflt": resource.getrusage(resource.RUSAGE_SELF).ru_minflt,
                  "gpu": torch.cuda.get_device_name()}))
'''
env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
env["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
runs = []
for preload in (False, True, False, True):
    e = dict(env, **({"LD_PRELOAD": so} if preload else {}))
    p = subprocess.run([sys.executable, "-c", WORK], env=e, capture_output=True, text=True,
                       timeout=240)
    if p.returncode != 0:
        print("FAILED", preload, p.returncode, p.stderr[-3000:])
        sys.exit(1)
    r = json.loads(p.stdout.strip().splitlines()[-1])
    r["preload"] = preload
    print(r, flush=True)
    runs.append(r)
same = len({r["hash"] for r in runs}) == 1
loaded_right = all(r["loaded"] == r["preload"] for r in runs)
print(json.dumps({"same_weights": same, "loaded_when_preloaded": loaded_right}))
