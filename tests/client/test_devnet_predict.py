"""``learningchain devnet up --predict NODES`` (issue 19): the chosen worker nodes run with
``[worker] predict = true`` and offer prediction service on their own [PRED-OFFER.1].

Real console script, real node processes on 127.0.0.1 (as ``test_devnet_newcomer.py``);
the executor needs its image, built here only if the engine lacks it (and then removed)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import click
import pytest

from chain.predict.params import PREDICT_BOND
from client.api.http_client import ApiClient
from client.cli.network_commands import predict_nodes
from client.devnet.network import NetworkLayout
from sandbox.engine import connect
from tests.client.test_devnet_newcomer import devnet_stopped_after, lc
from tests.framework.ports import free_base_port
from tests.framework.wait import wait_until
from tests.predict.images import predict_image_for_test


def _predict(root: Path, i: int) -> bool:
    config = tomllib.loads((root / f"node{i}" / "config.toml").read_text())
    return bool(config.get("worker", {}).get("predict", False))


@pytest.mark.docker
def test_devnet_up_predict_turns_on_prediction_service_on_chosen_nodes(tmp_path: Path) -> None:
    """[PRED-OFFER.1] ``--predict 1`` on a 3-node devnet with 2 workers: node1's config says
    predict = true and node1 offers (its executor status and the ledger's ``predictor``
    bond, seen by node0's API); node0 and node2 do not. ``up`` on the existing network with
    ``--predict`` is refused rather than silently ignored."""
    root = tmp_path / "net"
    with predict_image_for_test(connect()), devnet_stopped_after(root):
        done = lc("devnet", "up", "--dir", str(root), "--validators", "3", "--workers", "2",
                  "--predict", "1", "--base-port", str(free_base_port(3)), "--timeout", "120",
                  cwd=tmp_path)
        assert "prediction service ([worker] predict = true): node1" in done.stdout
        assert [_predict(root, i) for i in range(3)] == [False, True, False]
        layout = NetworkLayout.load(root)
        node0, node1 = (ApiClient(n.api_url) for n in layout.nodes[:2])

        def offering() -> bool:
            executor = node1.status()["worker"].get("executor") or {}
            return bool(executor.get("offering"))

        wait_until(offering, timeout=120, what="node1 offers prediction service")
        for i in (0, 2):
            status = ApiClient(layout.nodes[i].api_url).status()
            assert not (status.get("worker") or {}).get("executor"), (i, status)
        balance = {i: node0.account(layout.nodes[i].address)["balance"] for i in (1, 2)}
        assert balance[2] - balance[1] == PREDICT_BOND, balance  # node1's bond is locked
        again = lc("devnet", "up", "--dir", str(root), "--predict", "2", cwd=tmp_path, code=1)
        assert "--predict and --runtime apply when the network is created" in again.stderr
        assert [_predict(root, i) for i in range(3)] == [False, True, False]
        lc("devnet", "down", "--dir", str(root), cwd=tmp_path)


@pytest.mark.parametrize("value, why", [
    ("3", "node3 does not run the worker: workers are node0..node1"),
    ("x", "'x' is not a node index"),
])
def test_devnet_up_predict_refuses_nodes_without_the_worker(tmp_path: Path, value: str,
                                                              why: str) -> None:
    """[PRED-OFFER.1] A node that does not run the worker cannot serve predictions: a usage
    error naming it, before anything is written or started."""
    done = lc("devnet", "up", "--dir", "net", "--validators", "4", "--workers", "2",
              "--predict", value, cwd=tmp_path, code=2)
    assert why in done.stderr and "--predict" in done.stderr, done.stderr
    assert not (tmp_path / "net").exists()


def test_predict_nodes_reads_indices_and_all() -> None:
    """[PRED-OFFER.1] ``--predict``'s forms: indices (``node`` prefix allowed, repeats
    merged), ``all`` = every worker; ``all`` without workers is refused."""
    assert predict_nodes("all", 3) == (0, 1, 2)
    assert predict_nodes("2, node1,2", 3) == (1, 2)
    with pytest.raises(click.BadParameter, match="--workers 0"):
        predict_nodes("all", 0)
    with pytest.raises(click.BadParameter, match="node0 does not run the worker"):
        predict_nodes("0", 0)
