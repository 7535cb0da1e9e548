"""Tuner: every setting checked before any trial; trials recorded; the best model kept."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from fmkit.artifact import load
from fmkit.datasets.synthetic import make_planted_fm
from fmkit.errors import ConfigError, DataError
from fmkit.inference.predictor import Predictor
from fmkit.metrics import rmse
from fmkit.registry import Registry
from fmkit.sparse import SparseBatch
from fmkit.tuning import (
    CategoricalParameter,
    ContinuousParameter,
    IntegerParameter,
    Tuner,
)

BASE = {"predictor_type": "regressor", "epochs": 4, "mini_batch_size": 64}


@pytest.fixture(scope="module")
def data() -> tuple[SparseBatch, SparseBatch]:
    planted = make_planted_fm(1200, 40, 3, task="regressor", noise=0.1, seed=7)
    return planted.batch.slice(0, 1000), planted.batch.slice(1000, 1200)


def _tuner(reg: Registry, **kw: object) -> Tuner:
    args: dict[str, object] = {
        "base": BASE,
        "ranges": {"factors_lr": ContinuousParameter(1e-3, 0.1, "Logarithmic"),
                   "num_factors": IntegerParameter(2, 6)},
        "max_jobs": 4, "registry": reg, "strategy": "random", "seed": 1}
    args.update(kw)
    return Tuner(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"objective_metric_name": "test:binary_classification_accuracy"},
         "is not emitted by predictor_type='regressor'; it emits test:rmse"),
        ({"objective_metric_name": "test:rmsee"}, "unknown objective metric 'test:rmsee'"),
        ({"objective_metric_name": "rmse"}, "not '<channel>:<metric>'"),
        ({"objective_metric_name": "validation:rmse"}, "needs a validation channel"),
        ({"direction": "up"}, "direction must be 'minimize' or 'maximize'"),
        ({"strategy": "grid"}, "strategy must be one of bayesian, random, hyperband"),
        ({"max_jobs": 0}, "max_jobs must be an int >= 1"),
        ({"max_parallel_jobs": 0}, "max_parallel_jobs must be an int >= 1"),
        ({"max_run_seconds": -1}, "max_run_seconds must be a number > 0"),
        ({"name": "x" * 40}, "at most 32 characters"),
        ({"base": {"epochs": 3}}, "predictor_type must be set"),
        ({"base": {**BASE, "num_factors": 4}}, "'num_factors' is both fixed and given a range"),
        ({"base": {**BASE, "bogus": 1}}, "unknown hyperparameter 'bogus'"),
        ({"ranges": {"factors_lr": ContinuousParameter(0.0, 0.1, "Logarithmic")}},
         "includes values <= 0"),
        ({"ranges": {"factors_init_method": CategoricalParameter(["normal", "uniform"])}},
         "factors_init_method='uniform' with the fixed hyperparameters is not a valid job"),
        ({"validation_fraction": 1.0}, "validation_fraction must be a number between 0 and 1"),
        ({"validation_fraction": 0}, "validation_fraction must be a number between 0 and 1"),
    ],
)
def test_bad_settings_fail_before_any_trial(tmp_path: Path, data: tuple[SparseBatch, SparseBatch],
                                            change: dict[str, object], message: str) -> None:
    reg = Registry(tmp_path)
    with pytest.raises(ConfigError) as info:
        _tuner(reg, **change).fit(*data)
    assert message in str(info.value)
    assert reg.tuning.list() == [] and reg.jobs.list() == []


def test_objective_channel_must_be_given(tmp_path: Path,
                                         data: tuple[SparseBatch, SparseBatch]) -> None:
    reg = Registry(tmp_path)
    with pytest.raises(ConfigError, match="needs a test channel"):
        _tuner(reg).fit(data[0])
    with pytest.raises(DataError, match="train must be a SparseBatch"):
        _tuner(reg).fit(np.zeros((3, 3)))  # type: ignore[arg-type]


def test_tuning_job_records_trials_and_keeps_the_best_model(
        tmp_path: Path, data: tuple[SparseBatch, SparseBatch]) -> None:
    reg = Registry(tmp_path)
    train, test = data
    result = _tuner(reg, name="tj", max_jobs=5).fit(train, test)
    assert result.status == "Completed" and len(result.trials) == 5
    values = [t.objective_value for t in result.trials]
    assert all(v is not None for v in values)
    assert result.best_value == min(values)  # type: ignore[type-var]
    best = result.best_trial
    assert best is not None and result.best_hyperparameters == best.hyperparameters
    assert set(best.hyperparameters) == {"factors_lr", "num_factors"}
    # the registry agrees
    job = reg.tuning.get("tj")
    assert job.status == "Completed" and job.best_training_job == best.training_job
    assert job.best_objective_value == pytest.approx(result.best_value)
    trials = reg.tuning.trials("tj")
    assert [t.name for t in trials] == [f"tj-{i:03d}" for i in range(1, 6)]
    assert all(t.status == "Completed" and t.objective_value is not None for t in trials)
    assert all(len(reg.jobs.epochs(t.name)) == 4 for t in trials)
    # only the best model is kept, it is registered, and it reproduces its objective
    kept = [t for t in trials if t.artifact]
    assert [t.name for t in kept] == [best.training_job]
    assert not any((reg.job_dir(t.name) / "model").exists() for t in trials if t is not kept[0])
    model = reg.models.get("tj")
    assert model.training_job == best.training_job
    scores = Predictor.load(model.artifact).predict_scores(test)
    assert rmse(test.labels, scores) == pytest.approx(result.best_value, rel=1e-4)
    assert load(model.artifact).num_factors == best.hyperparameters["num_factors"]


def test_failed_trial_is_recorded_and_the_job_goes_on(
        tmp_path: Path, data: tuple[SparseBatch, SparseBatch]) -> None:
    reg = Registry(tmp_path)
    # a factor init of 1e30 overflows float32: those trials diverge (DivergenceError)
    ranges = {"factors_init_sigma": CategoricalParameter(["0.01", "1e30"])}
    result = Tuner(BASE, ranges, max_jobs=6, registry=reg, strategy="random", seed=0,
                   name="mixed").fit(*data)
    statuses = [t.status for t in result.trials]
    assert "Failed" in statuses and "Completed" in statuses
    for t in result.trials:
        rec = reg.jobs.get(t.training_job)
        assert rec.status == t.status
        if t.status == "Failed":
            assert t.hyperparameters["factors_init_sigma"] == 1e30
            assert rec.failure_reason and "DivergenceError" in rec.failure_reason
            assert rec.objective_value is None and rec.artifact is None
    assert result.best_trial is not None
    assert result.best_trial.hyperparameters["factors_init_sigma"] == 0.01
    assert reg.tuning.get("mixed").status == "Completed"


def test_all_trials_failing_fails_the_job(tmp_path: Path,
                                          data: tuple[SparseBatch, SparseBatch]) -> None:
    reg = Registry(tmp_path)
    ranges = {"factors_init_sigma": CategoricalParameter(["1e30"])}
    result = Tuner(BASE, ranges, max_jobs=2, registry=reg, name="allbad").fit(*data)
    assert result.status == "Failed" and result.best_trial is None
    assert "no trial produced" in (reg.tuning.get("allbad").failure_reason or "")
    assert reg.models.list() == []


def test_max_run_seconds_stops_trials_and_keeps_the_best_model(
        tmp_path: Path, data: tuple[SparseBatch, SparseBatch]) -> None:
    reg = Registry(tmp_path)
    base = {**BASE, "epochs": 100000}
    result = _tuner(reg, base=base, max_run_seconds=1.5, name="budget").fit(*data)
    assert result.status == "Stopped"
    # the one running trial stopped early, kept its model, and no other trial started
    assert [t.status for t in result.trials] == ["Stopped"]
    assert result.trials[0].objective_value is not None
    assert 1 <= len(reg.jobs.epochs("budget-001")) < 100000
    assert [t.name for t in reg.tuning.trials("budget")] == ["budget-001"]
    job = reg.tuning.get("budget")
    assert job.status == "Stopped" and "max_run_seconds" in (job.failure_reason or "")
    assert Path(reg.models.get("budget").artifact, "weights.npz").is_file()


def test_stop_from_the_registry(tmp_path: Path, data: tuple[SparseBatch, SparseBatch]) -> None:
    reg = Registry(tmp_path)
    base = {**BASE, "epochs": 100000}
    tuner = _tuner(reg, base=base, name="stopme", max_jobs=3)
    out: dict[str, object] = {}
    thread = threading.Thread(target=lambda: out.update(r=tuner.fit(*data)))
    thread.start()
    other = Registry(tmp_path)
    for _ in range(200):
        if other.tuning.exists("stopme") and other.tuning.trials("stopme") and \
                other.jobs.epochs("stopme-001"):
            break
        time.sleep(0.05)
    other.tuning.request_stop("stopme")
    thread.join(60)
    assert not thread.is_alive()
    result = out["r"]
    assert result.status == "Stopped"  # type: ignore[attr-defined]
    assert [t.status for t in reg.tuning.trials("stopme")] == ["Stopped"]
    assert reg.tuning.get("stopme").status == "Stopped"


def test_include_defaults_makes_trial_one_the_defaults(
        tmp_path: Path, data: tuple[SparseBatch, SparseBatch]) -> None:
    from fmkit.config import FMConfig

    reg = Registry(tmp_path)
    result = _tuner(reg, include_defaults=True, max_jobs=2).fit(*data)
    defaults = FMConfig.from_values(BASE)
    first = result.trials[0].hyperparameters
    # factors_lr's default lies in the range and is used; num_factors' (64) does not
    assert first["factors_lr"] == defaults.factors_lr
    assert 2 <= first["num_factors"] <= 6
    assert result.trials[1].hyperparameters["factors_lr"] != defaults.factors_lr


def test_estimator_base_and_maximize_direction(tmp_path: Path) -> None:
    from fmkit import FMClassifier

    planted = make_planted_fm(800, 30, 3, task="binary_classifier", seed=3)
    train, test = planted.batch.slice(0, 600), planted.batch.slice(600, 800)
    reg = Registry(tmp_path)
    result = Tuner(FMClassifier(epochs=3, mini_batch_size=64, random_state=5),
                   {"linear_lr": ContinuousParameter(1e-3, 0.1)}, max_jobs=3, registry=reg,
                   objective_metric_name="test:auc").fit(train, test)
    assert result.direction == "maximize"
    assert result.best_value == max(t.objective_value for t in result.trials)  # type: ignore
    rec = reg.jobs.get(result.trials[0].training_job)
    assert rec.hyperparameters["seed"] == 5 and rec.hyperparameters["epochs"] == 3


def test_hyperband_in_worker_processes(tmp_path: Path,
                                       data: tuple[SparseBatch, SparseBatch]) -> None:
    reg = Registry(tmp_path)
    base = {**BASE, "epochs": 9}
    ranges = {"factors_lr": ContinuousParameter(1e-4, 0.2, "Logarithmic")}
    # 12 trials: which trials a rung compares depends on the two workers' timing; with 8,
    # one run in a few dozen pruned none (4-6 of 12 are pruned in repeated runs)
    result = Tuner(base, ranges, max_jobs=12, max_parallel_jobs=2, registry=reg,
                   strategy="hyperband", seed=0, name="hb").fit(*data)
    trials = reg.tuning.trials("hb")
    assert len(trials) == 12
    pruned = [t for t in trials if t.status == "Stopped"]
    assert pruned, "hyperband pruned nothing"
    for t in pruned:
        assert "pruned after epoch" in (t.failure_reason or "")
        assert len(reg.jobs.epochs(t.name)) < 9
    # per-epoch objective was computed on rows held out of train, never on the test channel
    assert "validation:rmse" in reg.jobs.epochs(trials[0].name)[0]
    assert result.validation_fraction == 0.1
    assert reg.tuning.get("hb").channels["validation"].startswith("held out of train: 100 of "
                                                                  "1000 rows")
    assert all(t.log_file and Path(t.log_file).is_file() for t in trials)
    assert result.best_trial is not None and result.best_trial.status == "Completed"


def test_a_dead_worker_process_gives_a_failed_outcome(
        data: tuple[SparseBatch, SparseBatch]) -> None:
    from fmkit.tuning.worker import CONTINUE, ProcessWorker, TrialData, TrialSpec

    worker = ProcessWorker(TrialData(train=data[0], test=data[1]))
    try:
        worker._proc.kill()
        worker._proc.wait(10)
        outcome = worker.run(TrialSpec(number=1, job_name="x", hyperparameters=dict(BASE)),
                             lambda epoch, logs: CONTINUE)
    finally:
        worker.close()
    assert outcome.status == "Failed"
    assert "worker process died" in (outcome.reason or "")
    assert not worker.alive


def test_baseline_trial_is_never_pruned(tmp_path: Path, data: tuple[SparseBatch, SparseBatch],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import optuna

    # a pruner that prunes every trial at its first report
    monkeypatch.setattr(optuna.trial.Trial, "should_prune", lambda self: True)
    reg = Registry(tmp_path)
    ranges = {"factors_lr": ContinuousParameter(1e-4, 0.2, "Logarithmic")}
    result = Tuner({**BASE, "epochs": 5}, ranges, max_jobs=3, registry=reg,
                   strategy="hyperband", include_defaults=True, name="base").fit(*data)
    assert [t.status for t in result.trials] == ["Completed", "Stopped", "Stopped"]
    assert len(reg.jobs.epochs("base-001")) == 5
    assert [len(reg.jobs.epochs(f"base-00{i}")) for i in (2, 3)] == [1, 1]
    assert result.best_trial is not None and result.best_trial.number == 1


def test_hold_out_is_seeded_disjoint_and_complete(data: tuple[SparseBatch, SparseBatch]) -> None:
    from fmkit.tuning.holdout import hold_out

    train = data[0]
    fit_part, held, info = hold_out(train, 0.1, seed=3)
    assert (info.validation_rows, info.train_rows) == (100, 900)
    assert (fit_part.n_rows, held.n_rows) == (900, 100)
    again = hold_out(train, 0.1, seed=3)[1]
    assert np.array_equal(again.indices, held.indices)
    other = hold_out(train, 0.1, seed=4)[1]
    assert not np.array_equal(other.labels, held.labels)
    # every train row is in exactly one part (rows are told apart by their entries)
    def rows(batch: SparseBatch) -> list[tuple[int, ...]]:
        return [tuple(batch.indices[batch.offsets[i]:batch.offsets[i + 1]].tolist())
                + (float(batch.labels[i]),) for i in range(batch.n_rows)]
    assert sorted(rows(fit_part) + rows(held)) == sorted(rows(train))
    with pytest.raises(DataError, match="leaves 0 for validation"):
        hold_out(train.slice(0, 4), 0.1, seed=0)


@pytest.mark.parametrize("settings", [{"strategy": "hyperband"},
                                      {"strategy": "random", "early_stopping": "Auto"}])
def test_pruning_without_validation_holds_out_train_not_test(
        tmp_path: Path, data: tuple[SparseBatch, SparseBatch], settings: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import optuna

    from fmkit.tuning.holdout import hold_out

    # the pruner is asked every epoch but prunes nothing: every trial runs in full
    monkeypatch.setattr(optuna.trial.Trial, "should_prune", lambda self: False)
    reg = Registry(tmp_path)
    train, test = data
    result = _tuner(reg, max_jobs=2, keep_models="all", name="ho", validation_fraction=0.2,
                    **settings).fit(train, test, channels={"train": "t.rec", "test": "s.rec"})
    assert result.validation_fraction == 0.2
    channels = reg.tuning.get("ho").channels
    assert channels["train"] == "t.rec" and channels["test"] == "s.rec"
    assert channels["validation"] == ("held out of train: 200 of 1000 rows "
                                      "(validation_fraction 0.2, seed 1)")
    fit_part, held, _ = hold_out(train, 0.2, seed=1)
    for trial in reg.tuning.trials("ho"):
        assert trial.status == "Completed"
        assert trial.channels["validation"] == channels["validation"]
        scores = Predictor.load(trial.artifact).predict_scores
        last = reg.jobs.epochs(trial.name)[-1]
        # validation:* is the held-out rows' value; test:* the test channel's, nothing else
        assert last["validation:rmse"] == pytest.approx(rmse(held.labels, scores(held)),
                                                        rel=1e-4)
        assert last["validation:rmse"] != pytest.approx(rmse(test.labels, scores(test)),
                                                        rel=1e-3)
        assert trial.final_metrics["test:rmse"] == pytest.approx(
            rmse(test.labels, scores(test)), rel=1e-4)
        assert trial.objective_value == trial.final_metrics["test:rmse"]


def test_no_hold_out_with_a_validation_channel_or_without_pruning(
        tmp_path: Path, data: tuple[SparseBatch, SparseBatch]) -> None:
    reg = Registry(tmp_path)
    train, test = data
    given = _tuner(reg, max_jobs=1, strategy="hyperband", name="given").fit(
        train.slice(0, 800), test, validation=train.slice(800, 1000))
    assert given.validation_fraction is None
    assert "validation" not in reg.tuning.get("given").channels
    assert "validation:rmse" in reg.jobs.epochs("given-001")[0]
    plain = _tuner(reg, max_jobs=1, name="plain").fit(train, test)
    assert plain.validation_fraction is None
    assert "validation" not in reg.tuning.get("plain").channels
    assert not any(k.startswith("validation:") for k in reg.jobs.epochs("plain-001")[0])


def test_too_small_a_train_for_the_hold_out_fails_before_any_trial(
        tmp_path: Path, data: tuple[SparseBatch, SparseBatch]) -> None:
    reg = Registry(tmp_path)
    with pytest.raises(DataError, match="validation_fraction=0.1 of the 4 train rows"):
        _tuner(reg, strategy="hyperband", name="tiny").fit(data[0].slice(0, 4), data[1])
    assert reg.tuning.list() == [] and reg.jobs.list() == []


def test_a_required_sagemaker_hyperparameter_can_be_tuned():
    # SageMaker has no default for num_factors: tuning it must not need a fixed value
    tuner = Tuner({"predictor_type": "regressor", "feature_dim": 20},
                  {"num_factors": IntegerParameter(2, 8)}, defaults="sagemaker", max_jobs=2)
    plan = tuner.check(has_test=True)
    assert plan["ranges"]["num_factors"].min_value == 2
    bad = Tuner({"predictor_type": "regressor", "feature_dim": 20},
                {"num_factors": IntegerParameter(0, 8)}, defaults="sagemaker", max_jobs=2)
    with pytest.raises(ConfigError, match="num_factors"):
        bad.check(has_test=True)
