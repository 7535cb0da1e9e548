"""The fused uniform-row step equals the engine's row-sparse (lazy) Adam step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fmkit.config import FMConfig
from fmkit.datasets.synthetic import make_click_data
from fmkit.engine.fused import FusedUniformFM, bytes_per_step
from fmkit.engine.trainer import Trainer


@pytest.mark.parametrize("predictor_type", ["binary_classifier", "regressor"])
def test_fused_step_matches_trainer_step(predictor_type):
    data = make_click_data(600, num_fields=5, feature_dim=200, seed=4).batch
    if predictor_type == "regressor":
        data = data.with_labels(np.linspace(-1, 2, data.n_rows).astype(np.float32))
    cfg = FMConfig.from_values(dict(predictor_type=predictor_type, num_factors=3,
                                    mini_batch_size=100, bias_lr=0.05, linear_lr=0.02,
                                    factors_lr=0.03, bias_wd=0.01, linear_wd=0.001,
                                    factors_wd=0.002, factors_init_sigma=0.1,
                                    bias_init_method="normal", optimizer="adam", device="cpu",
                                    seed=1))
    trainer = Trainer(cfg, 200)
    m = trainer.model
    fused = FusedUniformFM(m.w0, m.w, m.V,
                           lr={g: getattr(cfg, f"{g}_lr") for g in ("bias", "linear", "factors")},
                           wd={g: getattr(cfg, f"{g}_wd") for g in ("bias", "linear", "factors")},
                           predictor_type=predictor_type,
                           eps=1e-8 if cfg.eps is None else cfg.eps)
    idx = torch.from_numpy(data.indices.reshape(data.n_rows, 5))
    labels = torch.from_numpy(data.labels)
    for start in range(0, data.n_rows, 100):
        b = data.slice(start, start + 100)
        _, loss_ref = trainer.step(b)
        loss = fused.step(idx[start:start + 100], labels[start:start + 100])
        assert torch.allclose(loss, loss_ref, atol=1e-6)
    # untouched rows kept their initial values in both (lazy: no decay, no update)
    touched = np.unique(data.indices)
    untouched = np.setdiff1d(np.arange(200), touched)
    assert untouched.size > 0
    assert torch.equal(fused.V[untouched], m.V[untouched])
    assert torch.allclose(fused.V, m.V, atol=1e-5)
    assert torch.allclose(fused.w, m.w, atol=1e-5)
    assert torch.allclose(fused.w0, m.w0, atol=1e-5)


def test_bytes_per_step_model():
    # 1e6 x 16: the dense pass dominates; gather + scatter of 2.5M entries follow
    b = bytes_per_step(65536, 39, 1_000_000, 16)
    dense = 1_000_000 * 17 * 4 * 8 + 1_000_000
    assert b == dense + 65536 * 39 * (17 * 4 + 8) + 2 * 65536 * 39 * 17 * 4


def test_triton_masked_adam_matches_torch_ops():
    """The Triton kernel (interpreted on the CPU: TRITON_INTERPRET=1) equals the torch path."""
    import os

    from fmkit.engine import fused

    if os.environ.get("TRITON_INTERPRET") != "1" and not torch.cuda.is_available():
        pytest.skip("needs CUDA or TRITON_INTERPRET=1")
    if not fused.triton_available():
        pytest.skip("triton is not installed")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    data = make_click_data(300, num_fields=5, feature_dim=200, seed=6).batch
    g = torch.Generator().manual_seed(0)
    w0, w, V = torch.zeros(1), torch.randn(200, generator=g) * 0.1, torch.randn(200, 3, generator=g) * 0.1
    kw = dict(lr={"bias": 0.05, "linear": 0.02, "factors": 0.03},
              wd={"bias": 0.01, "linear": 0.001, "factors": 0.002})
    a = FusedUniformFM(w0.to(device), w.to(device), V.to(device), kernel="torch", **kw)
    b = FusedUniformFM(w0.to(device), w.to(device), V.to(device), kernel="triton", **kw)
    idx = torch.from_numpy(data.indices.reshape(300, 5)).to(device)
    labels = torch.from_numpy(data.labels).to(device)
    for start in range(0, 300, 100):
        a.step(idx[start:start + 100], labels[start:start + 100])
        b.step(idx[start:start + 100], labels[start:start + 100])
    assert torch.allclose(a.V, b.V, atol=1e-6) and torch.allclose(a.w, b.w, atol=1e-6)
    assert torch.allclose(a.w0, b.w0, atol=1e-6)
    for name in ("linear", "factors"):
        assert torch.allclose(a.state[name][1], b.state[name][1], atol=1e-9)
    # the kernel left the gradient buffers zero for the next step
    assert not b.grad_V.any() and not b.grad_w.any()


@pytest.mark.parametrize("predictor_type", ["binary_classifier", "regressor"])
def test_trainer_fast_path_equals_row_sparse_path_and_declines_what_it_cannot_take(
        predictor_type):
    from fmkit.sparse import SparseBatch

    data = make_click_data(400, num_fields=6, feature_dim=300, seed=8).batch
    if predictor_type == "regressor":
        data = data.with_labels(np.linspace(0, 3, data.n_rows).astype(np.float32))
    # a batch with one row of a different length and one with a value != 1 (declined)
    odd = SparseBatch.from_arrays(np.array([1, 7, 40, 2, 9], np.int64), np.array([0, 3, 5]),
                                  np.array([1, 1, 1, 1, 2.5], np.float32),
                                  np.array([1.0, 0.0], np.float32), feature_dim=300)
    cfg = FMConfig.from_values(dict(predictor_type=predictor_type, num_factors=4,
                                    mini_batch_size=100, optimizer="adam", bias_lr=0.05,
                                    linear_lr=0.02, factors_lr=0.03, linear_wd=0.001,
                                    factors_wd=0.002, factors_init_sigma=0.1, device="cpu",
                                    seed=2))
    fast, slow = Trainer(cfg, 300, fused=True), Trainer(cfg, 300, fused=False)
    assert fast.fast_path is not None and slow.fast_path is None
    batches = [data.slice(0, 100), odd, data.slice(100, 200), data.slice(200, 400)]
    for b in batches:
        yf, lf = fast.step(b)
        ys, ls = slow.step(b)
        assert torch.allclose(yf, ys, atol=1e-5) and torch.allclose(lf, ls, atol=1e-5)
    for a, b in ((fast.model.V, slow.model.V), (fast.model.w, slow.model.w),
                 (fast.model.w0, slow.model.w0)):
        assert torch.allclose(a, b, atol=1e-5)
    assert fast.optimizer.t == slow.optimizer.t == 4
    assert fast.fast_path.steps == 3  # three of the four batches took the fused step
    # on the CPU it is only used when asked; never with clip_gradient or several processes
    assert Trainer(cfg, 300).fast_path is None
    assert Trainer(cfg.replace(clip_gradient=1.0), 300, fused=True).fast_path is None
