"""fit_mcmc: planted recovery, block/per-key equality, kept samples, save -> load -> predict."""

from __future__ import annotations

import numpy as np
import pytest

from fmkit.artifact import load, save
from fmkit.bayes import fit_mcmc
from fmkit.bayes.gibbs import default_burn_in, kept_sweeps
from fmkit.bayes.groups import Block
from fmkit.bayes.kernels import BACKENDS
from fmkit.bayes.sampler import CoordinateSampler
from fmkit.config import FMConfig
from fmkit.datasets.synthetic import fm_scores, make_planted_fm
from fmkit.errors import ConfigError, DataError
from fmkit.inference.predictor import Predictor
from fmkit.metrics import auc, compute_metrics, rmse
from fmkit.sparse import SparseBatch


def _config(**kw):
    values = {"predictor_type": "regressor", "num_factors": 4, "epochs": 40, "seed": 3,
              "factors_init_sigma": 0.1}
    values.update(kw)
    return FMConfig.from_values(values)


def _one_hot(n_rows=800, users=30, items=40, k=3, seed=0, binary=False):
    """User x item one-hot rows with labels from a planted FM (users, then items)."""
    rng = np.random.default_rng(seed)
    u = rng.integers(0, users, n_rows)
    i = rng.integers(0, items, n_rows)
    F = users + items
    indices = np.stack([u, users + i], axis=1).ravel()
    offsets = np.arange(n_rows + 1) * 2
    w = rng.normal(0, 0.5, F)
    V = rng.normal(0, 0.6, (F, k))
    batch = SparseBatch.from_arrays(indices, offsets, np.ones(2 * n_rows), feature_dim=F)
    y = fm_scores(batch, 0.5, w, V)
    if binary:
        labels = (y + rng.standard_normal(n_rows) > 0).astype(np.float32)
    else:
        labels = y + rng.normal(0, 0.2, n_rows)
    groups = np.r_[np.zeros(users, np.int64), np.ones(items, np.int64)]
    return batch.with_labels(labels.astype(np.float32)), y, groups


def test_planted_regression_is_recovered():
    data = make_planted_fm(3000, 40, 4, nnz_per_row=5, noise=0.1, seed=1)
    train, test = data.batch.slice(0, 2500), data.batch.slice(2500, 3000)
    art, history = fit_mcmc(_config(epochs=60), train, test=test)
    truth = data.logits[2500:]
    pred = Predictor(art).predict_scores(test)
    spread = float(np.std(truth))
    assert rmse(truth, pred) < 0.1 * spread  # near the noise-free scores
    assert history[-1]["test:rmse"] < 0.1 + 0.1 * spread
    assert history[-1]["test:rmse"] < history[0]["test:rmse"] / 3
    assert art.num_samples == 54  # 60 sweeps, burn-in 6, every post-burn-in sample kept
    assert art.metadata["burn_in"] == 6


def test_planted_probit_classifier_reaches_the_planted_auc():
    batch, y, groups = _one_hot(3000, 15, 20, k=2, binary=True, seed=2)
    train, test = batch.slice(0, 2500), batch.slice(2500, 3000)
    cfg = _config(predictor_type="binary_classifier", num_factors=2, epochs=60)
    art, history = fit_mcmc(cfg, train, groups=groups, test=test)
    assert art.link == "probit"
    planted = auc(test.labels, y[2500:])
    got = history[-1]["test:auc"]
    assert got > planted - 0.03, (got, planted)
    assert history[-1]["test:binary_classification_accuracy"] > 0.8
    assert history[-1]["test:auc"] > history[0]["test:auc"] + 0.03


