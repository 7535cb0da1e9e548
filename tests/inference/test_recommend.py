"""Recommender: all-items scores equal the predictor's, exclusions, filters, cold start."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fmkit.errors import DataError
from fmkit.features.vocabulary import Vocabulary
from fmkit.inference.predictor import Predictor
from fmkit.inference.recommend import POPULARITY, SIDE_FEATURES, Recommender, top_k
from inference.toy import ITEMS, USERS, make_artifact, pair_rows

KINDS = [
    pytest.param(dict(predictor_type="regressor"), id="regressor"),
    pytest.param(dict(predictor_type="binary_classifier"), id="logit"),
    pytest.param(dict(predictor_type="binary_classifier", samples=3, link="probit"), id="mcmc"),
]


def _expected(artifact, user, context=None):
    vocab = Vocabulary.from_dict(artifact.vocabulary)
    return Predictor(artifact).predict_scores(pair_rows(vocab, user, ITEMS, context))


@pytest.mark.parametrize("kind", KINDS)
def test_scores_of_all_items_match_predictor(rng, kind):
    artifact = make_artifact(rng, **kind)
    rec = Recommender(artifact)
    for user in USERS:
        rows = rec.user_rows([user])
        np.testing.assert_allclose(rec.score_rows(rows)[0], _expected(artifact, user),
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_recommend_is_sorted_and_excludes_seen(rng, kind):
    artifact = make_artifact(rng, **kind)
    rec = Recommender(artifact)
    for u, user in enumerate(USERS):
        result = rec.recommend(user, k=4)
        seen = set(artifact.seen[u].indices.tolist())
        expected = _expected(artifact, user)
        candidates = [j for j in range(len(ITEMS)) if j not in seen]
        order = sorted(candidates, key=lambda j: (-expected[j], j))[:4]
        assert result.items == [ITEMS[j] for j in order]
        np.testing.assert_allclose(result.scores, expected[order], rtol=1e-5, atol=1e-5)
        assert result.cold_start is None
        assert not set(result.items) & {ITEMS[j] for j in seen}


def test_include_seen_and_explicit_exclusions(rng):
    artifact = make_artifact(rng)
    rec = Recommender(artifact)
    every = rec.recommend("u0", k=10, exclude_seen=False)
    assert sorted(every.items) == sorted(ITEMS)
    fewer = rec.recommend("u0", k=10, exclude=["i0", "i9", "not-an-item"])
    assert set(fewer.items) == set(ITEMS) - {"i1", "i4", "i0", "i9"}


def test_k_larger_than_candidates_and_zero(rng):
    rec = Recommender(make_artifact(rng))
    assert len(rec.recommend("u0", k=50).items) == 8  # 10 items minus 2 seen
    assert rec.recommend("u0", k=0).items == []
    with pytest.raises(DataError, match="k must be >= 0"):
        rec.recommend("u0", k=-1)


def test_min_score_and_label_only(rng):
    artifact = make_artifact(rng, predictor_type="binary_classifier")
    rec = Recommender(artifact)
    full = rec.recommend("u2", k=10, exclude_seen=False)
    only = rec.recommend("u2", k=10, exclude_seen=False, label_only=True)
    assert only.items == [i for i, s in zip(full.items, full.scores) if s >= 0.5]
    cut = float(np.median(full.scores))
    above = rec.recommend("u2", k=10, exclude_seen=False, min_score=cut)
    assert above.items == [i for i, s in zip(full.items, full.scores) if s >= cut]
    with pytest.raises(DataError, match="binary_classifier"):
        Recommender(make_artifact(rng)).recommend("u0", label_only=True)


def test_context_changes_scores_as_the_predictor_does(rng):
    artifact = make_artifact(rng)
    rec = Recommender(artifact)
    result = rec.recommend("u3", k=10, exclude_seen=False, context={"device": "app"})
    expected = _expected(artifact, "u3", {"device": "app"})
    np.testing.assert_allclose(result.scores, np.sort(expected)[::-1], rtol=1e-5, atol=1e-5)
    with pytest.raises(DataError, match="not a known value"):
        rec.recommend("u3", context={"device": "tv"})


def test_cold_start_side_features_then_popularity(rng):
    artifact = make_artifact(rng)
    rec = Recommender(artifact)
    side = rec.recommend("newbie", k=3)
    assert side.cold_start == SIDE_FEATURES
    np.testing.assert_allclose(side.scores, np.sort(_expected(artifact, "newbie"))[::-1][:3],
                               rtol=1e-5, atol=1e-5)
    popular = rec.recommend("stranger", k=3)
    assert popular.cold_start == POPULARITY
    # scored on the model's scale: the model's prediction for the cold-start row, best first
    cold = _cold_expected(artifact, rec)
    order = sorted(range(len(ITEMS)), key=lambda j: (-cold[j], j))
    assert popular.items == [ITEMS[j] for j in order[:3]]
    np.testing.assert_allclose(popular.scores, cold[order[:3]], rtol=1e-5, atol=1e-5)
    assert popular.to_dict()["cold_start"] == "popularity"
    excluded = popular.items[0]
    many = list(rec.recommend_many(["stranger", "u1", "ghost"], k=3, exclude=[excluded]))
    expected = [ITEMS[j] for j in order if ITEMS[j] != excluded][:3]
    assert [r.items for r in (many[0], many[2])] == [expected] * 2
    assert many[0].cold_start == many[2].cold_start == POPULARITY and many[1].cold_start is None


def _cold_expected(artifact, rec):
    """The predictor's scores of every item for the recommender's cold-start row."""
    vocab = Vocabulary.from_dict(artifact.vocabulary)
    rows = sp.csr_matrix(sp.vstack([rec.cold_start_row()] * len(ITEMS))
                         + vocab.entity_rows("item", ITEMS))
    return Predictor(artifact).predict_scores(rows)


def test_cold_start_row_is_the_popularity_weighted_average_user(rng):
    artifact = make_artifact(rng)
    rec = Recommender(artifact)
    vocab = Vocabulary.from_dict(artifact.vocabulary)
    counts = np.diff(artifact.seen.indptr).astype(np.float64)
    users = vocab.entity_rows("user", USERS).toarray().astype(np.float64)
    expected = counts @ users / counts.sum()
    np.testing.assert_allclose(rec.cold_start_row().toarray()[0], expected, rtol=1e-6)
    assert expected[vocab.key("user", "u0")] == pytest.approx(2 / counts.sum())  # rated 2
    # without seen every user weighs the same
    artifact.seen = None
    flat = Recommender(artifact).cold_start_row().toarray()[0]
    np.testing.assert_allclose(flat, users.mean(axis=0), rtol=1e-6)


@pytest.mark.parametrize("kind", KINDS[1:])
def test_cold_start_applies_min_score_and_label_only_on_the_model_scale(rng, kind):
    artifact = make_artifact(rng, **kind)
    rec = Recommender(artifact)
    n = len(ITEMS)
    full = rec.recommend("stranger", k=n)
    assert full.cold_start == POPULARITY and len(full.items) == n
    cold = _cold_expected(artifact, rec)
    by_item = dict(zip(ITEMS, cold.tolist()))
    np.testing.assert_allclose(full.scores, [by_item[i] for i in full.items], rtol=1e-5,
                               atol=1e-6)
    assert all(0.0 <= s <= 1.0 for s in full.scores)  # probabilities, not counts
    assert full.scores == sorted(full.scores, reverse=True)
    high = rec.recommend("stranger", k=n, min_score=0.99)
    assert high.items == [i for i, s in zip(full.items, full.scores) if s >= 0.99]
    assert all(s >= 0.99 for s in high.scores) and high.cold_start == POPULARITY
    cut = float(np.median(full.scores))
    above = rec.recommend("stranger", k=n, min_score=cut)
    assert above.items == [i for i, s in zip(full.items, full.scores) if s >= cut]
    assert 0 < len(above.items) < n
    only = rec.recommend("stranger", k=n, label_only=True)
    assert only.items == [i for i, s in zip(full.items, full.scores) if s >= 0.5]
    assert rec.recommend("stranger", k=n, min_score=1.01).items == []


def test_recommend_many_matches_single_calls_in_chunks(rng):
    artifact = make_artifact(rng, predictor_type="binary_classifier", samples=2, link="probit")
    rec = Recommender(artifact)
    users = ["u5", "stranger", "u0", "newbie", "u3", "u1", "u2"]
    many = list(rec.recommend_many(users, k=3, chunk_size=2))
    assert [r.query for r in many] == users
    for got in many:
        one = rec.recommend(got.query, k=3)
        assert got.items == one.items and got.cold_start == one.cold_start
        np.testing.assert_allclose(got.scores, one.scores, rtol=1e-6)


def test_similar_items_by_cosine(rng):
    artifact = make_artifact(rng)
    vocab = Vocabulary.from_dict(artifact.vocabulary)
    rec = Recommender(artifact)
    factors = np.asarray(vocab.entity_rows("item", ITEMS) @ artifact.V[0].astype(np.float64))
    unit = factors / np.linalg.norm(factors, axis=1, keepdims=True)
    sims = unit @ unit[2]
    result = rec.similar("i2", k=3)
    order = [j for j in np.argsort(-sims, kind="stable") if j != 2][:3]
    assert result.items == [ITEMS[j] for j in order]
    np.testing.assert_allclose(result.scores, sims[order], rtol=1e-5)
    with pytest.raises(DataError, match="unknown item"):
        rec.similar("nope")


def test_no_vocabulary_is_a_clear_error(rng):
    artifact = make_artifact(rng)
    artifact.vocabulary = None
    with pytest.raises(DataError, match="vocabulary"):
        Recommender(artifact)


def test_rows_layer_with_exclusions_and_padding(rng):
    artifact = make_artifact(rng)
    rec = Recommender(artifact)
    users = rec.user_rows(USERS)
    exclude = sp.csr_matrix(np.ones((6, 10), np.float32))
    exclude[0, 3] = 0
    exclude.eliminate_zeros()
    (first, top), = list(rec.recommend_rows(users, k=2, exclude=exclude))
    assert first == 0
    assert top.ids[0].tolist() == [3, -1]
    assert np.isnan(top.scores[0, 1])
    assert (top.ids[1:] == -1).all()


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 4), st.integers(1, 30)),
                  elements=st.floats(-1e3, 1e3, width=32)),
       st.integers(0, 35))
def test_top_k_equals_sort_then_slice(scores, k):
    top = top_k(scores, k)
    kk = min(k, scores.shape[1])
    for r in range(scores.shape[0]):
        expected = np.sort(scores[r])[::-1][:kk]
        np.testing.assert_array_equal(top.scores[r], expected)
        np.testing.assert_array_equal(scores[r][top.ids[r]], expected)


def test_predictor_recommend_facade(rng):
    artifact = make_artifact(rng)
    got = Predictor(artifact).recommend(["u1", "u4"], k=3)
    rec = Recommender(artifact)
    assert [r.items for r in got] == [rec.recommend("u1", k=3).items,
                                      rec.recommend("u4", k=3).items]


def test_checkerboard_withheld_item_is_the_top_pick():
    """Two taste groups; each user rated all of its group's items but one: that one comes first."""
    from fmkit.artifact import Artifact
    from fmkit.features.vocabulary import Field

    n_users, n_items = 8, 12
    users = [f"u{i}" for i in range(n_users)]
    items = [f"m{i}" for i in range(n_items)]
    vocab = Vocabulary(n_users + n_items, [
        Field("user", 0, n_users, "user", True, tuple(users)),
        Field("item", n_users, n_items, "item", True, tuple(items))], "user", "item")
    V = np.zeros((n_users + n_items, 2), np.float32)
    for u in range(n_users):
        V[u] = [1, 0] if u % 2 == 0 else [0, 1]
    for i in range(n_items):
        V[n_users + i] = [1, 0] if i % 2 == 0 else [0, 1]
    seen = np.zeros((n_users, n_items), np.float32)
    withheld = {}
    for u in range(n_users):
        group = [i for i in range(n_items) if i % 2 == u % 2]
        withheld[u] = group[u // 2 % len(group)]
        seen[u, [i for i in group if i != withheld[u]]] = 1
    artifact = Artifact.from_point(0.0, np.zeros(n_users + n_items), V, "regressor",
                                   vocabulary=vocab.to_dict(), seen=sp.csr_matrix(seen))
    rec = Recommender(artifact)
    for u in range(n_users):
        result = rec.recommend(users[u], k=3)
        assert result.items[0] == items[withheld[u]]
        assert result.scores[0] == pytest.approx(1.0) and result.scores[1] == pytest.approx(0.0)


def test_sagemaker_model_top10_equals_scoring_every_unrated_item(sagemaker_u1, ml100k):
    """The all-items product agrees with the seed's way: one row per unrated movie."""
    from fmkit.model_store import load_model as load
    from fmkit.features.vocabulary import Field
    from fmkit.sparse import SparseBatch

    art = load(sagemaker_u1 / "model.tar.gz")
    base = np.loadtxt(ml100k / "u1.base", dtype=np.int64)
    seen = sp.csr_matrix((np.ones(len(base), np.float32), (base[:, 0] - 1, base[:, 1] - 1)),
                         shape=(943, 1682))
    art.seen = seen
    art.vocabulary = Vocabulary(2625, [
        Field("user", 0, 943, "user", True, tuple(str(i) for i in range(1, 944))),
        Field("item", 943, 1682, "item", True, tuple(str(i) for i in range(1, 1683)))],
        "user", "item").to_dict()
    rec = Recommender(art)
    predictor = Predictor(art)
    for user in (1, 196, 943):
        unrated = np.setdiff1d(np.arange(1682), seen[user - 1].indices)
        m = unrated.shape[0]
        rows = SparseBatch.from_arrays(np.stack([np.full(m, user - 1), 943 + unrated], 1).ravel(),
                                       np.arange(0, 2 * m + 1, 2), np.ones(2 * m), feature_dim=2625)
        scores = predictor.predict_scores(rows)
        order = unrated[np.argsort(-scores, kind="stable")[:10]]
        got = rec.recommend(str(user), k=10)
        assert got.items == [str(i + 1) for i in order]
        np.testing.assert_allclose(got.scores, np.sort(scores)[::-1][:10], rtol=1e-5)


def test_implicit_feedback_rows_score_as_the_data_rows(tmp_path):
    """A model on `prepare movielens --implicit` rows recommends from the same rows."""
    from helpers.movielens import write_fake_ml100k

    from fmkit.bayes import fit_mcmc
    from fmkit.config import FMConfig
    from fmkit.datasets.movielens import load_movielens

    src = write_fake_ml100k(tmp_path / "ml")
    data = load_movielens(src, target="rating", side_features=True, implicit=True)
    vocab = data.vocabulary
    cfg = FMConfig.from_values({"predictor_type": "regressor", "num_factors": 3, "epochs": 8,
                                "burn_in": 4, "seed": 0, "feature_dim": vocab.feature_dim})
    artifact, _ = fit_mcmc(cfg, data.train, groups=vocab.groups())
    artifact.vocabulary = vocab.to_dict()
    rec = Recommender(artifact)
    test = np.loadtxt(src / "ua.test", dtype=np.int64)
    expected = Predictor(artifact).predict_scores(data.test)
    item_ids = vocab.ids("item")
    for k in (0, 5, len(test) - 1):
        scores = rec.score_rows(rec.user_rows([str(test[k, 0])]))[0]
        assert scores[item_ids.index(str(test[k, 1]))] == pytest.approx(expected[k], rel=1e-5)
