"""s3:// model folders in every command that takes --model-dir (issue 14, item 3)."""

from __future__ import annotations

import json

import pytest
from helpers.cli import run_cli as _cli
from helpers.s3 import moto_server, s3  # noqa: F401 - fixtures

import fmkit.io as fio
from fmkit.datasets.synthetic import make_planted_fm
from fmkit.registry import Registry

pytestmark = pytest.mark.slow


def test_train_to_s3_then_every_command_reads_it(s3, tmp_path, capsys):  # noqa: F811
    data = make_planted_fm(400, 16, 3, noise=0.1, seed=2)
    for name, part in (("train", data.batch.slice(0, 300)), ("test", data.batch.slice(300, 400))):
        (tmp_path / name).mkdir()
        fio.write(str(tmp_path / name / f"{name}.rec"), part, format="recordio-protobuf")
    uri = f"{s3}/models/m1"
    code, out, err = _cli(capsys, "train", "--train", tmp_path / "train", "--test",
                          tmp_path / "test", "--model-dir", uri, "--predictor-type",
                          "regressor", "--num-factors", "3", "--epochs", "2", "--name", "s3-1")
    assert code == 0, err
    # the registry records the URI as given, not a local path made of it
    assert Registry().models.get("s3-1").artifact == uri
    assert Registry().jobs.get("s3-1").model_dir == uri
    code, out, err = _cli(capsys, "evaluate", "--model-dir", uri, "--test", tmp_path / "test")
    assert code == 0, err
    assert json.loads(out)["test:rmse"] == pytest.approx(
        Registry().jobs.get("s3-1").final_metrics["test:rmse"], rel=1e-5)
    code, out, err = _cli(capsys, "transform", "--model-dir", uri, "--input",
                          tmp_path / "test", "--output", tmp_path / "out")
    assert code == 0, err and json.loads(out)["records"] == 100
    code, out, err = _cli(capsys, "export", "--model-dir", uri, "--format", "npz",
                          "--output", tmp_path / "exp")
    assert code == 0, err
    code, _, err = _cli(capsys, "recommend", "--model-dir", uri, "--user", "1")
    # a model without a vocabulary cannot speak raw ids: a clear error, not a path error
    assert code == 2 and "s3:/" not in err.replace(uri, "")
