"""Ranking quality of a model's top-k lists: precision, recall, NDCG and MAP at k.

For every test user with at least one relevant test item, the model ranks all candidate
items except the user's training items (``artifact.seen``), and the top ``k`` are compared
with the user's relevant test items:

- relevant: a test row of the user whose label is >= ``threshold``; the default threshold
  is 1 for binary classifiers (positive rows) and 4.0 for regressors (a "liked" rating on
  MovieLens' 1-5 scale; pass ``threshold`` for other scales);
- precision@k = hits / k; recall@k = hits / |relevant|;
- NDCG@k: DCG with gain 1 per hit and discount 1 / log2(rank + 1), divided by the DCG of
  min(|relevant|, k) hits;
- MAP@k: the sum of precision@r over the ranks r of hits, divided by min(|relevant|, k).

Each metric is the mean over those users, reported as ``test:precision@10`` and so on.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from fmkit.errors import DataError
from fmkit.sparse import SparseBatch


def ranking_metrics(
    predictor: Any,
    test: SparseBatch,
    *,
    k: int = 10,
    threshold: float | None = None,
    exclude_seen: bool = True,
    prefix: str = "test",
) -> dict[str, float]:
    """Return precision@k, recall@k, NDCG@k and MAP@k over the test users.

    Parameters
    ----------
    predictor : Predictor or Recommender
        A :class:`~fmkit.inference.predictor.Predictor` (its artifact needs a vocabulary
        with user and item fields) or a ready :class:`~fmkit.inference.recommend.Recommender`.
    test : SparseBatch
        Labelled test rows, each holding one user key and one item key.
    k : int, default=10
    threshold : float, optional
        Labels >= threshold are relevant; default 1 (binary) or 4.0 (regressor).
    exclude_seen : bool, default=True
        Leave each user's training items out of the ranking.
    prefix : str, default='test'

    Returns
    -------
    dict
        ``{"test:precision@10": ..., "test:recall@10": ..., "test:ndcg@10": ...,
        "test:map@10": ...}``; NaN when no test user has a relevant item.

    Raises
    ------
    DataError
        ``k`` < 1, missing labels, or a model without user/item vocabulary.
    """
    from fmkit.inference.recommend import Recommender

    if k < 1:
        raise DataError(f"k must be >= 1; got {k}.")
    if test.labels is None:
        raise DataError("ranking metrics need labelled test rows; the test data has none.")
    rec = predictor if isinstance(predictor, Recommender) else Recommender(predictor.artifact)
    vocab = rec.vocabulary
    if vocab is None or vocab.user_field is None or vocab.item_field is None:
        raise DataError("ranking metrics need a vocabulary with user and item fields.")
    if threshold is None:
        threshold = 1.0 if rec.artifact.predictor_type == "binary_classifier" else 4.0
    relevant = test.take(np.flatnonzero(test.labels >= threshold))
    truth = vocab.seen_pairs(relevant.indices, relevant.offsets)
    assert truth is not None  # the vocabulary names both fields (checked above)
    truth = truth[:, : rec.n_items].tocsr()
    test_users = np.flatnonzero(np.diff(truth.indptr) > 0)
    names = [f"{prefix}:{m}@{k}" for m in ("precision", "recall", "ndcg", "map")]
    if test_users.size == 0:
        return {name: float("nan") for name in names}
    uf = vocab.field(vocab.user_field)
    if uf.ids:  # the users' rows with their side features, as recommend builds them
        rows = vocab.entity_rows("user", [uf.ids[u] for u in test_users])
    else:
        rows = sp.csr_matrix(
            (np.ones(test_users.size, np.float32), test_users + uf.offset,
             np.arange(test_users.size + 1)),
            shape=(test_users.size, vocab.feature_dim),
        )
    exclude = None
    seen = rec.artifact.seen
    if exclude_seen and seen is not None:
        exclude = sp.csr_matrix(seen, dtype=np.float32)[test_users][:, : rec.n_items]
    totals = np.zeros(4, np.float64)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discounts)
    for first, top in rec.recommend_rows(rows, k=k, exclude=exclude):
        for r in range(top.ids.shape[0]):
            u = test_users[first + r]
            rel = truth.indices[truth.indptr[u]:truth.indptr[u + 1]]
            hits = np.isin(top.ids[r], rel) & (top.ids[r] >= 0)
            n_rel = rel.shape[0]
            n_hits = int(hits.sum())
            ranks = np.flatnonzero(hits)  # 0-based
            totals[0] += n_hits / k
            totals[1] += n_hits / n_rel
            totals[2] += float(discounts[ranks].sum()) / float(ideal[min(n_rel, k) - 1])
            precision_at = np.cumsum(hits)[ranks] / (ranks + 1)
            totals[3] += float(precision_at.sum()) / min(n_rel, k)
    means = totals / test_users.size
    return dict(zip(names, (float(v) for v in means)))
