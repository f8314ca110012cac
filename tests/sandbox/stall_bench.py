"""How long a 20 s-limit run takes when the job's image replaces ``tar`` and ``df`` by
programs that stall (issue 30, class 2). Run: ``python -m tests.sandbox.stall_bench``.

Each case runs in a thread abandoned after ``CAP_S``: a run still going then is
reported as "stuck" (its container is killed by label afterwards).
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path

from sandbox.base_image import ROOTFS_TAG, build_image
from sandbox.cleanup import cleanup_containers
from sandbox.engine import connect
from sandbox.limits import MIB, ResourceLimits, TrainParams
from sandbox.runner import SandboxRunner

CAP_S = 150.0
LIMITS = ResourceLimits(memory_bytes=256 * MIB, nano_cpus=1_000_000_000, pids=32,
                        wall_time_s=20.0, tmp_bytes=4 * MIB, output_bytes=8 * MIB,
                        model_bytes=1 * MIB, log_bytes=64 * 1024)
STALL = """#!/bin/sh
# The image's own tar/df: stalls as /tmp/stall-mode says, else the real one.
real="$0.real"
mode=$(cat /tmp/stall-mode 2>/dev/null)
case "$mode" in
  silent*) sleep "${mode#silent}" ;;
  drip*) while :; do printf 'x'; sleep "${mode#drip}"; done ;;
  hang) while :; do sleep 3600; done ;;
esac
exec "$real" "$@"
"""
DOCKERFILE = f"""FROM {ROOTFS_TAG}
USER 0:0
RUN mv /usr/bin/tar /usr/bin/tar.real && mv /usr/bin/df /usr/bin/df.real
COPY stall /usr/bin/tar
COPY stall /usr/bin/df
RUN chmod 755 /usr/bin/tar /usr/bin/df
USER 65534:65534
"""
STALL_TAG = "learningchain/test-stalltar:latest"


def build_stall_image(client: object, context: Path) -> str:
    (context / "stall").write_text(STALL)
    (context / "Dockerfile").write_text(DOCKERFILE)
    return build_image(client, context, STALL_TAG, lambda _m: None)  # type: ignore[arg-type]


CASES = {
    "tar silent 70 s, exit 0": "echo silent70 > /tmp/stall-mode; echo m > /output/model.pt",
    "tar drips a byte every 20 s, exit 0":
        "echo drip20 > /tmp/stall-mode; echo m > /output/model.pt",
    "df hangs, exit 1": "echo hang > /tmp/stall-mode; exit 1",
}


def main() -> None:
    client = connect()
    node = f"stall-bench-{os.getpid()}"
    runner = SandboxRunner(client, node_id=node)
    with tempfile.TemporaryDirectory() as tmp:
        image = build_stall_image(client, Path(tmp))
        for name, script in CASES.items():
            box: dict[str, object] = {}
            out = Path(tmp) / f"out-{len(name)}-{time.monotonic_ns()}"

            def run(script: str = script, out: Path = out, box: dict[str, object] = box
                    ) -> None:
                box["result"] = runner.train(image, TrainParams(seed=1), LIMITS, None, out,
                                             job_id="stall", argv=["sh", "-c", script])
            started = time.monotonic()
            thread = threading.Thread(target=run, daemon=True)
            thread.start()
            thread.join(CAP_S)
            took = time.monotonic() - started
            result = box.get("result")
            if result is None:
                print(f"{name}: stuck after {took:.1f} s (abandoned)")
                cleanup_containers(client, node)
            else:
                print(f"{name}: {took:.1f} s, ok={result.ok} "  # type: ignore[attr-defined]
                      f"reason={result.reason} detail={result.detail}")  # type: ignore[attr-defined]
        cleanup_containers(client, node)


if __name__ == "__main__":
    main()
