"""What an executor must remember across a crash: each answer it committed to [PRED-ANSWER.1].

A commitment can only be opened with the output hash and salt behind it; an executor that
lost them after committing is a no-show and forfeits [PRED-FORFEIT.1]. So the answer (its
hash, salt, inline values, and the output blob's file) is written here, durably, *before*
the commit transaction is sent, exactly as the worker writes a claim's secret first
(``client.worker.state``). A restarted executor finds the answer and resends the commit or
opens it; it never runs the model twice for one request, so it can never commit twice to
different bytes.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from client.node.atomic_write import write_replacing

log = logging.getLogger("learningchain.predict")

STATE_FILE = "state.json"
ANSWERS_DIR = "answers"


@dataclass(frozen=True, slots=True)
class AnswerSecret:
    """One committed answer: hex output hash and salt, the ``values`` inline in ``values``
    mode, else the output blob in ``answers/<request>.bin``."""

    output_hash: str
    salt: str
    values: list[int] | None
    invalid: str | None
    wrong: bool = False
    """Answered wrongly on purpose (``cheat_predictions``, demo/test only)."""


class ExecutorStore:
    """``<data_dir>/executor``: ``state.json`` (request id hex → secret) and answer blobs."""

    def __init__(self, folder: Path) -> None:
        self.dir = folder
        self.answers_dir = folder / ANSWERS_DIR
        self.path = folder / STATE_FILE
        self.answers: dict[str, AnswerSecret] = {}

    def open(self) -> None:
        self.answers_dir.mkdir(parents=True, exist_ok=True)
        if self.path.is_file():
            raw = json.loads(self.path.read_text())
            self.answers = {k: AnswerSecret(**v) for k, v in raw.get("answers", {}).items()}

    def blob_path(self, request_id: bytes) -> Path:
        return self.answers_dir / f"{request_id.hex()}.bin"

    def keep(self, request_id: bytes, secret: AnswerSecret, blob: bytes | None) -> None:
        """Write the answer blob, then the secret: both durable before the commit is sent.
        [PRED-EXEC.8] A write the disk refuses raises ``OSError`` with nothing kept: the
        secret is not held in memory (so no commit can go out for it) and no file is
        left."""
        answers = {**self.answers, request_id.hex(): secret}
        try:
            if blob is not None:
                write_replacing(self.blob_path(request_id), blob, durable=True)
            self._save(answers)
        except OSError:
            self.blob_path(request_id).unlink(missing_ok=True)
            raise
        self.answers = answers

    def forget(self, request_id: bytes) -> None:
        """Drop a settled answer. On a full disk the file still lists it: a restart settles
        it again and forgets it then, so the failure is logged, not raised."""
        if self.answers.pop(request_id.hex(), None) is not None:
            try:
                self._save(self.answers)
            except OSError as e:
                log.warning("cannot rewrite %s without a settled answer: %s", self.path, e)
        self.blob_path(request_id).unlink(missing_ok=True)

    def _save(self, answers: dict[str, AnswerSecret]) -> None:
        doc = {"answers": {k: asdict(v) for k, v in sorted(answers.items())}}
        write_replacing(self.path, json.dumps(doc, indent=1).encode(), durable=True)

