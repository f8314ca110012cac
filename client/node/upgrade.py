"""The node's side of an upgrade at a height [UPGRADE-HALT.*]: which versions it runs, and how
it stops at a plan it cannot run, in the shape of cosmovisor's contract with x/upgrade.

The ledger says which version each height needs (``State.version_at``); the node compares it
with the newest version this software knows and, at the first height it cannot run, stops
before signing or applying anything of it, leaves ``upgrade-info.json`` for the operator (or
a supervisor that swaps binaries) and exits with ``UPGRADE_EXIT_STATUS``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from chain.versions import MAX_PROTOCOL_VERSION
from client.node.ledger_app import UpgradeRequired

log = logging.getLogger("learningchain.node")

MAX_VERSION_ENV = "LC_MAX_PROTOCOL_VERSION"
"""[UPGRADE-HALT.2] Rehearsals only: the node claims to know versions up to this, no newer."""
UPGRADE_INFO_FILE = "upgrade-info.json"
UPGRADE_EXIT_STATUS = 4
"""[UPGRADE-HALT.1] The process status of a node stopped at a plan it cannot run."""


class BadVersionOverride(ValueError):
    """``LC_MAX_PROTOCOL_VERSION`` that is not a version this software knows."""


def highest_known_version(environ: Mapping[str, str] = os.environ) -> int:
    """[UPGRADE-HALT.2] The newest protocol version this node runs: the software's, or lower
    when ``LC_MAX_PROTOCOL_VERSION`` rehearses old software (it can never raise it)."""
    raw = environ.get(MAX_VERSION_ENV, "").strip()
    if not raw:
        return MAX_PROTOCOL_VERSION
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PROTOCOL_VERSION:
        raise BadVersionOverride(f"{MAX_VERSION_ENV}={raw!r}: expected a version in "
                                 f"1..{MAX_PROTOCOL_VERSION} (it can only lower what this "
                                 "software knows, for rehearsals)")
    version = int(raw)
    if version < MAX_PROTOCOL_VERSION:
        log.warning("%s=%d: this node rehearses old software and will stop at any upgrade "
                    "to a version above %d", MAX_VERSION_ENV, version, version)
    return version


def write_upgrade_info(data_dir: Path, error: UpgradeRequired) -> Path:
    """[UPGRADE-HALT.1] What the node stopped for, where an operator or a supervisor reads it."""
    path = data_dir / UPGRADE_INFO_FILE
    doc = {"name": error.name, "version": error.version, "height": error.height,
           "known": error.known}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def clear_upgrade_info(data_dir: Path) -> None:
    """A node that runs its next height has nothing left to upgrade for."""
    (data_dir / UPGRADE_INFO_FILE).unlink(missing_ok=True)
