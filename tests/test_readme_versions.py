"""The README's "Which versions a node runs" says what requirements.lock and pyproject.toml
pin (issue 29): the consensus-critical packages at the versions every node installs."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CRITICAL = ("msgpack", "coincurve", "numpy")


def locked_versions() -> dict[str, str]:
    text = (REPO / "requirements.lock").read_text()
    return {name.lower(): version
            for name, version in re.findall(r"^([A-Za-z0-9_.-]+)==([^\s\\]+)", text, re.M)}


def readme_paragraph() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("**Which versions a node runs.**")
    return text[start:text.index("\n\n", start)]


def test_the_readme_names_the_locked_version_of_each_consensus_critical_package() -> None:
    locked, paragraph = locked_versions(), " ".join(readme_paragraph().split())
    for name in CRITICAL:
        assert f"{name} {locked[name]}" in paragraph, (name, locked[name], paragraph)


def test_pyproject_pins_the_consensus_critical_packages_exactly_as_the_lock() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pinned = dict(line.split("==", 1) for line in project["dependencies"] if "==" in line)
    locked = locked_versions()
    for name in CRITICAL:
        assert pinned.get(name) == locked[name], (name, pinned.get(name), locked[name])
