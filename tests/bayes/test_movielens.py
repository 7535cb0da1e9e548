"""Quality floors on MovieLens 100K ua (skipped when ../shared/data is absent)."""

from __future__ import annotations

import pytest

from fmkit.artifact import save
from fmkit.bayes import fit_als, fit_mcmc
from fmkit.config import FMConfig
from fmkit.inference.predictor import Predictor
from fmkit.metrics import compute_metrics

pytestmark = pytest.mark.slow


def _data(path, target):
    from fmkit.datasets.movielens import load_movielens

    return load_movielens(path, split="ua", target=target)


def test_mcmc_rating_floor_and_exact_reload(ml100k, tmp_path):
    data = _data(ml100k, "rating")
    cfg = FMConfig.from_values({"predictor_type": "regressor", "num_factors": 8, "epochs": 60,
                                "burn_in": 20, "seed": 0, "factors_init_sigma": 0.1})
    art, history = fit_mcmc(cfg, data.train, groups=data.vocabulary.groups(), test=data.test)
    assert history[-1]["test:rmse"] < 0.93
    assert art.num_samples == 40
    save(art, tmp_path / "bfm")
    scores = Predictor.load(tmp_path / "bfm").predict_scores(data.test)
    assert compute_metrics("regressor", data.test.labels, scores)["test:rmse"] == \
        history[-1]["test:rmse"]


def test_mcmc_binary_floor(ml100k):
    data = _data(ml100k, "binary")
    cfg = FMConfig.from_values({"predictor_type": "binary_classifier", "num_factors": 8,
                                "epochs": 100, "burn_in": 30, "seed": 0,
                                "factors_init_sigma": 0.1})
    _, history = fit_mcmc(cfg, data.train, groups=data.vocabulary.groups(), test=data.test)
    assert history[-1]["test:auc"] > 0.765
    assert history[-1]["test:binary_classification_accuracy"] > 0.70


def test_als_rating_floor(ml100k):
    data = _data(ml100k, "rating")
    cfg = FMConfig.from_values({"predictor_type": "regressor", "num_factors": 8, "epochs": 15,
                                "seed": 0})
    art, history = fit_als(cfg, data.train, test=data.test)
    assert history[-1]["test:rmse"] < 0.93
    assert art.metadata["regularisation"]["linear"] == 1.0
