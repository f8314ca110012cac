"""What a graph's consensus did, summed over its nodes' Prometheus ``/metrics``.

Shared by ``bench/devnet.py`` and ``bench/hosts.py`` (``bench/support/hostruns.py``): the
rounds and timeouts a graph needed, the p2p bytes it sent, and where a height's time went
(``learningchain_consensus_step_duration_seconds``, [NODE-METRICS.1]).
"""

from __future__ import annotations

import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families


def consensus_counts(apis: list[str], since: dict[str, Any] | None = None) -> dict[str, Any]:
    """Summed over the nodes' Prometheus ``/metrics``: rounds above 0, timeouts by step,
    p2p bytes sent (``learningchain_consensus_rounds_above_zero``,
    ``..._consensus_timeouts{step}``, ``..._p2p_sent_bytes``); and, since ``since`` (an
    earlier answer of this function: the start-up's first height left out), the mean time
    a node spent in each consensus step, in ms, the idle ``rest`` left out
    (``..._step_duration_seconds``), and proposals by reference by outcome
    (``..._consensus_proposal_refs{outcome}``)."""
    rounds = sent = 0
    timeouts: dict[str, int] = {}
    raw: dict[str, float] = {}
    for api in apis:
        with urllib.request.urlopen(f"{api}/metrics", timeout=10) as r:
            families = text_string_to_metric_families(r.read().decode())
        for sample in (s for family in families for s in family.samples):
            name, labels = sample.name, sample.labels
            if name == "learningchain_consensus_rounds_above_zero_total":
                rounds += int(sample.value)
            elif name == "learningchain_consensus_timeouts_total":
                timeouts[labels["step"]] = timeouts.get(labels["step"], 0) + int(sample.value)
            elif name == "learningchain_p2p_sent_bytes_total":
                sent += int(sample.value)
            elif name == "learningchain_consensus_proposal_refs_total" or (
                    name.startswith("learningchain_consensus_step_duration_seconds_")
                    and not name.endswith("_bucket")):
                key = f"{name} {labels.get('outcome') or labels.get('step')}"
                raw[key] = raw.get(key, 0.0) + sample.value
    before = since["raw"] if since is not None else {}
    delta = {key: value - before.get(key, 0.0) for key, value in raw.items()}
    steps = {}
    for key, count in sorted(delta.items()):
        name, label = key.split(" ")
        if name.endswith("_count") and count and label != "rest":
            total = delta[f"{name.removesuffix('_count')}_sum {label}"]
            steps[label] = round(total / count * 1000, 1)
    refs = {key.split(" ")[1]: int(value) for key, value in delta.items()
            if key.startswith("learningchain_consensus_proposal_refs_total ")}
    return {"rounds_above_zero": rounds, "timeouts": timeouts, "p2p_sent_bytes": sent,
            "step_mean_ms": steps, "proposal_refs": refs, "raw": raw}
