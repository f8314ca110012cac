"""A failed run's record is not a channel for the model (issue 30 §3) [API-JOBLOG.3].

A ``train`` that prints its weights (as numbers, hex, base64, one per line or a tensor's
repr) and exits 1 must leave at most ``EXCERPT_BYTES`` of redacted text in the record the
node serves; an honest traceback keeps its shape: file, line number, exception.
"""

from __future__ import annotations

import base64
import random
import struct

from client.worker.attempt_log import EXCERPT_BYTES, EXCERPT_LINES, excerpt, redact

TRACEBACK = (b"Traceback (most recent call last):\n"
             b"  File \"/job/train.py\", line 42, in <module>\n"
             b"    main()\n"
             b"ValueError: expected 3 features, got 4\n")


def _weights(n: int = 4096) -> list[float]:
    rng = random.Random(30)
    return [rng.uniform(-1, 1) for _ in range(n)]


def test_api_joblog_3_an_honest_traceback_keeps_its_shape() -> None:
    """[API-JOBLOG.3] short digit runs (line numbers, counts) stay; the traceback's last
    lines are kept from the traceback on, what came before it is not."""
    text = excerpt(b"epoch 1 loss 0.5\n" * 50 + TRACEBACK)
    assert text.splitlines() == [
        "Traceback (most recent call last):", "  File \"/job/train.py\", line 42, in <module>",
        "    main()", "ValueError: expected 3 features, got 4"]


def test_api_joblog_3_printed_weights_do_not_survive_in_any_usual_form() -> None:
    """[API-JOBLOG.3] A model printed as a tensor repr, one number per line, hex, base64 or
    packed digits: none of its values appears in the excerpt, which stays bounded."""
    weights = _weights()
    raw = struct.pack(f"<{len(weights)}f", *weights)
    forms = {
        "repr": ("tensor([" + ", ".join(f"{w:.4f}" for w in weights) + "])\n").encode(),
        "lines": "".join(f"{w:.6f}\n" for w in weights).encode(),
        "hex": (raw.hex() + "\n").encode(),
        "hex lines": b"".join(raw[i:i + 16].hex().encode() + b"\n"
                              for i in range(0, len(raw), 16)),
        "base64": base64.b64encode(raw) + b"\n",
        "digits": ("".join(str(int((w + 1) * 5e8)) for w in weights) + "\n").encode(),
    }
    for name, printed in forms.items():
        text = excerpt(printed + TRACEBACK[:-1] + b"\nSystemExit: 1\n")
        assert len(text.encode()) <= EXCERPT_BYTES, name
        assert len(text.splitlines()) <= EXCERPT_LINES, name
        for w in weights:
            assert f"{w:.4f}"[3:] not in text, (name, w)  # no 2+ significant digits leak
        assert raw[:8].hex() not in text and base64.b64encode(raw[:12]).decode() not in text


def test_api_joblog_3_bounded_whatever_is_printed() -> None:
    """[API-JOBLOG.3] many long lines of text or multi-byte characters: still bounded."""
    for printed in (("é" * 500 + "\n") * 500, ("word " * 100 + "\n") * 500, "x" * 10**6):
        text = excerpt(printed.encode())
        assert len(text.encode()) <= EXCERPT_BYTES
        assert len(text.splitlines()) <= EXCERPT_LINES


def test_api_joblog_3_redact_keeps_short_tokens() -> None:
    """[API-JOBLOG.3] line numbers and words stay; 4+ digits and 20+ char tokens go."""
    assert redact("line 42 step 123") == "line 42 step 123"
    assert redact("step 12345") == "step \u2026"
    assert redact("key " + "a1" * 10) == "key \u2026"
