"""Relation blocks: per-entity updates draw the samples of the per-row updates."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from fmkit.bayes.groups import Block
from fmkit.bayes.kernels import HAVE_NUMBA
from fmkit.bayes.relations import find_relations, without_ranges
from fmkit.bayes.sampler import CoordinateSampler

pytestmark = pytest.mark.skipif(not HAVE_NUMBA, reason="relation updates need numba")

N_USERS, N_ITEMS, N_ROWS = 12, 9, 160


def _implicit_rows(rng: np.random.Generator) -> tuple[sp.csr_matrix, np.ndarray]:
    """[user one-hot | item one-hot | the user's items, multi-hot, per-user values]."""
    users = rng.integers(0, N_USERS, N_ROWS)
    items = rng.integers(0, N_ITEMS, N_ROWS)
    table = sp.random(N_USERS, N_ITEMS, density=0.5, random_state=1, format="csr")
    table.data = rng.uniform(0.2, 1.5, table.nnz)
    X = sp.hstack([sp.csr_matrix((np.ones(N_ROWS), (np.arange(N_ROWS), users)),
                                 shape=(N_ROWS, N_USERS)),
                   sp.csr_matrix((rng.uniform(0.5, 1.5, N_ROWS), (np.arange(N_ROWS), items)),
                                 shape=(N_ROWS, N_ITEMS)),
                   table[users]], format="csr")
    groups = np.repeat([0, 1, 2], [N_USERS, N_ITEMS, N_ITEMS])
    return X, groups


def test_find_relations_finds_the_per_user_range_and_its_table():
    X, groups = _implicit_rows(np.random.default_rng(0))
    rels = find_relations(X, groups, min_gain=0.5)
    assert [(r.start, r.stop) for r in rels] == [(21, 30)]
    rel = rels[0]
    assert np.array_equal(rel.entity, X[:, :N_USERS].indices)
    assert (rel.table[rel.entity] != X[:, 21:]).nnz == 0
    # not a function of any one-hot range once a single row differs
    Y = X.tolil()
    Y[0, 25] = 9.0
    assert find_relations(Y.tocsr(), groups, min_gain=0.5) == []
    # below the gain threshold the per-row form is kept
    assert find_relations(X, groups, min_gain=100.0) == []


@pytest.mark.parametrize("likelihood", ["gaussian", "probit"])
@pytest.mark.parametrize("weighted", [False, True])
def test_relation_updates_draw_the_per_row_samples(likelihood, weighted):
    rng = np.random.default_rng(3)
    X, groups = _implicit_rows(rng)
    y = rng.normal(3.0, 1.0, N_ROWS) if likelihood == "gaussian" else \
        (rng.random(N_ROWS) < 0.5).astype(np.float64)
    weights = rng.uniform(0.5, 2.0, N_ROWS) if weighted else None
    rels = find_relations(X, groups, min_gain=0.5)
    assert rels
    out = []
    for relations in (rels, ()):
        s = CoordinateSampler(X, y, groups, 3, np.random.default_rng(7), likelihood=likelihood,
                              row_weights=weights, relations=relations)
        for _ in range(12):  # past a refresh (every 10 sweeps)
            s.sweep()
        out.append((s.w0, s.w.copy(), s.Vt.copy(), s.residuals().copy()))
    (w0a, wa, Va, ea), (w0b, wb, Vb, eb) = out
    assert w0a == pytest.approx(w0b, abs=1e-10)
    np.testing.assert_allclose(wa, wb, atol=1e-9)
    np.testing.assert_allclose(Va, Vb, atol=1e-9)
    np.testing.assert_allclose(ea, eb, atol=1e-9)


def test_relation_predictions_equal_the_per_row_predictions():
    rng = np.random.default_rng(5)
    X, groups = _implicit_rows(rng)
    rels = find_relations(X, groups, min_gain=0.5)
    a = CoordinateSampler(X, np.zeros(N_ROWS), groups, 4, np.random.default_rng(0),
                          relations=rels)
    b = CoordinateSampler(X, np.zeros(N_ROWS), groups, 4, np.random.default_rng(0))
    for s in (a, b):
        s.w = np.random.default_rng(1).normal(size=X.shape[1])
    np.testing.assert_allclose(a.predict_train(), b.predict_train(), atol=1e-12)
    np.testing.assert_allclose(a.Q, b.Q, atol=1e-12)


def test_without_ranges_cuts_blocks_in_order():
    blocks = [Block(0, 5, True), Block(5, 12, False), Block(12, 14, True)]
    assert without_ranges(blocks, [(3, 7), (13, 20)]) == [
        Block(0, 3, True), Block(7, 12, False), Block(12, 13, True)]


def test_fit_mcmc_uses_relations_on_implicit_movielens(tmp_path):
    from helpers.movielens import write_fake_ml100k

    from fmkit.bayes import fit_mcmc
    from fmkit.config import FMConfig
    from fmkit.datasets.movielens import load_movielens

    data = load_movielens(write_fake_ml100k(tmp_path / "ml"), target="rating", implicit=True)
    vocab = data.vocabulary
    cfg = FMConfig.from_values({"predictor_type": "regressor", "num_factors": 3, "epochs": 15,
                                "burn_in": 5, "seed": 0, "feature_dim": vocab.feature_dim})
    fast, _ = fit_mcmc(cfg, data.train, test=data.test, groups=vocab.groups())
    slow, _ = fit_mcmc(cfg, data.train, test=data.test, groups=vocab.groups(),
                       backend="numpy")
    rated, raters = vocab.field("user_rated"), vocab.field("item_raters")
    assert fast.metadata["relations"] == [[rated.offset, rated.offset + rated.size],
                                          [raters.offset, raters.offset + raters.size]]
    assert slow.metadata["relations"] == []
    np.testing.assert_allclose(fast.V, slow.V, atol=1e-5)
    assert fast.metadata["test_metrics"]["test:rmse"] == pytest.approx(
        slow.metadata["test_metrics"]["test:rmse"], abs=1e-6)
