"""A federated job's local round on the participant's host [JOB-FED.1-6].

The participant's data never leaves its machine: the job's ``federate`` entry point
runs in the usual hardened container (network off, read-only root, limits), with the
round's global model at /input and the participant's data folder mounted read-only
at /data/train. The only thing copied out is /output/update.safetensors, through the
bounded extraction and capped from its tar header [JOB-FED.3]. The host then reads
that file with its own strict parser (never pickle, never ``torch.load``, no library
touches the bytes first) [JOB-FED.4], checks it against the global model's dims,
refuses NaN and infinities, and quantises it into the round's update blob
[JOB-FED.5] [FED-QUANT.5]. A DP-SGD run may also write /output/privacy.json, the
round's accounting: copied out under its own 4 KiB cap and parsed as strictly
[JOB-FED.7]. See protocol_spec/job_contract.md §4b.
"""

from __future__ import annotations

import json
import struct
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chain.federated.blobs import ModelBlob, UpdateBlob
from chain.federated.fixed import MAX_DIMS, Q_MAX, check_scale_bits
from chain.types import Address, Hash32
from sandbox.errors import SandboxError
from sandbox.limits import ResourceLimits, Scalar, TrainParams
from sandbox.privacy_report import (
    MAX_PRIVACY_BYTES,
    PRIVACY_FILE,
    PrivacyReport,
    PrivacyReportError,
    parse_privacy,
)
from sandbox.results import FailureReason, RunResult
from sandbox.runner import SandboxRunner

FEDERATE_ARGV = ("/job/federate",)
GLOBAL_FILE = "global.safetensors"
GLOBAL_TENSOR = "model"
UPDATE_FILE = "update.safetensors"
UPDATE_TENSOR = "update"
DATA_ROLE = "train"
"""[JOB-FED.1] The participant's data folder is mounted at /data/train."""
MAX_HEADER_BYTES = 4096
"""[JOB-FED.2] A flat file's JSON header is at most this long (one tensor needs ~80 bytes)."""


class FederatedUpdateError(SandboxError):
    """An update file the host refuses [JOB-FED.4]: ``rule`` names the check, ``detail`` is
    a short, inert picture of the bad data (never the file itself)."""

    def __init__(self, rule: str, message: str, detail: object = None) -> None:
        shown = repr(detail)
        self.rule, self.detail = rule, shown if len(shown) <= 120 else shown[:120] + "…"
        super().__init__(f"{rule}: {message} (got {self.detail})")


