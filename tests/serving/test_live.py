"""A real server process: boto3's sagemaker-runtime client, SIGTERM drain, no torch."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from fmkit.artifact import save
from fmkit.jobs.endpoints import free_port, ping
from inference.toy import make_artifact

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _start(model_dir, port, *extra):
    proc = subprocess.Popen(
        [sys.executable, "-m", "fmkit", "serve", "--model-dir", str(model_dir), "--port",
         str(port), *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(proc.stdout.read().decode())
        if ping(f"http://127.0.0.1:{port}", timeout_s=0.5):
            return proc
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("server did not start")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("model") / "fm"
    artifact = make_artifact(np.random.default_rng(7), predictor_type="binary_classifier")
    save(artifact, model_dir)
    port = free_port()
    proc = _start(model_dir, port, "--name", "fm-live")
    yield f"http://127.0.0.1:{port}", artifact
    proc.terminate()
    proc.wait(10)


def test_boto3_invoke_endpoint_and_model_error(server):
    boto3 = pytest.importorskip("boto3")
    from botocore.config import Config

    url, artifact = server
    rt = boto3.client("sagemaker-runtime", endpoint_url=url, region_name="us-east-1",
                      aws_access_key_id="x", aws_secret_access_key="x",
                      config=Config(retries={"max_attempts": 1}))
    body = {"instances": [{"data": {"features": {"keys": [0, 6], "shape": [23],
                                                 "values": [1, 1]}}}]}
    resp = rt.invoke_endpoint(EndpointName="fm-live", ContentType="application/json",
                              Accept="application/json", Body=json.dumps(body))
    assert resp["ContentType"] == "application/json"
    assert resp["InvokedProductionVariant"] == "AllTraffic"
    assert len(resp["ResponseMetadata"]["RequestId"]) == 32
    pred = json.loads(resp["Body"].read())["predictions"][0]
    assert set(pred) == {"score", "predicted_label"}
    with pytest.raises(rt.exceptions.ModelError) as err:
        rt.invoke_endpoint(EndpointName="fm-live", ContentType="application/json",
                           Body=b"{broken")
    assert err.value.response["OriginalStatusCode"] == 400
    assert "malformed JSON" in err.value.response["OriginalMessage"]
    with pytest.raises(rt.exceptions.ClientError) as err:
        rt.invoke_endpoint(EndpointName="nope", ContentType="application/json", Body=b"{}")
    assert err.value.response["Error"]["Code"] == "ValidationError"


def test_sigterm_lets_the_in_flight_request_finish(tmp_path):
    model_dir = tmp_path / "fm"
    save(make_artifact(np.random.default_rng(3)), model_dir)
    port = free_port()
    proc = _start(model_dir, port)
    body = json.dumps({"instances": [{"features": [0.0] * 23}]}).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:10])
        time.sleep(1.0)  # the request is now in flight, waiting for its body
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert proc.poll() is None  # still draining
        sock.sendall(body[10:])
        response = b""
        while b"predictions" not in response or not response.endswith(b"]}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            response += chunk
    assert response.startswith(b"HTTP/1.1 200")
    assert proc.wait(15) in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM after draining
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


def test_serving_never_imports_torch(tmp_path):
    model_dir = tmp_path / "fm"
    save(make_artifact(np.random.default_rng(5)), model_dir)
    code = textwrap.dedent(f"""
        import sys, warnings
        warnings.simplefilter("ignore")
        import fmkit.cli
        from fmkit.serving.app import create_app
        from starlette.testclient import TestClient
        with TestClient(create_app({str(model_dir)!r})) as c:
            r = c.post("/invocations", json={{"instances": [{{"features": [1.0] * 23}}]}})
            assert r.status_code == 200, r.text
            assert c.post("/recommend", json={{"user": "u1"}}).status_code == 200
        print("torch" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_container_serve_entry_with_two_workers_and_batch_env(tmp_path):
    model_dir = tmp_path / "model"
    save(make_artifact(np.random.default_rng(9)), model_dir)
    port = free_port()
    env = dict(os.environ, FMKIT_MODEL_DIR=str(model_dir), SAGEMAKER_BIND_TO_PORT=str(port),
               SAGEMAKER_MAX_CONCURRENT_TRANSFORMS="2", SAGEMAKER_BATCH="true",
               SAGEMAKER_MAX_PAYLOAD_IN_MB="1")
    code = "from fmkit.serving.app import container_main; container_main(['serve'])"
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not ping(f"http://127.0.0.1:{port}", timeout_s=0.5):
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        import urllib.request

        url = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(url + "/execution-parameters", timeout=5) as resp:
            assert json.loads(resp.read())["MaxPayloadInMB"] == 1
        req = urllib.request.Request(url + "/invocations", data=b"[" + b"0," * 22 + b"1]\n",
                                     headers={"Content-Type": "application/jsonlines"})
        with urllib.request.urlopen(req, timeout=5) as resp:  # batch mode: JSON Lines
            assert resp.headers["Content-Type"] == "application/jsonlines"
            assert resp.read().endswith(b"}\n")
    finally:
        proc.terminate()
        proc.wait(30)
    env["FMKIT_MODEL_DIR"] = str(tmp_path / "absent")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2 and "does not exist" in out.stderr
