"""The numba CPU step equals the torch step: same logits, losses and parameter updates."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fmkit.config import FMConfig
from fmkit.datasets.synthetic import make_planted_fm
from fmkit.engine.trainer import Trainer

pytest.importorskip("numba")
from fmkit.engine.cpu_kernel import CpuKernelPath  # noqa: E402


def _threads(n):
    from fmkit.engine.cpu_kernel import get_num_threads

    if n > get_num_threads():
        pytest.skip(f"numba has {get_num_threads()} thread(s) here")
    return n


def _assert_same_steps(a, b, kernel, data, size):
    """Step torch trainer ``a`` and ``kernel`` (on trainer ``b``'s tensors) through ``data``
    in batches of ``size``: same logits, losses and parameters."""
    for start in range(0, data.n_rows, size):
        batch = data.slice(start, start + size)
        ya, la = a.step(batch)
        yb, lb = kernel.step(batch)
        np.testing.assert_allclose(yb.numpy(), ya.numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(lb.numpy(), la.numpy(), rtol=1e-4, atol=1e-5)
    for name in ("w0", "w", "V"):
        np.testing.assert_allclose(getattr(b.model, name).numpy(), getattr(a.model, name).numpy(),
                                   rtol=1e-4, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("predictor_type", ["regressor", "binary_classifier"])
@pytest.mark.parametrize("optimizer", ["adam", "adagrad", "sgd"])
@pytest.mark.parametrize("extra", [{}, {"clip_gradient": 0.01, "use_bias": "false"},
                                   {"use_linear": "false", "linear_lr": 0.0, "rescale_grad": 0.5}])
def test_kernel_matches_torch_step(predictor_type, optimizer, extra, threads):
    task = "binary_classifier" if predictor_type == "binary_classifier" else "regressor"
    data = make_planted_fm(300, 60, 4, nnz_per_row=4, empty_rows=2, task=task, seed=5).batch
    weights = np.random.default_rng(0).random(300).astype(np.float32)
    data = data.with_weights(weights)
    values = dict(predictor_type=predictor_type, num_factors=4, optimizer=optimizer,
                  bias_lr=0.05, linear_lr=0.03, factors_lr=0.04, bias_wd=0.01, linear_wd=0.002,
                  factors_wd=0.003, factors_init_sigma=0.1, device="cpu")
    cfg = FMConfig.from_values({**values, **extra})
    a, b = Trainer(cfg, 60, fused=False), Trainer(cfg, 60, fused=False)  # a: the torch step
    kernel = CpuKernelPath(b.model, b.optimizer, cfg.predictor_type, cfg.rescale_grad,
                           threads=_threads(threads))
    _assert_same_steps(a, b, kernel, data, 50)
    # optimiser state moved the same way (Adam's m and v, Adagrad's sum of squares)
    for group, states in a.optimizer.state.items():
        for sa, sb in zip(states, b.optimizer.state[group], strict=True):
            np.testing.assert_allclose(sb.numpy(), sa.numpy(), rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("threads", [1, 2])
def test_kernel_handles_duplicate_and_unsorted_keys_like_a_matrix(threads):
    from fmkit.sparse import SparseBatch

    # row 0 repeats key 1 (0.5 + 0.25), row 1 is canonical, row 2 lists its keys backwards
    batch = SparseBatch.from_arrays([1, 1, 2, 0, 3, 3, 0], [0, 3, 5, 7],
                                    [0.5, 0.25, 1.0, 2.0, 1.0, 0.5, -1.0], [1.0, 0.0, 2.0],
                                    feature_dim=4)
    cfg = FMConfig.from_values(dict(predictor_type="regressor", num_factors=2, device="cpu",
                                    factors_init_sigma=0.3))
    a, b = Trainer(cfg, 4, fused=False), Trainer(cfg, 4, fused=False)
    kernel = CpuKernelPath(b.model, b.optimizer, cfg.predictor_type, None,
                           threads=_threads(threads))
    for _ in range(3):  # the step that finds a repeated key changes nothing before its rerun
        ya, la = a.step(batch)
        yb, lb = kernel.step(batch)
        np.testing.assert_allclose(yb.numpy(), ya.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(lb.numpy(), la.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b.model.V.numpy(), a.model.V.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b.model.w.numpy(), a.model.w.numpy(), rtol=1e-5, atol=1e-6)
    assert b.optimizer.t == a.optimizer.t == 3
    assert (kernel.slot == -1).all()


def test_trainer_uses_the_kernel_on_cpu_and_matches_torch_fit():
    from fmkit.engine.trainer import fit

    data = make_planted_fm(2000, 50, 4, task="binary_classifier", seed=9)
    cfg = FMConfig.from_values(dict(predictor_type="binary_classifier", num_factors=4, epochs=3,
                                    device="cpu", shuffle="true", seed=4))
    assert isinstance(Trainer(cfg, 50).cpu_kernel, CpuKernelPath)
    a = fit(cfg, data.batch, fused=False)
    b = fit(cfg, data.batch)
    np.testing.assert_allclose(b.artifact.V, a.artifact.V, rtol=1e-3, atol=1e-5)
    assert b.history[-1]["train:auc"] == pytest.approx(a.history[-1]["train:auc"], abs=1e-4)


@pytest.mark.parametrize("optimizer", ["adam", "adagrad", "sgd"])
def test_two_threads_equal_one_thread_and_torch(optimizer):
    _threads(2)
    data = make_planted_fm(400, 30, 4, nnz_per_row=6, task="binary_classifier", seed=3).batch
    cfg = FMConfig.from_values(dict(predictor_type="binary_classifier", num_factors=4,
                                    optimizer=optimizer, bias_lr=0.05, linear_lr=0.03,
                                    factors_lr=0.04, factors_wd=0.003, factors_init_sigma=0.1,
                                    device="cpu"))
    ref, one, two = (Trainer(cfg, 30, fused=False) for _ in range(3))
    k1 = CpuKernelPath(one.model, one.optimizer, cfg.predictor_type, None, threads=1)
    k2 = CpuKernelPath(two.model, two.optimizer, cfg.predictor_type, None, threads=2)
    assert k2.threads == 2
    for start in range(0, 400, 100):  # 30 keys, 600 entries: every key many times a batch
        batch = data.slice(start, start + 100)
        y0, _ = ref.step(batch)
        y1, l1 = k1.step(batch)
        y2, l2 = k2.step(batch)
        np.testing.assert_allclose(y2.numpy(), y1.numpy(), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(l2.numpy(), l1.numpy(), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(y1.numpy(), y0.numpy(), rtol=1e-4, atol=1e-5)
    for name in ("w0", "w", "V"):
        np.testing.assert_allclose(getattr(two.model, name).numpy(),
                                   getattr(one.model, name).numpy(), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(getattr(one.model, name).numpy(),
                                   getattr(ref.model, name).numpy(), rtol=1e-4, atol=1e-5)
    # every slot is released after a step, so the next batch starts from a clean table
    assert (k1.slot == -1).all() and (k2.slot == -1).all()


def test_kernel_leaves_untouched_rows_and_their_state_alone():
    from fmkit.sparse import SparseBatch

    cfg = FMConfig.from_values(dict(predictor_type="regressor", num_factors=3, optimizer="adam",
                                    factors_wd=0.1, linear_wd=0.1, device="cpu"))
    t = Trainer(cfg, 10, fused=False)
    kernel = CpuKernelPath.create(cfg, t.model, t.optimizer, device=torch.device("cpu"),
                                  world_size=1)
    V0, w0 = t.model.V.numpy().copy(), t.model.w.numpy().copy()
    batch = SparseBatch.from_arrays([2, 7, 7], [0, 2, 3], [1.0, 2.0, -1.0], [1.0, 0.0],
                                    feature_dim=10)
    for _ in range(3):
        kernel.step(batch)
    touched = np.zeros(10, bool)
    touched[[2, 7]] = True
    # lazy updates: weight decay does not reach rows the batches never contained
    np.testing.assert_array_equal(t.model.V.numpy()[~touched], V0[~touched])
    np.testing.assert_array_equal(t.model.w.numpy()[~touched], w0[~touched])
    assert (t.model.V.numpy()[touched] != V0[touched]).all()
    m, v = t.optimizer.state["factors"]
    assert (m.numpy()[~touched] == 0).all() and (v.numpy()[~touched] == 0).all()
    assert (v.numpy()[touched] > 0).all()


def test_two_threads_equal_one_thread_on_uneven_and_tiny_batches():
    _threads(2)
    # rows of 0 to 9 keys, batches of 1, 2, 3 and 97 rows: runs of rows of unequal size,
    # a thread with no rows
    data = make_planted_fm(400, 40, 3, nnz_per_row=5, empty_rows=20, task="regressor",
                           seed=8).batch
    cfg = FMConfig.from_values(dict(predictor_type="regressor", num_factors=3,
                                    optimizer="adam", factors_init_sigma=0.1, device="cpu"))
    one, two = Trainer(cfg, 40, fused=False), Trainer(cfg, 40, fused=False)
    k1 = CpuKernelPath(one.model, one.optimizer, cfg.predictor_type, None, threads=1)
    k2 = CpuKernelPath(two.model, two.optimizer, cfg.predictor_type, None, threads=2)
    start = 0
    for size in (1, 2, 3, 97, 1, 200):
        batch = data.slice(start, start + size)
        start += size
        y1, _ = k1.step(batch)
        y2, _ = k2.step(batch)
        np.testing.assert_array_equal(y2.numpy(), y1.numpy())
    np.testing.assert_array_equal(two.model.V.numpy(), one.model.V.numpy())
    np.testing.assert_array_equal(two.model.w.numpy(), one.model.w.numpy())


def test_thread_choice_keeps_the_faster_count_and_probes_again():
    from fmkit.engine.cpu_kernel import ThreadChoice

    choice = ThreadChoice(2, period=20, probes=3)
    speed = {1: 1.0, 2: 0.5}  # seconds per row: two threads twice as fast
    seen = []
    for _ in range(60):
        n = choice.pick()
        seen.append(n)
        choice.record(n, speed[n] * 100, 100)
    assert seen[:6] == [1, 2, 1, 2, 1, 2]  # a probe alternates; the first of each untimed
    assert set(seen[6:20]) == {2}
    speed = {1: 0.2, 2: 0.5}  # the cores got busy: one thread wins from the next probe on
    for _ in range(40):
        n = choice.pick()
        seen.append(n)
        choice.record(n, speed[n] * 100, 100)
    assert set(seen[66:80]) == {1} and set(seen[86:100]) == {1}
    assert ThreadChoice(1).pick() == 1


def test_kernel_path_defaults_to_choosing_threads():
    from fmkit.engine.cpu_kernel import get_num_threads

    cfg = FMConfig.from_values(dict(predictor_type="regressor", num_factors=2, device="cpu"))
    t = Trainer(cfg, 10)
    n = get_num_threads()
    assert t.cpu_kernel.threads == n
    assert t.cpu_kernel.choice.options == ((1,) if n == 1 else (1, n))
    fixed = CpuKernelPath(t.model, t.optimizer, "regressor", None, threads=1)
    assert fixed.choice is None and fixed.threads == 1
    # batches under PARALLEL_MIN_ENTRIES entries take one thread and are not timed
    data = make_planted_fm(64, 10, 2, nnz_per_row=3, seed=1).batch
    t.cpu_kernel.step(data)
    assert t.cpu_kernel.choice.steps == 0


def test_limit_threads_caps_the_steps_started_from_this_thread():
    import threading

    from fmkit.engine.cpu_kernel import get_num_threads, limit_threads

    cfg = FMConfig.from_values(dict(predictor_type="regressor", num_factors=2, device="cpu"))
    seen = {}

    def trial():  # as a tuning slot: its own thread, its share of the cores
        limit_threads(1)
        seen["threads"] = Trainer(cfg, 10).cpu_kernel.threads

    before = get_num_threads()
    t = threading.Thread(target=trial)
    t.start()
    t.join()
    assert seen["threads"] == 1
    assert get_num_threads() == before  # numba's count is per calling thread


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("predictor_type", ["regressor", "binary_classifier"])
@pytest.mark.parametrize("optimizer", ["adam", "adagrad", "sgd"])
def test_user_item_kernel_matches_torch_step(predictor_type, optimizer, threads):
    task = "binary_classifier" if predictor_type == "binary_classifier" else "regressor"
    data = make_planted_fm(300, 60, 4, nnz_per_row=6, empty_rows=2, task=task, seed=6).batch
    block = np.random.default_rng(1).random(60) < 0.4
    cfg = FMConfig.from_values(dict(predictor_type=predictor_type, num_factors=4,
                                    optimizer=optimizer, bias_lr=0.05, linear_lr=0.03,
                                    factors_lr=0.04, linear_wd=0.002, factors_wd=0.003,
                                    factors_init_sigma=0.1, device="cpu"))
    a = Trainer(cfg, 60, fused=False, user_block=block)  # the torch step
    b = Trainer(cfg, 60, user_block=block)
    assert isinstance(b.cpu_kernel, CpuKernelPath) and b.cpu_kernel.block.sum() == block.sum()
    kernel = CpuKernelPath(b.model, b.optimizer, cfg.predictor_type, None,
                           threads=_threads(threads))
    _assert_same_steps(a, b, kernel, data, 100)
    # and it trains the user_item model, not the ordinary one (same start, other logits)
    fresh = Trainer(cfg, 60, user_block=block)
    plain = Trainer(cfg, 60)
    first = data.slice(0, 100)
    assert np.abs(fresh.step(first)[0].numpy() - plain.step(first)[0].numpy()).max() > 1e-3


@pytest.mark.parametrize("threads", [1, 2])
def test_user_item_kernel_sums_repeated_keys(threads):
    from fmkit.sparse import SparseBatch

    # row 0 repeats user key 1, row 2 lists its keys backwards; keys 0-1 are the user block
    batch = SparseBatch.from_arrays([1, 1, 2, 0, 3, 3, 0], [0, 3, 5, 7],
                                    [0.5, 0.25, 1.0, 2.0, 1.0, 0.5, -1.0], [1.0, 0.0, 2.0],
                                    feature_dim=4)
    block = np.array([True, True, False, False])
    cfg = FMConfig.from_values(dict(predictor_type="regressor", num_factors=2, device="cpu",
                                    factors_init_sigma=0.3))
    a = Trainer(cfg, 4, fused=False, user_block=block)
    b = Trainer(cfg, 4, fused=False, user_block=block)
    kernel = CpuKernelPath(b.model, b.optimizer, cfg.predictor_type, None,
                           threads=_threads(threads))
    for _ in range(3):
        ya, _ = a.step(batch)
        yb, _ = kernel.step(batch)
        np.testing.assert_allclose(yb.numpy(), ya.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b.model.V.numpy(), a.model.V.numpy(), rtol=1e-5, atol=1e-6)
