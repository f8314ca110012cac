"""``up`` on ports drawn free, drawn again when another process takes one first.

``free_base_port`` checks a block of ports free; ``up`` checks them again before it starts
a node. Between the two another process can bind one (CI, 2026-11-27: "port 24083 (node2
p2p) on 127.0.0.1 is already in use", ``bench/predict.py``'s graph, a second or less after
the draw). ``up`` raises ``PortInUse`` before it starts any node, so the graph is made
again on another block: what that call wrote under ``root`` (the network it created with
the taken port) is removed first, nothing that was there before.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from client.devnet.network import NetworkLayout
from client.devnet.processes import PortInUse, up
from tests.framework.ports import free_base_port

ATTEMPTS = 3


def up_on_free_ports(root: Path, *, validators: int = 4, attempts: int = ATTEMPTS,
                     **options: Any) -> NetworkLayout:
    """``up(root, validators=validators, base_port=free_base_port(validators), **options)``,
    at most ``attempts`` draws. A ``root`` that already holds a network keeps its ports:
    its ``PortInUse`` is raised at once."""
    for attempt in range(1, attempts + 1):
        existed = {p.name for p in root.iterdir()} if root.is_dir() else None
        if existed is not None and "network.json" in existed:
            return up(root, validators=validators, **options)
        try:
            return up(root, validators=validators, base_port=free_base_port(validators),
                      **options)
        except PortInUse as error:
            if attempt == attempts:
                raise
            _remove_made(root, existed)
            print(f"{error}; drawing another block of ports ({attempt} of {attempts})",
                  flush=True)
    raise AssertionError("unreachable")  # the last attempt returns or raises


def _remove_made(root: Path, existed: set[str] | None) -> None:
    """What ``up`` made under ``root`` (all of it when ``root`` did not exist)."""
    if existed is None:
        shutil.rmtree(root, ignore_errors=True)
        return
    for entry in root.iterdir():
        if entry.name not in existed:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
