"""What ``job submit`` says about deploying the job's winner, before the escrow moves
[JOB-EXPORT.1].

Only the job's model file (``/output/model.pt``) can ever be deployed, and only in a
deployable format. A run's output is unknown before a run, so the command says what it can
know: a template job (``lcjob.py`` with its ``EXPORT_FORMAT``) names the format its train
writes; any other job is told the rule and the command that checks a local run's file.
"""

from __future__ import annotations

import re
from pathlib import Path

from sandbox.model_format import DEPLOYABLE_FORMATS

_TEMPLATE_FORMAT = re.compile(r'^EXPORT_FORMAT = "(safetensors-mlp|onnx)"$', re.MULTILINE)


def template_export(job_dir: Path) -> str | None:
    """The deploy format a template job's train writes, or None for another job."""
    path = job_dir / "lcjob.py"
    if not path.is_file() or path.stat().st_size > 1 << 20:
        return None
    found = _TEMPLATE_FORMAT.search(path.read_text(encoding="utf-8", errors="replace"))
    return found.group(1) if found else None


def export_note(job_dir: Path) -> str:
    """[JOB-EXPORT.1] One line for the author, printed before the job is posted."""
    fmt = template_export(job_dir)
    if fmt is not None:
        return (f"deployable: this template job's train writes /output/model.pt as {fmt}; "
                f"once paid, learningchain model deploy JOB serves it")
    return ("deployable only if train writes /output/model.pt as "
            f"{DEPLOYABLE_FORMATS.split(', written')[0]} [JOB-EXPORT.1] (a torch.save "
            "pickle is paid but never deployable); check a local run's file first: "
            "learningchain model check model.pt --features N --labels A,B,…")
