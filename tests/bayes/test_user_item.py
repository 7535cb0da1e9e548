"""The user x item Bayesian FM (interactions='user_item'): sampler, conditionals, fit."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from helpers.reference import naive_user_item

from fmkit.bayes.kernels import HAVE_NUMBA
from fmkit.bayes.sampler import CoordinateSampler
from fmkit.config import FMConfig
from fmkit.errors import ConfigError, DataError

pytestmark = pytest.mark.skipif(not HAVE_NUMBA, reason="the user_item sampler needs numba")

N_USERS, N_ITEMS, N_ROWS = 12, 9, 200


def _rows(rng: np.random.Generator, side: bool, n: int = N_ROWS
          ) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """[user one-hot | item one-hot | (user side, 3 keys) | (item side, 2 keys)]; the side
    parts are fixed per user and per item. Returns X, groups, user-block mask."""
    N_ROWS = n  # noqa: N806
    users = rng.integers(0, N_USERS, N_ROWS)
    items = rng.integers(0, N_ITEMS, N_ROWS)
    parts = [sp.csr_matrix((np.ones(N_ROWS), (np.arange(N_ROWS), users)),
                           shape=(N_ROWS, N_USERS)),
             sp.csr_matrix((np.ones(N_ROWS), (np.arange(N_ROWS), items)),
                           shape=(N_ROWS, N_ITEMS))]
    sizes = [N_USERS, N_ITEMS]
    roles = [True, False]
    if side:
        user_side = sp.random(N_USERS, 3, density=0.6, random_state=2, format="csr")
        item_side = sp.random(N_ITEMS, 2, density=0.7, random_state=3, format="csr")
        user_side.data = rng.uniform(0.1, 1.0, user_side.nnz)
        item_side.data = rng.uniform(0.1, 1.0, item_side.nnz)
        parts += [user_side[users], item_side[items]]
        sizes += [3, 2]
        roles += [True, False]
    X = sp.hstack(parts, format="csr")
    groups = np.repeat(np.arange(len(sizes)), sizes)
    mask = np.repeat(roles, sizes)
    return X, groups, mask


def _target(rng: np.random.Generator, likelihood: str) -> np.ndarray:
    if likelihood == "gaussian":
        return rng.normal(3.0, 1.0, N_ROWS)
    return (rng.random(N_ROWS) < 0.5).astype(np.float64)


def _naive(X: sp.csr_matrix, w0: float, w: np.ndarray, Vt: np.ndarray, mask: np.ndarray
           ) -> np.ndarray:
    return naive_user_item(X, w0, w, Vt.T, mask)


@pytest.mark.parametrize("likelihood", ["gaussian", "probit"])
def test_one_hot_rows_draw_the_ordinary_samplers_samples(likelihood):
    # with one user key and one item key per row the model is the ordinary FM, and the
    # draws come in the same order from the same stream
    from fmkit.bayes.user_item import UserItemSampler

    rng = np.random.default_rng(1)
    X, groups, mask = _rows(rng, side=False)
    y = _target(rng, likelihood)
    a = UserItemSampler(X, y, groups, 3, np.random.default_rng(7), user_block=mask,
                        likelihood=likelihood)
    b = CoordinateSampler(X, y, groups, 3, np.random.default_rng(7), likelihood=likelihood,
                          backend="numba")
    for _ in range(12):  # past a refresh (every 10 sweeps)
        a.sweep()
        b.sweep()
    assert a.w0 == pytest.approx(b.w0, abs=1e-9)
    np.testing.assert_allclose(a.w, b.w, atol=1e-8)
    np.testing.assert_allclose(a.Vt, b.Vt, atol=1e-8)
    np.testing.assert_allclose(a.residuals(), b.residuals(), atol=1e-8)


@pytest.mark.parametrize("weighted", [False, True])
def test_conditional_of_a_factor_and_a_weight_equals_float64_posterior(weighted):
    from fmkit.bayes.user_item import UserItemSampler

    rng = np.random.default_rng(4)
    X, groups, mask = _rows(rng, side=True)
    y = _target(rng, "gaussian")
    r = rng.uniform(0.5, 2.0, N_ROWS) if weighted else np.ones(N_ROWS)
    s = UserItemSampler(X, y, groups, 2, np.random.default_rng(0), user_block=mask,
                        row_weights=r if weighted else None)
    s.w = rng.normal(0, 0.3, X.shape[1])
    s.Vt = rng.normal(0, 0.5, s.Vt.shape)
    s.alpha, s.w0 = 1.7, 0.4
    s.lam_w, s.mu_w = rng.uniform(0.5, 2, 4), rng.normal(0, 0.1, 4)
    s.lam_v, s.mu_v = rng.uniform(0.5, 2, (2, 4)), rng.normal(0, 0.1, (2, 4))
    y_now = s.predict_train()
    np.testing.assert_allclose(y_now, _naive(X, s.w0, s.w, s.Vt, mask), atol=1e-10)
    s.e = y - y_now
    D = X.toarray()
    f, key = 1, int(N_USERS + N_ITEMS + 1)  # a user side key (in the user block)
    assert mask[key]
    g = groups[key]
    # h_i = d y_i / d v_{key,f} = x_i,key * (item part of x_i) . V[:, f]
    h = D[:, key] * ((D * ~mask) @ s.Vt[f])
    prec = s.lam_v[f, g] + s.alpha * np.sum(r * h * h)
    mean = (s.lam_v[f, g] * s.mu_v[f, g]
            + s.alpha * np.sum(r * h * (s.e + s.Vt[f, key] * h))) / prec
    # the block draws its keys in order: make the key the first of its block (zero noise),
    # and compare the mean; the noise term is 1/sqrt(prec) per unit of noise
    s.U.keys, order = _first(s.U, key)
    v = s.Vt[f].copy()
    s._block(s.U, s.I, s.QI[f], v, s.lam_v[f], s.mu_v[f], np.zeros(len(order)))
    assert v[key] == pytest.approx(mean, rel=1e-10)
    v = s.Vt[f].copy()
    s.e = y - y_now
    noise = np.zeros(len(order))
    noise[0] = 1.0
    s._block(s.U, s.I, s.QI[f], v, s.lam_v[f], s.mu_v[f], noise)
    assert v[key] == pytest.approx(mean + 1.0 / np.sqrt(prec), rel=1e-10)
    # and the linear weight of an item key: h_i = x_i,key
    s.e = y - y_now
    key = N_USERS + 3
    g = groups[key]
    h = D[:, key]
    prec = s.lam_w[g] + s.alpha * np.sum(r * h * h)
    mean = (s.lam_w[g] * s.mu_w[g] + s.alpha * np.sum(r * h * (s.e + s.w[key] * h))) / prec
    s.I.keys, order = _first(s.I, key)
    w = s.w.copy()
    s._block(s.I, s.U, np.ones(s.U.n), w, s.lam_w, s.mu_w, np.zeros(len(order)))
    assert w[key] == pytest.approx(mean, rel=1e-10)


def _first(block, key):
    """Reorder a block's keys so ``key`` is drawn first; returns (keys, order)."""
    order = np.concatenate([[int(np.flatnonzero(block.keys == key)[0])],
                            np.flatnonzero(block.keys != key)])
    csc = sp.csc_matrix((block.xs, block.ents, block.indptr),
                        shape=(block.n, block.keys.shape[0]))[:, order]
    csc.sort_indices()
    block.indptr, block.ents, block.xs = (csc.indptr.astype(np.int64),
                                          csc.indices.astype(np.int64), csc.data)
    return block.keys[order], order


