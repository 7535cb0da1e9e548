"""The torch FM against the float64 double-loop reference: scores and gradients."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from helpers.reference import naive_fm, naive_fm_grads, naive_user_item

from fmkit.engine.loader import to_device
from fmkit.engine.optim import sum_by_key
from fmkit.model.fm import FactorizationMachine
from fmkit.model.losses import loss_and_grad
from fmkit.sparse import SparseBatch


def _random_rows(rng: np.random.Generator, n: int, f: int, *, duplicate: bool = True
                 ) -> SparseBatch:
    """Rows with 0..6 entries, real values (negative too), duplicate keys in some rows."""
    X = sp.random(n, f, density=0.2, random_state=np.random.RandomState(1), format="csr",
                  data_rvs=lambda k: rng.normal(0, 2, k))
    X = sp.csr_matrix(X)
    X = sp.lil_matrix(X)
    X[0] = 0  # empty rows
    X[3] = 0
    X = sp.csr_matrix(X)
    X.eliminate_zeros()
    batch = SparseBatch.from_matrix(X)
    if not duplicate:
        return batch
    # duplicate a key in the last row: duplicates add up
    idx = np.concatenate([batch.indices, [batch.indices[-1]]])
    val = np.concatenate([batch.values, [0.5]]).astype(np.float32)
    off = batch.offsets.copy()
    off[-1] += 1
    return SparseBatch.from_arrays(idx, off, val, feature_dim=f)


def _model(rng, f, k, dtype=torch.float64):
    w0, w, V = 0.3, rng.normal(0, 1, f), rng.normal(0, 0.5, (f, k))
    fm = FactorizationMachine(torch.tensor([w0], dtype=dtype), torch.tensor(w, dtype=dtype),
                              torch.tensor(V, dtype=dtype))
    return fm, w0, w, V


def _device_batch(batch, dtype=torch.float64):
    db = to_device(batch, torch.device("cpu"))
    db.values = db.values.to(dtype)
    return db


def test_forward_matches_double_loop(rng):
    batch = _random_rows(rng, 40, 25)
    fm, w0, w, V = _model(rng, 25, 5)
    y, _, _ = fm.forward(_device_batch(batch))
    ref = naive_fm(batch.to_csr(), w0, w, V)
    # float32 storage of the summed duplicate costs ~1e-8 relative in the last row
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-7, atol=1e-12)
    assert y[0].item() == pytest.approx(w0)  # empty row: bias only


def test_forward_float32_close_to_reference(rng):
    batch = _random_rows(rng, 40, 25)
    fm, w0, w, V = _model(rng, 25, 8, dtype=torch.float32)
    y, _, _ = fm.forward(to_device(batch, torch.device("cpu")))
    ref = naive_fm(batch.to_csr(), w0, w, V)
    assert np.linalg.norm(y.numpy() - ref) / np.linalg.norm(ref) < 1e-5


@pytest.mark.parametrize("predictor_type,loss", [("regressor", "squared"),
                                                 ("binary_classifier", "logistic")])
def test_gradients_match_reference(rng, predictor_type, loss):
    batch = _random_rows(rng, 30, 20, duplicate=False)
    labels = (rng.normal(size=30) if predictor_type == "regressor"
              else (rng.random(30) < 0.5).astype(float))
    fm, w0, w, V = _model(rng, 20, 4)
    db = _device_batch(batch)
    y, xv, s = fm.forward(db)
    _, dy = loss_and_grad(predictor_type, y, torch.tensor(labels))
    gw0, gw, gV = fm.entry_gradients(db, dy / batch.n_rows, xv, s)
    keys, (sw, sV) = sum_by_key(db.indices, gw, gV)
    rw0, rw, rV = naive_fm_grads(batch.to_csr(), labels, w0, w, V, loss=loss)
    dense_w, dense_V = np.zeros(20), np.zeros((20, 4))
    dense_w[keys.numpy()] = sw.numpy()
    dense_V[keys.numpy()] = sV.numpy()
    assert gw0.item() == pytest.approx(rw0, abs=1e-12)
    np.testing.assert_allclose(dense_w, rw, atol=1e-12)
    np.testing.assert_allclose(dense_V, rV, atol=1e-12)
    # keys absent from the batch get no gradient at all (lazy updates)
    assert set(keys.tolist()) == set(np.unique(batch.indices).tolist())


@pytest.mark.parametrize("user_item", [False, True])
@pytest.mark.parametrize("predictor_type", ["regressor", "binary_classifier"])
def test_gradients_match_autograd(rng, predictor_type, user_item):
    batch = _random_rows(rng, 30, 14, duplicate=user_item)  # user_item: repeated keys too
    fm, *_ = _model(rng, 14, 3)
    if user_item:
        fm, _ = _user_item(fm, 14, rng)
    for t in (fm.w0, fm.w, fm.V):
        t.requires_grad_(True)
    db = _device_batch(batch)
    labels = torch.tensor(rng.normal(size=30) if predictor_type == "regressor"
                          else (rng.random(30) < 0.5).astype(float))
    y, xv, s = fm.forward(db)
    loss, dy = loss_and_grad(predictor_type, y, labels)
    loss.mean().backward()
    with torch.no_grad():
        gw0, gw, gV = fm.entry_gradients(db, dy / 30, xv, s)
        keys, (sw, sV) = sum_by_key(db.indices, gw, gV)
    np.testing.assert_allclose(fm.V.grad[keys].numpy(), sV.numpy(), atol=1e-12)
    np.testing.assert_allclose(fm.w.grad[keys].numpy(), sw.numpy(), atol=1e-12)
    assert fm.w0.grad.item() == pytest.approx(gw0.item())
    untouched = np.setdiff1d(np.arange(14), keys.numpy())
    assert not fm.V.grad[untouched].any()


def test_use_bias_and_linear_off(rng):
    batch = _random_rows(rng, 10, 8)
    fm, w0, w, V = _model(rng, 8, 2)
    fm2 = FactorizationMachine(fm.w0.clone(), fm.w.clone(), fm.V.clone(), use_bias=False,
                               use_linear=False)
    y, _, _ = fm2.forward(_device_batch(batch))
    np.testing.assert_allclose(y.numpy(), naive_fm(batch.to_csr(), 0.0, np.zeros(8), V),
                               atol=1e-12)


def _user_item(fm, f, rng, **kw):
    mask = rng.random(f) < 0.4
    block = torch.tensor(mask, dtype=fm.V.dtype)
    return FactorizationMachine(fm.w0.clone(), fm.w.clone(), fm.V.clone(), user_block=block,
                                **kw), mask


def test_user_item_forward_matches_double_loop(rng):
    batch = _random_rows(rng, 40, 25)  # empty rows and a repeated key included
    fm, w0, w, V = _model(rng, 25, 5)
    ui, mask = _user_item(fm, 25, rng)
    y, _, s = ui.forward(_device_batch(batch))
    assert s.shape == (40, 10)
    np.testing.assert_allclose(y.numpy(), naive_user_item(batch.to_csr(), w0, w, V, mask),
                               rtol=1e-7, atol=1e-12)
    assert y[0].item() == pytest.approx(w0)
    # and it is not the ordinary FM on these rows
    assert np.abs(y.numpy() - naive_fm(batch.to_csr(), w0, w, V)).max() > 0.1
    off, _ = _user_item(fm, 25, rng, use_bias=False, use_linear=False)
    off.user_block = ui.user_block
    np.testing.assert_allclose(off.forward(_device_batch(batch))[0].numpy(),
                               naive_user_item(batch.to_csr(), 0.0, np.zeros(25), V, mask),
                               atol=1e-12)
