"""Commands that do not train with torch do not import it (STYLE.md section 1).

Each command runs in a fresh interpreter (``fmkit.cli.main([...])`` in a subprocess), which
then reports whether ``torch`` is in ``sys.modules``: MCMC, ALS and CPU SGD training,
evaluate, recommend, prepare, inspect, convert, export and serving a request.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.movielens import write_fake_ml100k

_RUN = """
import json, sys
import fmkit.cli
code = 0
try:
    fmkit.cli.main(json.loads(sys.argv[1]))
except SystemExit as exc:
    code = exc.code or 0
print(json.dumps({"code": code, "torch": "torch" in sys.modules}))
"""

_SERVE = """
import json, sys
from starlette.testclient import TestClient
from fmkit.serving.app import create_app
dim = json.load(open(sys.argv[1] + "/metadata.json"))["feature_dim"]
row = {"data": {"features": {"keys": [0, dim - 1], "shape": [dim], "values": [1.0, 1.0]}}}
with TestClient(create_app(sys.argv[1])) as client:
    ping = client.get("/ping").status_code
    out = client.post("/invocations", json={"instances": [row]},
                      headers={"Accept": "application/json"})
print(json.dumps({"code": 0 if ping == 200 and out.status_code == 200 else out.text,
                  "torch": "torch" in sys.modules}))
"""


def _python(tmp: Path, script: str, *args: str) -> dict:
    env = dict(os.environ, FMKIT_HOME=str(tmp / "home"))
    res = subprocess.run([sys.executable, "-c", script, *args], capture_output=True,
                         text=True, env=env, cwd=tmp, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def _fmkit(tmp: Path, *args: str) -> dict:
    return _python(tmp, _RUN, json.dumps([str(a) for a in args]))


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny MovieLens data prepared for both targets, and one CPU-trained model."""
    tmp = tmp_path_factory.mktemp("no_torch")
    src = write_fake_ml100k(tmp / "ml")
    for target in ("binary", "rating"):
        out = _fmkit(tmp, "prepare", "movielens", "--data-dir", str(src), "--target", target,
                     "--output", str(tmp / target))
        assert out == {"code": 0, "torch": False}
    return tmp


def _train(work: Path, name: str, target: str, *extra: str) -> dict:
    return _fmkit(work, "train", "--train", str(work / target / "train"), "--test",
                  str(work / target / "test"), "--model-dir", str(work / name),
                  "--no-progress", "--num-factors", "4", *extra)


def test_prepare_does_not_import_torch(work: Path) -> None:
    # (the fixture asserted it for both targets; here again into a new folder)
    out = _fmkit(work, "prepare", "movielens", "--data-dir", str(work / "ml"), "--output",
                 str(work / "again"), "--format", "libsvm")
    assert out == {"code": 0, "torch": False}


@pytest.mark.parametrize("solver, target, extra", [
    ("mcmc", "binary", ("--predictor-type", "binary_classifier", "--epochs", "20")),
    ("mcmc", "rating", ("--predictor-type", "regressor", "--epochs", "20")),
    ("als", "rating", ("--predictor-type", "regressor", "--epochs", "5")),
    ("sgd", "binary", ("--predictor-type", "binary_classifier", "--epochs", "2",
                       "--device", "cpu")),
    ("sgd", "rating", ("--predictor-type", "regressor", "--epochs", "2", "--device", "cpu")),
])
def test_training_without_torch(work: Path, solver: str, target: str, extra: tuple) -> None:
    out = _train(work, f"m-{solver}-{target}", target, "--solver", solver, *extra)
    assert out == {"code": 0, "torch": False}
    assert (work / f"m-{solver}-{target}" / "metrics.json").is_file()


@pytest.fixture(scope="module")
def model(work: Path) -> Path:
    out = _train(work, "model", "binary", "--predictor-type", "binary_classifier",
                 "--epochs", "2", "--device", "cpu")
    assert out["code"] == 0
    return work / "model"


def test_evaluate_does_not_import_torch(work: Path, model: Path) -> None:
    out = _fmkit(work, "evaluate", "--model-dir", str(model), "--test",
                 str(work / "binary" / "test"), "--ranking-k", "5")
    assert out == {"code": 0, "torch": False}


def test_recommend_does_not_import_torch(work: Path, model: Path) -> None:
    out = _fmkit(work, "recommend", "--model-dir", str(model), "--user", "1", "-k", "3")
    assert out == {"code": 0, "torch": False}


def test_inspect_and_convert_do_not_import_torch(work: Path) -> None:
    assert _fmkit(work, "inspect", str(work / "binary" / "train")) == \
        {"code": 0, "torch": False}
    out = _fmkit(work, "convert", str(work / "binary" / "train"),
                 str(work / "train.libsvm"), "--to", "libsvm")
    assert out == {"code": 0, "torch": False}
    assert (work / "train.libsvm").stat().st_size > 0


@pytest.mark.parametrize("fmt, name", [("sagemaker", "export-sm"), ("npz", "export.npz")])
def test_export_does_not_import_torch(work: Path, model: Path, fmt: str, name: str) -> None:
    out = _fmkit(work, "export", "--model-dir", str(model), "--format", fmt, "--output",
                 str(work / name))
    assert out == {"code": 0, "torch": False}


def test_serving_a_request_does_not_import_torch(work: Path, model: Path) -> None:
    pytest.importorskip("starlette")
    pytest.importorskip("httpx")
    assert _python(work, _SERVE, str(model)) == {"code": 0, "torch": False}
