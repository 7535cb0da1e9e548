"""``fmkit train --instance-count 2``: one artifact, the same quality as one process."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers.cli import run_cli as run
from helpers.movielens import write_fake_ml100k

from fmkit.artifact import load

pytestmark = pytest.mark.distributed



def _prepare(capfd, src: Path, out: Path, *extra: str) -> Path:
    code, _, err = run(capfd, "prepare", "movielens", "--data-dir", str(src), "--split", "ua",
                       "--output", str(out), *extra)
    assert code == 0, err
    return out


def _train(capfd, data: Path, model: Path, *extra: str) -> dict:
    code, out, err = run(capfd, "train", "--train", str(data / "train"), "--test",
                         str(data / "test"), "--model-dir", str(model), "--no-progress",
                         *extra)
    assert code == 0, err
    return json.loads(out[out.index("{"):])


def test_instance_count_two_writes_one_artifact(tmp_path, capfd):
    data = _prepare(capfd, write_fake_ml100k(tmp_path / "ml"), tmp_path / "data")
    hp = ["--num-factors", "4", "--epochs", "3", "--predictor-type", "binary_classifier",
          "--seed", "1"]
    # the same global batch of 100 rows (50 per worker)
    two = _train(capfd, data, tmp_path / "m2", "--instance-count", "2",
                 "--mini-batch-size", "100", *hp)
    one = _train(capfd, data, tmp_path / "m1", "--mini-batch-size", "100", *hp)
    a2, a1 = load(tmp_path / "m2"), load(tmp_path / "m1")
    assert a2.V.shape == a1.V.shape and a2.vocabulary == a1.vocabulary
    assert sorted(p.name for p in (tmp_path / "m2").iterdir()) == \
        sorted(p.name for p in (tmp_path / "m1").iterdir())
    # the training pairs of both shards are kept, as one process keeps them
    assert (a2.seen != a1.seen).nnz == 0
    assert set(two) == set(one)
    assert json.loads((tmp_path / "m2" / "metrics.json").read_text()) == \
        {k: v for k, v in two.items() if ":" in k}


def test_instance_count_and_distribution_are_checked(tmp_path, capfd):
    code, _, err = run(capfd, "train", "--train", str(tmp_path), "--model-dir",
                       str(tmp_path / "m"), "--num-factors", "4", "--predictor-type",
                       "regressor", "--instance-count", "0")
    assert code == 2 and "--instance-count must be >= 1" in err
    code, _, err = run(capfd, "train", "--train", str(tmp_path), "--model-dir",
                       str(tmp_path / "m"), "--num-factors", "4", "--predictor-type",
                       "regressor", "--distribution", "Sharded")
    assert code == 2 and "--distribution must be" in err


@pytest.mark.slow
@pytest.mark.parametrize("target", ["binary", "rating"])
def test_two_processes_match_one_on_movielens_100k(ml100k, tmp_path, capfd, target):
    data = _prepare(capfd, ml100k, tmp_path / "data", "--target", target)
    kind = "binary_classifier" if target == "binary" else "regressor"
    hp = ["--num-factors", "16", "--epochs", "3", "--predictor-type", kind, "--seed", "0",
          "--shuffle", "false"]
    # mini_batch_size is the global batch: 500 rows per worker (docs/distributed.md)
    two = _train(capfd, data, tmp_path / "m2", "--instance-count", "2",
                 "--mini-batch-size", "1000", *hp)
    one = _train(capfd, data, tmp_path / "m1", "--mini-batch-size", "1000", *hp)
    if target == "binary":
        for name in ("test:binary_classification_accuracy",
                     "test:binary_classification_cross_entropy"):
            assert abs(two[name] - one[name]) < 0.005, (name, two[name], one[name])
        assert one["test:binary_classification_accuracy"] > 0.65
        assert np.isfinite(two["test:auc"])
    else:
        assert abs(two["test:rmse"] - one["test:rmse"]) < 0.005, (two["test:rmse"],
                                                                 one["test:rmse"])
        assert one["test:rmse"] < 1.1


def _write_files(folder: Path, n_files: int) -> None:
    import fmkit.io as fio
    from fmkit.datasets.synthetic import make_planted_fm

    data = make_planted_fm(600, 40, 4, noise=0.1, seed=21).batch
    folder.mkdir(parents=True)
    step = 600 // n_files
    for i in range(n_files):
        fio.write(str(folder / f"part-{i}.rec"), data.slice(i * step, (i + 1) * step),
                  format="recordio-protobuf")


@pytest.mark.parametrize("mode", [["--stream"], ["--distribution", "ShardedByS3Key"],
                                  ["--stream", "--distribution", "ShardedByS3Key"]])
def test_streams_and_file_shards_train_with_two_workers(tmp_path, capfd, mode):
    _write_files(tmp_path / "train", 3)  # 3 files: worker 0 reads 2, worker 1 reads 1
    hp = ["--num-factors", "4", "--epochs", "4", "--predictor-type", "regressor",
          "--mini-batch-size", "50", "--feature-dim", "40", "--factors-lr", "0.02",
          "--linear-lr", "0.02", "--bias-lr", "0.05"]
    code, out, err = run(capfd, "train", "--train", str(tmp_path / "train"), "--test",
                         str(tmp_path / "train"), "--model-dir", str(tmp_path / "m"),
                         "--no-progress", "--instance-count", "2", *mode, *hp)
    assert code == 0, err
    two = json.loads(out[out.index("{"):])
    code, out, err = run(capfd, "train", "--train", str(tmp_path / "train"), "--test",
                         str(tmp_path / "train"), "--model-dir", str(tmp_path / "m1"),
                         "--no-progress", *mode, *hp)
    assert code == 0, err
    one = json.loads(out[out.index("{"):])
    # the test channel is scored over both workers' shards: all 600 rows, like one process
    assert two["test:rmse"] == pytest.approx(one["test:rmse"], rel=0.25)
    assert load(tmp_path / "m").V.shape == (1, 40, 4)


def test_sharded_by_key_needs_a_file_per_worker(tmp_path, capfd):
    _write_files(tmp_path / "train", 1)
    code, _, err = run(capfd, "train", "--train", str(tmp_path / "train"), "--model-dir",
                       str(tmp_path / "m"), "--num-factors", "4", "--predictor-type",
                       "regressor", "--instance-count", "2", "--distribution",
                       "ShardedByS3Key")
    assert code == 2
    assert "ShardedByS3Key needs at least one file per process: 1 file(s) for 2" in err
