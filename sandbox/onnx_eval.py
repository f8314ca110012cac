"""An ONNX model's scores, computed by ONNX Runtime inside the prediction sandbox [PRED-EXEC.6].

Imported only by ``predict_server`` (the container's PID 1): the host never runs an ONNX
model. The file is checked first with the host's own parse ([JOB-EXPORT.4-7],
``onnx_check``); then one ONNX Runtime session is made with settings pinned so that every
executor takes the same kernel path: one intra-op and one inter-op thread, sequential
execution, the CPU execution provider only, a fixed graph optimisation level (basic:
constant folding and redundant-node removal, no layout or hardware-specific fusions),
deterministic compute, no memory arena or pattern planning (each allocation is exactly
what the graph asks, so an allocation over the sandbox's address-space limit fails the same
way on every executor). Before ``READY`` the session answers a probe batch of
``MAX_ROWS`` zero rows, so a model that cannot answer the largest request (its scores of the
wrong shape, an allocation refused) is refused at start as a model that does not load
[PRED-UNLOADABLE.1].
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from chain.predict.model import DeployedModel
from chain.predict.params import MAX_ROWS
from sandbox.model_format import ModelFormatError
from sandbox.onnx_check import MAX_ONNX_BYTES, OnnxModel, check_onnx

PROVIDERS = ("CPUExecutionProvider",)
ADDRESS_SPACE_BYTES = 768 * 1024 * 1024
"""[PRED-EXEC.6] RLIMIT_AS of the server process serving an ONNX model: below the prediction
container's memory (1 GiB), so an allocation that cannot fit fails as an error the server
reports (the model does not load) instead of the kernel killing the container."""


def session_options() -> Any:
    """[PRED-EXEC.6] The pinned ONNX Runtime settings."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    opts.use_deterministic_compute = True
    opts.enable_cpu_mem_arena = False
    opts.enable_mem_pattern = False
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


class OnnxScorer:
    """A checked ONNX model in one pinned session; ``forward`` gives float64 scores."""

    def __init__(self, data: bytes, record: DeployedModel) -> None:
        import onnxruntime as ort

        self.checked: OnnxModel = check_onnx(data, record.input, record.output)
        self.dtype = np.float32 if record.input.dtype == "float32" else np.float64
        self.features = record.input.features
        try:
            self.session = ort.InferenceSession(data, session_options(),
                                                providers=list(PROVIDERS))
        except Exception as e:  # the runtime's own refusal of a checked file
            raise ModelFormatError("run", f"ONNX Runtime refused the model: {e}",
                                   type(e).__name__) from None
        probe = self.run(np.zeros((MAX_ROWS, self.features), dtype=self.dtype))
        if probe.shape != (MAX_ROWS, self.checked.width):
            raise ModelFormatError("run", f"scores of {MAX_ROWS} rows must be "
                                          f"[{MAX_ROWS}, {self.checked.width}]", probe.shape)

    def run(self, rows: np.ndarray) -> np.ndarray:
        """The scores output for ``rows``; a runtime failure is ``ModelFormatError('run')``."""
        try:
            [scores] = self.session.run([self.checked.scores_name],
                                        {self.checked.input_name: rows})
        except Exception as e:
            raise ModelFormatError("run", f"ONNX Runtime failed on {len(rows)} rows: "
                                          f"{str(e)[:300]}", type(e).__name__) from None
        return np.asarray(scores)

    def forward(self, rows: np.ndarray) -> np.ndarray:
        """Scores of ``rows`` [n, features] as float64, like ``Mlp.forward``."""
        x = np.ascontiguousarray(rows, dtype=self.dtype)
        scores = self.run(x)
        if scores.shape != (len(x), self.checked.width):
            raise ModelFormatError("run", f"scores of {len(x)} rows must be "
                                          f"[{len(x)}, {self.checked.width}]", scores.shape)
        return scores.astype(np.float64)


def load_onnx_file(path: Path, record: DeployedModel) -> OnnxScorer:
    """The model at ``path``, checked and loaded; an oversized file is refused unread."""
    size = path.stat().st_size
    if size > MAX_ONNX_BYTES:
        raise ModelFormatError("size", f"ONNX file over {MAX_ONNX_BYTES} bytes", size)
    return OnnxScorer(path.read_bytes(), record)


def limit_address_space(limit: int = ADDRESS_SPACE_BYTES) -> None:
    """[PRED-EXEC.6] Cap this process's address space (called by the server's ``main`` only,
    never in a test process)."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
