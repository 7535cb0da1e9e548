"""user_item models (pairs only between the user block and the other keys) on every path.

Bulk scoring, the request fast path, recommendations, similar items, save/load, export,
batch transform and the HTTP app all give the float64 reference of

    y = w0 + x.w + sum_f (sum_{j in U} x_j V[j, f]) * (sum_{j not in U} x_j V[j, f]).
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse as sp
from helpers.reference import naive_fm, naive_user_item

from fmkit.artifact import Artifact, load, save
from fmkit.errors import ArtifactError
from fmkit.features.vocabulary import Vocabulary
from fmkit.inference.export import export
from fmkit.inference.predictor import Predictor
from fmkit.inference.recommend import Recommender
from fmkit.sparse import SparseBatch
from inference.toy import FEATURE_DIM, ITEMS, USERS, make_artifact, pair_rows

# the toy vocabulary's user-role fields: user 0-5 and age 19-20 (genre 16-18 is item side,
# device 21-22 context: both in the item block)
USER_BLOCK = [[0, 6], [19, 21]]
MASK = np.zeros(FEATURE_DIM, bool)
MASK[0:6] = MASK[19:21] = True

KINDS = [
    pytest.param(dict(predictor_type="regressor"), id="one-sample"),
    pytest.param(dict(predictor_type="binary_classifier", samples=3, link="probit"), id="mcmc"),
]


def make_user_item(rng, **kind) -> Artifact:
    artifact = make_artifact(rng, **kind)
    artifact.metadata.update(solver="mcmc", interactions="user_item", user_block=USER_BLOCK)
    return artifact


def as_all(artifact: Artifact) -> Artifact:
    """The same weights as an ordinary FM."""
    meta = {k: v for k, v in artifact.metadata.items()
            if k not in ("interactions", "user_block")}
    return replace(artifact, metadata=meta)


def reference(artifact, X) -> np.ndarray:
    return np.stack([naive_user_item(X, artifact.w0[s], artifact.w[s], artifact.V[s], MASK)
                     for s in range(artifact.num_samples)])


# rows with duplicates (within and across blocks), unsorted keys, empty rows, values != 1
ROWS = [
    ([0, 6, 16, 19, 21], [1.0, 1.0, 0.5, 1.0, 1.0]),   # sorted, both blocks, context
    ([], []),                                           # empty
    ([6, 0, 6, 20, 3, 17], [2.0, 1.0, -0.5, 0.25, 1.5, 3.0]),  # unsorted, duplicate item key
    ([3, 3, 9], [1.0, 1.0, 2.0]),                      # duplicate user key
    ([1, 2, 19], [1.0, 1.0, 1.0]),                     # user block only: linear terms
    ([7, 8, 22], [1.0, 0.5, 1.0]),                     # item block only: linear terms
    ([], []),                                           # empty, last
]


def _batch(rows):
    indices = [k for keys, _ in rows for k in keys]
    values = [v for _, vals in rows for v in vals]
    offsets = np.cumsum([0] + [len(keys) for keys, _ in rows])
    return SparseBatch.from_arrays(indices, offsets, values, feature_dim=FEATURE_DIM)


def _csr(batch):
    return sp.csr_matrix((batch.values, batch.indices, batch.offsets),
                         shape=(batch.offsets.shape[0] - 1, FEATURE_DIM))


# ---------------------------------------------------------------------------- predictor
@pytest.mark.parametrize("kind", KINDS)
def test_decision_function_matches_naive_user_item(rng, kind):
    artifact = make_user_item(rng, **kind)
    batch = _batch(ROWS)
    got = Predictor(artifact).decision_function(batch)
    np.testing.assert_allclose(got, reference(artifact, _csr(batch)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_fast_path_matches_naive_user_item(rng, kind):
    artifact = make_user_item(rng, **kind)
    predictor = Predictor(artifact)
    batch = _batch(ROWS)
    fast = predictor.decision_rows(batch.indices, batch.offsets, batch.values)
    np.testing.assert_allclose(fast, reference(artifact, _csr(batch)), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(fast, predictor.decision_function(batch), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(fast[:, [1, 6]], np.repeat(artifact.w0[:, None], 2, axis=1))
    out = predictor.predict_batch(batch)
    np.testing.assert_allclose(out["score"], predictor.predict_scores(batch), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("row", range(len(ROWS)))
def test_fast_path_single_row(rng, kind, row):
    """One row (the single-request sub-path), sorted or not, with duplicates or empty."""
    artifact = make_user_item(rng, **kind)
    batch = _batch([ROWS[row]])
    fast = Predictor(artifact).decision_rows(batch.indices, batch.offsets, batch.values)
    np.testing.assert_allclose(fast, reference(artifact, _csr(batch)), rtol=1e-6, atol=1e-6)


def test_fast_path_large_batch_in_blocks(rng):
    """More non-zeros than one gather block holds: the rows are scored block by block."""
    artifact = make_user_item(rng)
    predictor = Predictor(artifact)
    X = sp.random(12000, FEATURE_DIM, density=1.0, format="csr", random_state=3,
                  dtype=np.float32)
    assert X.nnz > (1 << 20) // artifact.num_factors
    batch = SparseBatch.from_matrix(X)
    fast = predictor.decision_rows(batch.indices, batch.offsets, batch.values)
    head = X[:50]
    np.testing.assert_allclose(fast[:, :50], reference(artifact, head), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(fast, predictor.decision_function(X), rtol=1e-4, atol=1e-4)


def test_no_nonzeros_give_w0(rng):
    artifact = make_user_item(rng, predictor_type="binary_classifier", samples=3, link="probit")
    predictor = Predictor(artifact)
    batch = _batch([([], []), ([], [])])
    fast = predictor.decision_rows(batch.indices, batch.offsets, batch.values)
    np.testing.assert_array_equal(fast, np.repeat(artifact.w0[:, None], 2, axis=1))
    np.testing.assert_allclose(predictor.decision_function(batch), fast)


@pytest.mark.parametrize("kind", KINDS)
def test_ordinary_model_with_the_same_weights_is_unchanged(rng, kind):
    ui = make_user_item(rng, **kind)
    ordinary = as_all(ui)
    assert ordinary.interactions == "all" and ordinary.user_block is None
    batch = _batch(ROWS)
    X = _csr(batch)
    full = np.stack([naive_fm(X, ordinary.w0[s], ordinary.w[s], ordinary.V[s])
                     for s in range(ordinary.num_samples)])
    predictor = Predictor(ordinary)
    np.testing.assert_allclose(predictor.decision_function(batch), full, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(predictor.decision_rows(batch.indices, batch.offsets,
                                                       batch.values), full,
                               rtol=1e-6, atol=1e-6)
    # the two families differ on rows with pairs inside a block, agree on the others
    ui_out = Predictor(ui).decision_function(batch)
    assert np.abs(ui_out[:, [0, 2, 4, 5]] - full[:, [0, 2, 4, 5]]).min() > 1e-3
    np.testing.assert_allclose(ui_out[:, [1, 3, 6]], full[:, [1, 3, 6]], rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------- recommend
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("context", [None, {"device": "app"}, {"age": "old"}],
                         ids=["no-context", "item-block-context", "user-block-context"])
def test_recommender_scores_equal_predictor(rng, kind, context):
    artifact = make_user_item(rng, **kind)
    vocab = Vocabulary.from_dict(artifact.vocabulary)
    rec = Recommender(artifact)
    predictor = Predictor(artifact)
    for user in [*USERS, "newbie"]:
        rows = rec.user_rows([user], context)
        expected = predictor.predict_scores(pair_rows(vocab, user, ITEMS, context))
        np.testing.assert_allclose(rec.score_rows(rows)[0], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_recommend_top_k_order_matches_predictor(rng, kind):
    artifact = make_user_item(rng, **kind)
    vocab = Vocabulary.from_dict(artifact.vocabulary)
    rec = Recommender(artifact)
    predictor = Predictor(artifact)
    for u, user in enumerate(USERS):
        expected = predictor.predict_scores(pair_rows(vocab, user, ITEMS))
        seen = set(artifact.seen[u].indices.tolist())
        order = sorted((j for j in range(len(ITEMS)) if j not in seen),
                       key=lambda j: (-expected[j], j))[:4]
        result = rec.recommend(user, k=4)
        assert result.items == [ITEMS[j] for j in order]
        np.testing.assert_allclose(result.scores, expected[order], rtol=1e-5, atol=1e-5)
    # the Predictor's own recommend goes through the same tables
    assert predictor.recommend(["u0"], k=3)[0].items == rec.recommend("u0", k=3).items


@pytest.mark.parametrize("kind", KINDS)
def test_recommender_items_with_user_block_keys(rng, kind):
    """Candidate rows holding a user-block key need the wider tables; still exact."""
    artifact = make_user_item(rng, **kind)
    vocab = Vocabulary.from_dict(artifact.vocabulary)
    items = sp.lil_matrix(vocab.entity_rows("item", ITEMS))
    items[2, 20] = 1.0   # a user-block key on two item rows
    items[5, 3] = 0.5
    items = sp.csr_matrix(items, dtype=np.float32)
    rec = Recommender(artifact, items=items, item_ids=ITEMS)
    predictor = Predictor(artifact)
    for user, context in [("u1", None), ("u4", {"device": "web"}), ("newbie", None)]:
        users = rec.user_rows([user], context)
        pairs = sp.csr_matrix(sp.vstack([users] * len(ITEMS)) + items)
        np.testing.assert_allclose(rec.score_rows(users)[0], predictor.predict_scores(pairs),
                                   rtol=1e-5, atol=1e-5)


def test_similar_items_use_the_item_block_factors(rng):
    artifact = make_user_item(rng)
    vocab = Vocabulary.from_dict(artifact.vocabulary)
    factors = np.asarray(vocab.entity_rows("item", ITEMS) @ artifact.V[0].astype(np.float64))
    unit = factors / np.linalg.norm(factors, axis=1, keepdims=True)
    sims = unit @ unit[3]
    sims[3] = -np.inf
    order = sorted(range(len(ITEMS)), key=lambda j: (-sims[j], j))[:4]
    result = Recommender(artifact).similar("i3", k=4)
    assert result.items == [ITEMS[j] for j in order]
    np.testing.assert_allclose(result.scores, sims[order], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------- artifact
def test_save_load_keeps_user_item(rng, tmp_path):
    artifact = make_user_item(rng, predictor_type="binary_classifier", samples=3, link="probit")
    loaded = load(save(artifact, tmp_path / "m"))
    meta = json.loads((tmp_path / "m" / "metadata.json").read_text())
    assert meta["interactions"] == "user_item" and meta["user_block"] == USER_BLOCK
    assert loaded.interactions == "user_item"
    np.testing.assert_array_equal(loaded.user_block, MASK)
    batch = _batch(ROWS)
    before, after = Predictor(artifact), Predictor(loaded)
    np.testing.assert_array_equal(after.predict_scores(batch), before.predict_scores(batch))
    np.testing.assert_array_equal(after.predict_batch(batch)["score"],
                                  before.predict_batch(batch)["score"])


@pytest.mark.parametrize("metadata,message", [
    ({"interactions": "bogus"}, "unknown interactions"),
    ({"interactions": "user_item"}, "user_block"),
    ({"interactions": "user_item", "user_block": []}, "user_block"),
    ({"interactions": "user_item", "user_block": [[3, 2]]}, "user_block"),
    ({"interactions": "user_item", "user_block": [[0, FEATURE_DIM + 1]]}, "user_block"),
    ({"interactions": "user_item", "user_block": [[-1, 3]]}, "user_block"),
    ({"interactions": "user_item", "user_block": [[0.0, 6]]}, "user_block"),
    ({"interactions": "user_item", "user_block": [[0, 6, 7]]}, "user_block"),
    ({"interactions": "user_item", "user_block": "0:6"}, "user_block"),
])
def test_check_rejects_bad_interactions(rng, tmp_path, metadata, message):
    artifact = make_artifact(rng)
    artifact.metadata.update(metadata)
    with pytest.raises(ArtifactError, match=message):
        artifact.check()
    with pytest.raises(ArtifactError, match=message):
        Predictor(artifact)
    with pytest.raises(ArtifactError, match=message):
        save(artifact, tmp_path / "m")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("metadata,message", [
    ({"interactions": "bogus"}, "unknown interactions 'bogus'"),
    ({"user_block": [[3, 2]]}, "user_block"),
])
def test_load_of_a_bad_model_names_the_folder(rng, tmp_path, metadata, message):
    save(make_user_item(rng), tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "metadata.json").read_text())
    meta.update(metadata)
    (tmp_path / "m" / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match=f"^{tmp_path / 'm'}: .*{message}"):
        load(tmp_path / "m")


# ---------------------------------------------------------------------------- export
@pytest.mark.parametrize("kind", [
    pytest.param(dict(predictor_type="regressor"), id="one-sample-identity"),
    pytest.param(dict(predictor_type="binary_classifier"), id="one-sample-logit"),
    pytest.param(dict(predictor_type="binary_classifier", samples=3, link="probit"), id="mcmc"),
])
@pytest.mark.parametrize("name", ["model.tar.gz", "model_algo-1", None])
def test_export_sagemaker_refuses_user_item(rng, tmp_path, kind, name):
    artifact = make_user_item(rng, **kind)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ArtifactError, match="user_item") as err:
        export(artifact, out / name if name else out, format="sagemaker")
    assert "--format npz" in str(err.value) and "SageMaker" in str(err.value)
    assert list(out.iterdir()) == []


def test_export_sagemaker_still_writes_ordinary_models(rng, tmp_path):
    path = export(as_all(make_user_item(rng)), tmp_path, format="sagemaker")
    assert path.name == "model.tar.gz" and path.stat().st_size > 0


def test_export_npz_holds_user_block(rng, tmp_path):
    artifact = make_user_item(rng)
    path = export(artifact, tmp_path / "m.npz", format="npz")
    with np.load(path, allow_pickle=False) as z:
        assert str(z["interactions"]) == "user_item"
        assert z["user_block"].dtype == np.bool_
        np.testing.assert_array_equal(z["user_block"], MASK)
        np.testing.assert_array_equal(z["V"], artifact.V)
        user_emb, item_emb = z["user_embeddings"], z["item_embeddings"]
        user_ids, item_ids = list(z["user_ids"]), list(z["item_ids"])
    # one sample: <user embedding, item embedding> is exactly the interaction term
    vocab = Vocabulary.from_dict(artifact.vocabulary)
    for u, user in enumerate(user_ids):
        rows = pair_rows(vocab, user, item_ids)
        y = reference(artifact, rows)[0]
        linear = artifact.w0[0] + np.asarray(rows @ artifact.w[0].astype(np.float64))
        np.testing.assert_allclose(item_emb @ user_emb[u], y - linear, rtol=1e-5, atol=1e-5)


def test_export_npz_of_ordinary_model_has_no_user_block(rng, tmp_path):
    path = export(as_all(make_user_item(rng)), tmp_path / "m.npz", format="npz")
    with np.load(path, allow_pickle=False) as z:
        assert "user_block" not in z.files and "interactions" not in z.files


# ---------------------------------------------------------------------------- transform, HTTP
def test_batch_transform_matches_predictor(rng, tmp_path):
    from fmkit.inference.transform import transform

    artifact = make_user_item(rng, predictor_type="binary_classifier", samples=3, link="probit")
    predictor = Predictor(artifact)
    batch = _batch(ROWS)
    X = _csr(batch)
    lines = [json.dumps({"data": {"features": {
        "keys": X[r].indices.tolist(), "shape": [FEATURE_DIM], "values": X[r].data.tolist()}}})
        for r in range(X.shape[0])]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "rows.jsonl").write_text("\n".join(lines) + "\n")
    transform(predictor, str(tmp_path / "in"), str(tmp_path / "out"),
              content_type="application/jsonlines")
    got = [json.loads(line)["score"]
           for line in (tmp_path / "out" / "rows.jsonl.out").read_text().splitlines()]
    np.testing.assert_allclose(got, predictor.predict_scores(X), rtol=1e-5, atol=1e-6)


def test_http_app_scores_and_recommends(rng):
    pytest.importorskip("starlette")
    from serving.conftest import client_for

    artifact = make_user_item(rng, predictor_type="binary_classifier", samples=3, link="probit")
    predictor = Predictor(artifact)
    batch = _batch(ROWS)
    X = _csr(batch)
    instances = [{"data": {"features": {"keys": X[r].indices.tolist(), "shape": [FEATURE_DIM],
                                        "values": X[r].data.tolist()}}}
                 for r in range(X.shape[0])]
    expected = predictor.predict_scores(X)
    with client_for(predictor) as client:
        r = client.post("/invocations", json={"instances": instances})
        assert r.status_code == 200
        got = [p["score"] for p in r.json()["predictions"]]
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
        # one instance per request: the single-row fast path
        for i, instance in enumerate(instances):
            r = client.post("/invocations", json={"instances": [instance]})
            assert r.json()["predictions"][0]["score"] == pytest.approx(float(expected[i]),
                                                                        rel=1e-5, abs=1e-6)
        r = client.post("/recommend", json={"user": "u2", "k": 3,
                                            "context": {"device": "app"}})
        assert r.status_code == 200
        vocab = Vocabulary.from_dict(artifact.vocabulary)
        scores = predictor.predict_scores(pair_rows(vocab, "u2", ITEMS, {"device": "app"}))
        seen = set(artifact.seen[2].indices.tolist())
        order = sorted((j for j in range(len(ITEMS)) if j not in seen),
                       key=lambda j: (-scores[j], j))[:3]
        body = r.json()
        assert [x["item"] for x in body["recommendations"]] == [ITEMS[j] for j in order]
        assert [x["score"] for x in body["recommendations"]] == \
            pytest.approx(scores[order].tolist(), rel=1e-5, abs=1e-6)
        r = client.post("/similar", json={"item": "i3", "k": 2})
        assert r.status_code == 200 and len(r.json()["similar"]) == 2