@pytest.mark.parametrize("likelihood", ["gaussian", "probit"])
def test_block_and_per_key_sweeps_give_the_same_samples_on_one_hot_data(likelihood):
    batch, _, groups = _one_hot(binary=likelihood == "probit")
    X = batch.to_csr()
    labels = batch.labels.astype(np.float64)
    runs = []
    for backend in BACKENDS:
        for blocks in (None, [Block(0, X.shape[1], False)]):
            s = CoordinateSampler(X, labels, groups, 3, np.random.default_rng(7),
                                  likelihood=likelihood, backend=backend, blocks=blocks)
            if blocks is None:
                assert [(b.start, b.stop, b.independent) for b in s.blocks] == [
                    (0, 30, True), (30, 70, True)]
            for _ in range(5):
                s.sweep()
            runs.append(s.parameters() + (s.alpha,))
    for other in runs[1:]:
        assert other[0] == pytest.approx(runs[0][0], rel=1e-9)
        np.testing.assert_allclose(other[1], runs[0][1], rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(other[2], runs[0][2], rtol=1e-8, atol=1e-10)
        assert other[3] == pytest.approx(runs[0][3], rel=1e-9)


def test_backends_agree_on_multi_hot_data():
    data = make_planted_fm(400, 20, 3, nnz_per_row=4, seed=4)
    X = data.batch.to_csr()
    runs = []
    for backend in BACKENDS:
        s = CoordinateSampler(X, data.batch.labels.astype(float), np.arange(20) % 3, 3,
                              np.random.default_rng(1), backend=backend)
        for _ in range(4):
            s.sweep()
        runs.append(s.parameters())
    for other in runs[1:]:
        np.testing.assert_allclose(other[2], runs[0][2], rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("task", ["regressor", "binary_classifier"])
def test_save_load_predict_reproduces_training_metrics_exactly(tmp_path, task):
    batch, _, groups = _one_hot(1200, 25, 30, binary=task == "binary_classifier", seed=5)
    train, test = batch.slice(0, 1000), batch.slice(1000, 1200)
    cfg = _config(predictor_type=task, epochs=30, burn_in=10, keep_samples=7)
    art, history = fit_mcmc(cfg, train, groups=groups, test=test)
    assert art.num_samples == 7
    assert art.metadata["kept_sweeps"] == kept_sweeps(30, 10, 7, 55, 4)
    save(art, tmp_path / "model")
    predictor = Predictor.load(tmp_path / "model")
    scores = predictor.predict_scores(test)
    again = compute_metrics(task, test.labels, scores)
    final = {k: v for k, v in history[-1].items() if k.startswith("test:")}
    assert again == final == load(tmp_path / "model").metadata["test_metrics"]
    assert load(tmp_path / "model").metadata["groups"] == [[0, 0, 25], [1, 25, 55]]


def test_history_reports_running_mean_after_burn_in():
    batch, _, groups = _one_hot(600, 20, 20, seed=6)
    train, test = batch.slice(0, 500), batch.slice(500, 600)
    seen = []
    art, history = fit_mcmc(_config(epochs=12, burn_in=4), train, groups=groups, test=test,
                            callback=lambda epoch, logs: seen.append(epoch) and None)
    assert seen == list(range(1, 13)) == [h["epoch"] for h in history]
    assert all({"test:rmse", "train:rmse", "seconds"} <= set(h) for h in history)
    # the last entry is the mean over all 8 kept samples
    pred = Predictor(art).predict_scores(test)
    assert history[-1]["test:rmse"] == rmse(test.labels, pred)


def test_callback_stops_early_and_keeps_what_it_has():
    batch, _, _ = _one_hot(300, 10, 10)
    art, history = fit_mcmc(_config(epochs=50, burn_in=10), batch,
                            callback=lambda epoch, logs: epoch == 3)
    assert len(history) == 3 and art.num_samples == 1 and art.metadata["sweeps"] == 3
    art, history = fit_mcmc(_config(epochs=50, burn_in=10), batch,
                            callback=lambda epoch, logs: epoch == 14)
    assert art.num_samples == 4 and art.metadata["kept_sweeps"] == [11, 12, 13, 14]


def test_same_seed_same_samples_and_seed_matters():
    batch, _, _ = _one_hot(300, 10, 10)
    a, _ = fit_mcmc(_config(epochs=8), batch)
    b, _ = fit_mcmc(_config(epochs=8), batch)
    c, _ = fit_mcmc(_config(epochs=8, seed=4), batch)
    np.testing.assert_array_equal(a.V, b.V)
    assert not np.allclose(a.V, c.V)


def test_default_burn_in_depends_on_the_likelihood():
    assert default_burn_in(200, "regressor") == 20 and default_burn_in(60, "regressor") == 6
    assert default_burn_in(200, "binary_classifier") == 50
    assert default_burn_in(40, "binary_classifier") == 10


def test_kept_sweeps_are_even_and_end_at_the_last():
    kept = kept_sweeps(200, 50, None, 2625, 8)
    assert kept == [50 + ((j + 1) * 150) // 100 for j in range(100)]
    assert kept[0] == 51 and kept[-1] == 200 and len(set(kept)) == 100
    assert kept_sweeps(10, 2, 3, 5, 2) == [4, 7, 10]
    assert kept_sweeps(10, 2, 50, 5, 2) == list(range(3, 11))
    # the default keeps the samples under 256 MiB
    assert len(kept_sweeps(500, 50, None, 10_000_000, 63)) == 1
    assert len(kept_sweeps(500, 50, None, 200_000, 63)) == 5  # 51.2 MB per sample


def test_bad_inputs_raise_clear_errors():
    batch, _, _ = _one_hot(100, 5, 5)
    with pytest.raises(ConfigError, match="burn_in must be smaller than epochs"):
        fit_mcmc(_config(epochs=5, burn_in=5), batch)
    with pytest.raises(ConfigError, match="backend must be one of"):
        fit_mcmc(_config(), batch, backend="cuda")
    with pytest.raises(DataError, match="row 0: binary_classifier labels must be 0 or 1"):
        fit_mcmc(_config(predictor_type="binary_classifier"), batch)
    with pytest.raises(DataError, match="names 11 feature keys"):
        fit_mcmc(_config(), batch, groups=np.zeros(11, np.int64))
    with pytest.raises(DataError, match="needs a label"):
        fit_mcmc(_config(), SparseBatch.from_arrays(batch.indices, batch.offsets,
                                                    batch.values, feature_dim=10))


def test_unused_keys_are_drawn_from_their_prior_and_stay_finite():
    data = make_planted_fm(300, 20, 2, nnz_per_row=3, seed=8, empty_rows=10)
    art, _ = fit_mcmc(_config(epochs=10, feature_dim=30), data.batch,
                      groups=np.r_[np.zeros(20, np.int64), np.ones(10, np.int64)])
    assert art.feature_dim == 30 and np.all(np.isfinite(art.V))
    assert np.std(art.V[:, 20:]) > 0  # sampled, not frozen


def test_weighted_rows_run_on_both_backends_alike():
    data = make_planted_fm(300, 20, 2, nnz_per_row=3, seed=9)
    b = data.batch
    weighted = SparseBatch(b.indices, b.offsets, b.values, b.labels,
                           np.linspace(0.5, 2.0, 300).astype(np.float32), b.feature_dim)
    runs = [fit_mcmc(_config(epochs=6), weighted, backend=k)[0] for k in BACKENDS]
    for other in runs[1:]:
        np.testing.assert_allclose(other.V, runs[0].V, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("likelihood", ["gaussian", "probit"])
def test_torch_backend_follows_the_numpy_backend(likelihood):
    pytest.importorskip("torch")
    from fmkit.bayes.torch_sampler import TorchSampler

    batch, _, groups = _one_hot(400, 12, 15, binary=likelihood == "probit", seed=11)
    rng = np.random.default_rng(3)
    X = batch.to_csr().tolil()
    X.resize((400, 31))  # + 4 co-occurring "genre" keys, two per row
    for i in range(400):
        for key in rng.choice(4, size=2, replace=False):
            X[i, 27 + key] = 0.5
    X = X.tocsr()
    groups = np.r_[groups, np.full(4, 2)]
    labels = batch.labels.astype(np.float64)
    weights = np.linspace(0.5, 1.5, 400)
    a = CoordinateSampler(X, labels, groups, 3, np.random.default_rng(5), likelihood=likelihood,
                          backend="numpy", row_weights=weights)
    b = TorchSampler(X, labels, groups, 3, np.random.default_rng(5), likelihood=likelihood,
                     device="cpu", row_weights=weights)
    assert [(k.start, k.stop, k.independent) for k in b.blocks] == [
        (0, 12, True), (12, 27, True), (27, 31, False)]
    for _ in range(12):  # past a refresh of the predictions
        a.sweep()
        b.sweep()
    pa, pb = a.parameters(), b.parameters()
    assert pb[0] == pytest.approx(pa[0], rel=1e-8)
    np.testing.assert_allclose(pb[1], pa[1], rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(pb[2], pa[2], rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(b.residuals(), a.residuals(), rtol=1e-7, atol=1e-9)


def test_fit_mcmc_torch_backend_saves_an_exact_model(tmp_path):
    pytest.importorskip("torch")
    batch, _, groups = _one_hot(500, 10, 12, seed=12)
    train, test = batch.slice(0, 400), batch.slice(400, 500)
    art, history = fit_mcmc(_config(epochs=8, burn_in=2, device="cpu"), train, groups=groups,
                            test=test, backend="torch")
    assert art.metadata["backend"] == "torch" and art.num_samples == 6
    save(art, tmp_path / "m")
    scores = Predictor.load(tmp_path / "m").predict_scores(test)
    assert compute_metrics("regressor", test.labels, scores)["test:rmse"] == \
        history[-1]["test:rmse"]


@pytest.mark.gpu
def test_torch_backend_on_cuda_follows_the_numba_chain():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    batch, _, groups = _one_hot(600, 15, 20, seed=13)
    cfg = _config(epochs=10, burn_in=5)
    cpu, _ = fit_mcmc(cfg, batch, groups=groups)
    gpu, _ = fit_mcmc(cfg.replace(device="cuda"), batch, groups=groups)
    assert gpu.metadata["backend"] == "torch"
    np.testing.assert_allclose(gpu.V, cpu.V, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("task", ["regressor", "binary_classifier"])
def test_train_metrics_are_the_posterior_mean_of_the_kept_samples(task):
    train, _, groups = _one_hot(binary=task == "binary_classifier")
    artifact, _ = fit_mcmc(_config(predictor_type=task, epochs=30, burn_in=10), train,
                           groups=groups)
    ours = artifact.metadata["train_metrics"]
    scores = Predictor(artifact).predict_scores(train)  # every kept sample, float32 weights
    ref = compute_metrics(task, train.labels, scores, prefix="train")
    assert set(ours) == set(ref)
    for key, value in ref.items():
        assert ours[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
