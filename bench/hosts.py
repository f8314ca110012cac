"""Hosts bench (issue 31 §6): the graph on emulated hosts across a WAN against the same graph
on 127.0.0.1, in one run.

    sudo .venv/bin/python bench/hosts.py [--seconds 15] [--validators 16,64] [--blob-mib 8]
                                         [--rounds 2] [--tx-rounds 2] [--no-job] [--seed N]
                                         [--loss 0.01] [--quick]

Every host is a network namespace of the test bed (tests/hosts/, docs/testbed.md): an
address of its own, every TCP connection to another host through the emulated switch,
whose links get a round trip drawn from 50-150 ms per pair, 10 ms jitter each way and
1 % segment loss (issue 31 §6; ``--loss`` sets the 4-validator graph's). The loopback
reference is the same graph as node processes on 127.0.0.1 (``client.devnet.processes``),
measured in the same run by the same code (``bench/support/hostruns.py``):

- **finalized tx/s** of 4 validators under bench/devnet.py's load (pre-signed transfers
  posted in batches, ``bench/support/txload.py``; on the hosts each loader runs on a host
  and posts to that host's node), with submit-to-final p50/p99 and peak RSS per node;
  ``--tx-rounds`` rounds, each 127.0.0.1 then the hosts on the same links, and the best
  round of each side (every round's tx/s under ``tx_rounds``), so that a machine whose
  pace drifts moves both sides of ``hosts_over_loopback`` alike; and where a height's
  time went on each (``step_mean_ms_hosts``, ``step_mean_ms_loopback``: the mean ms a
  node spent in each consensus step under the load, ``bench/support/consensus_metrics.py``);
- **the large runs**: for each size of ``--validators`` (default 16 and 64), that many
  validators on as many hosts under the same load (over 16 validators a light one,
  ``LIGHT_LOAD``: 100 transfers a second): finalized tx/s, commit latency (submit
  to committed) p50/p99, the block interval, the steps' mean ms and peak RSS (``VmHWM``)
  per node, and, up to
  ``LOOPBACK_UP_TO`` validators, the same graph on 127.0.0.1 (64 node processes on
  127.0.0.1 of a 2-core machine measure the machine, not the network). Stable keys for 16
  and 64 (``tx_per_s_16``, ``commit_p50_s_16``, ``commit_p50_s_64``, ``rss_mib_64``: the
  largest node's peak ...); every size's figures also under ``large_runs``;
- **blob ratio**: bench/blobs.py's encrypted blob fetch over its raw TCP copy of the
  same file, host A to host B across one WAN link (``blob_ratio_encrypted``), the same
  link without loss (``..._lossless``: what the fetch's own pipelining leaves of a
  window-limited link), and bench/blobs.py's own figure on 127.0.0.1
  (``blob_ratio_encrypted_loopback``);
- **submit to paid**: the template job of tests/hosts/test_job_on_hosts.py (made
  train/v2; w1 +4 s, w2 behind NAT trains, w1-w3 on Docker engines of their own that
  fetch the job's layer from peers) from ``job submit`` to paid, and the same job on 4
  node processes on 127.0.0.1 sharing the machine's engine. Both with the same windows,
  sized once from an attempt measured here (``tests.framework.job_windows``): the claim
  window is waited out, so most of either figure is that window.

No host has a clock offset in the load runs (loaders and follower time transactions by
one wall clock; a validator 4 s ahead proposes no block the others accept, [CONS-TIME.2]).

``--quick``: 4 validators under 1 s of load from 8 senders (about a thousand transfers;
the follower stops once all are committed) on hosts and on 127.0.0.1, and a 1 MiB blob
ratio, one round per link and of the graphs: about half a minute. It runs no large run
and no job (private engines, about 4 minutes): those figures are ``null`` and
``null_because`` says why (so does ``--no-job``, ``--validators 0``).
``hosts_over_loopback`` is the 4-validator tx/s ratio (issue 51's key for
``tx_ratio_hosts_to_loopback``).

Needs root (namespaces, iptables; the job: private dockerds and the base image). Cleans
up every namespace, interface, process and private engine it made, also when a run
fails, on Ctrl-C and on SIGTERM. Last line: one JSON object (keys ``JSON_KEYS``).
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support.cli import emit, parse_args
from bench.support.hostruns import (
    MADE,
    WAN_JITTER_MS,
    WAN_LOSS,
    WAN_RTT_MS,
    BlobFigures,
    Load,
    Signals,
    TxFigures,
    blob_hosts,
    blob_loopback,
    job_hosts,
    job_loopback,
    tx_hosts,
    tx_loopback,
)
from sandbox.base_image import ensure_base_image
from sandbox.engine import connect
from tests.framework import seed as seeds
from tests.framework.job_windows import measure_attempt, windows
from tests.hosts.template_job import template_job

JSON_KEYS = ("bench", "quick", "seed", "validators", "load_seconds", "rtt_ms", "jitter_ms",
             "loss", "tx_per_s_hosts", "tx_per_s_loopback", "tx_ratio_hosts_to_loopback",
             "hosts_over_loopback", "tx_rounds",
             "p50_submit_to_final_s_hosts", "p50_submit_to_final_s_loopback",
             "p99_submit_to_final_s_hosts", "p99_submit_to_final_s_loopback",
             "step_mean_ms_hosts", "step_mean_ms_loopback",
             "peak_rss_mib_per_node_hosts", "peak_rss_mib_per_node_loopback",
             "submit_to_paid_s_hosts", "submit_to_paid_s_loopback",
             "submit_to_paid_ratio_hosts_to_loopback", "job_windows_s", "job_hosts_setup_s",
             "blob_mib", "blob_link_rtt_ms", "blob_mib_per_s_hosts", "raw_tcp_mib_per_s_hosts",
             "blob_ratio_encrypted", "blob_mib_per_s_hosts_lossless",
             "raw_tcp_mib_per_s_hosts_lossless", "blob_ratio_encrypted_lossless",
             "blob_mib_per_s_loopback", "raw_tcp_mib_per_s_loopback",
             "blob_ratio_encrypted_loopback", "large_validators", "tx_per_s_16",
             "commit_p50_s_16", "commit_p99_s_16", "rss_mib_16", "tx_per_s_16_loopback",
             "commit_p50_s_16_loopback", "tx_per_s_64", "commit_p50_s_64", "commit_p99_s_64",
             "rss_mib_64", "large_runs", "left_behind", "null_because")
"""Keys of the last line (tests/test_bench_quick.py); figures of a part not run are null,
and ``null_because`` names each with the reason."""
NEEDS_DOCKER = True
"""Starts node processes on emulated hosts (root: namespaces) and, in a full run, private
Docker engines: CI runs it serially, with the Docker and multi-process tests."""
QUICK = {"seconds": 1.0, "senders": 8, "batch": 100, "rate_cap": 1000, "blob_mib": 1,
         "rounds": 1, "tx_rounds": 1, "validators": "0", "job": False}
STABLE_SIZES = (16, 64)
"""Large-run sizes with keys of their own in the last line."""
LOOPBACK_UP_TO = 16
"""The largest graph also run on 127.0.0.1 as the reference."""
LIGHT_LOAD = {"senders": 8, "batch": 20, "rate_cap": 100, "drain_s": 90.0}
"""The load of a large run over ``LOOPBACK_UP_TO`` validators: 100 transfers a second,
followed 90 s after. Under bench/devnet.py's flood 64 validators on 2 cores committed
nothing within 15 s of the load (each of 6,000 transfers is gossiped to, decoded and
verified by all 64 node processes): what such a run can show here is the latency of a
commit at 64, not a rate."""
RTT_MS, JITTER_MS, LOSS = WAN_RTT_MS, WAN_JITTER_MS, WAN_LOSS


def _r(value: float | None, digits: int = 3) -> float | None:
    """Rounded, and NaN (nothing measured) as null."""
    if value is None or math.isnan(value):
        return None
    return round(value, digits)


def _mib(rss: dict[str, float]) -> dict[str, float | None]:
    return {name: _r(value, 1) for name, value in rss.items()}


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or not b else round(a / b, 3)


def run_tx(args: argparse.Namespace, load: Load, work: Path,
           result: dict[str, Any]) -> None:
    """``--tx-rounds`` rounds, each the graph on 127.0.0.1 and then on the hosts (the same
    links every round), and the best round of each: a machine whose pace drifts moves both
    sides alike (127.0.0.1 read 4,729-5,350 tx/s within one hour)."""
    rounds: list[tuple[TxFigures, TxFigures]] = []
    for i in range(args.tx_rounds):
        loopback = tx_loopback(4, load, work / f"round-{i}")
        print(f"loopback  {loopback.summary()}", flush=True)
        hosts, rtts = tx_hosts(4, load, work / f"round-{i}", args.seed, seeds.rng("links"),
                               args.loss)
        print(f"hosts     {hosts.summary()}; links (ms RTT) "
              f"{ {f'{a}-{b}': round(v) for (a, b), v in rtts.items()} }", flush=True)
        rounds.append((loopback, hosts))
    loopback = max((r[0] for r in rounds), key=lambda f: f.run.tx_per_s())
    hosts = max((r[1] for r in rounds), key=lambda f: f.run.tx_per_s())
    tps_h, tps_l = _r(hosts.run.tx_per_s(), 1), _r(loopback.run.tx_per_s(), 1)
    result.update({
        "tx_per_s_hosts": tps_h, "tx_per_s_loopback": tps_l,
        "tx_ratio_hosts_to_loopback": _ratio(tps_h, tps_l),
        "hosts_over_loopback": _ratio(tps_h, tps_l),
        "tx_rounds": {"loopback": [_r(r[0].run.tx_per_s(), 1) for r in rounds],
                      "hosts": [_r(r[1].run.tx_per_s(), 1) for r in rounds]},
        "p50_submit_to_final_s_hosts": _r(hosts.run.latency_s(0.5)),
        "p50_submit_to_final_s_loopback": _r(loopback.run.latency_s(0.5)),
        "p99_submit_to_final_s_hosts": _r(hosts.run.latency_s(0.99)),
        "p99_submit_to_final_s_loopback": _r(loopback.run.latency_s(0.99)),
        "step_mean_ms_hosts": hosts.step_mean_ms, "step_mean_ms_loopback": loopback.step_mean_ms,
        "peak_rss_mib_per_node_hosts": _mib(hosts.peak_rss_mib),
        "peak_rss_mib_per_node_loopback": _mib(loopback.peak_rss_mib),
    })


def run_large(size: int, load: Load, work: Path, seed: int,
              result: dict[str, Any]) -> None:
    if size > LOOPBACK_UP_TO:
        load = Load(load.seconds, **LIGHT_LOAD)
    hosts, _rtts = tx_hosts(size, load, work, seed, seeds.rng(f"large-links-{size}"))
    print(f"hosts     {hosts.summary()}", flush=True)
    figures: dict[str, Any] = {
        "tx_per_s": _r(hosts.run.tx_per_s(), 1),
        "commit_p50_s": _r(hosts.run.latency_s(0.5)),
        "commit_p99_s": _r(hosts.run.latency_s(0.99)),
        "block_interval_p50_s": _r(_median(hosts.run.block_intervals())),
        "step_mean_ms": hosts.step_mean_ms,
        "rss_mib_max": _r(max(hosts.peak_rss_mib.values(), default=math.nan), 1),
        "rss_mib_median": _r(_median(list(hosts.peak_rss_mib.values())), 1),
        "start_s": _r(hosts.start_s, 1),
        "load_tx_per_s_cap": load.rate_cap,
        "finalized": hosts.run.finalized(),
    }
    if size <= LOOPBACK_UP_TO:
        loopback: TxFigures = tx_loopback(size, load, work)
        print(f"loopback  {loopback.summary()}", flush=True)
        figures.update({"tx_per_s_loopback": _r(loopback.run.tx_per_s(), 1),
                        "commit_p50_s_loopback": _r(loopback.run.latency_s(0.5)),
                        "commit_p99_s_loopback": _r(loopback.run.latency_s(0.99))})
    result["large_runs"] = {**(result["large_runs"] or {}), str(size): figures}
    if size in STABLE_SIZES:
        result.update({f"tx_per_s_{size}": figures["tx_per_s"],
                       f"commit_p50_s_{size}": figures["commit_p50_s"],
                       f"commit_p99_s_{size}": figures["commit_p99_s"],
                       f"rss_mib_{size}": figures["rss_mib_max"]})
    if size == 16:
        result.update({"tx_per_s_16_loopback": figures.get("tx_per_s_loopback"),
                       "commit_p50_s_16_loopback": figures.get("commit_p50_s_loopback")})


def sizes(text: str) -> list[int]:
    """``--validators``: large-run sizes, comma-separated; 0 or empty: none."""
    try:
        values = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"--validators {text!r}: {e}") from e
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"--validators {text!r}: a size below 0")
    return [v for v in values if v]


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def run_blobs(args: argparse.Namespace, work: Path, result: dict[str, Any]) -> None:
    loopback: BlobFigures = blob_loopback(args.blob_mib, args.rounds)
    print(f"loopback  blob {loopback.summary()}", flush=True)
    hosts, rtt = blob_hosts(args.blob_mib, args.rounds, args.seed, seeds.rng("blob-link"),
                            work, (LOSS, 0.0))
    for loss, figures in hosts.items():
        print(f"hosts     blob {figures.summary()} (link {rtt:.0f} ms RTT, {JITTER_MS:.0f} ms "
              f"jitter, {loss:.0%} loss)", flush=True)
    result.update({
        "blob_link_rtt_ms": round(rtt, 1),
        "blob_mib_per_s_hosts": _r(hosts[LOSS].blob_mib_per_s, 2),
        "raw_tcp_mib_per_s_hosts": _r(hosts[LOSS].raw_mib_per_s, 2),
        "blob_ratio_encrypted": _r(hosts[LOSS].ratio),
        "blob_mib_per_s_hosts_lossless": _r(hosts[0.0].blob_mib_per_s, 2),
        "raw_tcp_mib_per_s_hosts_lossless": _r(hosts[0.0].raw_mib_per_s, 2),
        "blob_ratio_encrypted_lossless": _r(hosts[0.0].ratio),
        "blob_mib_per_s_loopback": _r(loopback.blob_mib_per_s, 1),
        "raw_tcp_mib_per_s_loopback": _r(loopback.raw_mib_per_s, 1),
        "blob_ratio_encrypted_loopback": _r(loopback.ratio),
    })


def run_job(args: argparse.Namespace, work: Path, result: dict[str, Any]) -> None:
    machine = connect()
    try:
        ensure_base_image(machine, log=lambda _m: None)
        job_dir = work / "digits"
        image_id = template_job(job_dir)
        job_windows = windows(measure_attempt(job_dir))  # once: the same for both graphs
        print(f"job windows: {job_windows}", flush=True)
        loopback = job_loopback(job_dir, image_id, job_windows, work)
        print(f"loopback  template job: submit to paid {loopback:.1f} s", flush=True)
        hosts, setup = job_hosts(job_dir, image_id, job_windows, work, args.seed,
                                 seeds.rng("job-links"), machine)
        print(f"hosts     template job: submit to paid {hosts:.1f} s (before it: {setup:.0f} s "
              "for hosts, engines holding the base image, nodes at height 1)", flush=True)
    finally:
        machine.close()
    result.update({
        "submit_to_paid_s_hosts": _r(hosts, 1), "submit_to_paid_s_loopback": _r(loopback, 1),
        "submit_to_paid_ratio_hosts_to_loopback": _ratio(hosts, loopback),
        "job_windows_s": {"attempt": round(job_windows.attempt_s, 1),
                          "expires": job_windows.expires_s, "reveal": job_windows.reveal_s,
                          "commit": job_windows.commit_s,
                          "vote_reveal": job_windows.vote_reveal_s},
        "job_hosts_setup_s": round(setup, 1),
    })


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=15.0, help="seconds of transfer load")
    p.add_argument("--senders", type=int, default=96,
                   help="funded accounts, each signing at most 1,900 transfers: 96 sign "
                        "182,400, more than 45 s on 127.0.0.1 take (64 ran dry there on "
                        "2026-11-27 at 2,726 tx/s, which capped the reference)")
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--rate-cap", type=int, default=6000, help="txs signed per second of load")
    p.add_argument("--validators", default="16,64",
                   help="sizes of the large runs, comma-separated (0: none)")
    p.add_argument("--blob-mib", type=int, default=8)
    p.add_argument("--rounds", type=int, default=2, help="blob rounds (median)")
    p.add_argument("--tx-rounds", type=int, default=2,
                   help="rounds of the 4-validator graphs, 127.0.0.1 then hosts (best of each)")
    p.add_argument("--job", action=argparse.BooleanOptionalAction, default=True,
                   help="time the template job from submit to paid (needs Docker)")
    p.add_argument("--seed", type=int, default=None, help="links' random draws (LC_SEED)")
    p.add_argument("--loss", type=float, default=LOSS,
                   help="segment loss of the 4-validator graph's WAN links (0: how much of "
                        "hosts_over_loopback the loss costs)")
    args = parse_args(p, QUICK)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s: %(message)s")  # progress, on stderr
    if args.seed is None:
        args.seed = seeds.choose_seed()
    seeds.begin_case(args.seed)
    Signals.install()
    MADE.begin()
    print(f"seed {args.seed} (re-run with --seed {args.seed}); links {RTT_MS[0]:.0f}-"
          f"{RTT_MS[1]:.0f} ms RTT, {JITTER_MS:.0f} ms jitter, {args.loss:.0%} loss", flush=True)
    load = Load(args.seconds, args.senders, args.batch, args.rate_cap)
    result: dict[str, Any] = {key: None for key in JSON_KEYS}
    result.update({"bench": "hosts", "quick": args.quick, "seed": args.seed, "validators": 4,
                   "load_seconds": args.seconds, "rtt_ms": list(RTT_MS),
                   "jitter_ms": JITTER_MS, "loss": args.loss, "blob_mib": args.blob_mib,
                   "large_validators": sizes(args.validators) or None})
    because: dict[str, str] = {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lc-bench-hosts-") as tmp:
        work = Path(tmp)
        run_tx(args, load, work, result)
        run_blobs(args, work, result)
        for size in sizes(args.validators):
            run_large(size, load, work, args.seed, result)
        for size in STABLE_SIZES:
            if size not in sizes(args.validators):
                because[f"*_{size}"] = ("quick mode: no large run" if args.quick
                                        else f"--validators {args.validators}: no {size}")
        if args.job:
            run_job(args, work, result)
        else:
            because["submit_to_paid_*"] = (
                "quick mode: the template job (3 private Docker engines loaded with the base "
                "image, a claim window waited out: about 4 min) is not run" if args.quick
                else "--no-job: the template job was not run")
    left = MADE.left()
    result["left_behind"] = left
    result["null_because"] = because or None
    print(f"done in {time.monotonic() - started:.0f} s; {len(MADE.beds)} test beds and "
          f"{len(MADE.engine_roots)} private engines made, left behind: {left or 'nothing'}",
          flush=True)
    emit(result, JSON_KEYS)
    if left:
        raise SystemExit(f"left behind: {left}")


if __name__ == "__main__":
    main()
