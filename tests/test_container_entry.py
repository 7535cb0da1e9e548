"""The SageMaker container's entry commands, run as the image runs them, in a temporary /opt/ml.

SageMaker runs ``docker run IMAGE train`` and ``docker run IMAGE serve``; the Dockerfile links
``train`` and ``serve`` to the console scripts ``fmkit-train`` and ``fmkit-serve``. No Docker
engine runs in CI, so these tests run the same console scripts with ``FMKIT_SM_ROOT`` pointing
at a temporary root laid out as SageMaker lays out /opt/ml.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

import fmkit.io as fio
from fmkit.datasets.synthetic import make_planted_fm

ROOT = Path(__file__).resolve().parents[1]
FEATURE_DIM = 20
SCRIPTS = {"fmkit-train": "fmkit.sagemaker:train_main",
           "fmkit-serve": "fmkit.serving.app:container_main"}


def _pyproject_scripts() -> dict[str, str]:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["scripts"]


def _command(script: str) -> list[str]:
    """The installed console script, or the same entry point through this interpreter."""
    exe = Path(sys.executable).parent / script
    if exe.is_file():
        return [str(exe)]
    module, func = SCRIPTS[script].split(":")
    return [sys.executable, "-c", f"from {module} import {func}; {func}()"]


def _env(root: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, FMKIT_SM_ROOT=str(root), **extra)
    env.pop("FMKIT_MODEL_DIR", None)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "src")] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def _job(root: Path, hyperparameters: dict[str, str]) -> Path:
    """Lay out /opt/ml for a training job with a tiny recordIO train and test channel."""
    config = root / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    channels = {name: {"ContentType": "application/x-recordio-protobuf",
                       "TrainingInputMode": "File", "S3DistributionType": "FullyReplicated",
                       "RecordWrapperType": "None"} for name in ("train", "test")}
    (config / "inputdataconfig.json").write_text(json.dumps(channels))
    (config / "resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    data = make_planted_fm(600, FEATURE_DIM, 3, task="binary_classifier", seed=11).batch
    for name, rows in (("train", slice(0, 500)), ("test", slice(500, 600))):
        folder = root / "input" / "data" / name
        folder.mkdir(parents=True)
        part = data.to_csr()[rows]
        labels = data.labels[rows]
        from fmkit.sparse import SparseBatch

        fio.write(str(folder / f"{name}.rec"), SparseBatch.from_matrix(part, labels=labels),
                  format="recordio-protobuf")
    return root


GOOD = {"feature_dim": str(FEATURE_DIM), "num_factors": "4",
        "predictor_type": "binary_classifier", "epochs": "3", "mini_batch_size": "50"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    root = _job(tmp_path_factory.mktemp("opt_ml"), GOOD)
    done = subprocess.run(_command("fmkit-train"), env=_env(root), capture_output=True,
                          text=True, timeout=300, cwd=root)
    return root, done


def test_console_scripts_are_the_documented_entry_points():
    assert _pyproject_scripts() == {"fmkit": "fmkit.cli:main", **SCRIPTS}
    for name, target in SCRIPTS.items():
        found = [e for e in metadata.entry_points(group="console_scripts") if e.name == name]
        if found:  # installed: the installed entry point is the one pyproject.toml names
            assert found[0].value == target


def test_dockerfile_and_docs_name_the_console_scripts_of_pyproject():
    scripts = set(_pyproject_scripts())
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ln -s "$(command -v fmkit-train)" /usr/local/bin/train' in dockerfile
    assert 'ln -s "$(command -v fmkit-serve)" /usr/local/bin/serve' in dockerfile
    assert 'pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"' \
        in dockerfile
    docs = (ROOT / "docs" / "container.md").read_text()
    named = set(re.findall(r"\bfmkit-[a-z]+\b", docs + dockerfile))
    assert named and named <= scripts, named - scripts
    for name, target in _pyproject_scripts().items():  # docs quote [project.scripts] as is
        assert f'{name} = "{target}"' in docs, name


def test_train_writes_sagemaker_and_fmkit_model_files(trained):
    root, done = trained
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    model = root / "model"
    assert (model / "model_algo-1").is_file()
    for name in ("metadata.json", "weights.npz", "metrics.json"):
        assert (model / name).is_file(), name
    assert not (root / "output" / "failure").exists()
    metrics = json.loads((model / "metrics.json").read_text())
    assert 0.0 <= metrics["test:binary_classification_accuracy"] <= 1.0
    assert "#quality_metric: host=algo-1" in done.stdout


def test_a_bad_hyperparameter_writes_a_client_error_and_exits_2(tmp_path):
    root = _job(tmp_path / "opt_ml", dict(GOOD, num_factors="0"))
    done = subprocess.run(_command("fmkit-train"), env=_env(root), capture_output=True,
                          text=True, timeout=300, cwd=root)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    failure = (root / "output" / "failure").read_text()
    assert failure.startswith("ClientError: ") and "num_factors" in failure
    assert not (root / "model" / "model_algo-1").exists()


def _free_port() -> int:
    from fmkit.jobs.endpoints import free_port

    return free_port()


def test_serve_answers_ping_and_invocations_with_the_trained_model(trained):
    root, done = trained
    assert done.returncode == 0, done.stderr[-2000:]
    port = _free_port()
    env = _env(root, SAGEMAKER_BIND_TO_PORT=str(port), SAGEMAKER_MAX_CONCURRENT_TRANSFORMS="1")
    proc = subprocess.Popen(_command("fmkit-serve"), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
            try:
                with urllib.request.urlopen(url + "/ping", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            assert time.monotonic() < deadline, "fmkit-serve did not answer /ping"
            time.sleep(0.2)
        rows = np.eye(FEATURE_DIM, dtype=np.float32)[:3].tolist()
        body = json.dumps({"instances": [{"features": r} for r in rows]}).encode()
        req = urllib.request.Request(url + "/invocations", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200
            predictions = json.loads(resp.read())["predictions"]
        assert len(predictions) == 3
        assert all(0.0 <= p["score"] <= 1.0 and p["predicted_label"] in (0, 1, 0.0, 1.0)
                   for p in predictions)
    finally:
        proc.terminate()
        proc.wait(30)
