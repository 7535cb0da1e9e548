"""The numpy CPU trainer: many batches per kernel call, bit for bit one call per batch.

Issue 18: an epoch of MovieLens-size batches is stepped inside compiled code; the
parameters must be exactly those of stepping each gathered batch on its own (the trainer
before), and of the torch trainer's kernel path, for a fixed seed.
"""

from __future__ import annotations

import numpy as np
import pytest

from fmkit.config import FMConfig
from fmkit.datasets.synthetic import make_planted_fm
from fmkit.engine.loader import epoch_batches
from fmkit.sparse import SparseBatch

pytest.importorskip("numba")
from fmkit.engine.cpu_trainer import CpuTrainer  # noqa: E402


def _cfg(**kw):
    base = dict(predictor_type="binary_classifier", num_factors=4, mini_batch_size=16,
                factors_init_sigma=0.1, device="cpu", seed=3, shuffle=True)
    base.update(kw)
    return FMConfig.from_values(base)


def _data(weights: bool = False, duplicates: bool = False) -> SparseBatch:
    data = make_planted_fm(203, 40, 4, nnz_per_row=5, empty_rows=3,
                           task="binary_classifier", seed=2).batch
    if weights:
        data = data.with_weights(np.random.default_rng(1).random(data.n_rows) + 0.5)
    if duplicates:  # row r lists its keys backwards and repeats its first key
        parts_i, parts_v, offsets = [], [], [0]
        for r in range(data.n_rows):
            a, b = data.offsets[r], data.offsets[r + 1]
            keys, vals = data.indices[a:b][::-1], data.values[a:b][::-1]
            if b > a:
                keys, vals = np.append(keys, keys[0]), np.append(vals, 0.5)
            parts_i.append(keys)
            parts_v.append(vals)
            offsets.append(offsets[-1] + keys.shape[0])
        data = SparseBatch.from_arrays(np.concatenate(parts_i), offsets,
                                       np.concatenate(parts_v), data.labels, data.weights, 40)
    return data


def _one_call_per_batch(trainer: CpuTrainer, data: SparseBatch, epochs: int) -> list:
    """The trainer before issue 18: epoch_batches, then one kernel call per batch."""
    ys = []
    for _ in range(epochs):
        for batch in epoch_batches(data, trainer.config.mini_batch_size,
                                   shuffle=trainer.config.shuffle, rng=trainer.rng):
            if batch.n_rows:
                ys.append(trainer.kernel.step(batch)[0])
    return ys


def _assert_same_model(a, b) -> None:
    for name in ("w0", "w", "V"):
        np.testing.assert_array_equal(getattr(a.model, name), getattr(b.model, name),
                                      err_msg=name)
    for group, states in a.optimizer.state.items():
        for sa, sb in zip(states, b.optimizer.state[group], strict=True):
            np.testing.assert_array_equal(np.asarray(sa), np.asarray(sb), err_msg=group)
    assert a.optimizer.t == b.optimizer.t


@pytest.mark.parametrize("optimizer", ["adam", "adagrad", "sgd"])
@pytest.mark.parametrize("extra, weights, duplicates", [
    ({}, False, False),
    ({"predictor_type": "regressor", "clip_gradient": 0.05, "use_bias": "false"}, True, False),
    ({"shuffle": "false", "rescale_grad": 0.1}, False, True),
])
def test_epochs_in_calls_equal_one_call_per_batch(optimizer, extra, weights, duplicates):
    cfg = _cfg(optimizer=optimizer, **extra)
    data = _data(weights, duplicates)
    if cfg.predictor_type == "regressor":
        data = data.with_labels(np.random.default_rng(4).normal(size=data.n_rows))
    fast, ref = CpuTrainer(cfg, 40, threads=1), CpuTrainer(cfg, 40, threads=1)
    assert fast.kernel.batches_per_call(data, cfg.mini_batch_size) > 0
    ys = []
    for epoch in range(3):
        out = fast.train_epoch(data, epoch, batch_size=cfg.mini_batch_size,
                               stop=lambda: False)
        assert out.rows == data.n_rows and not out.stopped
        ys.append(out.logits)
    ref_ys = _one_call_per_batch(ref, data, 3)
    _assert_same_model(fast, ref)
    np.testing.assert_array_equal(np.concatenate(ys), np.concatenate(ref_ys))


def test_chunked_calls_equal_one_call_and_user_item_models_too():
    cfg = _cfg(optimizer="adam")
    data = _data()
    block = np.arange(40) < 15
    one = CpuTrainer(cfg, 40, threads=1, user_block=block)
    chunked = CpuTrainer(cfg, 40, threads=1, user_block=block)
    chunked.kernel.batches_per_call = lambda data, size: 2  # several calls an epoch
    ref = CpuTrainer(cfg, 40, threads=1, user_block=block)
    for epoch in range(2):
        one.train_epoch(data, epoch, batch_size=16, stop=lambda: False)
        chunked.train_epoch(data, epoch, batch_size=16, stop=lambda: False)
    _one_call_per_batch(ref, data, 2)
    _assert_same_model(one, chunked)
    _assert_same_model(one, ref)


