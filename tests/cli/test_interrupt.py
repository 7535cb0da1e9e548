"""Ctrl-C during `fmkit train` stops cleanly: exit 130, a complete model, status Stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import fmkit.io as fio
from fmkit.datasets.synthetic import make_planted_fm


def test_sigint_keeps_a_consistent_model(tmp_path):
    data = make_planted_fm(20000, 200, 4, seed=1).batch
    fio.write(str(tmp_path / "train.npz"), data)
    model = tmp_path / "model"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fmkit", "train", "--train", str(tmp_path / "train.npz"),
         "--model-dir", str(model), "--predictor-type", "regressor", "--epochs", "100000",
         "--mini-batch-size", "64", "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"))
    # wait for the first epoch line, then press Ctrl-C
    deadline = time.time() + 120
    seen = ""
    while time.time() < deadline:
        line = proc.stderr.readline()
        seen += line
        if line.startswith("epoch 1/"):
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, seen + err
    summary = json.loads(out)
    assert summary["status"] == "Stopped" and "Ctrl-C" in summary["stop_reason"]
    meta = json.loads((model / "metadata.json").read_text())
    assert meta["status"] == "Stopped" and meta["epochs_run"] >= 1
    assert (model / "weights.npz").is_file() and (model / "metrics.json").is_file()
    assert "Traceback" not in err
