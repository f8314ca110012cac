"""The round's privacy report a DP-SGD ``federate`` run writes: /output/privacy.json
[JOB-FED.7].

It comes out of the job's container, so it is as untrusted as the update: bounded bytes,
exactly the known keys, finite numbers in range, or a clear error naming the bad value.
The host only uses its numbers for its own accounting (the participant composes the
job-so-far epsilon from each round's ``noise_multiplier``, ``sample_rate`` and ``steps``);
nothing of it leaves the participant's machine. Pure: no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sandbox.errors import SandboxError
from sandbox.job_json import JobJsonError, JsonBounds, parse_json

PRIVACY_FILE = "privacy.json"
MAX_PRIVACY_BYTES = 4096
"""[JOB-FED.7] The report is at most this long (a real one is ~200 bytes)."""
MECHANISM = "dp-sgd"
ACCOUNTANT = "rdp"
NUMBER_BOUNDS = {
    "noise_multiplier": (0.0, 1e3, False),
    "max_grad_norm": (0.0, 1e9, False),
    "sample_rate": (0.0, 1.0, True),
    "delta": (0.0, 1.0, False),
    "epsilon": (0.0, 1e12, True),
}
"""[JOB-FED.7] name -> (low, high, high included); ``low`` is excluded except for
``epsilon`` (0 is allowed)."""
MAX_STEPS = 10**8
KEYS = ("accountant", "delta", "epsilon", "max_grad_norm", "mechanism", "noise_multiplier",
        "sample_rate", "steps")


class PrivacyReportError(SandboxError):
    """[JOB-FED.7] A privacy.json the host refuses; carries a short picture of the value."""

    def __init__(self, message: str, detail: object = None) -> None:
        shown = repr(detail)
        self.detail = shown if len(shown) <= 120 else shown[:120] + "…"
        super().__init__(f"privacy.json [JOB-FED.7]: {message} (got {self.detail})")


@dataclass(frozen=True, slots=True)
class PrivacyReport:
    """One round of DP-SGD as the job's accountant saw it."""

    noise_multiplier: float
    max_grad_norm: float
    sample_rate: float
    steps: int
    delta: float
    epsilon: float
    """This round's epsilon at ``delta`` (the job's own figure; the host recomputes)."""
    mechanism: str = MECHANISM
    accountant: str = ACCOUNTANT

    def to_json(self) -> dict[str, Any]:
        return {"mechanism": self.mechanism, "accountant": self.accountant,
                "noise_multiplier": self.noise_multiplier, "max_grad_norm": self.max_grad_norm,
                "sample_rate": self.sample_rate, "steps": self.steps, "delta": self.delta,
                "epsilon": self.epsilon}


def parse_privacy(data: bytes) -> PrivacyReport:
    """[JOB-FED.7] The report in ``data``, or ``PrivacyReportError``."""
    if len(data) > MAX_PRIVACY_BYTES:
        raise PrivacyReportError(f"over {MAX_PRIVACY_BYTES} bytes", len(data))
    try:  # [JOB-JSON.*] like every file a job writes: no duplicate key, no NaN, bounded
        doc = parse_json(data, JsonBounds(max_bytes=MAX_PRIVACY_BYTES, max_depth=1))
    except JobJsonError as e:
        raise PrivacyReportError(f"not JSON: {e}", data[:32]) from None
    if not isinstance(doc, dict):
        raise PrivacyReportError("not a JSON object", doc)
    if set(doc) != set(KEYS):
        raise PrivacyReportError(f"keys must be exactly {', '.join(KEYS)}", sorted(doc))
    if doc["mechanism"] != MECHANISM or doc["accountant"] != ACCOUNTANT:
        raise PrivacyReportError(f"mechanism {MECHANISM!r} with accountant {ACCOUNTANT!r}",
                                 (doc["mechanism"], doc["accountant"]))
    steps = doc["steps"]
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= MAX_STEPS:
        raise PrivacyReportError(f"steps must be a whole number 1..{MAX_STEPS}", steps)
    numbers = {}
    for name, (low, high, high_in) in NUMBER_BOUNDS.items():
        value = doc[name]
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise PrivacyReportError(f"{name} must be a number", value)
        x = float(value)
        above_low = x >= low if name == "epsilon" else x > low
        below_high = x <= high if high_in else x < high
        if not (math.isfinite(x) and above_low and below_high):
            raise PrivacyReportError(f"{name} must be finite, in {low:g}..{high:g}", value)
        numbers[name] = x
    return PrivacyReport(noise_multiplier=numbers["noise_multiplier"],
                         max_grad_norm=numbers["max_grad_norm"],
                         sample_rate=numbers["sample_rate"], steps=steps,
                         delta=numbers["delta"], epsilon=numbers["epsilon"])
