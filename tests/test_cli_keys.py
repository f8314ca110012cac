"""The keys CLI through the real console entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ENV = {**os.environ, "LC_PASSPHRASE": "pw"}


def run(*args: str, env: dict[str, str] = ENV) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from client.cli.main import main; main()", *args],
                          capture_output=True, text=True, env=env, timeout=60)


def test_keys_new_show_export_import(tmp_path: Path) -> None:
    made = run("keys", "new", str(tmp_path / "a.key"), "--json")
    assert made.returncode == 0, made.stderr
    info = json.loads(made.stdout)
    shown = json.loads(run("keys", "show", str(tmp_path / "a.key"), "--json").stdout)
    assert shown["address"] == info["address"]
    secret = run("keys", "export", str(tmp_path / "a.key"), "--i-understand").stdout.strip()
    (tmp_path / "secret.hex").write_text(secret)
    imported = run("keys", "import", str(tmp_path / "b.key"), "--secret-file",
                   str(tmp_path / "secret.hex"), "--json")
    assert json.loads(imported.stdout)["address"] == info["address"]


def test_keys_wrong_passphrase_is_one_line_error(tmp_path: Path) -> None:
    assert run("keys", "new", str(tmp_path / "a.key")).returncode == 0
    bad = run("keys", "show", str(tmp_path / "a.key"), env={**ENV, "LC_PASSPHRASE": "nope"})
    assert bad.returncode == 1
    assert bad.stderr.strip().count("\n") == 0 and "passphrase" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_keys_corrupt_file_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "c.key").write_text("{garbage")
    bad = run("keys", "show", str(tmp_path / "c.key"))
    assert bad.returncode == 1 and "corrupt" in bad.stderr and "Traceback" not in bad.stderr
