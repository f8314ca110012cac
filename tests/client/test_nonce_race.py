"""Two clients of one key (a wallet and a script, ``job submit`` and ``predict`` in two
terminals) read the same next nonce: the second one's transaction is refused ``bad_nonce``.
``ApiClient.sign_and_submit`` (what every CLI command sends with) signs it again with the
next nonce instead of failing; found by the one-hour soak, whose job poster and prediction
requester share the submitter's key (docs/reliability.md, "Soak")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chain.transactions import Transfer
from chain.types import Amount
from client.api.http_client import ApiClient, ApiError
from tests.client.api.test_api_support import ApiThread


class RacedClient(ApiClient):
    """Its next ``account`` read answers what the node said *before* another client took
    the nonce: the race, made deterministic. Every other answer is the real node's."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.stale: dict[str, Any] | None = None
        self.reads = 0

    def account(self, address: str | bytes) -> dict[str, Any]:
        self.reads += 1
        if self.stale is not None:
            answer, self.stale = self.stale, None
            return answer
        return super().account(address)


def test_a_nonce_taken_by_another_client_of_the_key_is_signed_again(tmp_path: Path) -> None:
    with ApiThread(tmp_path, validators=1, block_interval=3600.0) as api:
        alice, bob = api.keys["alice"], api.keys["bob"]
        client, other = RacedClient(api.url), ApiClient(api.url)
        before = client.account(alice.address)  # both read next nonce n
        taken = other.sign(alice, Transfer(bob.address, Amount(2)))
        other.submit(taken)  # the other client is first with n
        client.stale = before
        stale_tx = client.sign(alice, Transfer(bob.address, Amount(1)))
        with pytest.raises(ApiError) as refused:
            client.submit(stale_tx)  # what every CLI command did: Error ... bad_nonce
        assert refused.value.code == "bad_nonce" and stale_tx.nonce == taken.nonce

        client.stale, client.reads = before, 0
        sent = client.sign_and_submit(alice, Transfer(bob.address, Amount(1)))
        assert client.reads == 2  # signed with the stale n, refused, signed again
        assert sent.nonce == taken.nonce + 1
        assert {client.tx(t.hash)["status"] for t in (taken, sent)} == {"pending"}


def test_other_rejections_are_not_retried(tmp_path: Path) -> None:
    with ApiThread(tmp_path, validators=1, block_interval=3600.0) as api:
        alice, bob = api.keys["alice"], api.keys["bob"]
        client = ApiClient(api.url)
        calls: list[int] = []
        original = client.sign

        def counting_sign(key: Any, body: Any) -> Any:
            calls.append(1)
            return original(key, body)

        client.sign = counting_sign  # type: ignore[method-assign]
        with pytest.raises(ApiError) as refused:
            client.sign_and_submit(alice, Transfer(bob.address, Amount(10**15)))
        assert refused.value.code != "bad_nonce" and len(calls) == 1
