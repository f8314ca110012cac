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
import os
from dataclasses import asdict, dataclass
from pathlib import Path

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
        """Write the answer blob, then the secret: both durable before the commit is sent."""
        if blob is not None:
            _write_durably(self.blob_path(request_id), blob)
        self.answers[request_id.hex()] = secret
        self._save()

    def forget(self, request_id: bytes) -> None:
        if self.answers.pop(request_id.hex(), None) is not None:
            self._save()
        self.blob_path(request_id).unlink(missing_ok=True)

    def _save(self) -> None:
        doc = {"answers": {k: asdict(v) for k, v in sorted(self.answers.items())}}
        _write_durably(self.path, json.dumps(doc, indent=1).encode())


def _write_durably(path: Path, data: bytes) -> None:
    """A reader (or a restart) sees the old or the new bytes, never half: temp, fsync,
    rename."""
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
