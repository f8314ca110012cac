"""A participant's own DP-SGD accounting over a federated job's rounds [JOB-FED.7].

Each round a DP-SGD ``federate`` run reports what its accountant saw (noise multiplier,
sample rate, steps). The same rows train every round, so the rounds compose: the job-so-far
epsilon is the RDP accountant's over the whole history, at one delta. ``compose_epsilon``
is that pure math (Opacus' own RDP analysis, the participant's own numbers; the chain sees
none of it and cannot check it). ``DpLedger`` keeps each round's numbers in the job's
``RoundStore`` folder, so a restarted node still counts the rounds it already trained.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sandbox.privacy_report import PrivacyReport, PrivacyReportError, parse_privacy

Step = tuple[float, float, int]
"""(noise_multiplier, sample_rate, steps) of one round."""


def compose_epsilon(history: Sequence[Step], delta: float) -> float:
    """Epsilon at ``delta`` of every round in ``history`` together (RDP composition, the
    same orders and conversion as ``opacus.accountants.RDPAccountant``); 0 when empty."""
    if not history:
        return 0.0
    from opacus.accountants import RDPAccountant
    from opacus.accountants.analysis import rdp

    orders = RDPAccountant.DEFAULT_ALPHAS
    total = sum(rdp.compute_rdp(q=q, noise_multiplier=sigma, steps=steps, orders=orders)
                for sigma, q, steps in history)
    eps, _alpha = rdp.get_privacy_spent(orders=orders, rdp=total, delta=delta)
    return float(eps)


@dataclass(frozen=True, slots=True)
class RoundPrivacy:
    """One round's figures as the participant's host computed them."""

    round: int
    epsilon_round: float
    epsilon_total: float
    delta: float

    def line(self) -> str:
        return (f"round {self.round}: dp-sgd epsilon this round {self.epsilon_round:.4g}, "
                f"job so far {self.epsilon_total:.4g} at delta {self.delta:g}")


class DpLedger:
    """``round-<r>.privacy.json`` files (the checked report) in the job's folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def record(self, round_no: int, report: PrivacyReport) -> RoundPrivacy:
        """Keep ``report`` as round ``round_no``'s (a retried round replaces its own) and
        compose every recorded round."""
        name = f"round-{round_no}.privacy.json"
        tmp = self.folder / f".{name}.tmp"
        tmp.write_text(json.dumps(report.to_json(), sort_keys=True))
        os.replace(tmp, self.folder / name)
        rounds = self.history()
        steps = [(r.noise_multiplier, r.sample_rate, r.steps) for _, r in rounds]
        this = (report.noise_multiplier, report.sample_rate, report.steps)
        return RoundPrivacy(round_no, compose_epsilon([this], report.delta),
                            compose_epsilon(steps, report.delta), report.delta)

    def history(self) -> list[tuple[int, PrivacyReport]]:
        """Every recorded round, in round order (an unreadable file is skipped: it was
        written by this host, so only a crash mid-write leaves one, and then as a .tmp)."""
        out = []
        for path in self.folder.glob("round-*.privacy.json"):
            try:
                round_no = int(path.name.split("-", 1)[1].split(".", 1)[0])
                out.append((round_no, parse_privacy(path.read_bytes())))
            except (ValueError, OSError, PrivacyReportError):
                continue
        return sorted(out, key=lambda item: item[0])
