"""The figures of bench/soak.py (``bench/support/soakparts.py``) and its hand-written SVG
chart (``bench/support/svgplot.py``), on made-up samples: no node, no namespace, no timing;
and the federated job's terms and outcome (``bench/support/soakfed.py``).

The soak's verdict rests on these: growth is measured per process life (a restarted
validator's new process is not compared with its old one), from the warm-up to the end;
a stall is a long gap only while one of our transfers waited through it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from bench.support import soakfed
from bench.support.soakparts import (
    BlockSeen,
    Sample,
    Sent,
    disk_mb_per_hour,
    growths,
    rows,
    stalls,
    write_csv,
)
from bench.support.svgplot import Panel, line_chart, nice_ticks


def _life(node: str, pid: int, start: int, count: int, rss: float, step: float = 0.0,
          fds: int = 30) -> list[Sample]:
    return [Sample(float(start + 10 * i), node, pid, rss + step * i, fds, 1.0 + i)
            for i in range(count)]


def test_growth_is_per_process_life_from_the_warmup_to_the_end() -> None:
    samples = _life("v0", 100, 0, 20, 100.0, step=1.0)  # warm-up 50 s: 5th sample on
    samples += _life("v3", 200, 0, 8, 500.0)  # replaced before its warm-up ended + 6 samples
    samples += _life("v3", 201, 80, 12, 90.0)
    by = {(g.node, g.pid): g for g in growths(samples, warmup_s=50.0)}
    assert set(by) == {("v0", 100), ("v3", 201)}
    v0 = by["v0", 100]
    assert (v0.rss_from, v0.rss_to) == (106.0, 118.0)  # medians of 3 samples each end
    assert v0.rss_pct == pytest.approx(12 / 106 * 100)
    assert by["v3", 201].rss_pct == 0.0 and by["v3", 201].fds == 0


def test_a_process_not_running_is_not_a_sample_of_growth() -> None:
    samples = [*_life("w5", 7, 0, 10, 50.0), Sample(100.0, "w5", None, float("nan"), -1, 3.0)]
    (g,) = growths(samples, warmup_s=0.0)
    assert g.to_s == 90.0


def test_disk_growth_per_hour_spans_restarts() -> None:
    samples = _life("v3", 1, 0, 6, 80.0) + _life("v3", 2, 60, 6, 80.0)  # 0..50 s, 60..110 s
    samples = [Sample(s.t_s, s.node, s.pid, s.rss_mib, s.fds, s.t_s / 10) for s in samples]
    (rate,) = disk_mb_per_hour(samples, warmup_s=0.0).values()
    assert rate == pytest.approx((10.0 - 1.0) / (110.0 / 3600))  # medians 1 and 10 MB


def _blocks(times_s: list[float], begin: float = 1000.0) -> list[BlockSeen]:
    return [BlockSeen(h + 1, int((begin + t) * 1000), begin + t, 1)
            for h, t in enumerate(times_s)]


def test_a_long_gap_is_a_stall_only_while_a_transfer_waited_through_it() -> None:
    blocks = _blocks([0, 1, 2, 3, 4, 5, 15, 16, 17])  # median interval 1 s, one 10 s gap
    waited = Sent("a", submitted=1005.5, final=1015.2, height=7)
    interval, found = stalls(blocks, [waited], 1000.0, 1020.0)
    assert interval == 1.0
    assert [(g.after_height, g.seconds, g.at_s) for g in found] == [(6, 10.0, 5.0)]
    late = Sent("b", submitted=1014.0, final=1015.2, height=7)  # came in the gap's last 5 s
    early = Sent("c", submitted=1001.0, final=1002.1, height=3)
    assert stalls(blocks, [late, early], 1000.0, 1020.0)[1] == []


def test_the_record_has_one_row_per_sampling_time_with_the_window_latencies(
        tmp_path: Path) -> None:
    samples = _life("v0", 1, 0, 3, 10.0) + _life("w4", 2, 0, 3, 20.0)
    sent = [Sent("a", 1000.0, 1001.5, 2), Sent("b", 1012.0, 1013.0, 3), Sent("c", 1013.0)]
    header, table = rows(samples, sent, 1000.0, 10.0)
    assert header[:4] == ["t_min", "finals", "commit_p50_s", "commit_max_s"]
    assert "rss_mib.w4" in header and "disk_mb.v0" in header
    assert [r["finals"] for r in table] == [0, 1, 1]
    assert table[1]["commit_max_s"] == 1.5 and table[2]["commit_p50_s"] == 1.0
    write_csv(tmp_path / "s.csv", header, table)
    assert (tmp_path / "s.csv").read_text().splitlines()[0].startswith("t_min,finals")


def test_ticks_are_round_and_cover_the_range() -> None:
    assert nice_ticks(0.0, 10.0, 5) == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    ticks = nice_ticks(81.3, 84.9, 4)
    assert ticks[0] <= 81.3 and ticks[-1] >= 84.9 and ticks == sorted(ticks)
    assert nice_ticks(5.0, 5.0)[0] <= 5.0


def test_the_chart_is_well_formed_svg_with_a_line_per_series() -> None:
    svg = line_chart([Panel("RSS (MiB)", {"v0": [(0.0, 80.0), (1.0, 81.0)],
                                          "w<4>": [(0.0, 90.0), (1.0, 89.0)]}),
                      Panel("empty", {})], x_label="minutes", title="soak & test")
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(f"{ns}polyline")) == 2
    texts = [t.text for t in root.iter(f"{ns}text")]
    assert "w<4>" in texts and "soak & test" in texts and "minutes" in texts


# -- the federated job (bench/support/soakfed.py) ----------------------------------------

def _demo_spec() -> Any:
    from chain.federated.blobs import ModelBlob
    from chain.jobspec import Holdout
    from chain.types import Amount, Hash32
    from client.devnet.federated.posting import federated_spec

    holdout = Holdout(Hash32(b"\x21" * 32), 30, 500, 1, Amount(10), 60_000, 0.0)
    return federated_spec("sha256:" + "ab" * 32, b"\x07" * 32, ModelBlob(16, (1, 2, 3)),
                          holdout, soakfed.ROUNDS, 1_000_000)


def test_the_soak_federated_terms_are_the_demo_spec_with_wan_windows_and_four_owners() -> None:
    from chain.jobspec import JobSpec
    from client.devnet.federated import posting

    demo = _demo_spec()
    spec = soakfed.soak_terms(demo)
    fed = spec.federated
    assert (fed.min_participants, fed.max_participants) == (3, 4) == (
        soakfed.MIN_PARTICIPANTS, len(soakfed.OWNERS))
    assert fed.commit_window_ms == soakfed.WINDOWS_MS["commit"]
    assert fed.reveal_window_ms == soakfed.WINDOWS_MS["reveal"] > posting.WINDOWS_MS["reveal"]
    assert spec.voting.vote_reveal_window_ms == soakfed.WINDOWS_MS["vote_reveal"]
    assert spec.expiry_ms - demo.expiry_ms == soakfed.FIRST_COMMIT_MS - posting.FIRST_COMMIT_MS
    assert (fed.rounds, fed.aggregation, spec.bounty) == (
        demo.federated.rounds, demo.federated.aggregation, demo.bounty)
    assert JobSpec.from_wire(spec.to_wire()) == spec  # within every bound of the wire
    # each owner's round at a quarter core, with its wall limit (the rest of the demo's)
    assert (spec.limits.cpu_millis, spec.limits.time_s) == (
        soakfed.OWNER_CPU_MILLIS, soakfed.OWNER_TIME_S)
    assert spec.limits.memory_mb == demo.limits.memory_mb
    # a job ends in the drain of a 10-minute soak, and an hour's holds two (MAX_JOBS)
    assert 5 * 60 < soakfed.expected_s() < 12 * 60
    assert soakfed.FedStream.timeout_s() > soakfed.expected_s()


def test_a_federated_job_counts_as_paid_only_done_with_credits_paid() -> None:
    record = soakfed.FedRecord("ab" * 32, 1.0)
    rounds = [{"verdict": v} for v in ("accepted", "void", "accepted", "rejected", None)]
    soakfed.read_outcome(record, {"phase": "vote_commit", "rounds": rounds, "payout": None})
    assert (record.rounds_recorded, record.rounds_accepted, record.paid) == (4, 2, 0)
    assert not record.is_paid
    paid = {"paid": [{"address": "a", "amount": "400"}, {"address": "b", "amount": 150}],
            "refund": 50}
    soakfed.read_outcome(record, {"phase": "done", "rounds": rounds, "payout": paid})
    assert record.paid == 550 and record.is_paid
    soakfed.read_outcome(record, {"phase": "done", "rounds": [], "payout": {"paid": []}})
    assert not record.is_paid  # every round void: the bounty refunded, nobody paid


def test_the_soak_passes_with_federated_on_only_if_every_posted_job_was_paid() -> None:
    from bench.soak import JSON_KEYS, verdict

    base = dict.fromkeys(JSON_KEYS)
    base.update({"rss_growth_pct_after_warmup": 1.0, "fd_growth": 0.0, "stalls": 0,
                 "transfers_sent": 10, "transfers_final": 10, "jobs_posted": 1,
                 "jobs_settled": 1, "predictions_asked": 1, "predictions_agreed": 1,
                 "credits_conserved": True, "same_state": True, "failures": [],
                 "left_behind": []})
    assert verdict(base, True, True)  # --no-federated: its figures null
    assert not verdict(base, True, True, federated_on=True)
    assert verdict({**base, "fed_jobs_posted": 2, "fed_jobs_paid": 2}, True, True, True)
    assert not verdict({**base, "fed_jobs_posted": 2, "fed_jobs_paid": 1}, True, True, True)
    assert not verdict({**base, "fed_jobs_posted": 0, "fed_jobs_paid": 0}, True, True, True)
