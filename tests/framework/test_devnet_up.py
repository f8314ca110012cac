"""``up_on_free_ports`` draws another block of ports when another process took one of the
drawn block first (tests/framework/devnet_up.py): real node processes on 127.0.0.1, the port
held by a real listening socket, in both windows of ``up`` (before and after it writes the
network)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import client.devnet.processes as processes
from client.devnet.network import NetworkLayout
from client.devnet.processes import PortInUse, down
from tests.framework import devnet_up
from tests.framework.ports import free_base_port


@pytest.fixture
def taken_then_free(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """``free_base_port`` as ``devnet_up`` sees it: the bases it handed out, in order."""
    drawn: list[int] = []

    def draw(nodes: int) -> int:
        drawn.append(free_base_port(nodes))
        return drawn[-1]

    monkeypatch.setattr(devnet_up, "free_base_port", draw)
    yield drawn


def listen_on(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


def test_a_port_taken_after_the_draw_is_drawn_again_and_only_what_up_wrote_goes(
        tmp_path: Path, taken_then_free: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "net"
    root.mkdir()
    (root / "notes.txt").write_text("the caller's own file")
    holders: list[socket.socket] = []
    create = processes.create_network

    def create_then_lose_a_port(out: Path, **options: Any) -> NetworkLayout:
        """The race of the second window: the network is written, then another process binds
        node0's p2p port before ``up`` checks it again and starts the node."""
        layout = create(out, **options)
        if len(taken_then_free) == 1:
            holders.append(listen_on(options["base_port"]))
        return layout

    monkeypatch.setattr(processes, "create_network", create_then_lose_a_port)
    try:
        layout = devnet_up.up_on_free_ports(root, validators=1, workers=0, timeout=60)
        try:
            assert len(taken_then_free) == 2 and taken_then_free[0] != taken_then_free[1]
            assert layout.nodes[0].p2p_port == taken_then_free[1]
            assert (root / "notes.txt").read_text() == "the caller's own file"
        finally:
            down(root)
    finally:
        for sock in holders:
            sock.close()


def test_after_the_last_draw_the_port_error_is_raised(
        tmp_path: Path, taken_then_free: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    holders: list[socket.socket] = []

    def always_taken(nodes: int) -> int:
        base = free_base_port(nodes)
        holders.append(listen_on(base))
        taken_then_free.append(base)
        return base

    monkeypatch.setattr(devnet_up, "free_base_port", always_taken)
    try:
        with pytest.raises(PortInUse) as raised:
            devnet_up.up_on_free_ports(tmp_path / "net", validators=1, workers=0, attempts=2)
        assert len(taken_then_free) == 2
        assert f"port {taken_then_free[-1]} " in str(raised.value)
        assert not (tmp_path / "net" / "network.json").exists()
    finally:
        for sock in holders:
            sock.close()
