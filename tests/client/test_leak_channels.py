"""A hostile job moves no more than the channel budget to whoever reads a worker's node
(issue 47 §1-2) [THREAT-LEAK.1] [API-PROGRESS.2-3] [API-JOBLOG.4] [JOB-PROGRESS.5].

The job's writer (``bench/support/leak_channels.py``) puts a 1,024-byte random payload in its
progress files, in what it prints before failing (ten scripts and encodings) and in a file
name in ``/output``; the files go through the real progress reader and the real
``Trainer``, the output through the real ``AttemptLog`` and output check, and a reader
without the node's API token takes back what ``GET /jobs/{id}/logs`` serves over HTTP
(a solo node's API with a token). Before this, the progress gave back 8,192 of 8,192 bits in
a minute, and the excerpt about 3,300 bits per failed attempt printed in CJK (3,060 in ASCII
words of 19 letters), the detail line 2,520 bits of a CJK file name.
"""

from __future__ import annotations

import itertools
import math
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.support.leak_channels import (
    SCRIPTS,
    budget,
    decode,
    output_name,
    printed,
    progress_probe,
    random_payload,
    recovered_bits,
    refusal_detail,
    symbols,
    totals,
)
from chain.train.bodies import PostJob
from client.api.http_client import ApiClient
from client.cli.job.run_progress import progress_event, progress_text
from client.node.config import WorkerPolicy
from client.worker.attempt_log import (
    DETAIL_INFO_BYTES,
    EXCERPT_INFO_BYTES,
    bound_detail,
    excerpt,
)
from client.worker.progress_view import (
    PERCENT_STATES,
    PUBLISH_MS,
    ProgressFeed,
    advance,
    monotone_sequences,
    observe,
    public_bits,
    public_json,
)
from client.worker.text_bound import (
    DICTIONARY,
    bits_bound,
    information_bytes,
    keep_end,
    keep_start,
    numbers_in,
    plain,
    redact,
)
from client.worker.worker import Worker
from sandbox.progress import Progress
from sandbox.results import FailureReason
from tests.client.api.test_api_support import ApiThread, future_spec
from tests.client.cli.test_cli_job import send

TOKEN = "t" * 40
ROOT = Path(__file__).resolve().parents[2]
PAYLOAD = random_payload()


@pytest.fixture
def node(tmp_path: Path) -> Iterator[ApiThread]:
    """A solo node whose API has a token: a reader without it is anyone."""
    with ApiThread(tmp_path, validators=1, block_interval=0.1, token=TOKEN) as api:
        yield api


def post(api: ApiThread) -> str:
    """A job on chain (its id), posted with the node's token."""
    client = ApiClient(api.url, token=TOKEN)
    spec = future_spec(int(client.status()["time_ms"]), expires_in_ms=600_000)
    return send(client, api.keys["submitter"], PostJob(spec)).hex()


def _worker(api: ApiThread) -> Worker:
    assert api.node is not None
    worker = Worker(api.node, WorkerPolicy())
    worker.store.open()
    api.node.worker = worker  # type: ignore[attr-defined]
    return worker


def _trainer(worker: Worker) -> Any:
    from client.worker.training import Trainer

    trainer = Trainer(worker.node, worker.policy, worker.key, worker.store, worker.outbox,
                      worker.threads, None, None, lambda: None,  # type: ignore[arg-type]
                      worker.attempts)
    worker.trainer = trainer
    return trainer


def test_threat_leak_1_api_progress_3_hostile_progress_over_http_stays_in_its_budget(
        node: ApiThread, tmp_path: Path) -> None:
    """[THREAT-LEAK.1] [API-PROGRESS.3] [JOB-PROGRESS.5] A run writes the payload into its
    progress files (36 bytes each in step, metric and metric name; 2 bits per 30 s in the
    fraction). Read without the token through ``GET /jobs/{id}/logs``: nothing of the fields,
    and from the fraction no more than ``public_bits`` (today: all 8,192 bits of the fields).
    [API-PROGRESS.2] With the token, the node's operator sees every field."""
    job_id = post(node)
    trainer = _trainer(_worker(node))
    job = bytes.fromhex(job_id)
    clock = [0]
    trainer.clock_ms = lambda: clock[0]
    trainer.now = {"job": job_id, "phase": "training", "attempt": 1}
    trainer.feeds[job] = ProgressFeed(trainer.store.address_text, 1, None, 0)
    anyone = ApiClient(node.url, token="")

    def deliver(progress: Progress, now_ms: int) -> None:
        clock[0] = now_ms
        trainer._on_progress(job, 1, None, progress)

    def read(now_ms: int) -> dict[str, Any] | None:
        clock[0] = now_ms
        view: dict[str, Any] | None = anyone.job_logs(job_id)["progress"]
        return view

    run_s = 900
    leak = progress_probe(PAYLOAD, run_s, tmp_path, deliver, read)
    assert leak.field_bits == 0, leak
    assert 0 < leak.percent_bits <= public_bits(run_s), leak
    operator = ApiClient(node.url, token=TOKEN).job_logs(job_id)["progress"]
    assert operator["view"] == "operator" and isinstance(operator["step"], int)
    public = anyone.job_logs(job_id)["progress"]
    assert public["view"] == "public" and public["step"] is None and public["metric"] is None
    assert round(public["fraction"] * 100) == public["fraction"] * 100  # whole percent