def test_block_sums_track_the_outputs_through_a_sweep():
    from fmkit.bayes.user_item import UserItemSampler

    rng = np.random.default_rng(2)
    X, groups, mask = _rows(rng, side=True)
    s = UserItemSampler(X, _target(rng, "probit"), groups, 3, np.random.default_rng(5),
                        user_block=mask, likelihood="probit")
    for _ in range(4):
        s.sweep()
        np.testing.assert_allclose(s.outputs(), _naive(X, s.w0, s.w, s.Vt, mask), atol=1e-9)


def test_planted_user_item_model_is_recovered():
    from fmkit.bayes import fit_mcmc
    from fmkit.inference.predictor import Predictor
    from fmkit.sparse import SparseBatch

    rng = np.random.default_rng(0)
    n = 3000
    X, groups, mask = _rows(rng, side=True, n=n)
    Vt = rng.normal(0, 0.8, (2, X.shape[1]))
    w = rng.normal(0, 0.5, X.shape[1])
    truth = _naive(X, 1.0, w, Vt, mask)
    y = truth + rng.normal(0, 0.1, n)
    train = SparseBatch.from_matrix(X[:2500], labels=y[:2500])
    test = SparseBatch.from_matrix(X[2500:], labels=y[2500:])
    cfg = FMConfig.from_values({"predictor_type": "regressor", "solver": "mcmc",
                                "interactions": "user_item", "num_factors": 2,
                                "epochs": 150, "seed": 0})
    art, _ = fit_mcmc(cfg, train, groups=groups, test=test, user_block=mask)
    pred = Predictor(art).predict_scores(test)
    rmse = float(np.sqrt(np.mean((pred - truth[2500:]) ** 2)))
    assert rmse < 0.06, rmse  # to the noise floor (0.1 per label, far less on the mean)
    assert art.metadata["test_metrics"]["test:rmse"] == pytest.approx(
        float(np.sqrt(np.mean((pred - y[2500:]) ** 2))), rel=1e-5)


