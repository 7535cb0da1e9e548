"""The SageMaker training container contract, end to end in a temporary /opt/ml root."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import fmkit.io as fio
from fmkit.artifact import load
from fmkit.datasets.synthetic import make_planted_fm
from fmkit.inference.predictor import Predictor
from fmkit.io import sagemaker_model
from fmkit.sagemaker import (
    ContainerPaths,
    read_input_config,
    read_resource_config,
    train_main,
)

HP = {"feature_dim": "30", "num_factors": "4", "predictor_type": "regressor", "epochs": "3",
      "mini_batch_size": "50", "factors_lr": "0.02", "linear_lr": "0.02", "bias_lr": "0.05",
      "factors_init_sigma": "0.1", "_tuning_objective_metric": "test:rmse"}


def _root(tmp_path: Path, *, hp=HP, mode: str = "File", hosts=None, current="algo-1",
          data=None) -> tuple[ContainerPaths, object]:
    paths = ContainerPaths(tmp_path / "opt_ml")
    paths.config_dir.mkdir(parents=True)
    paths.hyperparameters.write_text(json.dumps(hp))
    channels = {"train": {"TrainingInputMode": mode, "S3DistributionType": "FullyReplicated",
                          "RecordWrapperType": "None"},
                "test": {"TrainingInputMode": mode, "ContentType":
                         "application/x-recordio-protobuf; charset=binary"}}
    paths.input_data_config.write_text(json.dumps(channels))
    if hosts:
        paths.resource_config.write_text(json.dumps({"current_host": current, "hosts": hosts,
                                                     "network_interface_name": "eth0"}))
    data = data or make_planted_fm(800, 30, 4, noise=0.1, seed=5)
    if mode == "File":
        for name, part in (("train", data.batch.slice(0, 600)), ("test", data.batch.slice(600, 800))):
            paths.channel_dir(name).mkdir(parents=True)
            fio.write(str(paths.channel_dir(name) / f"{name}.rec"), part,
                      format="recordio-protobuf")
    return paths, data


def _run(paths: ContainerPaths, capsys=None, **env) -> int:
    try:
        train_main({"FMKIT_SM_ROOT": str(paths.root), **env})
    except SystemExit as exc:
        return int(exc.code or 0)
    raise AssertionError("train_main must exit")


def test_file_mode_trains_and_writes_sagemaker_and_fmkit_model(tmp_path, capsys):
    paths, data = _root(tmp_path)
    assert _run(paths) == 0
    out = capsys.readouterr().out
    assert not paths.failure.exists()
    files = sorted(p.name for p in paths.model_dir.iterdir())
    assert files == ["metadata.json", "metrics.json", "model_algo-1", "weights.npz"]
    sm = sagemaker_model.load(paths.model_dir / "model_algo-1")
    own = load(paths.model_dir)
    test = data.batch.slice(600, 800)
    assert np.allclose(Predictor(sm).predict_scores(test), Predictor(own).predict_scores(test),
                       atol=1e-6)
    metrics = json.loads((paths.model_dir / "metrics.json").read_text())
    assert metrics["test:rmse"] < 1.5
    assert f"#quality_metric: host=algo-1, test rmse <loss>={metrics['test:rmse']!r}" in out
    assert "#quality_metric: host=algo-1, epoch=2, train rmse <loss>=" in out


def _feed(fifo: Path, payload: bytes) -> threading.Thread:
    def write() -> None:
        with open(fifo, "wb") as f:  # blocks until the trainer opens the FIFO
            f.write(payload)

    t = threading.Thread(target=write, daemon=True)
    t.start()
    return t


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_pipe_mode_reads_one_fifo_per_epoch(tmp_path, capsys):
    paths, data = _root(tmp_path, mode="Pipe")
    staging = tmp_path / "staging"
    staging.mkdir()
    payload = {}
    for name, part in (("train", data.batch.slice(0, 600)), ("test", data.batch.slice(600, 800))):
        fio.write(str(staging / f"{name}.rec"), part, format="recordio-protobuf")
        payload[name] = (staging / f"{name}.rec").read_bytes()
    paths.data_dir.mkdir(parents=True)
    feeders = []
    for fifo, name in (("train_0", "train"), ("train_1", "train"), ("train_2", "train"),
                       ("test_0", "test")):
        os.mkfifo(paths.data_dir / fifo)
        feeders.append(_feed(paths.data_dir / fifo, payload[name]))
    assert _run(paths) == 0, paths.failure.read_text() if paths.failure.exists() else ""
    for t in feeders:
        t.join(timeout=5)
        assert not t.is_alive()
    # the same rows in File mode give the same model
    file_paths, _ = _root(tmp_path / "file", data=data)
    assert _run(file_paths) == 0
    a, b = load(paths.model_dir), load(file_paths.model_dir)
    assert np.allclose(a.V, b.V, atol=1e-6) and np.allclose(a.w, b.w, atol=1e-6)


def test_missing_required_hyperparameter_is_a_client_error(tmp_path):
    paths, _ = _root(tmp_path, hp={k: v for k, v in HP.items() if k != "feature_dim"})
    assert _run(paths) == 2
    text = paths.failure.read_text()
    assert text.startswith("ClientError: No value(s) were specified for 'feature_dim' which "
                           "are required hyperparameter(s).")
    assert not (paths.model_dir / "model_algo-1").exists()


def test_bad_data_and_bad_values_are_client_errors(tmp_path):
    paths, _ = _root(tmp_path, hp={**HP, "num_factors": "0"})
    assert _run(paths) == 2
    assert paths.failure.read_text().startswith("ClientError: num_factors must be")
    paths, _ = _root(tmp_path / "b", hp={**HP, "feature_dim": "10"})
    assert _run(paths) == 2
    assert "out of range" in paths.failure.read_text()
    paths, _ = _root(tmp_path / "c")
    (paths.channel_dir("train") / "train.rec").write_bytes(b"not recordio at all")
    assert _run(paths) == 2
    assert paths.failure.read_text().startswith("ClientError: ")


def test_internal_error_is_an_algorithm_error(tmp_path, monkeypatch):
    paths, _ = _root(tmp_path)

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr("fmkit.engine.trainer.fit", broken)
    assert _run(paths) == 1
    assert paths.failure.read_text().startswith(
        "AlgorithmError: RuntimeError: CUDA error: an illegal memory access")


def test_configs_default_and_validate(tmp_path):
    paths = ContainerPaths(tmp_path)
    assert read_resource_config(paths).hosts == ("algo-1",)
    (tmp_path / "input" / "data" / "train").mkdir(parents=True)
    assert list(read_input_config(paths)) == ["train"]
    paths.config_dir.mkdir(parents=True)
    paths.resource_config.write_text(json.dumps({"current_host": "algo-3",
                                                 "hosts": ["algo-1", "algo-2"]}))
    from fmkit.errors import ConfigError

    with pytest.raises(ConfigError, match="current_host 'algo-3' is not in hosts"):
        read_resource_config(paths)
    paths.input_data_config.write_text(json.dumps({"train": {"TrainingInputMode": "Stream"}}))
    with pytest.raises(ConfigError, match="TrainingInputMode 'Stream'"):
        read_input_config(paths)


@pytest.mark.distributed
def test_two_hosts_train_together_and_the_first_writes_the_model(tmp_path):
    from fmkit.distributed.launch import free_port

    data = make_planted_fm(800, 30, 4, noise=0.1, seed=5)
    port = free_port()
    procs, roots = [], []
    for i, host in enumerate(("algo-1", "algo-2")):
        paths, _ = _root(tmp_path / host, hosts=["algo-1", "algo-2"], current=host, data=data)
        roots.append(paths)
        env = {**os.environ, "FMKIT_SM_ROOT": str(paths.root), "FMKIT_SM_PORT": str(port),
               "FMKIT_SM_MASTER_ADDR": "127.0.0.1"}
        procs.append(subprocess.Popen([sys.executable, "-c",
                                       "from fmkit.sagemaker import train_main; train_main()"],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    outs = [p.communicate(timeout=120)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert (roots[0].model_dir / "model_algo-1").is_file()
    assert not (roots[1].model_dir / "model_algo-1").exists()
    # each host joined as its own rank (the ranks come from resourceconfig.json's order)
    assert "host algo-1 is worker 0 of 2" in outs[0]
    assert "host algo-2 is worker 1 of 2" in outs[1]
    metrics = json.loads((roots[0].model_dir / "metrics.json").read_text())
    single, _ = _root(tmp_path / "single", data=data)
    assert _run(single) == 0
    one = json.loads((single.model_dir / "metrics.json").read_text())
    # each host trained on half the rows per step: same data, twice the global batch
    assert metrics["test:rmse"] < one["test:rmse"] * 1.5