def test_threat_leak_1_api_joblog_4_printed_payload_in_any_script_stays_in_its_measure(
        node: ApiThread, tmp_path: Path) -> None:
    """[THREAT-LEAK.1] [API-JOBLOG.4] A failed train prints the payload in ASCII words, CJK,
    Cyrillic, emoji, combining marks, fullwidth and Arabic-Indic digits, Braille, a choice of
    Unicode spaces or zero-width characters, and leaves a FIFO whose path spells it in
    ``/output``. Served over HTTP, each excerpt measures at most ``EXCERPT_INFO_BYTES``
    and gives back at most its 513 bits (today: 3,304 in CJK, 3,060 in ASCII); each detail
    line at most ``DETAIL_INFO_BYTES`` and 385 bits (today: 2,520 of a CJK file name)."""
    job_id = post(node)
    worker = _worker(node)
    anyone = ApiClient(node.url, token="")
    for run, script in enumerate(SCRIPTS, start=1):
        detail = refusal_detail(output_name(PAYLOAD, script), tmp_path / script.name)
        assert detail.startswith("output entry"), (script.name, detail[:80])
        worker.attempts.record(bytes.fromhex(job_id), attempt=run, run=run, started_ms=run,
                               seconds=1.0, stage="train", reason=FailureReason.BAD_OUTPUT,
                               fault="job", exit_code=1, detail=detail,
                               output=printed(PAYLOAD, script))
    served = anyone.job_logs(job_id)["attempts"]
    assert len(served) == 8  # MAX_ATTEMPTS_KEPT: the last eight scripts
    for record, script in zip(served, SCRIPTS[-8:], strict=True):
        sent = symbols(PAYLOAD, script.bits)
        got_log = recovered_bits(sent, decode(record["log"], script), script.bits)
        got_detail = recovered_bits(sent, decode(record["detail"], script), script.bits)
        assert information_bytes(record["log"]) <= EXCERPT_INFO_BYTES, script.name
        assert information_bytes(record["detail"]) <= DETAIL_INFO_BYTES, script.name
        assert got_log <= bits_bound(EXCERPT_INFO_BYTES), (script.name, got_log)
        assert got_detail <= bits_bound(DETAIL_INFO_BYTES), (script.name, got_detail)
    for script in SCRIPTS[:2]:  # ASCII and CJK, over the eight kept: the same functions
        sent = symbols(PAYLOAD, script.bits)
        kept = excerpt(printed(PAYLOAD, script))
        assert recovered_bits(sent, decode(kept, script), script.bits) <= 513, script.name


def test_api_joblog_4_the_measure_is_one_to_one_and_bounds_what_is_kept() -> None:
    """[API-JOBLOG.4] DEFLATE with the dictionary gives the text back (so a text of measure
    n is one of fewer than 2**(8n+1)); ``keep_end`` and ``keep_start`` return texts within
    the measure; an honest traceback's last lines stay whole."""
    for text in ("ValueError: expected 3 features, got 4", "中文" * 40, "x\u2003" * 100, ""):
        packer = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, DICTIONARY)
        packed = packer.compress(text.encode()) + packer.flush()
        assert len(packed) == information_bytes(text) or not text
        unpacker = zlib.decompressobj(-15, zdict=DICTIONARY)
        assert unpacker.decompress(packed).decode() == text
    assert bits_bound(64) == 513 and bits_bound(0) == 0
    lines = [chr(0x4E00 + i) * 19 + " " + chr(0x5E00 + i) * 19 for i in range(6)]
    kept = keep_end(lines, 32)
    assert information_bytes("\n".join(kept)) <= 32 and kept and kept[-1].endswith(lines[-1][-5:])
    cut = keep_start("output entry " + "".join(chr(0x4E00 + 7 * i) for i in range(200)), 24)
    assert information_bytes(cut) <= 24 and cut.startswith("output entry") and cut.endswith("...")
    honest = excerpt(b"Traceback (most recent call last):\n"
                     b"  File \"/job/train.py\", line 88, in <module>\n    main()\n"
                     b"  File \"/job/model.py\", line 12, in forward\n    return self.fc(x)\n"
                     b"RuntimeError: mat1 and mat2 shapes cannot be multiplied "
                     b"(64x784 and 128x10)\n")
    assert honest.splitlines()[-1] == ("RuntimeError: mat1 and mat2 shapes cannot be "
                                       "multiplied (64x784 and 128x10)")
    assert "    return self.fc(x)" in honest.splitlines()
    assert bound_detail("no model file at <worker>/runs/x") == "no model file at <worker>/runs/x"
    assert bound_detail("model is 123456789 bytes, limit 100000000") == \
        "model is 123456789 bytes, limit 100000000"


