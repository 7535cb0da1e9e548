"""``fmkit jobs|models|tuning`` over records made through the Python API."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.cli import run_cli

from fmkit.registry import Registry


def _run(args, capsys):
    return run_cli(capsys, *args)


def test_jobs_list_describe_stop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reg = Registry()
    with reg.track_training_job("done", hyperparameters={"num_factors": 4},
                                channels={"train": "d/train"}) as job:
        for e in range(3):
            job.log_epoch(e, {"train:rmse": 1.0 - 0.1 * e, "validation:rmse": 1.1 - 0.1 * e,
                              "seconds": 0.5})
        job.complete(metrics={"test:rmse": 0.81}, artifact="a")
    reg.jobs.create("running")
    code, out, _ = _run(["jobs", "list"], capsys)
    assert code == 0
    assert "done" in out and "test:rmse=0.81" in out and "running" in out
    code, out, _ = _run(["jobs", "list", "--status", "Completed"], capsys)
    assert "running" not in out
    code, out, _ = _run(["jobs", "describe", "done", "--plot", str(tmp_path / "c.png")],
                        capsys)
    assert code == 0 and "Status:          Completed" in out and "Epochs (3):" in out
    assert "num_factors=4" in out and "train=d/train" in out
    assert (tmp_path / "c.png").stat().st_size > 1000
    code, out, _ = _run(["jobs", "stop", "running"], capsys)
    assert out.strip() == "running: Stopping"
    assert reg.jobs.stop_requested("running")
    code, out, _ = _run(["jobs", "describe", "done", "--json"], capsys)
    assert '"final_metrics"' in out and '"epochs"' in out


def test_stop_accepts_tuning_jobs_and_flags_dead_processes(
        capsys: pytest.CaptureFixture[str]) -> None:
    reg = Registry()
    reg.tuning.create("tj", objective_metric="test:rmse", direction="minimize",
                      strategy="bayesian", ranges={}, max_jobs=2, max_parallel_jobs=1)
    reg.jobs.create("tj-001", tuning_job="tj", trial_number=1)
    code, out, _ = _run(["jobs", "stop", "tj"], capsys)
    assert code == 0 and out.strip() == "tj: Stopping"
    assert reg.tuning.stop_requested("tj") and reg.jobs.stop_requested("tj-001")
    reg.jobs.create("ghost-run")
    reg.db.execute("UPDATE training_jobs SET pid=? WHERE name=?", (2**22 + 7, "ghost-run"))
    _, out, _ = _run(["jobs", "list"], capsys)
    assert "InProgress (process gone)" in out


def test_jobs_list_says_how_many_trials_it_hides(capsys: pytest.CaptureFixture[str]) -> None:
    reg = Registry()
    reg.tuning.create("tj", objective_metric="test:rmse", direction="minimize",
                      strategy="bayesian", ranges={}, max_jobs=3, max_parallel_jobs=1)
    _, out, _ = _run(["jobs", "list"], capsys)
    assert out.strip() == "no training jobs"  # nothing hidden: no footer
    for n in (1, 2, 3):
        reg.jobs.create(f"tj-00{n}", tuning_job="tj", trial_number=n)
    reg.jobs.finish("tj-001", status="Completed")
    _, out, _ = _run(["jobs", "list"], capsys)
    assert out.strip() == "no training jobs (3 tuning trials hidden; --trials shows them)"
    reg.jobs.create("solo")
    _, out, _ = _run(["jobs", "list"], capsys)
    lines = out.strip().splitlines()
    assert "solo" in out and "tj-00" not in "\n".join(lines[:-1])
    assert lines[-1] == "3 tuning trials hidden; --trials shows them"
    # the count follows --status; --trials and --tuning-job show them, without a footer
    _, out, _ = _run(["jobs", "list", "--status", "Completed"], capsys)
    assert out.strip() == "no training jobs (1 tuning trial hidden; --trials shows them)"
    for args in (["--trials"], ["--tuning-job", "tj"]):
        _, out, _ = _run(["jobs", "list", *args], capsys)
        assert "tj-003" in out and "hidden" not in out


def test_unknown_names_and_statuses_are_one_line_errors(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["jobs", "describe", "ghost"], capsys)
    assert code == 2 and err.strip() == ("error: RegistryError: no training job named 'ghost'; "
                                         "`fmkit jobs list` shows the names.")
    code, _, err = _run(["tuning", "describe", "ghost"], capsys)
    assert code == 2 and "no tuning job named 'ghost'" in err
    code, _, err = _run(["jobs", "list", "--status", "Done"], capsys)
    assert code == 2 and "--status must be one of" in err


def test_empty_registry_lists(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["jobs", "list"], capsys)[1].strip() == "no training jobs"
    assert _run(["models", "list"], capsys)[1].strip() == "no models"
    assert _run(["tuning", "list"], capsys)[1].strip() == "no tuning jobs"
