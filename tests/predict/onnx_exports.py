"""Real exporters' ONNX files for tests: a small CNN over flat 8×8 digit rows (torch.onnx,
the legacy TorchScript exporter: deterministic bytes, no onnxscript needed)."""

from __future__ import annotations

import io

import torch
from torch import nn


class FlatCnn(nn.Module):
    """Rows of 64 pixels → 1×8×8 → conv 3×3 (8 maps) → ReLU → max-pool 2 → 10 logits."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x.reshape(-1, 1, 8, 8)))
        return self.fc(nn.functional.max_pool2d(h, 2).flatten(1))


def onnx_bytes(net: nn.Module, features: int) -> bytes:
    """``torch.onnx.export`` (dynamo=False, opset 17) with a symbolic batch dimension."""
    buf = io.BytesIO()
    torch.onnx.export(net.eval(), (torch.zeros(2, features),), buf, dynamo=False,
                      input_names=["x"], output_names=["scores"], opset_version=17,
                      dynamic_axes={"x": {0: "n"}, "scores": {0: "n"}})
    return buf.getvalue()


def cnn_bytes(seed: int = 0) -> bytes:
    torch.manual_seed(seed)
    return onnx_bytes(FlatCnn(), 64)
