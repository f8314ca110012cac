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

_TEMPLATE_FORMAT = re.compile(r'^EXPORT_FORMAT = "(safetensors-mlp|onnx)"$', re.MULTILINE)


def template_export(job_dir: Path) -> str | None:
    """The deploy format a template job's train writes, or None for another job."""
    path = job_dir / "lcjob.py"
    if not path.is_file() or path.stat().st_size > 1 << 20:
        return None
    found = _TEMPLATE_FORMAT.search(path.read_text(encoding="utf-8", errors="replace"))
    return found.group(1) if found else None


_ONNX_WRITER = re.compile(r"\b(to_onnx|convert_sklearn|torch\.onnx\.export|onnx\.save)\s*\(")
"""Calls that write an ONNX file: skl2onnx, torch.onnx, onnx."""
_TORCH_LOAD = re.compile(r"\btorch\.load\s*\(")
MAX_SOURCES = 64
MAX_SOURCE_BYTES = 1 << 20


def _sources(job_dir: Path) -> list[tuple[str, str]]:
    """(name, text) of the job folder's Python files and extensionless scripts (the entry
    points), top level and one folder down, bounded: what a note may read, never runs."""
    found: list[tuple[str, str]] = []
    for path in sorted([*job_dir.glob("*"), *job_dir.glob("*/*")]):
        if len(found) >= MAX_SOURCES:
            break
        if not path.is_file() or path.is_symlink() or path.stat().st_size > MAX_SOURCE_BYTES:
            continue
        if path.suffix == ".py" or (not path.suffix and path.read_bytes()[:2] == b"#!"):
            found.append((str(path.relative_to(job_dir)),
                          path.read_text(encoding="utf-8", errors="replace")))
    return found


def source_export(job_dir: Path) -> str | None:
    """The deploy format the job's code visibly writes: the template's ``EXPORT_FORMAT``, or
    ``onnx`` when a source calls an ONNX writer; None when nothing says."""
    fmt = template_export(job_dir)
    if fmt is not None:
        return fmt
    return "onnx" if any(_ONNX_WRITER.search(t) for _, t in _sources(job_dir)) else None


def export_warning(job_dir: Path) -> str | None:
    """[JOB-EXPORT.1] A job that writes ONNX, whose evaluate calls ``torch.load`` and whose
    code never mentions onnxruntime: the
    voters' evaluate would fail on every claim (exit invalid_model), so no claim is ever
    verified and the job is never paid. Read from the sources (a hint, not a proof)."""
    if source_export(job_dir) != "onnx":
        return None
    sources = _sources(job_dir)
    if any("onnxruntime" in text for _, text in sources):
        return None  # something runs ONNX (the template's evaluate reads either format)
    readers = [name for name, text in sources if "evaluate" in name and _TORCH_LOAD.search(text)]
    if not readers:
        return None
    return (f"train writes /output/model.pt as ONNX but {', '.join(readers)} calls "
            "torch.load: evaluate gets that file at /model/model.pt and must run it with "
            "onnxruntime (the template's lcdata.OnnxNet does), or every claim fails and the "
            "job is never paid (docs/guides/job-author.md, ONNX)")


def export_facts(job_dir: Path) -> dict[str, str | None]:
    """``job submit --json``'s deployability: the format, the note, a warning or None."""
    return {"deployable_export": source_export(job_dir), "deployable_note": export_note(job_dir),
            "deployable_warning": export_warning(job_dir)}


def export_note(job_dir: Path) -> str:
    """[JOB-EXPORT.1] One line for the author, printed before the job is posted."""
    fmt = template_export(job_dir)
    if fmt is not None:
        return (f"deployable: this template job's train writes /output/model.pt as {fmt}; "
                f"once paid, learningchain model deploy JOB serves it")
    if source_export(job_dir) == "onnx":
        return ("deployable if train writes its ONNX file as /output/model.pt "
                "[JOB-EXPORT.1]; check a local run's file first: learningchain model check "
                "model.pt --features N --labels A,B,…")
    from sandbox.model_format import DEPLOYABLE_FORMATS  # numpy: only for this line

    return ("deployable only if train writes /output/model.pt as "
            f"{DEPLOYABLE_FORMATS.split(', written')[0]} [JOB-EXPORT.1] (a torch.save "
            "pickle is paid but never deployable); check a local run's file first: "
            "learningchain model check model.pt --features N --labels A,B,…")
