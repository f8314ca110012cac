"""The member's host-side evaluation (client.federated.member.evaluate) against torch's
template MLP.

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

from chain.federated.blobs import ModelBlob
from chain.federated.open.reads import fed_job
from chain.jobspec import DataRef
from chain.train.holdout.spec import Holdout
from chain.types import Amount, Hash32
from client.federated.member.evaluate import (
    TemplateEvalError,
    accuracy_ppm,
    logits,
    loss_micro,
    read_rows,
    template_layers,
)
from client.federated.member.node_loop import HostEvaluator
from sandbox.holdout_blob import pack_part
from sandbox.holdout_pool import make_pool
from tests.federated.fed_ledger_story import WINDOW, FedStory, fed_job_spec

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
    head = "label," + ",".join(f"p{i}" for i in range(64)) + "\n"
    rows = "".join(f"{label}," + ",".join(repr(float(v)) for v in row) + "\n"
                   for label, row in zip(y, x, strict=True))
    path.write_text(head + rows)
    return path


def test_host_forward_pass_equals_torch_template(tmp_path: Path) -> None:
    """[FED-VOTE.3] [FED-MODEL.1] Members measure a round's model host-side: logits of the
    flat quantised model equal torch's template MLP; accuracy and loss follow from them."""
    rng = np.random.default_rng(7)
    x = rng.integers(0, 17, size=(50, 64)).astype(np.float64)  # pixels, as the template's
    y = rng.integers(0, 10, size=50)
    model, q = _torch_model(8, 3)
    layers = template_layers(q, SCALE)
    ours = logits(layers, x / 16)
    with torch.no_grad():
        theirs = model(torch.tensor(x / 16)).numpy()
    assert np.allclose(ours, theirs, atol=1e-9)
    files = [_csv(tmp_path / "b.csv", x[25:], y[25:]), _csv(tmp_path / "a.csv", x[:25], y[:25])]
    rx, ry = read_rows(files)
    assert np.array_equal(rx, x / 16) and np.array_equal(ry, y)  # name order, header skipped
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


class _Node:
    """The few node reads HostEvaluator uses: the harness chain's state, a blob folder."""

    def __init__(self, state: object, data_dir: Path, blobs: dict[bytes, Path]) -> None:
        self.state, self.data_dir, self.blobs = state, data_dir, blobs

    def blob_path(self, blob: bytes) -> Path | None:
        return self.blobs.get(blob)


class _Ports:
    def __init__(self, node: _Node) -> None:
        self.node = node

    def read_blob(self, blob_id: bytes) -> bytes | None:
        path = self.node.blob_path(blob_id)
        return None if path is None else path.read_bytes()


def test_host_evaluator_verifies_the_part_and_measures_the_model(tmp_path: Path) -> None:
    """[HOLDOUT-BLOB.5] [FED-VOTE.3] [FED-END.2] The node's evaluator opens the job's public
    part (packed by the owner from its committed pool, split by the chain's seed), and
    measures a template model on exactly its rows; a hidden part that does not open the
    commitment (the public one given instead) makes the end vote invalid (False)."""
    rng = np.random.default_rng(11)
    samples = tmp_path / "pool"
    samples.mkdir()
    for i in range(100):
        _csv(samples / f"s{i:03d}.csv", rng.integers(0, 17, size=(2, 64)).astype(float),
             np.array([i % 10, (i + 3) % 10]))
    secret = make_pool(samples)
    story = FedStory()
    spec = fed_job_spec(holdout=Holdout(Hash32(secret.root), 100, 500, 1, Amount(20), WINDOW,
                                        0.0))
    story.post(spec)
    story.chain.block()
    story.chain.block()
    fed = fed_job(story.chain.state, story.job_id)
    assert fed is not None and fed.seed is not None
    public = pack_part(secret, samples, fed.seed, 500, "public", tmp_path / "public.tar")
    node = _Node(story.chain.state, tmp_path / "node", {public.blob_id: public.path})
    evaluator = HostEvaluator(node, _Ports(node))  # type: ignore[arg-type]
    model, q = _torch_model(4, 5)
    fspec = spec.federated
    assert fspec is not None
    ref = DataRef(Hash32(public.blob_id), public.size)
    fetching = HostEvaluator(_Node(story.chain.state, tmp_path / "n2", {}),  # type: ignore[arg-type]
                             _Ports(_Node(story.chain.state, tmp_path / "n2", {})))  # type: ignore[arg-type]
    assert fetching.accuracy(story.job_id, fspec, ref, ModelBlob(SCALE, q)) is None
    got = evaluator.accuracy(story.job_id, fspec, ref, ModelBlob(SCALE, q))
    names = sorted(f.name for f in (tmp_path / "node").rglob("s*.csv"))
    x, y = read_rows(sorted(samples / n for n in names))
    assert len(y) == 2 * len(names) == 100
    assert got == accuracy_ppm(template_layers(q, SCALE), x, y)
    assert evaluator.losses(story.job_id, fspec, ref, [q]) is False
