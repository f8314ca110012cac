"""``job watch`` and ``wait_for_tx`` ride out a node that stops answering for a while (a
restart, a machine short of CPU: one CI run lost a README watch to a single 30 s timeout)
and give up, with the node's error, only when the outage outlasts their bound.

The node is real (a solo node and its API on 127.0.0.1); the client reaches it through a
loopback proxy the test cuts (connections closed, new ones refused) and heals.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from chain.transactions import Transfer
from chain.types import Amount
from client.api.http_client import ApiClient, ApiError
from client.cli.main import cli
from tests.client.api.test_api_support import ApiThread
from tests.client.cli.test_cli_job import post_job
from tests.reliability.netproxy import ProxyMesh


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[ApiThread]:
    with ApiThread(tmp_path, validators=1, block_interval=0.1) as api:
        yield api


@pytest.fixture
def proxy(chain: ApiThread) -> Iterator[tuple[ProxyMesh, str]]:
    mesh = ProxyMesh()
    port = mesh.add(0, 1, int(chain.url.rsplit(":", 1)[1]))
    mesh.add(1, 0, port)  # cut() and heal() act on both directions of a pair
    mesh.start()
    try:
        yield mesh, f"http://127.0.0.1:{port}"
    finally:
        mesh.stop()


def watch_for(url: str, job_id: str, timeout: str) -> Result:
    return CliRunner().invoke(cli, ["job", "watch", job_id, "--timeout", timeout, "--json",
                                    "--node", url], catch_exceptions=False)


def test_watch_rides_out_an_outage_and_says_when_the_node_answers_again(
        chain: ApiThread, proxy: tuple[ProxyMesh, str]) -> None:
    mesh, url = proxy
    job_id = post_job(chain, ApiClient(chain.url), expires_in_ms=600_000)

    def outage() -> None:
        time.sleep(1.5)
        mesh.cut(0, 1)
        time.sleep(4.0)
        mesh.heal(0, 1)

    cutter = threading.Thread(target=outage)
    cutter.start()
    result = watch_for(url, job_id, "10s")
    cutter.join()
    assert result.exit_code == 1, result.output
    assert "gave up watching; the job is still open" in result.stderr, result.stderr
    assert "asking again for up to 120 s" in result.stderr, result.stderr
    assert "the node answers again (after" in result.stderr, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["event"] for e in events].count("job") == 1, events  # shown once, not again


def test_watch_gives_up_with_the_nodes_error_when_the_outage_outlasts_it(
        chain: ApiThread, proxy: tuple[ProxyMesh, str]) -> None:
    mesh, url = proxy
    job_id = post_job(chain, ApiClient(chain.url), expires_in_ms=600_000)
    mesh.cut(0, 1)
    result = watch_for(url, job_id, "4s")
    assert result.exit_code == 1, result.output
    error = json.loads(result.stderr.splitlines()[-1])["error"]
    assert error["code"] == "unreachable", error
    silent = re.search(r"\(no answer for (\d+) s\)", error["message"])
    assert silent, error
    assert int(silent.group(1)) < 120, error  # --timeout bounds the outage, not its 120 s


def test_wait_for_tx_asks_again_while_the_node_does_not_answer(
        chain: ApiThread, proxy: tuple[ProxyMesh, str]) -> None:
    """``ApiClient.wait_for_tx`` (behind ``job submit``, ``transfer`` and every CLI line
    that waits for its transaction) waits out an outage within its timeout."""
    mesh, url = proxy
    direct = ApiClient(chain.url)
    tx = direct.sign(chain.keys["alice"], Transfer(chain.keys["bob"].address, Amount(1)))
    direct.submit(tx)
    mesh.cut(0, 1)
    healer = threading.Timer(2.5, mesh.heal, (0, 1))
    healer.start()
    try:
        committed = ApiClient(url).wait_for_tx(tx.hash, timeout=30)
    finally:
        healer.join()
    assert committed["status"] == "committed", committed
    mesh.cut(0, 1)  # for good: the node's own error once the timeout is spent
    with pytest.raises(ApiError) as failed:
        ApiClient(url).wait_for_tx(tx.hash, timeout=2)
    assert failed.value.code == "unreachable", failed.value
