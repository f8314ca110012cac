"""The federated demos write their reports to their output folder, never to docs/.

Issue 29: ``make demo-federated`` rewrote the tracked ``docs/federated_graph.md`` and
``.png`` (and the Markdown's hand-written private-mode section with it). The report
writers are run here on a small result, without a graph: every file lands in the output
folder and the checkout's docs/ stays byte for byte as it was. ``publish_docs`` (what the
explicit ``make docs-federated`` runs) is checked on a copy of docs/ in tmp_path.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from client.devnet.federated import demo as demo_federated
from client.devnet.federated import demo_private as demo_federated_private
from client.devnet.federated.demo import FedDemoResult, publish_docs, write_report
from client.devnet.federated.demo_private import PrivateDemoResult
from client.devnet.network import NetworkLayout

CHECKOUT = Path(__file__).resolve().parents[2]
DOCS = CHECKOUT / "docs"


def docs_bytes() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(DOCS.iterdir()) if p.is_file()}


def small_result(tmp_path: Path, cls: type[FedDemoResult] = FedDemoResult) -> FedDemoResult:
    layout = NetworkLayout(tmp_path / "graph", "demo-test", tmp_path / "genesis.json", ())
    result = cls(layout)
    result.table = [
        {"round": 0, "verdict": "initial", "aggregator": None, "voted_ppm": None,
         "hidden_acc": 0.25, "hidden_loss": 2.3, "model_hash": "ab" * 32},
        {"round": 1, "verdict": "accepted", "aggregator": "node0", "voted_ppm": 600_000,
         "hidden_acc": 0.6, "hidden_loss": 1.9, "model_hash": "cd" * 32}]
    result.payouts = {"alice": 7}
    result.seconds = 12.0
    return result


def test_demo_federated_report_goes_to_the_output_folder_only(tmp_path: Path) -> None:
    before = docs_bytes()
    out = tmp_path / "out"
    written = write_report(small_result(tmp_path), out, rounds=1)
    assert [p.name for p in written] == ["federated_graph.png", "federated_graph.md"]
    assert all(p.parent == out and p.stat().st_size > 0 for p in written)
    assert written[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| 1 | accepted | node0 | 60.0 %" in written[1].read_text()
    assert docs_bytes() == before


def test_demo_federated_private_report_goes_to_the_output_folder_only(
        tmp_path: Path) -> None:
    before = docs_bytes()
    result = small_result(tmp_path, PrivateDemoResult)
    path = demo_federated_private.write_report(result, tmp_path / "out", rounds=1)  # type: ignore[arg-type]
    assert path == tmp_path / "out" / "federated_graph_private.md" and path.is_file()
    assert docs_bytes() == before


def test_no_demo_entry_point_defaults_to_docs() -> None:
    """Neither run function takes a docs folder; both default the report to the graph's
    root, and the command lines default the root to an ignored folder of the checkout."""
    for run in (demo_federated.run_federated_demo, demo_federated_private.run_private_demo):
        params = inspect.signature(run).parameters
        assert "docs" not in params and params["out"].default is None
    args = demo_federated.parse_args([])
    assert args.root == CHECKOUT / ".demo-federated" and args.out is None
    assert args.publish_docs is None


def test_publish_docs_replaces_the_report_and_keeps_the_hand_written_sections(
        tmp_path: Path) -> None:
    out, docs = tmp_path / "out", tmp_path / "docs"
    docs.mkdir()
    (docs / "federated_graph.md").write_text(
        "# old run\n\nold table\n\n## Private mode: `make demo-federated-private`\n\n"
        "written by hand\n")
    (docs / "federated_graph.png").write_bytes(b"old")
    with pytest.raises(FileNotFoundError, match="run the demo first"):
        publish_docs(out, docs)
    png, md = write_report(small_result(tmp_path), out, rounds=1)
    demo_federated.main(["--out", str(out), "--publish-docs", str(docs)])
    assert (docs / "federated_graph.png").read_bytes() == png.read_bytes()
    text = (docs / "federated_graph.md").read_text()
    assert text.startswith(md.read_text().rstrip("\n") + "\n\n## Private mode")
    assert text.endswith("written by hand\n") and "old table" not in text
