"""Subprocess for crash tests: commits blocks of transfers to a database until killed."""

from __future__ import annotations

import random
import sys

from chain.transactions import Transfer
from chain.types import Amount
from tests.ledger.harness import MEMBER_NAMES, Chain


def main(url: str, seed: int) -> None:
    rng = random.Random(seed)
    chain = Chain(url=url)
    print("ready", flush=True)
    while True:
        txs = []
        for _ in range(rng.randint(1, 30)):
            a, b = rng.sample(MEMBER_NAMES, 2)
            txs.append(chain.tx(a, Transfer(chain.addr(b), Amount(rng.randint(1, 3)))))
        chain.block(*txs)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
