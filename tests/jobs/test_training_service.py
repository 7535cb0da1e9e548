"""fmkit.jobs.training: one service for every front end, in the foreground and background."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from fmkit.errors import ConfigError, DataError
from fmkit.jobs import training
from fmkit.registry import Registry

HP = {"predictor_type": "regressor", "num_factors": "3", "epochs": "4", "mini_batch_size": "50"}


def _wait(predicate, timeout_s: float = 90.0, poll_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError("condition not reached in time")


def test_foreground_job_records_transitions_logs_metrics_and_model(channels, tmp_path):
    reg = Registry()
    request = training.TrainingRequest(channels=channels, model_dir=str(tmp_path / "m"),
                                       hyperparameters=HP, name="fg-1", source="python")
    lines: list[str] = []
    job = training.run(request, registry=reg, on_log=lines.append)
    assert job.status == "Completed" and job.source == "python"
    assert [t["Status"] for t in job.transitions] == [
        "Starting", "Downloading", "Training", "Uploading", "Completed"]
    assert all("EndTime" in t for t in job.transitions[:-1])
    assert job.final_metrics["test:rmse"] > 0
    # the model and its metrics.json were committed together, and registered by job name
    saved = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert saved["test:rmse"] == pytest.approx(job.final_metrics["test:rmse"])
    assert reg.models.get("fg-1").artifact == str((tmp_path / "m").resolve())
    # every log line went to the registry, SageMaker's metric lines included
    events, token = training.log_events("fg-1", registry=reg)
    messages = [e.message for e in events]
    assert any(m.startswith("#quality_metric: host=algo-1, test rmse") for m in messages)
    assert lines and set(lines) <= set(messages)
    assert token == events[-1].seq + 1
    more, same = training.log_events("fg-1", start=token, registry=reg)
    assert more == [] and same == token
    # per-epoch metrics are readable by every front end
    assert [e["epoch"] for e in training.epochs("fg-1", registry=reg)] == [0, 1, 2, 3]


def test_bad_hyperparameter_fails_before_any_record(channels, tmp_path):
    reg = Registry()
    bad = training.TrainingRequest(channels=channels, model_dir=str(tmp_path / "m"),
                                   hyperparameters={**HP, "num_factors": "0"}, name="bad-1")
    with pytest.raises(ConfigError, match="num_factors"):
        training.run(bad, registry=reg)
    assert not reg.jobs.exists("bad-1")
    with pytest.raises(ConfigError, match="No value.*'feature_dim'"):
        training.validate(training.TrainingRequest(
            channels=channels, model_dir="m", hyperparameters=HP, defaults="sagemaker",
            required_hyperparameters=training.SAGEMAKER_REQUIRED))
    with pytest.raises(ConfigError, match="'train' channel is required"):
        training.validate(training.TrainingRequest(channels={"test": channels["test"]},
                                                   model_dir="m", hyperparameters=HP))


def test_bad_data_is_recorded_failed_with_the_reason(channels, tmp_path):
    reg = Registry()
    request = training.TrainingRequest(channels={"train": str(tmp_path / "nowhere")},
                                       model_dir=str(tmp_path / "m"), hyperparameters=HP,
                                       name="data-1")
    with pytest.raises(DataError):
        training.run(request, registry=reg)
    job = reg.jobs.get("data-1")
    assert job.status == "Failed" and "nowhere" in job.failure_reason
    assert not (tmp_path / "m").exists()


def test_request_round_trips_through_its_dict(channels):
    request = training.TrainingRequest(channels=channels, model_dir="m", hyperparameters=HP,
                                       tags={"team": "recs"}, instance_count=2)
    again = training.TrainingRequest.from_dict(json.loads(json.dumps(request.to_dict())))
    assert again.channel_specs() == request.channel_specs()
    assert again.to_dict() == request.to_dict()


@pytest.mark.slow
def test_background_job_runs_detached_and_is_readable_while_it_runs(channels, tmp_path):
    reg = Registry()
    request = training.TrainingRequest(channels=channels, model_dir=str(tmp_path / "bg"),
                                       hyperparameters={**HP, "epochs": "3"}, name="bg-1",
                                       output_tarball=str(tmp_path / "out" / "model.tar.gz"))
    job = training.start(request, registry=reg)
    assert job.status == "InProgress" and job.secondary_status == "Starting" and job.pid
    done = _wait(lambda: (j := training.describe("bg-1", registry=reg)).status != "InProgress"
                 and j)
    assert done.status == "Completed", done.failure_reason
    assert (tmp_path / "bg" / "metadata.json").is_file()
    assert (tmp_path / "out" / "model.tar.gz").is_file()
    events, _ = training.log_events("bg-1", registry=reg)
    assert any("#test_score" in e.message for e in events)


@pytest.mark.slow
def test_jobs_beyond_capacity_wait_their_turn_and_stop_cleanly(channels, tmp_path,
                                                               monkeypatch):
    monkeypatch.setenv("FMKIT_JOB_SLOTS", "1")
    reg = Registry()
    long = training.TrainingRequest(channels=channels, model_dir=str(tmp_path / "long"),
                                    hyperparameters={**HP, "epochs": "100000"}, name="long-1")
    short = training.TrainingRequest(channels=channels, model_dir=str(tmp_path / "short"),
                                     hyperparameters=HP, name="short-1")
    training.start(long, registry=reg)
    _wait(lambda: reg.jobs.get("long-1").secondary_status == "Training")
    training.start(short, registry=reg)
    _wait(lambda: reg.jobs.epochs("long-1"))  # the long job is well under way
    time.sleep(1.0)
    assert reg.jobs.get("short-1").secondary_status == "Starting"  # waiting for the slot
    training.stop("long-1", registry=reg)
    stopped = _wait(lambda: (j := reg.jobs.get("long-1")).status == "Stopped" and j)
    assert (tmp_path / "long" / "metadata.json").is_file()  # the model reached is kept
    assert stopped.failure_reason == "stopped by user"
    finished = _wait(lambda: (j := reg.jobs.get("short-1")).status == "Completed" and j)
    assert [t["Status"] for t in finished.transitions][:2] == ["Starting", "Downloading"]


@pytest.mark.slow
def test_a_killed_job_is_reported_failed(channels, tmp_path):
    import os
    import signal

    reg = Registry()
    request = training.TrainingRequest(channels=channels, model_dir=str(tmp_path / "k"),
                                       hyperparameters={**HP, "epochs": "100000"}, name="kill-1")
    job = training.start(request, registry=reg)
    _wait(lambda: reg.jobs.get("kill-1").secondary_status == "Training")
    os.kill(job.pid, signal.SIGKILL)
    failed = _wait(lambda: (j := training.describe("kill-1", registry=reg)).status == "Failed"
                   and j)
    assert "ended without recording a result" in failed.failure_reason


def test_container_runs_are_recorded_like_any_other(tmp_path, channels):
    from fmkit.sagemaker import ContainerPaths, train_main

    paths = ContainerPaths(tmp_path / "opt_ml")
    paths.config_dir.mkdir(parents=True)
    paths.hyperparameters.write_text(json.dumps(
        {**HP, "feature_dim": "20", "factors_lr": "0.02"}))
    for name, src in channels.items():
        paths.channel_dir(name).mkdir(parents=True)
        for f in Path(src).iterdir():
            (paths.channel_dir(name) / f.name).write_bytes(f.read_bytes())
    with pytest.raises(SystemExit) as exit_:
        train_main({"FMKIT_SM_ROOT": str(paths.root), "TRAINING_JOB_NAME": "container-1"})
    assert exit_.value.code == 0
    job = Registry().jobs.get("container-1")
    assert job.status == "Completed" and job.source == "container"
    assert (paths.model_dir / "model_algo-1").is_file()
    assert (paths.model_dir / "metrics.json").is_file()


@pytest.mark.slow
def test_cli_detach_starts_a_background_job(channels, tmp_path, capsys):
    from fmkit.cli import main

    main(["train", "--train", channels["train"], "--model-dir", str(tmp_path / "d"),
          "--predictor-type", "regressor", "--epochs", "2", "--name", "detached-1",
          "--detach"])
    out = json.loads(capsys.readouterr().out)
    assert out["job_name"] == "detached-1" and out["status"] == "InProgress"
    reg = Registry()
    done = _wait(lambda: (j := training.describe("detached-1", registry=reg)).status
                 != "InProgress" and j)
    assert done.status == "Completed" and done.source == "cli"


def test_cli_jobs_logs_prints_the_job_log(channels, tmp_path, capsys):
    from fmkit.cli import main

    request = training.TrainingRequest(channels=channels, model_dir=str(tmp_path / "m"),
                                       hyperparameters=HP, name="logs-1")
    training.run(request)
    capsys.readouterr()
    main(["jobs", "logs", "logs-1", "--follow"])  # a finished job: prints all and returns
    out = capsys.readouterr().out.splitlines()
    assert [e.message for e in training.log_events("logs-1")[0]] == out
    assert any(line.startswith("#test_score") for line in out)


def test_job_log_lines_reach_the_registry_within_half_a_second():
    import logging

    from fmkit.jobs.logs import FLUSH_S, capture

    reg = Registry()
    reg.jobs.create("log-timer-1")
    with capture(reg, "log-timer-1"):
        logging.getLogger("fmkit.test").info("first line")
        logging.getLogger("fmkit.test").info("second line")  # buffered with the first
        deadline = time.monotonic() + 10 * FLUSH_S
        while not reg.jobs.log_events("log-timer-1")[0] and time.monotonic() < deadline:
            time.sleep(0.05)
        # written by the timer, while the block still runs and no newer line came
        assert [e.message for e in reg.jobs.log_events("log-timer-1")[0]] == [
            "first line", "second line"]


def test_cli_jobs_logs_of_an_unknown_job_is_a_one_line_error(capsys):
    from helpers.cli import run_cli

    code, out, err = run_cli(capsys, "jobs", "logs", "nosuchjob")
    assert code == 2 and out == "" and "no training job named 'nosuchjob'" in err


def test_a_watcher_never_overwrites_the_end_a_job_recorded(channels, tmp_path):
    # describe() finds a job's process gone; if the job recorded Completed just before it
    # exited, that end stands (it was once overwritten with "Failed: process ended")
    reg = Registry()
    job = reg.jobs.create("race-1")
    reg.jobs.finish("race-1", status="Completed", metrics={"test:rmse": 1.0})
    after = reg.jobs.finish("race-1", status="Failed", failure_reason="process gone",
                            unless_ended=True)
    assert after.status == "Completed" and after.failure_reason is None
    assert after.final_metrics == {"test:rmse": 1.0}
    assert job.status == "InProgress"
