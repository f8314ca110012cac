"""scripts/cpu_by_process.py bills a command's CPU to the processes that used it (testing.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "cpu_by_process.py"
BUSY = "n = 0  # lc-cpu-probe\nfor i in range(30_000_000): n += i\nraise SystemExit(3)"


def test_a_child_that_burns_cpu_is_billed_under_its_own_kind(tmp_path: Path) -> None:
    """A python child started by the command (after the first sample: billed from its birth),
    and the command's exit status passed through."""
    out = tmp_path / "cpu.json"
    command = ["bash", "-c", f"{sys.executable} -c '{BUSY}'"]
    done = subprocess.run([sys.executable, str(SCRIPT), "--interval", "0.05", "--json",
                           str(out), "--", *command], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 3, done.stderr
    report = json.loads(out.read_text())
    kinds = report["by_kind_core_s"]
    probe = [kind for kind in kinds if "lc-cpu-probe" in kind]
    assert probe == ["python:-c n = 0  # lc-cpu-probe"], kinds
    assert kinds[probe[0]] > 0 and report["busy_core_s"] >= kinds[probe[0]] * 0.5
    assert "lc-cpu-probe" in done.stderr
