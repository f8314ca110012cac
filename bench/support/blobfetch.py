"""``python -m bench.support.blobfetch HOST BOOTSTRAP BLOB_HEX WORK``: one timed blob fetch.

Why a process of its own: bench/hosts.py fetches a blob on an emulated host, so the
fetching node must live in that host's network namespace (``nsenter --net``); this runs
bench/blobs.py's ``fetch_from`` there, its node listening on ``HOST``, and prints
``{"seconds": s}`` (the fetch alone, not the start or the handshake).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from bench.blobs import fetch_from


def main(argv: list[str]) -> None:
    host, bootstrap, blob_hex, work = argv
    seconds = asyncio.run(fetch_from(bootstrap, bytes.fromhex(blob_hex), Path(work),
                                     host=host))
    print(json.dumps({"seconds": seconds}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
