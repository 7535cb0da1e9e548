"""The console over HTTP (starlette's TestClient): pages, CSRF, downloads, bad input."""

from __future__ import annotations

import re

import pytest

from console.conftest import csrf_of


@pytest.mark.parametrize("path", ["/jobs", "/jobs?trials=1", "/jobs/fm-done", "/tuning",
                                  "/tuning/tune-a", "/models", "/models/fm-done", "/endpoints",
                                  "/train"])
def test_every_page_renders(client, path) -> None:
    r = client.get(path)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert "<h1>" in r.text and "Traceback" not in r.text
    assert "content-security-policy" in r.headers


def test_job_list_filters_and_search(client) -> None:
    every = client.get("/jobs").text
    assert "fm-done" in every and "fm-failed" in every
    assert "tune-a-001" not in every  # trials only on the toggle
    assert "tune-a-001" in client.get("/jobs?trials=1").text
    failed = client.get("/jobs?status=Failed").text
    assert "fm-failed" in failed and "fm-done" not in failed
    searched = client.get("/jobs?q=runn").text
    assert "fm-running" in searched and "fm-done" not in searched
    # a running job makes the page poll its JSON twin
    assert 'data-poll="/api/jobs' in every
    api = client.get("/api/jobs?status=Completed").json()
    assert api["done"] is True and "fm-done" in api["sections"]["jobs-body"]
    shown = re.search(r'<tbody id="jobs-body">(.*?)</tbody>',
                      client.get("/jobs?status=Completed").text, re.S)
    assert api["sections"]["jobs-body"] == shown.group(1)  # the rows the poll replaces


def test_job_page_draws_every_curve(client) -> None:
    text = client.get("/jobs/fm-done").text
    # one chart for rmse with a train and a validation line of 6 epochs
    assert 'data-metric="rmse"' in text
    assert re.search(r'data-series="train" data-points="6"', text)
    assert re.search(r'data-series="validation" data-points="6"', text)
    assert "num_factors" in text and "/data/train" in text
    assert 'href="/models/fm-done"' in text
    assert 'data-poll=' not in text  # finished: nothing to poll
    running = client.get("/jobs/fm-running").text
    assert 'data-poll="/api/jobs/fm-running"' in running and "Stop job" in running


def test_job_api_and_log(client, registry) -> None:
    registry.jobs.append_log("fm-running", [(1.0, "epoch 0 train:rmse=1.2"),
                                            (2.0, "epoch 1 train:rmse=1.1")])
    d = client.get("/api/jobs/fm-running").json()
    assert d["done"] is False and len(d["epochs"]) == 2
    log = client.get("/api/jobs/fm-running/log").json()
    assert [e["message"] for e in log["events"]] == ["epoch 0 train:rmse=1.2",
                                                    "epoch 1 train:rmse=1.1"]
    again = client.get(f"/api/jobs/fm-running/log?start={log['next']}").json()
    assert again["events"] == []


def test_tuning_page_trials_best_and_charts(client, registry) -> None:
    job = registry.tuning.get("tune-a")
    text = client.get("/tuning/tune-a").text
    assert text.count('<tr><td data-sort="') >= 6
    assert f'href="/jobs/{job.best_training_job}"' in text
    assert 'data-chart="objective"' in text and 'data-chart="factors_lr"' in text
    assert 'data-chart="factors_wd"' in text and "factors_lr (log)" in text
    # the trials table lists the best trial first
    first = re.search(r'<tbody>.*?href="/jobs/([^"]+)"', text, re.S).group(1)
    assert first == job.best_training_job


def test_model_page_and_files(client, home) -> None:
    text = client.get("/models/fm-done").text
    assert "weights.npz" in text and "test:rmse" in text and "Deploy" in text
    r = client.get("/models/fm-done/files/metadata.json")
    assert r.status_code == 200 and r.json()["predictor_type"] == "regressor"


@pytest.mark.parametrize("path", [
    "/files/../../etc/passwd", "/files/%2e%2e/%2e%2e/etc/passwd", "/files/..%2f..%2fetc%2fpasswd",
    "/files//etc/passwd", "/files/registry.db", "/models/fm-done/files/../../../registry.db",
    "/models/fm-done/files/%2e%2e%2f%2e%2e%2f%2e%2e%2fregistry.db",
])
def test_downloads_refuse_traversal(client, path) -> None:
    r = client.get(path)
    assert r.status_code == 404
    assert "root:" not in r.text and "SQLite" not in r.text


