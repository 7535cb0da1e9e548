"""fmkit.jobs.tuning and fmkit.jobs.transform: recorded jobs, foreground and background."""

from __future__ import annotations

import time

import pytest

from fmkit.errors import ConfigError
from fmkit.jobs import training, transform, tuning
from fmkit.registry import Registry

FIXED = {"predictor_type": "regressor", "epochs": "2", "mini_batch_size": "50"}
RANGES = {"IntegerParameterRanges": [{"Name": "num_factors", "MinValue": "2",
                                      "MaxValue": "4"}]}


def test_tuning_validates_before_reading_data(channels):
    with pytest.raises(ConfigError, match="max_jobs"):
        tuning.validate(tuning.TuningRequest(channels=channels, static_hyperparameters=FIXED,
                                             ranges=RANGES, max_jobs=0))


@pytest.mark.slow
def test_tuning_trials_are_training_jobs_and_tarballs_are_written(channels, tmp_path):
    reg = Registry()
    request = tuning.TuningRequest(channels=channels, static_hyperparameters=FIXED,
                                   ranges=RANGES, max_jobs=2, name="tune-svc",
                                   keep_models="all",
                                   trial_output_tarballs=str(tmp_path / "out"))
    job = tuning.run(request, registry=reg)
    assert job.status == "Completed" and job.best_training_job
    trials = reg.tuning.trials("tune-svc")
    assert len(trials) == 2 and all(t.tuning_job == "tune-svc" for t in trials)
    for t in trials:
        assert (tmp_path / "out" / t.name / "output" / "model.tar.gz").is_file()
        assert reg.jobs.get(t.name).output_tarball.endswith("model.tar.gz")


@pytest.mark.slow
def test_tuning_in_the_background(channels):
    reg = Registry()
    job = tuning.start(tuning.TuningRequest(channels=channels, static_hyperparameters=FIXED,
                                            ranges=RANGES, max_jobs=2, name="tune-bg"),
                       registry=reg)
    assert job.name == "tune-bg"
    deadline = time.monotonic() + 120
    while reg.tuning.get("tune-bg").status == "InProgress" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert reg.tuning.get("tune-bg").status == "Completed"


def test_transform_job_is_recorded_with_its_summary_and_log(channels, tmp_path):
    reg = Registry()
    training.run(training.TrainingRequest(
        channels=channels, model_dir=str(tmp_path / "m"),
        hyperparameters={"predictor_type": "regressor", "num_factors": "2", "epochs": "1"}),
        registry=reg)
    job = transform.run(transform.TransformRequest(
        model_dir=str(tmp_path / "m"), input=channels["test"], output=str(tmp_path / "out"),
        name="tx-1"), registry=reg)
    assert job.status == "Completed" and job.summary["records"] == 100
    assert (tmp_path / "out" / "test.rec.out").is_file()
    events, _ = transform.log_events("tx-1", registry=reg)
    assert any("100 records" in e.message for e in events)
    with pytest.raises(Exception, match="does not exist"):
        transform.run(transform.TransformRequest(model_dir=str(tmp_path / "nope"),
                                                 input=channels["test"],
                                                 output=str(tmp_path / "o2"), name="tx-2"),
                      registry=reg)
    failed = reg.transforms.get("tx-2")
    assert failed.status == "Failed" and failed.failure_reason.startswith("ClientError")


@pytest.mark.slow
def test_background_tuning_is_recorded_at_once_and_bad_data_fails_it(tmp_path):
    reg = Registry()
    job = tuning.start(tuning.TuningRequest(channels={"train": str(tmp_path / "nowhere"),
                                                      "test": str(tmp_path / "nowhere")},
                                            static_hyperparameters=FIXED, ranges=RANGES,
                                            max_jobs=2, name="tune-bad"), registry=reg)
    assert job.status == "InProgress"  # recorded before any data is read
    deadline = time.monotonic() + 60
    while reg.tuning.get("tune-bad").status == "InProgress" and time.monotonic() < deadline:
        time.sleep(0.1)
    failed = reg.tuning.get("tune-bad")
    assert failed.status == "Failed" and "nowhere" in failed.failure_reason
