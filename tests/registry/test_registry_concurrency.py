"""Several processes write the registry at once: nothing is lost, nothing raises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fmkit.registry import Registry

WRITER = """
import sys
from fmkit.registry import Registry
home, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
reg = Registry(home)
for j in range(n):
    with reg.track_training_job(f"{tag}-{j}", hyperparameters={"j": j}) as job:
        for e in range(5):
            job.log_epoch(e, {"train:rmse": 1.0 / (e + 1)})
            job.stop_requested()
        job.complete(metrics={"train:rmse": 0.2})
    reg.models.register(f"m-{tag}-{j}", f"/models/{tag}/{j}")
    reg.endpoints.add(f"ep-{tag}", f"m-{tag}-{j}", port=j)
"""


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    Registry(tmp_path)  # create the schema once, as the first command would
    n_procs, n_jobs = 4, 6
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), f"w{i}",
                               str(n_jobs)], stderr=subprocess.PIPE, text=True)
             for i in range(n_procs)]
    # this process stops and lists while the others write
    reader = Registry(tmp_path)
    seen = 0
    for _ in range(20):
        seen = max(seen, len(reader.jobs.list(limit=None)))
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * n_procs, errors
    jobs = reader.jobs.list()
    assert len(jobs) == n_procs * n_jobs
    assert all(j.status == "Completed" for j in jobs)
    assert all(len(reader.jobs.epochs(j.name)) == 5 for j in jobs)
    assert len(reader.models.list()) == n_procs * n_jobs
    assert {e.name: e.port for e in reader.endpoints.list()} == {
        f"ep-w{i}": n_jobs - 1 for i in range(n_procs)}
