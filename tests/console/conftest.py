from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("starlette")

from console.records import add_training_job, add_tuning_job, write_model  # noqa: E402


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def registry(home: Path):
    from fmkit.registry import Registry

    reg = Registry(home)
    add_training_job(reg, "fm-done", epochs=6)
    add_training_job(reg, "fm-failed", epochs=2, status="Failed")
    add_training_job(reg, "fm-running", epochs=2, status="InProgress")
    add_tuning_job(reg, "tune-a", trials=6)
    model_dir = write_model(home / "jobs" / "fm-done" / "model")
    (model_dir / "metrics.json").write_text('{"test:rmse": 1.06}')
    reg.register_model("fm-done", model_dir, job_name="fm-done",
                       metrics={"test:rmse": 1.06}, predictor_type="regressor")
    return reg


@pytest.fixture
def client(registry):
    from starlette.testclient import TestClient

    from fmkit.console.app import create_app

    with TestClient(create_app(registry=registry, allowed_hosts=["testserver"])) as c:
        yield c


def csrf_of(client) -> str:
    """The token a page hands out (and the cookie the client now holds)."""
    page = client.get("/jobs")
    return re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
