"""One code path on every device: CUDA results match CPU results (skipped without CUDA)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fmkit.config import FMConfig
from fmkit.datasets.synthetic import make_planted_fm
from fmkit.engine.loader import to_device
from fmkit.engine.trainer import fit
from fmkit.model.fm import FactorizationMachine
from helpers.reference import naive_fm

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", [pytest.param(d, marks=pytest.mark.gpu if d == "cuda" else ())
                                    for d in DEVICES])
def test_forward_matches_reference_on_device(device, rng):
    data = make_planted_fm(200, 50, 4, empty_rows=3, seed=11)
    w0, w, V = 0.1, rng.normal(size=50), rng.normal(0, 0.3, (50, 4))
    fm = FactorizationMachine(*(torch.tensor(a, dtype=torch.float64, device=device)
                                for a in ([w0], w, V)))
    db = to_device(data.batch, torch.device(device))
    db.values = db.values.double()
    y, _, _ = fm.forward(db)
    np.testing.assert_allclose(y.cpu().numpy(), naive_fm(data.batch.to_csr(), w0, w, V),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_training_matches_cpu():
    data = make_planted_fm(3000, 100, 4, task="binary_classifier", seed=12)
    train, test = data.batch.slice(0, 2500), data.batch.slice(2500, 3000)
    kw = dict(predictor_type="binary_classifier", num_factors=8, epochs=3, seed=3)
    cpu = fit(FMConfig.from_values(dict(kw, device="cpu")), train, test=test)
    gpu = fit(FMConfig.from_values(dict(kw, device="cuda")), train, test=test)
    np.testing.assert_allclose(gpu.artifact.V, cpu.artifact.V, rtol=1e-3, atol=1e-4)
    for key, value in cpu.metrics.items():
        assert gpu.metrics[key] == pytest.approx(value, abs=2e-3), key
