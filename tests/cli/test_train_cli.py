"""``fmkit prepare movielens``, ``fmkit train`` and ``fmkit evaluate`` end to end, in process."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers.cli import run_cli as run
from helpers.movielens import write_fake_ml100k

import fmkit.io as fio


@pytest.fixture
def prepared(tmp_path, capsys):
    src = write_fake_ml100k(tmp_path / "ml")
    code, out, err = run(capsys, "prepare", "movielens", "--data-dir", str(src), "--split", "ua",
                         "--target", "rating", "--output", str(tmp_path / "data"))
    assert code == 0, err
    return tmp_path / "data"


def test_prepare_writes_channels_keys_and_vocabulary(prepared, tmp_path):
    train = fio.read(str(prepared / "train"))
    vocab = json.loads((prepared / "vocabulary.json").read_text())
    n_users = 30
    assert train.feature_dim == vocab["feature_dim"] == n_users + 40
    # first ua.base line: user u, item i -> keys u-1 and n_users+i-1, values 1
    u, i, r, _ = (tmp_path / "ml" / "ua.base").read_text().split("\n")[0].split("\t")
    assert train.indices[:2].tolist() == [int(u) - 1, n_users + int(i) - 1]
    assert train.values[:2].tolist() == [1.0, 1.0] and train.labels[0] == float(r)
    assert (prepared / "train" / "train.recordio").read_bytes()[:4] == b"\x0a\x23\xd7\xce"


def test_prepare_side_features_and_binary(tmp_path, capsys):
    src = write_fake_ml100k(tmp_path / "ml")
    code, _, err = run(capsys, "prepare", "movielens", "--data-dir", str(src), "--side-features",
                       "--output", str(tmp_path / "d"), "--format", "libsvm")
    assert code == 0, err
    vocab = json.loads((tmp_path / "d" / "vocabulary.json").read_text())
    names = [f["name"] for f in vocab["fields"]]
    assert names == ["user", "item", "user_age", "user_gender", "user_occupation", "item_genre"]
    train = fio.read(str(tmp_path / "d" / "train"))
    assert set(np.unique(train.labels)) <= {0.0, 1.0}
    # every row: user, item, 3 user side keys, >= 1 genre key
    assert np.all(np.diff(train.offsets) >= 6)


def test_train_then_evaluate_reports_sagemaker_metrics(prepared, tmp_path, capsys):
    hp = tmp_path / "hyperparameters.json"
    hp.write_text(json.dumps({"feature_dim": "70", "num_factors": "4",
                              "predictor_type": "regressor", "epochs": "5",
                              "mini_batch_size": "50", "_tuning_objective_metric": ""}))
    model = tmp_path / "model"
    code, out, err = run(capsys, "train", "--train", str(prepared / "train"), "--test",
                         str(prepared / "test"), "--model-dir", str(model),
                         "--hyperparameters", str(hp), "--bias-lr", "0.05")
    assert code == 0, err
    metrics = json.loads((model / "metrics.json").read_text())
    assert set(metrics) >= {"test:rmse", "test:mse", "test:absolute_loss", "train:rmse"}
    assert "#quality_metric: host=algo-1, test rmse <loss>=" in err
    assert "#test_score (algo-1) : ('rmse'," in err
    meta = json.loads((model / "metadata.json").read_text())
    assert meta["format_version"] == "1.0" and meta["feature_dim"] == 70
    hps = meta["hyperparameters"]
    assert hps["factors_lr"] == 0.0001  # SageMaker's default, since a hyperparameters.json
    assert hps["bias_lr"] == 0.05  # the flag overrides the file
    assert (model / "vocabulary.json").is_file() and (model / "seen.npz").is_file()
    code, out, err = run(capsys, "evaluate", "--model-dir", str(model), "--test",
                         str(prepared / "test"))
    assert code == 0, err
    again = json.loads(out)
    for key in ("test:rmse", "test:mse", "test:absolute_loss"):
        assert again[key] == pytest.approx(metrics[key], rel=1e-6)


def test_fmkit_defaults_need_only_predictor_type(prepared, tmp_path, capsys):
    code, out, err = run(capsys, "train", "--train", str(prepared / "train"), "--model-dir",
                         str(tmp_path / "m"), "--predictor-type", "regressor", "--epochs", "2",
                         "--validation", str(prepared / "test"), "--early-stopping-patience",
                         "1")
    assert code == 0, err
    meta = json.loads((tmp_path / "m" / "metadata.json").read_text())
    from fmkit.config import HYPERPARAMETERS

    assert meta["hyperparameters"]["num_factors"] == HYPERPARAMETERS["num_factors"].fmkit["regressor"]
    assert "validation:rmse" in meta["history"][0]


@pytest.mark.parametrize("args,message", [
    (["--predictor-type", "classifier"], "predictor_type must be 'binary_classifier' or "
                                         "'regressor'; got 'classifier'"),
    (["--predictor-type", "regressor", "--num-factors", "0"], "num_factors must be an int >= 1; "
                                                              "got 0"),
    (["--predictor-type", "regressor", "--epochs", "ten"], "epochs must be an int >= 1; got 'ten'"),
    (["--predictor-type", "regressor", "--num-factor", "3"], "unknown option or hyperparameter "
                                                             "'--num-factor'"),
    (["--predictor-type", "binary_classifier"], "labels must be 0 or 1; got 3"),
    (["--predictor-type", "regressor", "--feature-dim", "10"], "out of range for feature_dim=10"),
])
def test_bad_input_one_line_exit_2_no_model(prepared, tmp_path, capsys, args, message):
    model = tmp_path / "model"
    code, out, err = run(capsys, "train", "--train", str(prepared / "train"), "--model-dir",
                         str(model), *args)
    assert code == 2
    assert message in err
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1
    assert "Traceback" not in err
    assert not model.exists()


def test_bad_data_files(tmp_path, capsys):
    empty = tmp_path / "empty.libsvm"
    empty.write_text("")
    code, _, err = run(capsys, "train", "--train", str(empty), "--model-dir", str(tmp_path / "m"),
                       "--predictor-type", "regressor")
    assert code == 2 and "empty.libsvm" in err and not (tmp_path / "m").exists()
    nan = tmp_path / "nan.libsvm"
    nan.write_text("1 0:1 3:1\n2 1:nan 2:1\n")
    code, _, err = run(capsys, "train", "--train", str(nan), "--model-dir", str(tmp_path / "m"),
                       "--predictor-type", "regressor")
    assert code == 2 and "nan" in err.lower() and not (tmp_path / "m").exists()
    neg = tmp_path / "neg.libsvm"
    neg.write_text("1 0:1 3:1\n2 -4:1 2:1\n")
    code, _, err = run(capsys, "train", "--train", str(neg), "--model-dir", str(tmp_path / "m"),
                       "--predictor-type", "regressor")
    assert code == 2 and "neg.libsvm" in err and not (tmp_path / "m").exists()


@pytest.mark.slow
def test_prepare_real_movielens_matches_notebook_keys(ml100k, tmp_path, capsys):
    code, out, err = run(capsys, "prepare", "movielens", "--data-dir", str(ml100k),
                         "--output", str(tmp_path / "d"))
    assert code == 0, err
    summary = json.loads(out)
    assert summary["train_rows"] == 90570 and summary["test_rows"] == 9430
    assert summary["feature_dim"] == 2625
    train = fio.read(str(tmp_path / "d" / "train"))
    first = (ml100k / "ua.base").read_text().split("\n")[0].split("\t")
    assert train.indices[:2].tolist() == [int(first[0]) - 1, 943 + int(first[1]) - 1]


def test_jobs_are_recorded_in_the_registry(prepared, tmp_path, capsys):
    code, out, err = run(capsys, "train", "--train", str(prepared / "train"), "--model-dir",
                         str(tmp_path / "m"), "--predictor-type", "regressor", "--epochs", "2",
                         "--name", "ml-job-1")
    assert code == 0, err
    assert json.loads(out)["job_name"] == "ml-job-1"
    code, out, err = run(capsys, "train", "--train", str(prepared / "train"), "--model-dir",
                         str(tmp_path / "m2"), "--predictor-type", "binary_classifier",
                         "--name", "ml-job-2")
    assert code == 2
    code, out, err = run(capsys, "train", "--train", str(prepared / "train"), "--model-dir",
                         str(tmp_path / "m3"), "--predictor-type", "regressor", "--epochs",
                         "100000", "--max-run-seconds", "1", "--name", "ml-job-3")
    assert code == 0 and json.loads(out)["status"] == "Stopped"
    assert (tmp_path / "m3" / "weights.npz").is_file()
    from fmkit.registry import Registry

    reg = Registry()
    assert reg.jobs.get("ml-job-1").status == "Completed"
    failed = reg.jobs.get("ml-job-2")
    assert failed.status == "Failed" and "0 or 1" in failed.failure_reason
    assert reg.jobs.get("ml-job-3").status == "Stopped"
    # the completed and the stopped job registered their models; the failed one did not
    models = {m.name: m for m in reg.models.list()}
    assert sorted(models) == ["ml-job-1", "ml-job-3"]
    assert models["ml-job-1"].artifact == str(tmp_path / "m")
    assert models["ml-job-3"].artifact == str(tmp_path / "m3")
    assert models["ml-job-3"].training_job == "ml-job-3"
    assert len(reg.jobs.epochs("ml-job-1")) == 2
