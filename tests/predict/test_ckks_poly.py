"""Encrypted predictions beyond a line [PRED-CKKS.3]: a two-layer MLP with a square
activation (CryptoNets) evaluated on CKKS ciphertexts by three separate executor processes.

A 30 → 4 → 1 square MLP (a breast-cancer score, trained here with torch) answers 40 held-out
rows encrypted by the requester: the three executors' scores blobs are byte-identical (and
equal to an in-process evaluation and to the sandbox server's answer), and the decrypted
scores are within the stated 1e-3 of the plaintext ``Mlp.forward`` (the error measured and
printed), with the same predicted classes. A square MLP of another shape is answered
``schema``."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np

from chain.encoding import encode
from chain.predict.io import invalid_blob
from chain.predict.model import DeployedModel, InputSchema, OutputSchema
from client.predict.ckks import CkksKeys
from sandbox.ckks_eval import answer_ciphertext, evaluate_model
from sandbox.model_format import export_mlp, load_model
from sandbox.predict_frames import ANSWER, READY, REPLY_HEAD, request_frame
from sandbox.predict_server import serve
from tests.predict.cases import addr, h

ROOT = Path(__file__).resolve().parents[2]
ROWS, HIDDEN, EXECUTORS = 40, 4, 3
TOLERANCE = 1e-3
SCHEMA = InputSchema("float64", 30)
SCORE = OutputSchema("regression", (), 1, 6)


def _train() -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray]:
    """A square MLP on standardised breast-cancer features (the scaling folded into the
    first layer, so the model takes raw rows); returns its layers, test rows and labels."""
    import torch
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    mean, scale = x[:400].mean(axis=0), x[:400].std(axis=0)
    xs = torch.tensor((x[:400] - mean) / scale, dtype=torch.float64)
    ys = torch.tensor(y[:400], dtype=torch.float64)
    torch.manual_seed(0)
    first = torch.nn.Linear(30, HIDDEN).double()
    last = torch.nn.Linear(HIDDEN, 1).double()
    opt = torch.optim.Adam([*first.parameters(), *last.parameters()], lr=0.01)
    for _ in range(300):
        opt.zero_grad()
        logits = last(first(xs) ** 2).squeeze(1)
        torch.nn.functional.binary_cross_entropy_with_logits(logits, ys).backward()
        opt.step()
    w0 = first.weight.detach().numpy() / scale
    b0 = first.bias.detach().numpy() - w0 @ mean
    layers = [(w0, b0), (last.weight.detach().numpy(), last.bias.detach().numpy())]
    return layers, x[400:400 + ROWS], y[400:400 + ROWS]


def test_pred_ckks_3_square_mlp_executors_agree_and_match_plaintext(tmp_path: Path) -> None:
    """[PRED-CKKS.3] Three executor processes give byte-identical scores blobs, equal to the
    in-process evaluation and the server's; decrypted within 1e-3 of the plaintext scores,
    same classes."""
    layers, rows, labels = _train()
    model_file = tmp_path / "model.safetensors"
    model_file.write_bytes(export_mlp(layers, "float64", activation="square"))
    mlp = load_model(model_file.read_bytes(), SCHEMA, SCORE)
    assert mlp.activation == "square"
    plain = mlp.forward(rows)[:, 0]
    assert np.mean((plain > 0) == labels) > 0.85  # a trained model
    keys = CkksKeys.generate()
    batch = tmp_path / "batch.bin"
    batch.write_bytes(keys.encrypt_batch(rows))
    blobs = []
    for i in range(EXECUTORS):
        out = tmp_path / f"executor{i}"
        subprocess.run([sys.executable, "-m", "sandbox.ckks_eval", "--batch", str(batch),
                        "--model", str(model_file), "--features", "30", "--out", str(out)],
                       cwd=ROOT, capture_output=True, check=True, timeout=120)
        blobs.append((out / "scores.bin").read_bytes())
    assert blobs[0] == blobs[1] == blobs[2] == evaluate_model(batch.read_bytes(), mlp)
    record = DeployedModel(h("job:poly"), h("model:poly"), "safetensors-mlp", SCHEMA, SCORE,
                           addr("owner"), 0)
    out = io.BytesIO()
    assert serve(io.BytesIO(request_frame(0, encode(["ciphertext", record.to_wire()]))
                            + request_frame(ROWS, batch.read_bytes())), out, model_file) == 0
    replies = out.getvalue()
    kind, length = REPLY_HEAD.unpack_from(replies, REPLY_HEAD.size)
    assert replies[0] == READY and kind == ANSWER
    assert replies[2 * REPLY_HEAD.size:2 * REPLY_HEAD.size + length] == blobs[0]
    got = keys.decrypt_scores(blobs[0], ROWS)
    err = float(np.max(np.abs(got - plain)))
    print(f"square MLP 30-{HIDDEN}-1 under CKKS: max |decrypted - plaintext| over {ROWS} rows "
          f"{err:.2e} (scores up to {np.max(np.abs(plain)):.1f})")
    assert err <= TOLERANCE
    assert np.array_equal(got > 0, plain > 0)


def test_pred_ckks_3_other_square_shapes_are_answered_schema() -> None:
    """[PRED-CKKS.3] Three layers, two outputs, or a ReLU hidden layer are not evaluated
    under CKKS: the invalid answer ``schema``, whatever the batch."""
    rng = np.random.default_rng(1)

    def mlp(shapes: list[tuple[int, int]], activation: str) -> object:
        layers = [(rng.normal(size=s), np.zeros(s[0])) for s in shapes]
        out = OutputSchema("regression", (), shapes[-1][0], 0)
        return load_model(export_mlp(layers, "float64", activation=activation), SCHEMA, out)

    for model in (mlp([(4, 30), (4, 4), (1, 4)], "square"), mlp([(4, 30), (2, 4)], "square"),
                  mlp([(4, 30), (1, 4)], "relu")):
        assert answer_ciphertext(b"anything", model) == invalid_blob("schema")  # type: ignore


def test_pred_ckks_3_square_activation_round_trips() -> None:
    """[PRED-CKKS.3] [JOB-EXPORT.1] The format's metadata carries the activation; the
    plaintext forward pass squares between layers."""
    w0, w1 = np.array([[1.0, -2.0]]), np.array([[3.0]])
    model = load_model(export_mlp([(w0, np.array([0.5])), (w1, np.array([1.0]))], "float64",
                                  activation="square"),
                       InputSchema("float64", 2), OutputSchema("regression", (), 1, 0))
    assert model.forward(np.array([[1.0, 1.0]]))[0, 0] == 3.0 * (1.0 - 2.0 + 0.5) ** 2 + 1.0
