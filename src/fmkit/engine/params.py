"""An FM's parameters and optimiser state as numpy arrays: the CPU trainer's model.

The fused CPU step (:mod:`fmkit.engine.cpu_kernel`) reads and writes these arrays in
place. They carry the same names and layout as the torch trainer's model and optimiser
(``w0`` (1,), ``w`` (F,), ``V`` (F, K); per group ``bias``/``linear``/``factors`` the
optimiser state, Adam's (m, v) or Adagrad's (sum of squares,)), so the kernel runs on
either; this module imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fmkit.config import FMConfig

BETA1 = 0.9
BETA2 = 0.999


@dataclass
class GroupSettings:
    """Learning rate and weight decay of one parameter group."""

    lr: float
    wd: float


class NumpyFM:
    """Parameters of one FM as float32 arrays (see :class:`fmkit.model.fm.FactorizationMachine`).

    Parameters
    ----------
    w0 : ndarray (1,)
    w : ndarray (F,)
    V : ndarray (F, K)
    use_bias, use_linear : bool
        When False, that term is held at zero.
    user_block : ndarray (F,) bool, optional
        The user block's keys of a ``user_item`` model; None for the ordinary FM.
    """

    def __init__(self, w0: np.ndarray, w: np.ndarray, V: np.ndarray, *, use_bias: bool = True,
                 use_linear: bool = True, user_block: np.ndarray | None = None) -> None:
        self.w0 = np.ascontiguousarray(w0, np.float32)
        self.w = np.ascontiguousarray(w, np.float32)
        self.V = np.ascontiguousarray(V, np.float32)
        self.use_bias, self.use_linear = use_bias, use_linear
        self.user_block = None if user_block is None else np.asarray(user_block, bool)
        if not use_bias:
            self.w0[:] = 0.0
        if not use_linear:
            self.w[:] = 0.0

    @property
    def feature_dim(self) -> int:
        return int(self.w.shape[0])

    @property
    def num_factors(self) -> int:
        return int(self.V.shape[1])


#: arrays of optimiser state per parameter: Adam's (m, v), Adagrad's (sum of squares,)
STATE_ARRAYS = {"adam": 2, "adagrad": 1, "sgd": 0}


def optimizer_settings(config: FMConfig, groups: Any
                       ) -> tuple[str, float, float | None, dict[str, GroupSettings]]:
    """Return ``(kind, eps, clip, {group: GroupSettings})`` of ``config`` for the parameter
    groups ``groups``: what both optimisers (numpy and torch) are built from."""
    eps = 1e-8 if config.eps is None else float(config.eps)
    clip = None if config.clip_gradient is None else abs(float(config.clip_gradient))
    settings = {g: GroupSettings(float(getattr(config, f"{g}_lr")),
                                 float(getattr(config, f"{g}_wd"))) for g in groups}
    return config.optimizer, eps, clip, settings


class NumpyOptimizer:
    """The optimiser's settings and state for the fused CPU step (no update code here).

    Mirrors :class:`fmkit.engine.optim.RowSparseOptimizer`'s attributes: ``kind``,
    ``groups`` (name -> GroupSettings), ``clip``, ``eps``, ``state`` (name -> arrays) and
    ``t``, the steps taken (Adam's bias correction).
    """

    def __init__(self, params: dict[str, np.ndarray], config: FMConfig) -> None:
        self.params = params
        self.kind, self.eps, self.clip, self.groups = optimizer_settings(config, params)
        self.t = 0
        self.state = {g: tuple(np.zeros_like(p) for _ in range(STATE_ARRAYS[self.kind]))
                      for g, p in params.items()}

    def begin_step(self) -> None:
        """Advance the step counter used for Adam's bias correction (once per batch)."""
        self.t += 1


def initial_parameters(config: FMConfig, feature_dim: int, *, init: Any = None,
                       label_mean: float | None = None, user_block: np.ndarray | None = None
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the starting ``(w0 (1,), w (F,), V (F, K))`` of a run, float32.

    From ``init`` (an Artifact: warm start at its sample mean) after checking that it fits
    this job, else drawn by the ``*_init_method`` rules from ``config.seed``
    (:mod:`fmkit.model.init`; w0, then w, then V, as the trainer always drew them).

    Raises
    ------
    ConfigError
        ``init`` has another shape, interactions or user block than this job.
    """
    from fmkit.errors import ConfigError
    from fmkit.model.init import TorchCompatibleGenerator, init_array

    K = config.num_factors
    if init is not None:
        if init.feature_dim != feature_dim or init.num_factors != K:
            raise ConfigError(
                f"--init-model has feature_dim={init.feature_dim}, num_factors="
                f"{init.num_factors}; this job has feature_dim={feature_dim}, "
                f"num_factors={K}."
            )
        wanted = "all" if user_block is None else "user_item"
        if init.interactions != wanted:
            raise ConfigError(
                f"--init-model was trained with interactions={init.interactions!r}; this "
                f"job trains interactions={wanted!r}; set --interactions "
                f"{init.interactions} to continue it."
            )
        if user_block is not None and not np.array_equal(init.user_block, user_block):
            raise ConfigError("--init-model's user block differs from this job's: the "
                              "data's vocabulary has other user fields.")
        return (np.ascontiguousarray(init.w0.mean(0, keepdims=True), np.float32),
                np.ascontiguousarray(init.w.mean(0), np.float32),
                np.ascontiguousarray(init.V.mean(0), np.float32))
    gen = TorchCompatibleGenerator(config.seed)
    w0 = init_array(config, "bias", (1,), gen, label_mean=label_mean)
    w = init_array(config, "linear", (feature_dim,), gen)
    V = init_array(config, "factors", (feature_dim, K), gen)
    return w0, w, V
