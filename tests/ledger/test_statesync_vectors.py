"""State-sync vectors (protocol_spec/vectors/statesync.json) and their independent check.

A version 3 chain of one validator on ``vector-chain`` that admits a second validator in
block 1 (the next set changes where the change takes effect: one walk entry), then
empty blocks to the first digest height, 100. With it: three records' leaves and their
LtHash [STATE-CONTENT.1], every block's root parts [STATE-ROOT.2], the walk entry
[SNAP-WALK.1], the snapshot of height 100 (body, manifest, id) [SNAP-BODY.1]
[SNAP-MANIFEST.1]. The check recomputes from the file alone, with plain Python (no numpy,
no code of chain.statesync): leaves, lanes, digests, roots, the manifest's id and the body's
content digest. Regenerate with ``LC_WRITE_VECTORS=1``.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

from chain.content import blob_id_of_bytes
from chain.encoding import decode, encode
from chain.governance.bodies import GovernanceAction, GovernancePropose
from chain.statesync.roots import DIGEST_INTERVAL
from chain.statesync.snapshot import manifest_of, write_body
from tests.framework.certified_chain import CertifiedChain
from tests.ledger.harness import make_genesis
from tests.ledger.vector_files import VECTORS_DIR, check_vector_file

RECORDS = [["account", "11" * 20, "91cd03e8"], ["member", "22" * 20, "c3"],
           ["meta", "737570706c79", "cd2710"]]


def _lanes(leaves: list[bytes]) -> bytes:
    lanes = [0] * 1024
    for leaf in leaves:
        for i in range(1024):
            lanes[i] = (lanes[i] + int.from_bytes(leaf[2 * i:2 * i + 2], "little")) % 65536
    return b"".join(v.to_bytes(2, "little") for v in lanes)


def _leaf(table: str, key: bytes, value: bytes) -> bytes:
    return hashlib.shake_128(encode(["learningchain/v1", "state-leaf", table, key,
                                     value])).digest(2048)


def _content(lanes: bytes) -> bytes:
    return hashlib.sha256(encode(["learningchain/v1", "state-content", lanes])).digest()


def build_vectors(tmp: Path) -> dict[str, Any]:
    genesis, keys = make_genesis(chain_id="vector-chain", validators=1, protocol_version=3,
                                 outsiders=("newval",))
    chain = CertifiedChain(genesis, keys.values(), tmp / "chain")
    chain.block(chain.sign(keys["v0"], GovernancePropose(
        GovernanceAction("add_validator", keys["newval"].public_key, 1))))
    parts = []
    blocks = [chain.ledger.storage.block_data(1)]
    parts.append(chain.last_output.parts.to_wire())  # type: ignore[union-attr]
    while chain.state.height < DIGEST_INTERVAL:
        chain.block()
        parts.append(chain.last_output.parts.to_wire())  # type: ignore[union-attr]
        blocks.append(chain.ledger.storage.block_data(chain.state.height))
    body = io.BytesIO()
    size, count = write_body(chain.state, body)
    manifest = manifest_of(chain.state, chain.last_output.parts,  # type: ignore[union-attr]
                           blob_id_of_bytes(body.getvalue()), size, count)
    leaves = [_leaf(t, bytes.fromhex(k), bytes.fromhex(v)) for t, k, v in RECORDS]
    return {
        "about": "State sync [STATE-CONTENT.1] [STATE-ROOT.2] [SNAP-*]: see "
                 "protocol_spec/vectors/README.md",
        "lthash": {"records": RECORDS, "leaf_prefixes": [leaf[:16].hex() for leaf in leaves],
                   "lanes": _lanes(leaves).hex(), "digest": _content(_lanes(leaves)).hex()},
        "genesis": {"doc": genesis.to_json(), "hash": genesis.hash.hex()},
        "blocks": [{"hex": data.hex(), "certificate": cert.hex(),  # type: ignore[union-attr]
                    "root_parts": [p.hex() for p in part]}
                   for (data, cert), part in zip(blocks, parts, strict=True)],
        "walk": [e.hex() for e in chain.ledger.storage.walk_entries(0, 64)],
        "snapshot": {"height": int(chain.state.height), "body": body.getvalue().hex(),
                     "manifest": manifest.encode().hex(), "id": manifest.id.hex()},
    }


def test_statesync_vectors_match_committed_file(tmp_path: Path) -> None:
    """[STATE-CONTENT.1] [STATE-ROOT.2] [SNAP-WALK.1] [SNAP-MANIFEST.1] statesync.json."""
    check_vector_file("statesync.json", build_vectors(tmp_path))


def test_statesync_vectors_check_out_independently() -> None:
    """From the file alone: the leaves and lanes, every block's root from its parts, the
    content digest at 100 from the body's records, the manifest naming block 100 and its
    id, the walk entry naming block 1's header and the two-validator set."""
    v = json.loads((VECTORS_DIR / "statesync.json").read_text())
    lt = v["lthash"]
    leaves = [_leaf(t, bytes.fromhex(k), bytes.fromhex(val)) for t, k, val in lt["records"]]
    assert [leaf[:16].hex() for leaf in leaves] == lt["leaf_prefixes"]
    assert _lanes(leaves).hex() == lt["lanes"]
    assert _content(bytes.fromhex(lt["lanes"])).hex() == lt["digest"]
    prev = None
    for height, block in enumerate(v["blocks"], 1):
        header = decode(bytes.fromhex(block["hex"]))[0]
        prev_root, changes, next_set, content = (bytes.fromhex(p) for p in block["root_parts"])
        assert header[0] == 3 and header[2] == height
        if prev is not None:
            assert prev_root == prev
        root = hashlib.sha256(encode(["learningchain/v1", "state-root/3", prev_root, height,
                                      changes, next_set, content])).digest()
        assert root == header[7]
        assert (content != bytes(32)) == (height % 100 == 0)
        prev = root
    snap = v["snapshot"]
    manifest = decode(bytes.fromhex(snap["manifest"]))
    assert hashlib.sha256(bytes.fromhex(snap["manifest"])).hexdigest() == snap["id"]
    body = bytes.fromhex(snap["body"])
    records, offset = [], 0
    while offset < len(body):  # records are back to back: decode each by its own length
        for end in range(offset + 1, len(body) + 1):
            try:
                item = decode(body[offset:end])
            except Exception:
                continue
            records.append(item)
            offset = end
            break
    assert len(records) == manifest[11]
    assert [[t, k] for t, k, _ in records] == sorted([t, k] for t, k, _ in records)
    digest = _content(_lanes([_leaf(t, k, val) for t, k, val in records]))
    assert digest == manifest[8][3] == bytes.fromhex(v["blocks"][-1]["root_parts"][3])
    assert manifest[4] == snap["height"] == len(v["blocks"])
    assert len(v["walk"]) == 1
    entry = decode(bytes.fromhex(v["walk"][0]))
    named = v["blocks"][entry[0] - 1]
    assert entry[1] == encode(decode(bytes.fromhex(named["hex"]))[0])
    assert entry[2].hex() == named["certificate"]
    assert [p.hex() for p in entry[3]] == named["root_parts"]
    assert len(entry[4]) == 2
    members_hash = hashlib.sha256(encode(["learningchain/v1", "validator-set",
                                          entry[4]])).digest()
    assert members_hash == entry[3][2]
