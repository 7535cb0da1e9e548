"""Row-sparse optimisers: lazy updates and MXNet's Adam arithmetic."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fmkit.config import FMConfig
from fmkit.engine.optim import RowSparseOptimizer, sum_by_key


def _config(**kw):
    base = dict(predictor_type="regressor", num_factors=2, feature_dim=5)
    base.update(kw)
    return FMConfig.from_values(base, defaults="sagemaker")


def test_sum_by_key_adds_duplicates():
    keys, (g1, g2) = sum_by_key(torch.tensor([3, 1, 3, 0]), torch.tensor([1.0, 2.0, 3.0, 4.0]),
                                torch.ones(4, 2))
    assert keys.tolist() == [0, 1, 3]
    assert g1.tolist() == [4.0, 2.0, 4.0]
    assert g2.tolist() == [[1, 1], [1, 1], [2, 2]]


def test_adam_matches_mxnet_formula_and_is_lazy():
    cfg = _config(factors_lr=0.1, factors_wd=0.01, clip_gradient=0.5)
    V = torch.arange(10, dtype=torch.float64).reshape(5, 2) / 10
    before = V.clone()
    opt = RowSparseOptimizer({"factors": V}, cfg)
    rows = torch.tensor([1, 3])
    grad = torch.tensor([[0.2, -0.9], [0.3, 0.1]], dtype=torch.float64)
    for t in (1, 2):
        p = V[rows].clone()
        opt.begin_step()
        opt.update("factors", rows, grad)
        # reference: one hand-computed step (state from the first step kept in m, v)
        g = grad.clamp(-0.5, 0.5) + 0.01 * p
        if t == 1:
            m, v = 0.1 * g, 0.001 * g * g
        else:
            m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        lr = 0.1 * math.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        expected = p - lr * m / (v.sqrt() + 1e-8)
        np.testing.assert_allclose(V[rows].numpy(), expected.numpy(), rtol=1e-10)
    untouched = [0, 2, 4]
    assert torch.equal(V[untouched], before[untouched])  # no update, no decay


@pytest.mark.parametrize("kind", ["adagrad", "sgd"])
def test_other_optimizers_are_lazy(kind):
    cfg = _config(optimizer=kind, linear_lr=0.5, linear_wd=0.1)
    w = torch.ones(5, dtype=torch.float64)
    opt = RowSparseOptimizer({"linear": w}, cfg)
    opt.begin_step()
    opt.update("linear", torch.tensor([2]), torch.tensor([1.0], dtype=torch.float64))
    g = 1.0 + 0.1 * 1.0
    expected = 1 - 0.5 * g / (abs(g) + 1e-8) if kind == "adagrad" else 1 - 0.5 * g
    assert w[2].item() == pytest.approx(expected)
    assert w[[0, 1, 3, 4]].tolist() == [1.0] * 4
