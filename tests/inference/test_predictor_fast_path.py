"""Predictor.decision_rows (the request fast path) equals decision_function and the naive FM."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from fmkit.errors import DataError
from fmkit.inference.predictor import Predictor
from fmkit.sparse import SparseBatch
from helpers.reference import naive_fm
from inference.toy import make_artifact


@pytest.mark.parametrize("samples,kind,link", [(1, "regressor", "identity"),
                                               (3, "binary_classifier", "probit")])
def test_fast_path_matches_reference(rng, samples, kind, link):
    artifact = make_artifact(rng, predictor_type=kind, samples=samples, link=link)
    predictor = Predictor(artifact)
    # rows with duplicates, an empty row, and values other than 1
    indices = [0, 6, 6, 16, 3, 3, 22, 1]
    offsets = [0, 4, 4, 7, 8]
    values = [1.0, 2.0, -0.5, 0.25, 1.5, 1.0, 3.0, 1.0]
    batch = SparseBatch.from_arrays(indices, offsets, values, feature_dim=23)
    fast = predictor.decision_rows(batch.indices, batch.offsets, batch.values)
    slow = predictor.decision_function(batch)
    np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-5)
    X = sp.csr_matrix((values, indices, offsets), shape=(4, 23))
    for s in range(samples):
        ref = naive_fm(X, artifact.w0[s], artifact.w[s], artifact.V[s])
        np.testing.assert_allclose(fast[s], ref, rtol=1e-6, atol=1e-6)
    out = predictor.predict_batch(batch)
    np.testing.assert_allclose(out["score"], predictor.predict_scores(batch), rtol=1e-5)
    if kind == "binary_classifier":
        assert set(out["predicted_label"].tolist()) <= {0.0, 1.0}


def test_fast_path_blocks_large_batches(rng):
    artifact = make_artifact(rng)
    predictor = Predictor(artifact)
    X = sp.random(3000, 23, density=0.4, format="csr", random_state=1, dtype=np.float32)
    batch = SparseBatch.from_matrix(X)
    np.testing.assert_allclose(predictor.predict_batch(batch)["score"],
                               predictor.predict_scores(X), rtol=1e-4, atol=1e-5)


def test_fast_path_validates_keys(rng):
    predictor = Predictor(make_artifact(rng))
    bad = SparseBatch.from_arrays([30], [0, 1], [1.0], feature_dim=23)
    with pytest.raises(DataError, match="out of range"):
        predictor.predict_batch(bad)


@pytest.mark.parametrize("keys,values", [([2, 7, 19], [1.0, 0.5, 2.0]),
                                         ([7, 2, 7], [1.0, 1.0, 1.0]), ([5], [3.0]), ([], [])])
def test_single_row_paths(rng, keys, values):
    artifact = make_artifact(rng, samples=2, predictor_type="binary_classifier", link="probit")
    predictor = Predictor(artifact)
    batch = SparseBatch.from_arrays(keys, [0, len(keys)], values, feature_dim=23)
    X = sp.csr_matrix((values, keys, [0, len(keys)]), shape=(1, 23))
    fast = predictor.decision_rows(batch.indices, batch.offsets, batch.values)
    for s in range(2):
        ref = naive_fm(X, artifact.w0[s], artifact.w[s], artifact.V[s])
        np.testing.assert_allclose(fast[s], ref, rtol=1e-6, atol=1e-6)
