"""Registry records for console tests and benchmarks, created directly (no training)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from fmkit.registry import Registry

TUNED = [{"Name": "factors_lr", "MinValue": "0.001", "MaxValue": "0.5",
          "ScalingType": "Logarithmic"},
         {"Name": "factors_wd", "MinValue": "1e-6", "MaxValue": "1e-2", "ScalingType": "Auto"}]


def add_training_job(reg: Registry, name: str, *, epochs: int = 5, status: str = "Completed",
                     predictor_type: str = "regressor", tuning_job: str | None = None,
                     trial_number: int | None = None, objective: float | None = None,
                     hyperparameters: dict | None = None) -> None:
    hp = {"predictor_type": predictor_type, "num_factors": 8, "solver": "sgd",
          "epochs": epochs, **(hyperparameters or {})}
    reg.jobs.create(name, hyperparameters=hp, channels={"train": "/data/train",
                                                        "test": "/data/test"},
                    model_dir=f"/models/{name}", tuning_job=tuning_job,
                    trial_number=trial_number)
    for ep in range(epochs):
        reg.jobs.log_epoch(name, ep, {"train:rmse": 1.2 - 0.05 * ep,
                                      "validation:rmse": 1.25 - 0.04 * ep + 0.002 * ep * ep,
                                      "seconds": 0.5})
    if status != "InProgress":
        reg.jobs.finish(name, status=status, metrics={"test:rmse": 1.0 + 0.01 * epochs,
                                                      "train:rmse": 1.2 - 0.05 * epochs},
                        objective_value=objective, best_epoch=epochs - 1,
                        failure_reason="DataError: bad row" if status == "Failed" else None)


def add_tuning_job(reg: Registry, name: str, trials: int = 8) -> None:
    reg.tuning.create(name, objective_metric="test:rmse", direction="minimize",
                      strategy="bayesian", ranges={"ContinuousParameterRanges": TUNED},
                      static_hyperparameters={"predictor_type": "regressor"},
                      channels={"train": "/data/train"}, max_jobs=trials, max_parallel_jobs=2)
    rng = np.random.default_rng(0)
    best, best_name = math.inf, None
    for t in range(1, trials + 1):
        lr = float(10 ** rng.uniform(-3, math.log10(0.5)))
        wd = float(10 ** rng.uniform(-6, -2))
        value = 0.9 + abs(math.log10(lr) + 1.3) * 0.05 + wd * 3
        trial = f"{name}-{t:03d}"
        add_training_job(reg, trial, epochs=3, tuning_job=name, trial_number=t,
                         objective=value, hyperparameters={"factors_lr": lr, "factors_wd": wd})
        if value < best:
            best, best_name = value, trial
            reg.tuning.set_best(name, trial, value)
    reg.tuning.finish(name, status="Completed")
    assert best_name is not None


def write_model(folder: Path, vocabulary: dict | None = None, seed: int = 0) -> Path:
    """Write a small random fmkit model (regressor) with a vocabulary, through the model
    store, and return its folder."""
    from fmkit.artifact import Artifact, save

    rng = np.random.default_rng(seed)
    dim = int(vocabulary["feature_dim"]) if vocabulary else 20
    art = Artifact.from_point(3.0, rng.normal(0, 0.1, dim), rng.normal(0, 0.1, (dim, 4)),
                              "regressor", vocabulary=vocabulary,
                              metadata={"hyperparameters": {"num_factors": 4,
                                                            "predictor_type": "regressor"}})
    return save(art, folder)