def test_fit_on_movielens_saves_a_model_that_reproduces_its_metrics(tmp_path):
    from helpers.movielens import write_fake_ml100k

    from fmkit.artifact import load, save
    from fmkit.datasets.movielens import load_movielens
    from fmkit.engine.trainer import fit
    from fmkit.inference.predictor import Predictor

    data = load_movielens(write_fake_ml100k(tmp_path / "ml"), target="binary",
                          side_features=True, implicit=True)
    cfg = FMConfig.from_values({"predictor_type": "binary_classifier", "solver": "mcmc",
                                "interactions": "user_item", "num_factors": 3, "epochs": 30,
                                "seed": 1})
    result = fit(cfg, data.train, test=data.test, vocabulary=data.vocabulary)
    art = result.artifact
    assert art.interactions == "user_item"
    user = data.vocabulary.role_mask("user")
    np.testing.assert_array_equal(art.user_block, user)
    save(art, tmp_path / "model")
    loaded = load(tmp_path / "model")
    assert loaded.metadata["hyperparameters"]["interactions"] == "user_item"
    from fmkit.metrics import compute_metrics

    again = compute_metrics("binary_classifier", data.test.labels,
                            Predictor(loaded).predict_scores(data.test))
    for k, v in result.metrics.items():
        if k.startswith("test:"):
            assert again[k] == v, k


def test_user_item_errors():
    from fmkit.bayes import fit_mcmc
    from fmkit.sparse import SparseBatch

    rng = np.random.default_rng(0)
    X, groups, mask = _rows(rng, side=False)
    train = SparseBatch.from_matrix(X, labels=_target(rng, "gaussian"))
    cfg = FMConfig.from_values({"predictor_type": "regressor", "solver": "mcmc",
                                "interactions": "user_item", "num_factors": 2, "epochs": 3})
    with pytest.raises(ConfigError, match="needs the user block"):
        fit_mcmc(cfg, train, groups=groups)
    with pytest.raises(ConfigError, match="numba backend"):
        fit_mcmc(cfg, train, groups=groups, user_block=mask, backend="torch")
    with pytest.raises(ConfigError, match="device 'cuda'"):
        fit_mcmc(cfg.replace(device="cuda"), train, groups=groups, user_block=mask)
    with pytest.raises(DataError, match="both the user and the item block"):
        fit_mcmc(cfg, train, groups=groups, user_block=np.ones(X.shape[1], bool))
    with pytest.raises(ConfigError, match="needs solver='sgd' or 'mcmc'; got solver='als'"):
        FMConfig.from_values({"predictor_type": "regressor", "interactions": "user_item",
                              "solver": "als"})
    with pytest.raises(ConfigError, match="interactions must be"):
        FMConfig.from_values({"predictor_type": "regressor", "interactions": "cross"})


def test_rows_are_grouped_exactly_even_when_the_projections_collide(monkeypatch):
    from fmkit.bayes import user_item

    rng = np.random.default_rng(6)
    X, _, mask = _rows(rng, side=True)
    X = sp.csr_matrix(X)
    ent, first = user_item._group_rows(X, mask)
    parts = X[:, np.flatnonzero(mask)].toarray()
    # same entity <=> same user part
    same = (parts[:, None, :] == parts[None, :, :]).all(axis=2)
    assert np.array_equal(same, ent[:, None] == ent[None, :])
    assert np.array_equal(ent[first], np.arange(first.size))

    def collide(indptr, indices, data, mask, r1, r2, out):
        out[:] = 0.0  # every row looks alike: the exact check must catch it

    monkeypatch.setattr(user_item, "_row_keys", collide)
    ent2, first2 = user_item._group_rows(X, mask)
    assert np.array_equal(same, ent2[:, None] == ent2[None, :])
    assert np.array_equal(ent2[first2], np.arange(first2.size))
