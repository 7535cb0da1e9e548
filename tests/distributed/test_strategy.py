"""Two gloo ranks on CPU against one process: same global batches, same model."""

from __future__ import annotations

import numpy as np
import pytest

from fmkit.config import FMConfig
from fmkit.datasets.synthetic import make_planted_fm
from fmkit.distributed.launch import launch
from fmkit.engine.trainer import fit
from fmkit.errors import WorkerError
from fmkit.sparse import concat

from . import workers

pytestmark = pytest.mark.distributed

VALUES = dict(predictor_type="regressor", num_factors=4, epochs=3, mini_batch_size=25,
              bias_lr=0.02, linear_lr=0.02, factors_lr=0.02, linear_wd=1e-3, factors_wd=1e-4,
              factors_init_sigma=0.1, device="cpu", seed=3, shuffle=False)
# mini_batch_size is the global batch (docs/distributed.md): each of 2 ranks takes 25 rows
TWO_RANKS = {**VALUES, "mini_batch_size": 50}


def _interleaved(batch, half: int, block: int):
    """Rows in the order one process sees the two ranks' global batches."""
    parts = []
    for start in range(0, half, block):
        parts.append(batch.slice(start, min(start + block, half)))
        parts.append(batch.slice(half + start, min(half + start + block, batch.n_rows)))
    return concat(parts)


def test_two_ranks_equal_one_process_on_identical_global_batches():
    data = make_planted_fm(600, 40, 4, noise=0.1, seed=11)
    train, test = data.batch.slice(0, 400), data.batch.slice(400, 600)
    two = launch(workers.fit_shard, (TWO_RANKS, train, test), nprocs=2)
    # rank r trains rows [200 r, 200 (r + 1)) in batches of 25: global step i is rank 0's
    # i-th block plus rank 1's; one process with batches of 50 over the interleaved rows
    # sees the same global batches
    one = fit(FMConfig.from_values({**VALUES, "mini_batch_size": 50}),
              _interleaved(train, 200, 25), test=test)
    art = one.artifact
    assert np.allclose(two["V"], art.V, atol=2e-5, rtol=1e-4)
    assert np.allclose(two["w"], art.w, atol=2e-5, rtol=1e-4)
    assert np.allclose(two["w0"], art.w0, atol=2e-5)
    for name in ("test:rmse", "test:mse", "test:absolute_loss", "train:rmse"):
        assert two["metrics"][name] == pytest.approx(one.metrics[name], rel=1e-4), name
    # the exchange moved sparse rows, not the dense table: (K + 3) floats per touched key
    per_step = two["bytes_sent"] / two["steps"]
    assert two["steps"] == 3 * 8
    assert per_step <= (25 * 5 * (4 + 3) + 1) * 4
    assert per_step < 40 * (4 + 1) * 4 * 2  # less than a dense all-reduce of (F, K + 1)


@pytest.mark.parametrize("fused", [False, None])
def test_two_ranks_on_replicated_data_take_one_process_steps(fused):
    # shuffled epochs: every rank draws the one-process permutation and trains its half
    # of each global batch of 50 rows, so two ranks follow one process's steps
    data = make_planted_fm(600, 40, 4, noise=0.1, seed=14)
    train, test = data.batch.slice(0, 401), data.batch.slice(401, 600)
    values = {**TWO_RANKS, "shuffle": True}
    two = launch(workers.fit_replicated, (values, train, test), nprocs=2)
    one = fit(FMConfig.from_values(values), train, test=test, fused=fused)
    assert two["steps"] == 3 * 9  # ceil(401 / 50) global steps an epoch
    np.testing.assert_allclose(two["V"], one.artifact.V, atol=2e-5, rtol=1e-4)
    np.testing.assert_allclose(two["w"], one.artifact.w, atol=2e-5, rtol=1e-4)
    assert two["metrics"]["test:rmse"] == pytest.approx(one.metrics["test:rmse"], rel=1e-4)


def test_mini_batch_size_is_the_global_batch_split_over_ranks():
    assert launch(workers.batch_shares, (10, True), nprocs=3) == [4, 3, 3]
    assert launch(workers.batch_shares, (256, True), nprocs=2) == [128, 128]
    assert launch(workers.batch_shares, (10, False), nprocs=2) == [10, 10]


def test_uneven_shards_and_streams_keep_ranks_in_step():
    # 401 rows: rank 0 gets 201 rows (9 batches of 25), rank 1 gets 200 (8): rank 1 joins
    # the last step with an empty batch
    data = make_planted_fm(401, 30, 3, seed=12).batch
    two = launch(workers.fit_shard, ({**TWO_RANKS, "epochs": 2}, data, None), nprocs=2)
    assert two["steps"] == 2 * 9
    assert len(two["history"]) == 2
    assert two["history"][-1]["rows_per_s"] > 0
    one = fit(FMConfig.from_values({**VALUES, "epochs": 2}), data)
    assert two["metrics"]["train:rmse"] == pytest.approx(one.metrics["train:rmse"], rel=0.2)


def test_dead_worker_during_training_fails_fast_with_a_clear_error():
    data = make_planted_fm(400, 30, 3, seed=13).batch
    # the launcher sees the exit itself; otherwise rank 0's error (a lost peer, or its
    # 60 s collective timeout) would be reported (issue 14 item 8: no time bound)
    with pytest.raises(WorkerError, match=r"worker 1 of 2 exited with code 3 without "
                                          r"reporting an error"):
        launch(workers.fit_and_die, ({**VALUES, "epochs": 50}, data), nprocs=2, timeout_s=60)