def test_cpu_trainer_equals_the_torch_trainers_kernel_path():
    torch_trainer = pytest.importorskip("fmkit.engine.torch_trainer")
    cfg = _cfg(optimizer="adagrad", mini_batch_size=32)
    data = _data()
    fast = CpuTrainer(cfg, 40)
    old = torch_trainer.Trainer(cfg, 40)  # the torch model stepped by the same kernel
    assert old.cpu_kernel is not None
    for epoch in range(3):
        a = fast.train_epoch(data, epoch, batch_size=32, stop=lambda: False)
        b = old.train_epoch(data, epoch, batch_size=32, stop=lambda: False)
        np.testing.assert_array_equal(a.logits, b.logits)
        np.testing.assert_array_equal(a.labels, b.labels)
    for name in ("w0", "w", "V"):
        np.testing.assert_array_equal(getattr(fast.model, name),
                                      getattr(old.model, name).numpy(), err_msg=name)


def test_non_finite_loss_stops_the_epoch_with_its_batch_number():
    from fmkit.errors import DivergenceError

    cfg = _cfg(optimizer="sgd", factors_lr=1e30, linear_lr=1e30, bias_lr=1e30,
               predictor_type="regressor")
    data = _data().with_labels(np.full(203, 1e30, np.float32))
    trainer = CpuTrainer(cfg, 40, threads=1)
    with pytest.raises(DivergenceError, match=r"epoch 0, batch \d+"):
        for epoch in range(5):
            trainer.train_epoch(data, epoch, batch_size=16, stop=lambda: False)


def test_a_stop_request_ends_the_epoch_between_calls():
    cfg = _cfg()
    data = _data()
    trainer = CpuTrainer(cfg, 40, threads=1)
    trainer.kernel.batches_per_call = lambda data, size: 3
    out = trainer.train_epoch(data, 0, batch_size=16, stop=lambda: True)
    assert out.stopped and out.rows == 3 * 16 and out.logits.shape == (48,)
    assert trainer.optimizer.t == 3


def test_init_draws_match_torchs_generator():
    torch = pytest.importorskip("torch")
    from fmkit.model.init import TorchCompatibleGenerator

    # below 16 values (torch's double-precision path), blocks of 16 in numpy, and blocks
    # in numba (from 16,384 blocks): torch's draws bit for bit (on an AVX2 machine, whose
    # normal_ torch's wheels use; tests run on x86-64)
    for shape in [(3,), (15,), (16,), (37,), (500, 8), (16384, 17)]:
        g = torch.Generator().manual_seed(11)
        ours = TorchCompatibleGenerator(11)
        for _ in range(2):  # the generator's state carries on as torch's does
            np.testing.assert_array_equal(ours.randn(shape),
                                          torch.randn(shape, generator=g).numpy())
            np.testing.assert_array_equal(ours.rand(shape),
                                          torch.rand(shape, generator=g).numpy())


def test_auto_device_is_the_cpu_without_an_nvidia_driver(monkeypatch):
    from fmkit.engine import loader

    monkeypatch.setattr(loader, "_CUDA_NODES", ("/nonexistent/nvidiactl",))
    monkeypatch.setattr(loader.sys, "platform", "linux")
    monkeypatch.delitem(loader.sys.modules, "torch", raising=False)  # as in a fresh process
    assert loader.device_kind("auto") == "cpu"
    assert "torch" not in loader.sys.modules  # answered without importing it
    assert loader.device_kind("cuda") == "cuda" and loader.device_kind("cpu") == "cpu"


def test_a_long_first_call_says_it_is_compiling(monkeypatch, caplog):
    import logging
    import time

    from fmkit.engine import cpu_kernel

    class NotYetCompiled:  # a dispatcher with no build in this process yet
        overloads: dict = {}

    class Loaded:
        overloads = {"(float64,)": object()}

    monkeypatch.setattr(cpu_kernel, "COMPILE_NOTICE_S", 0.01)
    with caplog.at_level(logging.INFO, logger="fmkit.engine.cpu_kernel"):
        with cpu_kernel._CompileNotice(NotYetCompiled(), "the fused CPU training step"):
            time.sleep(0.3)
        with cpu_kernel._CompileNotice(Loaded(), "a loaded build"):
            time.sleep(0.05)  # built in this process already: nothing to say
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("compiling the fused CPU training step") for m in messages)
    assert not any("a loaded build" in m for m in messages)
