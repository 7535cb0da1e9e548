"""``fmkit tune`` end to end, and its bad-input errors (one line, exit 2, no trial run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.cli import run_cli

import fmkit.io as fio
from fmkit.datasets.synthetic import make_planted_fm
from fmkit.registry import Registry


def _run(args, capsys):
    return run_cli(capsys, *args)


@pytest.fixture(scope="module")
def channels(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    root = tmp_path_factory.mktemp("tune_cli")
    planted = make_planted_fm(900, 30, 3, task="binary_classifier", seed=11)
    fio.write(str(root / "train.recordio"), planted.batch.slice(0, 700),
              format="recordio-protobuf")
    fio.write(str(root / "test.recordio"), planted.batch.slice(700, 900),
              format="recordio-protobuf")
    return str(root / "train.recordio"), str(root / "test.recordio")


FIXED = ["--predictor-type", "binary_classifier", "--epochs", "2", "--mini-batch-size", "64"]


def test_tune_then_inspect(tmp_path: Path, channels: tuple[str, str],
                           capsys: pytest.CaptureFixture[str]) -> None:
    train, test = channels
    ranges = tmp_path / "ranges.json"
    ranges.write_text(json.dumps({
        "ContinuousParameterRanges": [{"Name": "factors_lr", "MinValue": "0.001",
                                        "MaxValue": "0.2", "ScalingType": "Logarithmic"}],
        "IntegerParameterRanges": [{"Name": "num_factors", "MinValue": "2",
                                     "MaxValue": "8"}],
    }))
    code, out, err = _run(["tune", "--train", train, "--test", test, "--ranges", str(ranges),
                           "--max-jobs", "3", "--name", "cli-tune", "--strategy", "random",
                           *FIXED], capsys)
    assert code == 0, err
    assert "Objective:        test:binary_classification_accuracy (maximize)" in out
    assert "best model: cli-tune ->" in out
    reg = Registry()
    job = reg.tuning.get("cli-tune")
    assert job.status == "Completed" and job.channels["train"] == train
    assert job.static_hyperparameters["epochs"] == "2"
    # the terminal view lists trials best first
    code, out, _ = _run(["tuning", "describe", "cli-tune", "--plot-file",
                         str(tmp_path / "t.png")], capsys)
    assert code == 0
    rows = [line.split() for line in out.splitlines() if line.startswith(("1 ", "2 ", "3 "))]
    values = [float(r[3]) for r in rows]
    assert values == sorted(values, reverse=True) and len(values) == 3
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"
    code, out, _ = _run(["tuning", "list"], capsys)
    assert "cli-tune" in out and "Completed" in out
    code, out, _ = _run(["models", "list"], capsys)
    assert "cli-tune" in out and "cli-tune-00" in out
    code, out, _ = _run(["jobs", "list", "--trials"], capsys)
    assert out.count("cli-tune-00") == 3
    code, out, _ = _run(["jobs", "describe", "cli-tune-001", "--plot",
                         str(tmp_path / "c.png")], capsys)
    assert code == 0 and "Epochs (2):" in out and "Tuning job:      cli-tune" in out
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("ranges", "extra", "message"),
    [
        ('{"IntegerParameterRanges": [{"Name": "num_factors", "MinValue": 9, "MaxValue": 2}]}',
         [], "greater than its MaxValue"),
        ('{"IntegerParameterRanges": [', [], "not valid JSON at line 1"),
        ('{"IntegerParameterRanges": [{"Name": "factorz", "MinValue": 1, "MaxValue": 2}]}',
         [], "unknown hyperparameter 'factorz'"),
        (('{"ContinuousParameterRanges": [{"Name": "factors_lr", "MinValue": 0, "MaxValue": 1,'
          ' "ScalingType": "Logarithmic"}]}'), [], "includes values <= 0"),
        (None, ["--objective", "test:rmse"],
         "is not emitted by predictor_type='binary_classifier'"),
        (None, ["--objective", "test:accuracy"], "unknown objective metric"),
        (None, ["--num-factorz", "3"], "unknown option or hyperparameter '--num-factorz'"),
        (None, ["--strategy", "hyperband", "--validation-fraction", "1"],
         "validation_fraction must be a number between 0 and 1"),
    ],
)
def test_bad_input_is_one_line_before_any_trial(
        tmp_path: Path, channels: tuple[str, str], capsys: pytest.CaptureFixture[str],
        ranges: str | None, extra: list[str], message: str) -> None:
    train, test = channels
    args = ["tune", "--train", train, "--test", test, "--max-jobs", "2", *FIXED, *extra]
    if ranges is not None:
        (tmp_path / "r.json").write_text(ranges)
        args += ["--ranges", str(tmp_path / "r.json")]
    code, _, err = _run(args, capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ConfigError: ") and message in err
    assert Registry().tuning.list() == [] and Registry().jobs.list() == []


def test_missing_test_channel_is_refused_before_reading_data(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["tune", "--train", str(tmp_path / "nowhere"), *FIXED], capsys)
    assert code == 2 and "needs a test channel" in err


def test_hyperband_without_validation_holds_out_train(
        channels: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    train, test = channels
    code, out, err = _run(["tune", "--train", train, "--test", test, "--max-jobs", "2",
                           "--strategy", "hyperband", "--validation-fraction", "0.2",
                           "--name", "cli-hb", *FIXED], capsys)
    assert code == 0, err
    job = Registry().tuning.get("cli-hb")
    assert job.channels["test"] == test
    assert job.channels["validation"] == ("held out of train: 140 of 700 rows "
                                          "(validation_fraction 0.2, seed 0)")
    assert "validation=held out of train: 140 of 700 rows" in _run(
        ["jobs", "describe", "cli-hb-001"], capsys)[1]