def test_downloads_refuse_a_link_out_of_home(client, home, tmp_path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    (home / "jobs" / "link.txt").symlink_to(outside)
    assert client.get("/files/jobs/link.txt").status_code == 404
    (home / "jobs" / "inside.txt").write_text("fine")
    assert client.get("/files/jobs/inside.txt").text == "fine"


def _post_routes():
    from fmkit.console.app import _routes

    return [path for method, path, _ in _routes() if method == "POST"]


@pytest.mark.parametrize("path", _post_routes())
def test_every_post_needs_the_csrf_token(client, registry, path) -> None:
    url = path.replace("{name}", "fm-done")
    client.get("/jobs")  # has the cookie, but sends no token
    r = client.post(url, data={"format": "npz"})
    assert r.status_code == 403, (url, r.status_code)
    r = client.post(url, data={"csrf_token": "forged.0123456789abcdef0123456789abcdef"})
    assert r.status_code == 403


def test_csrf_token_must_match_the_cookie(client, registry) -> None:
    from starlette.testclient import TestClient

    from fmkit.console.app import create_app

    token = csrf_of(client)
    other = TestClient(create_app(registry=registry, allowed_hosts=["testserver"]))
    # a token from another app (another secret) or without the cookie is refused
    assert other.post("/jobs/fm-running/stop", data={"csrf_token": token}).status_code == 403
    assert registry.jobs.get("fm-running").status == "InProgress"
    r = client.post("/jobs/fm-running/stop", data={"csrf_token": token},
                    follow_redirects=False)
    assert r.status_code == 303
    assert registry.jobs.get("fm-running").status in ("Stopping", "Stopped")


def test_state_changes_are_never_gets(client) -> None:
    assert client.get("/jobs/fm-running/stop").status_code == 405
    assert client.get("/models/fm-done/export").status_code in (404, 405)


def test_foreign_host_header_is_refused(registry) -> None:
    from starlette.testclient import TestClient

    from fmkit.console.app import create_app

    c = TestClient(create_app(registry=registry), base_url="http://evil.example")
    assert c.get("/jobs").status_code == 400
    ok = TestClient(create_app(registry=registry), base_url="http://127.0.0.1:8788")
    assert ok.get("/jobs").status_code == 200


def test_training_form_shows_errors_beside_fields(client, tmp_path) -> None:
    token = csrf_of(client)
    r = client.post("/train", data={
        "csrf_token": token, "train": str(tmp_path / "missing"), "predictor_type": "regressor",
        "defaults": "fmkit", "num_factors": "-3", "epochs": "many", "factors_lr": "fast",
        "name": "bad name!", "extra": "bias_init_method=sideways\n"})
    assert r.status_code == 400
    errors = dict(re.findall(r'id="error-([a-z_]+)" role="alert">([^<]*)<', r.text))
    assert "num_factors must be an int &gt;= 1" in errors["num_factors"]
    assert "epochs must be an int" in errors["epochs"]
    assert "factors_lr must be a float" in errors["factors_lr"]
    assert "does not exist" in errors["train"]
    assert "name" in errors and "extra" in errors
    assert "Traceback" not in r.text
    # what the user typed is kept
    assert 'value="many"' in r.text


def test_training_form_cross_field_error(client, tmp_path) -> None:
    (tmp_path / "train").mkdir()
    token = csrf_of(client)
    r = client.post("/train", data={"csrf_token": token, "train": str(tmp_path / "train"),
                                    "predictor_type": "binary_classifier", "defaults": "fmkit",
                                    "solver": "als"})
    assert r.status_code == 400
    errors = dict(re.findall(r'id="error-([a-z_]+)" role="alert">([^<]*)<', r.text))
    assert "solver" in errors and "als" in errors["solver"]


def test_training_form_needs_train_and_a_known_hyperparameter(client) -> None:
    token = csrf_of(client)
    r = client.post("/train", data={"csrf_token": token, "predictor_type": "regressor",
                                    "extra": "no_such_thing=1"})
    errors = dict(re.findall(r'id="error-([a-z_]+)" role="alert">([^<]*)<', r.text))
    assert "required" in errors["train"] and "no_such_thing" in errors["extra"]


def test_deploy_form_validates_its_fields(client) -> None:
    token = csrf_of(client)
    r = client.post("/models/fm-done/deploy", data={"csrf_token": token, "endpoint": "-bad-",
                                                    "workers": "0"})
    assert r.status_code == 400
    errors = dict(re.findall(r'id="error-([a-z_]+)" role="alert">([^<]*)<', r.text))
    assert "endpoint name" in errors["endpoint"] and "workers" in errors["workers"]


def test_export_writes_into_home_and_downloads(client, home) -> None:
    pytest.importorskip("fmkit.jobs.models")
    token = csrf_of(client)
    r = client.post("/models/fm-done/export", data={"csrf_token": token, "format": "npz"},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/files/console/exports/fm-done/model.npz"
    got = client.get(r.headers["location"])
    assert got.status_code == 200 and got.content[:2] == b"PK"  # an npz is a zip
    r = client.post("/models/fm-done/export", data={"csrf_token": token,
                                                    "format": "sagemaker"})
    assert r.status_code == 200 and r.content[:2] == b"\x1f\x8b"  # model.tar.gz, followed
    assert (home / "console" / "exports" / "fm-done" / "model.tar.gz").is_file()
    r = client.post("/models/fm-done/export", data={"csrf_token": token, "format": "pickle"})
    assert r.status_code == 400 and 'id="error-export"' in r.text


def test_unknown_records_are_404_pages(client) -> None:
    for path in ("/jobs/nope", "/tuning/nope", "/models/nope", "/endpoints/nope"):
        r = client.get(path)
        assert r.status_code == 404 and "nope" in r.text and "Traceback" not in r.text
    assert client.get("/api/jobs/nope").json()["message"].startswith("no training job")


def test_a_crash_shows_only_a_request_id(registry, monkeypatch, caplog) -> None:
    from starlette.testclient import TestClient

    from fmkit.console import app as console_app
    from fmkit.console.pages import jobs

    def boom(ctx):
        raise RuntimeError("secret internals /etc/shadow")

    monkeypatch.setattr(jobs, "list_page", boom)
    c = TestClient(console_app.create_app(registry=registry, allowed_hosts=["testserver"]))
    r = c.get("/jobs")
    assert r.status_code == 500
    assert "request id" in r.text and "secret internals" not in r.text
    assert "Traceback" not in r.text
    rid = re.search(r"request id ([0-9a-f]+)", r.text).group(1)
    assert any(rid in rec.getMessage() for rec in caplog.records)


def test_oversized_form_is_refused(client) -> None:
    token = csrf_of(client)
    r = client.post("/train", data={"csrf_token": token, "extra": "x" * (1024 * 1024 + 10)})
    assert r.status_code == 413


def test_record_text_is_escaped(client, registry) -> None:
    evil = "<script>alert(1)</script>"
    registry.jobs.create("fm-evil", hyperparameters={"predictor_type": evil},
                         channels={"train": f"/data/{evil}"})
    registry.jobs.finish("fm-evil", status="Failed", failure_reason=f"DataError: {evil}")
    for path in ("/jobs/fm-evil", "/jobs?status=Failed", "/jobs?q=<script>"):
        text = client.get(path).text
        assert "<script>alert" not in text and "&lt;script&gt;" in text, path


def test_pages_never_import_torch(tmp_path) -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from starlette.testclient import TestClient\n"
        "from fmkit.console.app import create_app\n"
        f"c = TestClient(create_app({str(tmp_path)!r}, allowed_hosts=['testserver']))\n"
        "for p in ['/jobs', '/tuning', '/models', '/endpoints', '/train']:\n"
        "    assert c.get(p).status_code == 200, p\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_overview_counts_and_latest_jobs(client) -> None:
    text = client.get("/").text
    assert "<h1>Overview</h1>" in text
    assert "1 Completed" in text and "1 Failed" in text and "1 InProgress" in text
    assert 'href="/jobs/fm-done"' in text and "tune-a-001" not in text
    assert 'href="/tuning/tune-a"' in text


def test_clone_prefills_the_form(client, registry) -> None:
    text = client.get("/jobs/fm-done").text
    assert 'href="/train?from=fm-done"' in text
    form = client.get("/train?from=fm-done").text
    assert 'name="train" value="/data/train"' in form
    assert 'name="num_factors" value="8"' in form
    assert '<option value="regressor" selected>' in form
    # a job started through fmkit.jobs keeps its request: only what was given comes back
    registry.jobs.create("fm-req", hyperparameters={"predictor_type": "regressor"},
                         channels={"train": "/d/t"}, model_dir="/m",
                         request={"channels": {"train": {"uri": "/d/t"}},
                                  "hyperparameters": {"predictor_type": "regressor",
                                                      "bias_init_method": "uniform",
                                                      "bias_init_scale": "0.1"},
                                  "defaults": "sagemaker"})
    form = client.get("/train?from=fm-req").text
    assert 'name="train" value="/d/t"' in form and "bias_init_method=uniform" in form
    assert '<option value="sagemaker" selected>' in form
    assert client.get("/train?from=nope").status_code == 404


def test_endpoint_forms_show_refusals_and_unreachable_servers(client, registry) -> None:
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from fmkit.jobs.endpoints import free_port

    class Stub(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers["Content-Length"]))
            code, doc = ((400, {"message": "unknown user '9'"}) if self.path == "/recommend"
                         else (200, {"item": "7", "similar": [
                             {"item": "8", "title": "Eight", "score": 0.5}]}))
            body = json.dumps(doc).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        registry.endpoints.add("stub", "/nowhere", url=f"http://127.0.0.1:{server.server_port}")
        registry.endpoints.add("gone", "/nowhere", url=f"http://127.0.0.1:{free_port()}")
        token = csrf_of(client)
        refused = client.post("/endpoints/stub/recommend",
                              data={"csrf_token": token, "user": "9", "k": "5"})
        found = client.post("/endpoints/stub/similar",
                            data={"csrf_token": token, "item": "7", "k_similar": "3"})
        unreachable = client.post("/endpoints/gone/similar",
                                  data={"csrf_token": token, "item": "7", "k_similar": "3"})
    finally:
        server.shutdown()

    def errors(r) -> dict[str, str]:
        return dict(re.findall(r'id="error-([a-z_]+)" role="alert">([^<]*)<', r.text))

    assert refused.status_code == 400 and "unknown user" in errors(refused)["user"]
    assert found.status_code == 200 and not errors(found)
    assert 'id="similar"' in found.text and "Eight" in found.text
    assert unreachable.status_code == 502 and "cannot reach" in errors(unreachable)["item"]
