"""The member's host-side evaluation (client.federated.member_eval) against torch's template MLP.

The flat layout must be the one participants train (``parameters_to_vector`` of the
template's ``nn.Sequential``): the same quantised model gives the same logits, accuracy and
cross-entropy in numpy as in torch. Bad models and data files are refused with the bad data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from client.federated.member_eval import (
    TemplateEvalError,
    accuracy_ppm,
    logits,
    loss_micro,
    read_rows,
    template_layers,
)

SCALE = 16


def _torch_model(hidden: int, seed: int) -> tuple[nn.Module, tuple[int, ...]]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10)).double()
    flat = parameters_to_vector(model.parameters()).detach().numpy()
    q = tuple(int(v) for v in np.round(flat * (1 << SCALE)))
    vector_to_parameters(torch.tensor(q, dtype=torch.float64) / (1 << SCALE),
                         model.parameters())
    return model, q


def _csv(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    path.write_text("".join(f"{label}," + ",".join(repr(float(v)) for v in row) + "\n"
                            for label, row in zip(y, x, strict=True)))
    return path


def test_host_forward_pass_equals_torch_template(tmp_path: Path) -> None:
    """[FED-VOTE.3] [FED-MODEL.1] Members measure a round's model host-side: logits of the
    flat quantised model equal torch's template MLP; accuracy and loss follow from them."""
    rng = np.random.default_rng(7)
    x = rng.uniform(0, 16, size=(50, 64))
    y = rng.integers(0, 10, size=50)
    model, q = _torch_model(8, 3)
    layers = template_layers(q, SCALE)
    ours = logits(layers, x)
    with torch.no_grad():
        theirs = model(torch.tensor(x)).numpy()
    assert np.allclose(ours, theirs, atol=1e-9)
    files = [_csv(tmp_path / "b.csv", x[25:], y[25:]), _csv(tmp_path / "a.csv", x[:25], y[:25])]
    rx, ry = read_rows(files)
    assert np.array_equal(rx, x) and np.array_equal(ry, y)  # name order
    right = int((theirs.argmax(axis=1) == y).sum())
    assert accuracy_ppm(layers, rx, ry) == right * 1_000_000 // 50
    expected = float(nn.functional.cross_entropy(torch.tensor(theirs), torch.tensor(y)))
    assert abs(loss_micro(layers, rx, ry) - expected * 1e6) <= 1
    zero = template_layers((0,) * (75 * 8 + 10), SCALE)
    assert loss_micro(zero, rx, ry) == round(np.log(10) * 1e6)


def test_bad_models_and_rows_are_refused_with_the_bad_data(tmp_path: Path) -> None:
    """[FED-VOTE.3] A model that is not the template's shape, or a data row that is not a
    label and 64 finite numbers, is refused naming what was there."""
    with pytest.raises(TemplateEvalError) as e:
        template_layers((0,) * 100, SCALE)
    assert e.value.got == "100"
    for row, got in (("3,1,2\n", "3"), ("x" + ",0" * 64 + "\n", "['x', '0', '0']"),
                     ("11" + ",0" * 64 + "\n", "['11', '0', '0']"),
                     ("1,nan" + ",0" * 63 + "\n", "['1', 'nan', '0']")):
        path = tmp_path / "bad.csv"
        path.write_text(row)
        with pytest.raises(TemplateEvalError) as e:
            read_rows([path])
        assert e.value.got == got
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(TemplateEvalError):
        read_rows([tmp_path / "empty.csv"])
