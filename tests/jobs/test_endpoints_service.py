"""fmkit.jobs.endpoints: serving processes recorded in the registry, status checked live."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request

import pytest

from fmkit.errors import ArtifactError, FMError
from fmkit.jobs import endpoints, training
from fmkit.registry import Registry


@pytest.fixture
def model_dir(channels, tmp_path):
    request = training.TrainingRequest(
        channels=channels, model_dir=str(tmp_path / "model"),
        hyperparameters={"predictor_type": "regressor", "num_factors": "3", "epochs": "2"})
    training.run(request)
    return str(tmp_path / "model")


def _wait_status(name, registry, wanted, timeout_s=60.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        record = endpoints.describe(name, registry=registry)
        if record.status in wanted:
            return record
        time.sleep(0.1)
    raise AssertionError(f"endpoint {name} never reached {wanted}")


@pytest.mark.slow
def test_deploy_without_waiting_then_serving_then_failed_when_killed(model_dir):
    reg = Registry()
    record = endpoints.deploy(model_dir, "svc-1", wait_s=0, registry=reg, model_name="m1")
    assert record.status == "Creating" and record.model_name == "m1"
    ready = _wait_status("svc-1", reg, {"InService"})
    body = json.dumps({"instances": [{"data": {"features": {"keys": [1, 2], "shape": [20],
                                                              "values": [1.0, 1.0]}}}]})
    req = urllib.request.Request(ready.url + "/invocations", body.encode(),
                                 {"Content-Type": "application/json"})
    answer = json.load(urllib.request.urlopen(req, timeout=10))
    assert len(answer["predictions"]) == 1
    assert [e.name for e in endpoints.list_endpoints(registry=reg)] == ["svc-1"]
    # stop keeps the record; start brings the same endpoint back on the same URL
    stopped = endpoints.stop("svc-1", registry=reg)
    assert stopped.status == "OutOfService"
    assert endpoints.describe("svc-1", registry=reg).status == "OutOfService"
    endpoints.start("svc-1", registry=reg)
    ready = _wait_status("svc-1", reg, {"InService"})
    assert ready.url == stopped.url
    os.killpg(ready.pid, signal.SIGKILL)
    failed = _wait_status("svc-1", reg, {"Failed"})
    assert "no longer running" in failed.failure_reason
    # restore() brings a dead endpoint back
    again = endpoints.restore(registry=reg, wait_s=60)
    assert [e.status for e in again] == ["InService"]
    gone = endpoints.delete("svc-1", registry=reg)
    assert gone.status == "OutOfService" and reg.endpoints.list() == []


def test_a_bad_model_fails_before_a_process_starts(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.tar.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(ArtifactError):
        endpoints.check_model(str(tmp_path / "bad"))
    with pytest.raises(FMError, match="no endpoint named 'nope'"):
        endpoints.describe("nope")
    with pytest.raises(FMError, match="endpoint name"):
        endpoints.deploy(str(tmp_path), "bad_name!")


@pytest.mark.slow
def test_a_server_that_cannot_load_its_model_is_failed_with_the_reason(tmp_path):
    reg = Registry()
    (tmp_path / "empty").mkdir()
    endpoints.deploy(str(tmp_path / "empty"), "svc-bad", wait_s=0, registry=reg)
    failed = _wait_status("svc-bad", reg, {"Failed"})
    assert "not a model" in failed.failure_reason