def flat_bytes(name: str, values: np.ndarray) -> bytes:
    """[JOB-FED.2] A flat safetensors file: one float32 tensor ``name`` of shape [dims]."""
    flat = np.ascontiguousarray(values, dtype="<f4").ravel()
    head = json.dumps({name: {"dtype": "F32", "shape": [len(flat)],
                              "data_offsets": [0, 4 * len(flat)]}},
                      separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + flat.tobytes()


def max_file_bytes(dims: int) -> int:
    """[JOB-FED.3] The largest flat file of ``dims`` coordinates: the cap of /output's copy."""
    return 8 + MAX_HEADER_BYTES + 4 * dims


def read_flat(data: bytes, name: str, dims: int) -> np.ndarray:
    """[JOB-FED.2] [JOB-FED.4] The float32 tensor ``name`` of exactly ``dims`` finite values,
    or ``FederatedUpdateError``. Every check runs on our own parse of bounded bytes: a
    pickle, a torch zip or a lying header is refused before any number is read."""
    if len(data) > max_file_bytes(dims):
        raise FederatedUpdateError("size", f"over {max_file_bytes(dims)} bytes", len(data))
    if len(data) < 8:
        raise FederatedUpdateError("header", "shorter than the 8-byte header length", data)
    (n,) = struct.unpack("<Q", data[:8])
    if not 2 <= n <= min(MAX_HEADER_BYTES, len(data) - 8):
        raise FederatedUpdateError("header", "header length out of bounds (not safetensors: "
                                             "a pickle or zip starts otherwise)", data[:16])
    raw = data[8:8 + n]
    try:
        header = json.loads(raw.decode("utf-8")) if raw[:1] == b"{" else None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        header = None
    if not isinstance(header, dict):
        raise FederatedUpdateError("header", "header is not a JSON object", raw[:32])
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise FederatedUpdateError("header", "__metadata__ maps names to strings", meta)
    if set(header) != {name}:
        raise FederatedUpdateError("tensors", f"exactly one tensor {name!r}", sorted(header))
    entry = header[name]
    if not isinstance(entry, dict) or entry.get("dtype") != "F32":
        raise FederatedUpdateError("dtype", "the tensor is float32 (F32)", entry)
    if entry.get("shape") != [dims]:
        raise FederatedUpdateError("shape", f"the global model's shape [{dims}]",
                                   entry.get("shape"))
    if entry.get("data_offsets") != [0, 4 * dims] or len(data) != 8 + n + 4 * dims:
        raise FederatedUpdateError("offsets", f"bytes [0, {4 * dims}] and nothing after",
                                   (entry.get("data_offsets"), len(data) - 8 - n))
    values = np.frombuffer(data, dtype="<f4", count=dims, offset=8 + n)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise FederatedUpdateError("values", f"{bad.size} NaN or infinite values, first at",
                                   (int(bad[0]), float(values[bad[0]])))
    return values.astype(np.float64)


def global_input(model: ModelBlob) -> bytes:
    """[JOB-FED.1] The file at /input/global.safetensors: each coordinate ``q / 2**s`` as
    float32 (the nearest float32; the update is quantised against the exact model)."""
    q = np.asarray(model.values, dtype=np.float64)
    return flat_bytes(GLOBAL_TENSOR, q / float(1 << model.scale_bits))


def quantise_update(values: np.ndarray, scale_bits: int) -> tuple[int, ...]:
    """[JOB-FED.5] [FED-QUANT.2] ``clip(rint(x · 2**s), -Q_MAX, Q_MAX)`` per coordinate:
    for finite float64 this is chain.federated.fixed.quantise exactly (a power-of-two
    product is exact, rint ties to even), at numpy speed."""
    check_scale_bits(scale_bits)
    x = np.asarray(values, dtype=np.float64)
    if not np.isfinite(x).all():
        raise FederatedUpdateError("values", "NaN or infinite", int(np.flatnonzero(
            ~np.isfinite(x))[0]))
    q = np.clip(np.rint(x * float(1 << scale_bits)), -Q_MAX, Q_MAX).astype(np.int64)
    return tuple(int(v) for v in q)


def update_blob(data: bytes, model: ModelBlob, job_id: bytes, round_no: int,
                participant: bytes) -> UpdateBlob:
    """[JOB-FED.4] [JOB-FED.5] The update file's bytes as the round's update blob."""
    if not 1 <= model.dims <= MAX_DIMS:
        raise FederatedUpdateError("shape", f"global model dims outside 1..{MAX_DIMS}",
                                   model.dims)
    values = read_flat(data, UPDATE_TENSOR, model.dims)
    return UpdateBlob(Hash32(job_id), round_no, Address(participant), model.scale_bits,
                      quantise_update(values, model.scale_bits))


@dataclass(frozen=True, slots=True)
class FederateResult:
    """One local round: ``blob`` when it worked; else ``reason`` (the run's failure, or
    ``update_missing`` / ``bad_update`` / ``bad_privacy``) and ``detail``; ``privacy``
    when the run wrote a DP-SGD report [JOB-FED.7]."""

    ok: bool
    reason: str
    detail: str
    blob: UpdateBlob | None
    run: RunResult
    privacy: PrivacyReport | None = None


def run_federate(runner: SandboxRunner, image_id: str, model: ModelBlob, data_dir: Path,
                 limits: ResourceLimits, *, job_id: bytes, round_no: int, participant: bytes,
                 seed: int, hyperparameters: Mapping[str, Scalar] | None = None
                 ) -> FederateResult:
    """[JOB-FED.1-5] Run the job's ``federate`` entry once on ``data_dir`` and return the
    checked, quantised update blob. The node keeps running whatever the job wrote."""
    limits = limits.cpu_only()
    params = TrainParams(seed, dict(hyperparameters or {}))
    cap = max_file_bytes(model.dims)
    with tempfile.TemporaryDirectory(prefix="lc-federate-") as tmp:
        inbox = Path(tmp) / "input"
        inbox.mkdir()
        (inbox / GLOBAL_FILE).write_bytes(global_input(model))
        out = Path(tmp) / "out"
        run = runner.run_entry(image_id, "federate", FEDERATE_ARGV,
                               {"LC_PARAMS": params.to_json(), "LC_SEED": str(seed)},
                               limits, out, input_dir=inbox, job_id=job_id.hex(),
                               data={DATA_ROLE: data_dir},
                               collect=(f"output/{UPDATE_FILE}", f"output/{PRIVACY_FILE}"),
                               output_cap=cap + MAX_PRIVACY_BYTES,
                               file_caps={UPDATE_FILE: (cap, FailureReason.OUTPUT_TOO_LARGE),
                                          PRIVACY_FILE: (MAX_PRIVACY_BYTES,
                                                         FailureReason.BAD_OUTPUT)})
        if not run.ok:
            return FederateResult(False, str(run.reason), run.detail, None, run)
        privacy = None
        report = out / PRIVACY_FILE
        if report.exists():
            try:
                if not report.is_file() or report.is_symlink():
                    raise PrivacyReportError("not a regular file", PRIVACY_FILE)
                privacy = parse_privacy(report.read_bytes())
            except PrivacyReportError as e:
                return FederateResult(False, "bad_privacy", str(e), None, run)
        path = out / UPDATE_FILE
        if not path.is_file() or path.is_symlink():
            return FederateResult(False, "update_missing",
                                  f"federate exited 0 but wrote no /output/{UPDATE_FILE}",
                                  None, run)
        try:
            blob = update_blob(path.read_bytes(), model, job_id, round_no, participant)
        except FederatedUpdateError as e:
            return FederateResult(False, "bad_update", str(e), None, run)
    return FederateResult(True, "", f"update of {blob.dims} coordinates", blob, run, privacy)
