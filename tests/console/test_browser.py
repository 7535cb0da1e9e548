"""The console in a real browser: every page, a tiny training job started from the form and
watched to completion with its curve, deployed, and asked for recommendations.

Skips where Debian's chromium / chromium-driver or selenium are missing. With
``FMKIT_CONSOLE_SCREENSHOTS=<folder>`` the flow also saves screenshots of the main pages
(docs/console.md uses them).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.movielens import write_fake_ml100k

from console.browser import available, chromium, console_server, wait_for

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(available() is not None, reason=str(available()))]

SHOTS = os.environ.get("FMKIT_CONSOLE_SCREENSHOTS")


def _shot(driver, name: str) -> None:
    if SHOTS:
        import base64

        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        height = driver.execute_script("return document.documentElement.scrollHeight")
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": 1360, "height": min(height, 1500), "scale": 0.7}})
        (Path(SHOTS) / f"{name}.png").write_bytes(base64.b64decode(shot["data"]))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("console-flow")
    # FMKIT_CONSOLE_MOVIELENS=<ml-100k folder> runs the flow on real data (the screenshots)
    raw = Path(os.environ.get("FMKIT_CONSOLE_MOVIELENS") or write_fake_ml100k(root / "ml"))
    out = root / "data"
    subprocess.run([sys.executable, "-m", "fmkit", "prepare", "movielens", "--data-dir",
                    str(raw), "--output", str(out)], check=True, capture_output=True,
                   env={**os.environ, "FMKIT_HOME": str(root / "home")})
    return root, out


@pytest.fixture(scope="module")
def site(prepared):
    root, _ = prepared
    home = root / "home"
    with console_server(home) as url:
        yield url, home
    from fmkit.registry import Registry

    try:
        from fmkit.jobs import endpoints
    except ImportError:
        return
    for ep in Registry(home).endpoints.list():  # never leave a server running
        try:
            endpoints.delete(ep.name, timeout_s=10, registry=Registry(home))
        except Exception:  # noqa: BLE001
            pass


@pytest.fixture(scope="module")
def driver():
    with chromium() as d:
        yield d


def _css(driver, selector):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def _fill(driver, name: str, value: str) -> None:
    from selenium.webdriver.common.by import By

    el = driver.find_element(By.ID, f"f-{name}")
    if el.tag_name == "select":
        from selenium.webdriver.support.ui import Select

        Select(el).select_by_value(value)
    else:
        el.clear()
        el.send_keys(value)


def _submit(driver, form_id: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, f"#{form_id} button[type=submit]").click()


@pytest.mark.parametrize("path,title", [("/", "Overview"), ("/jobs", "Training jobs"),
                                        ("/tuning", "Tuning jobs"),
                                        ("/models", "Models"), ("/endpoints", "Endpoints"),
                                        ("/train", "Start a training job")])
def test_each_page_opens(site, driver, path, title) -> None:
    url, _ = site
    driver.get(url + path)
    assert driver.find_element("tag name", "h1").text == title
    logs = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not logs, logs  # no script errors, no blocked resources


def test_bad_input_is_shown_beside_its_field(site, driver, prepared) -> None:
    url, _ = site
    driver.get(url + "/train")
    _fill(driver, "train", str(prepared[1] / "train"))
    _fill(driver, "num_factors", "zero")
    _submit(driver, "train-form")
    err = wait_for(lambda: _css(driver, "#error-num_factors"))[0]
    assert "num_factors must be an int >= 1" in err.text
    assert "has-error" in driver.find_element("id", "f-num_factors") \
        .find_element("xpath", "../..").get_attribute("class")


def test_train_watch_deploy_recommend(site, driver, prepared) -> None:
    pytest.importorskip("fmkit.jobs.training")
    url, home = site
    data = prepared[1]
    driver.get(url + "/train")
    _fill(driver, "name", "browser-job")
    _fill(driver, "train", str(data / "train"))
    _fill(driver, "validation", str(data / "test"))  # scored every epoch: a second curve
    _fill(driver, "test", str(data / "test"))
    assert driver.find_element("id", "f-factors_lr").get_attribute("placeholder") == \
        "default 0.05"  # fmkit's binary_classifier default
    _fill(driver, "predictor_type", os.environ.get("FMKIT_CONSOLE_PREDICTOR", "regressor"))
    if os.environ.get("FMKIT_CONSOLE_PREDICTOR") is None:
        assert driver.find_element("id", "f-factors_lr").get_attribute("placeholder") == \
            "default 0.1"  # the form follows the predictor type
    _fill(driver, "epochs", os.environ.get("FMKIT_CONSOLE_EPOCHS", "4"))
    _fill(driver, "num_factors", "4" if not os.environ.get("FMKIT_CONSOLE_MOVIELENS") else "64")
    _shot(driver, "train-form")
    _submit(driver, "train-form")
    wait_for(lambda: driver.current_url.endswith("/jobs/browser-job"), 30)
    # the summary is replaced by polling until the job ends; the log follows it
    wait_for(lambda: "Completed" in driver.find_element("id", "job-summary").text, 180, 0.5)
    wait_for(lambda: driver.find_element("tag name", "main").get_attribute("data-done"), 10)
    series = wait_for(lambda: _css(driver, "#job-curves polyline.series"), 10)
    assert {s.get_attribute("data-series") for s in series} >= {"train", "validation"}
    assert max(int(s.get_attribute("data-points")) for s in series) == int(
        os.environ.get("FMKIT_CONSOLE_EPOCHS", "4"))
    wait_for(lambda: "#quality_metric" in driver.find_element("id", "job-log").text, 20)
    _shot(driver, "job")
    driver.find_element("id", "clone").click()  # Clone: the form comes back filled in
    wait_for(lambda: driver.find_element("id", "f-train").get_attribute("value")
             == str(data / "train"), 10)
    assert driver.find_element("id", "f-num_factors").get_attribute("value") in ("4", "64")

    driver.get(url + "/jobs")
    assert "browser-job" in driver.find_element("id", "jobs-body").text

    driver.get(url + "/models/browser-job")
    assert "weights.npz" in driver.page_source
    _shot(driver, "model")
    _fill(driver, "endpoint", "browser-ep")
    _submit(driver, "deploy-form")
    wait_for(lambda: driver.current_url.endswith("/endpoints/browser-ep"), 30)
    wait_for(lambda: "InService" in driver.find_element("id", "endpoint-summary").text, 90, 0.5)

    _fill(driver, "user", "3")
    _fill(driver, "k", "5")
    _submit(driver, "recommend-form")
    rows = wait_for(lambda: _css(driver, "#recommendations tr"), 30)
    assert len(rows) == 5
    cells = [r.find_elements("tag name", "td") for r in rows]
    assert all(c[2].text for c in cells)  # titles from u.item
    if not os.environ.get("FMKIT_CONSOLE_MOVIELENS"):
        assert all(c[2].text == f"Movie {c[1].text} (1995)" for c in cells)
    scores = [float(c[3].text) for c in cells]
    assert scores == sorted(scores, reverse=True)
    _shot(driver, "endpoint")

    _fill(driver, "item", "7")
    _submit(driver, "similar-form")
    rows = wait_for(lambda: _css(driver, "#similar tr"), 30)
    assert len(rows) == 10 and all(r.find_elements("tag name", "td")[2].text for r in rows)

    _submit(driver, "invoke-form")
    answer = wait_for(lambda: _css(driver, "#answer-body"), 30)[0]
    assert "predictions" in answer.text and "HTTP 200" in driver.page_source
    # requests served: recommend, similar, invoke
    assert "3 (worker" in driver.find_element("id", "endpoint-summary").text

    # stop keeps the endpoint (OutOfService); start brings it back on the same URL
    summary = driver.find_element("id", "endpoint-summary").text
    endpoint_url = [ln for ln in summary.splitlines() if "http://" in ln][0].split()[-1]
    driver.find_element("css selector", "#endpoint-summary button.stop").click()
    driver.switch_to.alert.accept()
    wait_for(lambda: "OutOfService" in driver.find_element("id", "endpoint-summary").text, 40)
    driver.find_element("css selector", "#endpoint-summary button.start").click()
    wait_for(lambda: "InService" in driver.find_element("id", "endpoint-summary").text, 90, 0.5)
    assert endpoint_url in driver.find_element("id", "endpoint-summary").text
    _fill(driver, "user", "3")
    _submit(driver, "recommend-form")
    wait_for(lambda: _css(driver, "#recommendations tr"), 30)

    driver.get(url + "/endpoints")
    row = driver.find_element("id", "endpoints-body").text
    assert "browser-ep" in row and "InService" in row
    assert "1 (worker" in row  # requests served since the restart: one recommend
    _shot(driver, "endpoints")
    driver.find_element("css selector", "#endpoints-body button.danger").click()
    driver.switch_to.alert.accept()
    wait_for(lambda: "browser-ep" not in driver.find_element("id", "endpoints-body").text, 40)


def test_tuning_page_sorts_by_objective(site, driver) -> None:
    from console.records import add_tuning_job
    from fmkit.registry import Registry

    url, home = site
    add_tuning_job(Registry(home), "browser-tune", trials=12)
    driver.get(url + "/tuning/browser-tune")
    charts = _css(driver, "figure[data-chart] svg")
    assert len(charts) == 3  # objective per trial, factors_lr, factors_wd
    header = [th for th in _css(driver, "table.trials th") if th.text == "test:rmse"][0]

    def objective_column() -> list[float]:
        return [float(r.find_elements("tag name", "td")[3].text)
                for r in _css(driver, "table.trials tbody tr")]

    values = objective_column()
    assert values == sorted(values)  # best (smallest) first
    _shot(driver, "tuning")
    header.click()
    header.click()
    assert objective_column() == sorted(values, reverse=True)

    driver.get(url + "/jobs")
    assert "browser-tune-001" not in driver.find_element("id", "jobs-body").text
    driver.find_element("id", "f-trials").click()
    _submit(driver, "jobs-filter")
    wait_for(lambda: "browser-tune-012" in driver.find_element("id", "jobs-body").text, 10)
    _shot(driver, "jobs")
