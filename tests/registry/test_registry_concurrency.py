"""Several processes write the registry at once: nothing is lost, nothing raises, and a reader
running meanwhile only ever sees whole records."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from fmkit.registry import Registry

# Each writer starts on the parent's "go" file, writes the first half of its jobs, says so
# ("<tag>.half") and waits for "go2"; so the parent reads a known mid-way state, then reads
# again and again while every writer writes its second half.
WRITER = """
import os, sys, time
from fmkit.registry import Registry
home, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])

def wait_for(name):
    while not os.path.exists(os.path.join(home, name)):
        time.sleep(0.005)

reg = Registry(home)
wait_for("go")
for j in range(n):
    if j == n // 2:
        open(os.path.join(home, tag + ".half"), "w").close()
        wait_for("go2")
    with reg.track_training_job(f"{tag}-{j}", hyperparameters={"j": j}) as job:
        for e in range(5):
            job.log_epoch(e, {"train:rmse": 1.0 / (e + 1)})
            job.stop_requested()
        job.complete(metrics={"train:rmse": 0.2})
    reg.models.register(f"m-{tag}-{j}", f"/models/{tag}/{j}")
    reg.endpoints.add(f"ep-{tag}", f"m-{tag}-{j}", port=j)
"""

N_PROCS, N_JOBS = 4, 6


def _check_whole(reader: Registry, jobs: list) -> None:
    """Every record a reader sees is whole: a Completed job has all its epochs and metrics."""
    for job in jobs:
        epochs = reader.jobs.epochs(job.name)
        assert len(epochs) <= 5, job.name
        if job.status == "Completed":
            assert len(epochs) == 5, (job.name, epochs)
            assert job.final_metrics == {"train:rmse": 0.2}, job.name
        else:
            assert job.status == "InProgress", (job.name, job.status)


def _wait_for_files(paths: list[Path], procs: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + 120  # a hang guard, not a timing assertion
    while not all(p.exists() for p in paths):
        dead = [p.returncode for p in procs if p.poll() is not None]
        assert not dead, f"a writer exited early: {[p.communicate()[1] for p in procs]}"
        assert time.monotonic() < deadline, f"no {[p.name for p in paths]} after 120 s"
        time.sleep(0.005)


def test_concurrent_writers_lose_nothing_and_readers_see_whole_records(tmp_path: Path) -> None:
    Registry(tmp_path)  # create the schema once, as the first command would
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), f"w{i}",
                               str(N_JOBS)], stderr=subprocess.PIPE, text=True)
             for i in range(N_PROCS)]
    reader = Registry(tmp_path)
    (tmp_path / "go").touch()
    half = N_JOBS // 2
    _wait_for_files([tmp_path / f"w{i}.half" for i in range(N_PROCS)], procs)
    # the mid-way state, while every writer is alive and about to go on
    jobs = reader.jobs.list(limit=None)
    assert sorted(j.name for j in jobs) == sorted(
        f"w{i}-{j}" for i in range(N_PROCS) for j in range(half))
    assert all(j.status == "Completed" for j in jobs)
    _check_whole(reader, jobs)
    assert len(reader.models.list()) == N_PROCS * half
    assert {e.name: e.port for e in reader.endpoints.list()} == {
        f"ep-w{i}": half - 1 for i in range(N_PROCS)}
    # now read while all of them write their second halves
    (tmp_path / "go2").touch()
    counts = []
    while True:
        writing = any(p.poll() is None for p in procs)
        jobs = reader.jobs.list(limit=None)
        counts.append(len(jobs))
        _check_whole(reader, jobs)
        reader.models.list()
        reader.endpoints.list()
        if not writing:
            break
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * N_PROCS, errors
    assert counts == sorted(counts), "jobs disappeared between reads"
    assert all(N_PROCS * half <= c <= N_PROCS * N_JOBS for c in counts)
    jobs = reader.jobs.list()
    assert len(jobs) == N_PROCS * N_JOBS
    assert all(j.status == "Completed" for j in jobs)
    _check_whole(reader, jobs)
    assert len(reader.models.list()) == N_PROCS * N_JOBS
    assert {e.name: e.port for e in reader.endpoints.list()} == {
        f"ep-w{i}": N_JOBS - 1 for i in range(N_PROCS)}


OPENER = """
import os, sys, time
home = sys.argv[1]
from fmkit.registry import Registry
open(os.path.join(home, "ready-" + sys.argv[2]), "w").close()
while not os.path.exists(os.path.join(home, "go")):
    time.sleep(0.002)
reg = Registry(home)
reg.jobs.create("job-" + sys.argv[2])
"""


def test_processes_opening_an_older_registry_at_once_upgrade_it_once(tmp_path: Path) -> None:
    import sqlite3

    from fmkit.registry.db import _ADDED_COLUMNS, SCHEMA_VERSION

    home = tmp_path / "home"
    Registry(home)
    conn = sqlite3.connect(home / "registry.db")  # make it a version-1 file again
    for table, column, _ in _ADDED_COLUMNS:
        conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    procs = [subprocess.Popen([sys.executable, "-c", OPENER, str(home), str(i)],
                              stderr=subprocess.PIPE, text=True) for i in range(6)]
    _wait_for_files([home / f"ready-{i}" for i in range(6)], procs)  # imports done
    (home / "go").touch()  # then they all open it at once
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, errors
    reg = Registry(home)
    assert sorted(j.name for j in reg.jobs.list()) == [f"job-{i}" for i in range(6)]
    conn = sqlite3.connect(home / "registry.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    for table, column, _ in _ADDED_COLUMNS:
        assert column in {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
    conn.close()