def test_api_joblog_4_token_and_digit_rules_apply_to_every_script() -> None:
    """[API-JOBLOG.3] [API-JOBLOG.4] Fullwidth, Arabic-Indic digits and ``½`` are digits;
    twenty letters of any script, emoji, Braille or combining marks are one token; spaces
    of any kind read as a space, zero-width and private-use characters do not survive."""
    assert redact("step \uff11\uff12\uff13\uff14") == "step \u2026"
    assert redact("n \u0661\u0662\u0663\u0664 x") == "n \u2026 x"
    assert redact("line 42, in main") == "line 42, in main"
    for token in ("漢" * 20, "\U0001F600" * 20, "\u2801" * 20, "a\u0301" * 10, "ж" * 20):
        assert redact(f"a {token} b") == "a \u2026 b", token
    assert redact("漢" * 19) == "漢" * 19
    assert plain("a\u2003b\u200bc\ue000d\u00a0e\tf") == "a bc\ufffdd e f"
    assert numbers_in("\uff11 \u0662.5 7 8 9") == 5 and numbers_in("mat1 64x784") == 1
    assert excerpt(" ".join(["\uff17"] * 9).encode()) == ""  # a tensor in fullwidth digits


def test_api_progress_3_public_view_is_whole_percent_monotone_and_ticked() -> None:
    """[API-PROGRESS.3] The public view shows nothing before the first tick, then the percent
    in force before each tick, rounded down, never lower than before, with the tick's time;
    ``public_bits`` counts the non-decreasing sequences, checked by enumeration."""
    feed = ProgressFeed("lc1x", 1, None, 1_000)
    feed = observe(feed, Progress(0.257, 3, 0.5, "loss", 2), 2_000)
    assert public_json(feed, 30_999) is None
    first = public_json(feed, 31_000)
    assert first is not None and first["fraction"] == 0.25 and first["updated_ms"] == 31_000
    feed = observe(feed, Progress(0.1, 4, 0.4), 40_000)  # lower: the public view holds
    feed = observe(feed, Progress(0.999, 5, 0.3), 50_000)
    assert public_json(feed, 60_999) == first
    later = public_json(feed, 61_000)
    assert later is not None and later["fraction"] == 0.99 and later["updated_ms"] == 61_000
    assert advance(feed, 61_000 + 10 * PUBLISH_MS).percent == 99
    for ticks, states in itertools.product(range(5), range(1, 5)):
        count = sum(1 for seq in itertools.product(range(states), repeat=ticks)
                    if list(seq) == sorted(seq))
        assert monotone_sequences(ticks, states) == count
    assert public_bits(3600) == math.log2(monotone_sequences(120, PERCENT_STATES))
    assert 215 < public_bits(3600) < 216 and public_bits(30) == math.log2(PERCENT_STATES)
    text = progress_text(progress_event({**first, "worker": "lc1" + "ab" * 24}))
    assert text.endswith(": 25%, step and metric shown to the worker's operator only")


def test_threat_leak_1_the_threat_model_states_the_budget_the_code_computes() -> None:
    """[THREAT-LEAK.1] threat_model.md's channel budget carries the figures ``budget()``
    computes from the enforced constants (a one-hour run, 3 attempts, 3 given back)."""
    text = (ROOT / "protocol_spec" / "threat_model.md").read_text()
    rows = budget(3600)
    total = totals(rows, 3600)
    for row in rows:
        assert f"| {row.channel} | {row.per_run:,.0f} |" in text, row.channel
    assert f"{total['per_run_bits']:,.0f} bits per run" in text
    assert f"{total['per_job_worker_bits']:,.0f} bits per job and worker" in text
    assert f"{total['bits_per_s']:.2f} bit/s" in text
