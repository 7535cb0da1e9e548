"""interactions with the SGD solver: 'auto' picks user_item when the vocabulary has side
fields, the torch step trains it, and the saved model scores as the trainer did."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.movielens import write_fake_ml100k
from helpers.reference import naive_user_item

from fmkit.artifact import load, mask_runs, save
from fmkit.config import FMConfig
from fmkit.datasets.movielens import load_movielens
from fmkit.engine.trainer import fit, resolve_interactions
from fmkit.errors import ConfigError
from fmkit.inference.predictor import Predictor


@pytest.fixture(scope="module")
def ml(tmp_path_factory):
    folder = write_fake_ml100k(tmp_path_factory.mktemp("ml"))
    return {side: load_movielens(folder, split="ua", target="rating", side_features=side)
            for side in (False, True)}


def _cfg(**kw):
    return FMConfig.from_values({"predictor_type": "regressor", "num_factors": 4, "epochs": 3,
                                 **kw})


def test_mask_runs():
    assert mask_runs(np.array([1, 1, 0, 1, 0, 0, 1], bool)) == [[0, 2], [3, 4], [6, 7]]
    assert mask_runs(np.zeros(3, bool)) == []


def test_auto_is_user_item_only_with_side_fields(ml):
    plain, side = ml[False], ml[True]
    F = side.train.feature_dim
    cfg, block = resolve_interactions(_cfg(), side.vocabulary, F)
    assert cfg.interactions == "user_item"
    np.testing.assert_array_equal(block, side.vocabulary.role_mask("user"))
    assert 0 < block.sum() < F
    for config, vocab in [(_cfg(), plain.vocabulary),  # user and item ids only: same model
                          (_cfg(), None),  # no vocabulary: no blocks known
                          (_cfg(interactions="all"), side.vocabulary),
                          (_cfg(solver="als"), side.vocabulary),
                          (_cfg(solver="mcmc", device="cuda"), side.vocabulary),  # CPU only
                          (FMConfig.from_values({"predictor_type": "regressor",
                                                 "num_factors": 4}, defaults="sagemaker"),
                           side.vocabulary)]:
        resolved, block = resolve_interactions(config, vocab, F)
        assert (resolved.interactions, block) == ("all", None)
    with pytest.raises(ConfigError, match="needs the user block"):
        resolve_interactions(_cfg(interactions="user_item"), None, F)


def test_sgd_user_item_model_trains_saves_and_scores(ml, tmp_path):
    data = ml[True]
    result = fit(_cfg(seed=3), data.train, test=data.test, vocabulary=data.vocabulary)
    art = result.artifact
    assert art.interactions == "user_item"
    assert art.metadata["hyperparameters"]["interactions"] == "user_item"
    mask = data.vocabulary.role_mask("user")
    np.testing.assert_array_equal(art.user_block, mask)
    # the model learned something, and the predictor scores it as the formula says
    X = data.test.to_csr()
    ref = naive_user_item(X, art.w0[0], art.w[0], art.V[0], mask)
    save(art, tmp_path / "m")
    scores = Predictor(load(tmp_path / "m")).predict_scores(data.test)
    np.testing.assert_allclose(scores, ref, rtol=1e-5, atol=1e-5)
    rmse = float(np.sqrt(np.mean((ref - data.test.labels) ** 2)))
    assert result.metrics["test:rmse"] == pytest.approx(rmse, rel=1e-5)
    # the same seed gives the same model; the ordinary FM on the same rows differs
    again = fit(_cfg(seed=3), data.train, vocabulary=data.vocabulary).artifact
    np.testing.assert_array_equal(again.V, art.V)
    ordinary = fit(_cfg(seed=3, interactions="all"), data.train, vocabulary=data.vocabulary)
    assert ordinary.artifact.interactions == "all"
    assert not np.allclose(ordinary.artifact.V, art.V)


def test_warm_start_follows_the_model(ml):
    data = ml[True]
    first = fit(_cfg(), data.train, vocabulary=data.vocabulary).artifact
    frozen = _cfg(epochs=1, factors_lr=0.0, linear_lr=0.0, bias_lr=0.0)
    again = fit(frozen, data.train, vocabulary=data.vocabulary, init=first).artifact
    assert again.interactions == "user_item"
    np.testing.assert_array_equal(again.V, first.V)
    # an ordinary model continued under 'auto' stays ordinary
    plain = fit(_cfg(interactions="all"), data.train, vocabulary=data.vocabulary).artifact
    assert fit(frozen, data.train, vocabulary=data.vocabulary,
               init=plain).artifact.interactions == "all"
    with pytest.raises(ConfigError, match="trained with interactions='all'; this job trains "
                                          "interactions='user_item'"):
        fit(frozen.replace(interactions="user_item"), data.train,
            vocabulary=data.vocabulary, init=plain)
    other = first.metadata["user_block"]
    first.metadata["user_block"] = [[other[0][0], other[0][1] - 1]] + other[1:]
    with pytest.raises(ConfigError, match="user block differs"):
        fit(frozen, data.train, vocabulary=data.vocabulary, init=first)


def test_plain_movielens_rows_stay_an_ordinary_fm(ml):
    data = ml[False]
    result = fit(_cfg(), data.train, vocabulary=data.vocabulary)
    assert result.artifact.interactions == "all"
    assert result.artifact.metadata["hyperparameters"]["interactions"] == "all"
