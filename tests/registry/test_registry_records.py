"""Registry: records of training jobs, models, endpoints; statuses; bad databases."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from fmkit.errors import ConfigError, RegistryError
from fmkit.registry import Registry, RegistryCallback
from fmkit.registry.home import fmkit_home, registry_path


def test_home_follows_fmkit_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FMKIT_HOME", str(tmp_path / "h"))
    assert fmkit_home() == tmp_path / "h"
    reg = Registry()
    assert reg.path == tmp_path / "h" / "registry.db"
    assert reg.path.is_file()
    monkeypatch.delenv("FMKIT_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert fmkit_home() == tmp_path / "user" / ".fmkit"
    assert registry_path() == tmp_path / "user" / ".fmkit" / "registry.db"


def test_database_uses_wal(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    with reg.db.connection() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_track_completed_job_keeps_everything(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    with reg.track_training_job("job-1", hyperparameters={"num_factors": 8},
                                channels={"train": "a/train"}, model_dir="m",
                                log_file="l.log") as job:
        assert reg.jobs.get("job-1").status == "InProgress"
        job.log_epoch(1, {"train:rmse": 0.9, "validation:rmse": 1.0})
        job.log_epoch(0, {"train:rmse": 1.2, "validation:rmse": 1.1})
        job.complete(metrics={"test:rmse": 0.95}, artifact="m/model", best_epoch=1)
    rec = reg.jobs.get("job-1")
    assert rec.status == "Completed"
    assert rec.hyperparameters == {"num_factors": 8}
    assert rec.channels == {"train": "a/train"}
    assert rec.final_metrics == {"test:rmse": 0.95}
    assert rec.artifact == "m/model" and rec.log_file == "l.log" and rec.best_epoch == 1
    assert rec.end_time is not None and rec.end_time >= rec.start_time
    assert rec.pid == os.getpid()
    assert reg.jobs.epochs("job-1") == [
        {"epoch": 0, "train:rmse": 1.2, "validation:rmse": 1.1},
        {"epoch": 1, "train:rmse": 0.9, "validation:rmse": 1.0},
    ]


def test_exception_marks_failed_with_reason_and_propagates(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    with pytest.raises(ValueError, match="boom"), reg.track_training_job("bad") as job:
        job.log_epoch(0, {"train:rmse": 1.0})
        raise ValueError("boom")
    rec = reg.jobs.get("bad")
    assert rec.status == "Failed"
    assert rec.failure_reason is not None and rec.failure_reason.startswith("ValueError: boom")


def test_keyboard_interrupt_marks_stopped(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    with pytest.raises(KeyboardInterrupt), reg.track_training_job("ctrl-c"):
        raise KeyboardInterrupt
    assert reg.jobs.get("ctrl-c").status == "Stopped"


def test_stop_request_reaches_callback_and_final_status(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    with reg.track_training_job("long") as job:
        cb = RegistryCallback(job)
        assert cb.on_epoch_end(0, {"train:rmse": 1.0}) is False
        # another process (here: another Registry object) asks it to stop
        other = Registry(tmp_path)
        assert other.jobs.request_stop("long").status == "Stopping"
        assert cb.on_epoch_end(1, {"train:rmse": 0.8}) is True
        job.complete(metrics={"train:rmse": 0.8}, artifact="x")
    rec = reg.jobs.get("long")
    assert rec.status == "Stopped" and rec.failure_reason == "stopped by user"
    assert [e["epoch"] for e in reg.jobs.epochs("long")] == [0, 1]


def test_stop_of_a_dead_process_job_marks_it_stopped(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    reg.jobs.create("orphan")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    reg.db.execute("UPDATE training_jobs SET pid=? WHERE name=?", (int(dead), "orphan"))
    rec = reg.jobs.request_stop("orphan")
    assert rec.status == "Stopped"
    assert "no longer running" in (rec.failure_reason or "")


def test_finished_job_is_not_changed_by_stop(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    with reg.track_training_job("done") as job:
        job.complete(metrics={})
    assert reg.jobs.request_stop("done").status == "Completed"


def test_names_are_unique_and_checked(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    reg.jobs.create("same")
    with pytest.raises(ConfigError, match="already exists"):
        reg.jobs.create("same")
    with pytest.raises(ConfigError, match="letters, digits and hyphens"):
        reg.jobs.create("bad/name")
    a = reg.jobs.create(prefix="auto")
    b = reg.jobs.create(prefix="auto")
    assert a.name != b.name and a.name.startswith("auto-")


def test_unknown_names_raise_registry_error(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    with pytest.raises(RegistryError, match="no training job named 'nope'"):
        reg.jobs.get("nope")
    with pytest.raises(RegistryError, match="no tuning job named"):
        reg.tuning.get("nope")
    with pytest.raises(RegistryError, match="no model named"):
        reg.models.get("nope")


def test_list_filters_and_orders(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    for i in range(3):
        with reg.track_training_job(f"j{i}") as job:
            job.complete(status="Completed" if i != 1 else "Stopped")
    reg.jobs.create("trial-2", tuning_job="t", trial_number=2)
    reg.jobs.create("trial-1", tuning_job="t", trial_number=1)
    names = [j.name for j in reg.jobs.list(include_trials=False)]
    assert set(names) == {"j0", "j1", "j2"}
    assert [j.name for j in reg.jobs.list(status="Stopped")] == ["j1"]
    assert [j.name for j in reg.jobs.list(tuning_job="t")] == ["trial-1", "trial-2"]
    assert len(reg.jobs.list()) == 5


def test_models_register_list_remove(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    m = reg.register_model("fm64", tmp_path / "runs" / "fm64", job_name="j",
                           metrics={"test:rmse": 0.9}, predictor_type="regressor")
    assert m.artifact == str((tmp_path / "runs" / "fm64").resolve())
    with pytest.raises(ConfigError, match="already exists"):
        reg.register_model("fm64", "elsewhere")
    reg.register_model("fm64", "elsewhere", replace=True)
    assert reg.models.get("fm64").artifact.endswith("elsewhere")
    assert [x.name for x in reg.models.list()] == ["fm64"]
    reg.models.remove("fm64")
    assert reg.models.list() == []


def test_endpoints_add_replace_get_remove(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    e = reg.endpoints.add("ep", "fm64", url="http://127.0.0.1:8080", host="127.0.0.1",
                          port=8080, pid=123, config={"workers": 2})
    assert (e.model, e.port, e.status, e.config) == ("fm64", 8080, "InService", {"workers": 2})
    e2 = reg.endpoints.add("ep", "fm32", port=9090)
    assert e2.model == "fm32" and e2.creation_time == e.creation_time
    assert e2.last_modified_time >= e.last_modified_time
    assert [x.name for x in reg.endpoints.list()] == ["ep"]
    assert reg.endpoints.remove("ep") is True
    assert reg.endpoints.remove("ep") is False
    with pytest.raises(RegistryError):
        reg.endpoints.get("ep")


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "registry.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(RegistryError, match="not a usable SQLite database"):
        Registry(tmp_path)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    with reg.db.connection() as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(RegistryError, match="schema version 99"):
        Registry(tmp_path)


def test_locked_database_times_out_with_registry_error(tmp_path: Path) -> None:
    reg = Registry(tmp_path, timeout_s=0.3)
    holder = sqlite3.connect(str(reg.path), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(RegistryError, match="locked"):
            reg.jobs.create("waits")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert reg.jobs.create("waits").status == "InProgress"


def test_child_environ_points_children_at_the_home(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from fmkit.registry.home import child_environ

    monkeypatch.setenv("FMKIT_HOME", str(tmp_path / "parent"))
    monkeypatch.setenv("FMKIT_TEST_MARKER", "kept")
    env = child_environ(tmp_path / "child")
    assert env["FMKIT_HOME"] == str(tmp_path / "child")
    assert env["FMKIT_TEST_MARKER"] == "kept"
    assert os.environ["FMKIT_HOME"] == str(tmp_path / "parent")  # this process untouched


def test_open_registry_defaults_to_fmkit_home(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from fmkit.registry import open_registry

    given = Registry(tmp_path / "given")
    assert open_registry(given) is given
    monkeypatch.setenv("FMKIT_HOME", str(tmp_path / "env"))
    assert open_registry().home == tmp_path / "env"


def test_default_tuning_job_names_are_valid_and_short() -> None:
    from fmkit.registry.records import check_name, check_tuning_job_name, make_tuning_job_name

    name = make_tuning_job_name()
    assert name.startswith("tune-") and len(name) == len("tune-MM-DD-HH-MM-SS-mmm")
    assert check_tuning_job_name(name) == name
    assert check_name(f"{name}-001") == f"{name}-001"  # its trials' names are valid too


def test_format_number_as_front_ends_show_it() -> None:
    from fmkit.registry.records import format_number

    assert format_number(None) == "-"
    assert format_number(0.123456789) == "0.123457"
    assert format_number(float("nan")) == "nan"
    assert format_number(12) == "12"
    assert format_number("sgd") == "sgd"


def test_empty_json_columns_read_as_empty_containers(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    reg.jobs.create("j1")
    reg.db.execute("UPDATE training_jobs SET tags='null', transitions='[]', "
                   "hyperparameters='{}', stop_requested=1 WHERE name='j1'")
    job = reg.jobs.get("j1")
    assert job.tags == {} and job.transitions == [] and job.hyperparameters == {}
    assert job.request is None and job.stop_requested is True


def test_kept_reader_sees_other_writers_and_recovers_from_a_broken_connection(
        tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    reg.jobs.create("kept")
    reader = reg.jobs.db.reader()
    assert reg.jobs.stop_requested("kept", reader=reader) is False
    Registry(tmp_path).jobs.request_stop("kept")  # another connection writes
    assert reg.jobs.stop_requested("kept", reader=reader) is True
    assert reader._conn is not None
    reader._conn.close()  # a dead kept connection: the read falls back to a fresh one
    assert reg.jobs.stop_requested("kept", reader=reader) is True
    reader.close()
    assert reader._conn is None
