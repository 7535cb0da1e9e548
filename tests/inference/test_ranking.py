"""Ranking metrics against a direct per-user computation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fmkit.errors import DataError
from fmkit.features.vocabulary import Vocabulary
from fmkit.inference.predictor import Predictor
from fmkit.inference.ranking import ranking_metrics
from fmkit.sparse import SparseBatch
from inference.toy import ITEMS, USERS, make_artifact, pair_rows


def _test_batch(pairs):
    """Rows [user key, item key] with labels, as MovieLens test rows."""
    indices, labels = [], []
    for u, i, label in pairs:
        indices += [u, 6 + i]
        labels.append(label)
    return SparseBatch.from_arrays(indices, np.arange(0, 2 * len(pairs) + 1, 2),
                                   np.ones(len(indices)), labels, feature_dim=23)


def _direct(artifact, pairs, k, threshold):
    vocab = Vocabulary.from_dict(artifact.vocabulary)
    predictor = Predictor(artifact)
    sums = np.zeros(4)
    users = sorted({u for u, _, lab in pairs if lab >= threshold})
    for u in users:
        rel = {i for uu, i, lab in pairs if uu == u and lab >= threshold}
        scores = predictor.predict_scores(pair_rows(vocab, USERS[u], ITEMS))
        seen = set(artifact.seen[u].indices.tolist())
        ranked = sorted((j for j in range(10) if j not in seen), key=lambda j: (-scores[j], j))
        top = ranked[:k]
        hits = [j in rel for j in top]
        sums[0] += sum(hits) / k
        sums[1] += sum(hits) / len(rel)
        dcg = sum(1 / math.log2(r + 2) for r, h in enumerate(hits) if h)
        idcg = sum(1 / math.log2(r + 2) for r in range(min(len(rel), k)))
        sums[2] += dcg / idcg
        ap = sum(sum(hits[: r + 1]) / (r + 1) for r, h in enumerate(hits) if h)
        sums[3] += ap / min(len(rel), k)
    return sums / len(users)


@pytest.mark.parametrize("k", [1, 3, 10])
def test_metrics_match_direct_computation(rng, k):
    artifact = make_artifact(rng)
    pairs = [(0, 0, 5.0), (0, 2, 4.0), (0, 3, 2.0), (1, 5, 4.5), (2, 9, 1.0), (3, 7, 4.0),
             (3, 8, 4.0), (3, 6, 5.0), (5, 0, 4.0)]
    pairs = [p for p in pairs if not artifact.seen[p[0], p[1]]]  # test rows are unseen
    got = ranking_metrics(Predictor(artifact), _test_batch(pairs), k=k)
    assert list(got) == [f"test:precision@{k}", f"test:recall@{k}", f"test:ndcg@{k}",
                         f"test:map@{k}"]
    np.testing.assert_allclose(list(got.values()), _direct(artifact, pairs, k, 4.0), rtol=1e-9)


def test_perfect_and_binary_threshold(rng):
    artifact = make_artifact(rng, predictor_type="binary_classifier")
    rec_pairs = []
    predictor = Predictor(artifact)
    vocab = Vocabulary.from_dict(artifact.vocabulary)
    for u in range(6):  # each user's single relevant item is the model's own top pick
        scores = predictor.predict_scores(pair_rows(vocab, USERS[u], ITEMS))
        seen = set(artifact.seen[u].indices.tolist())
        best = max((j for j in range(10) if j not in seen), key=lambda j: (scores[j], -j))
        rec_pairs += [(u, best, 1.0)]
    got = ranking_metrics(predictor, _test_batch(rec_pairs), k=5)
    assert got["test:recall@5"] == 1.0 and got["test:ndcg@5"] == 1.0
    assert got["test:map@5"] == 1.0 and got["test:precision@5"] == pytest.approx(0.2)


def test_no_relevant_rows_gives_nan_and_errors_are_clear(rng):
    artifact = make_artifact(rng)
    got = ranking_metrics(Predictor(artifact), _test_batch([(0, 0, 1.0)]), k=3)
    assert all(math.isnan(v) for v in got.values())
    with pytest.raises(DataError, match="k must be >= 1"):
        ranking_metrics(Predictor(artifact), _test_batch([(0, 0, 1.0)]), k=0)
    unlabelled = SparseBatch.from_arrays([0, 6], [0, 2], [1, 1], feature_dim=23)
    with pytest.raises(DataError, match="labelled"):
        ranking_metrics(Predictor(artifact), unlabelled)
