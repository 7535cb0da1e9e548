"""Parameter initialisation by SageMaker's ``*_init_method`` rules, seeded."""

from __future__ import annotations

import torch

from fmkit.config import FMConfig


def init_tensor(
    config: FMConfig,
    group: str,
    shape: tuple[int, ...],
    generator: torch.Generator,
    *,
    label_mean: float | None = None,
) -> torch.Tensor:
    """Return a float32 CPU tensor for ``group`` ('bias', 'linear' or 'factors').

    ``normal``: N(0, sigma^2); ``uniform``: U(-scale, scale); ``constant``: value;
    ``mean`` (fmkit's, bias only): the training labels' mean for regressors, the logit of the
    positive rate for binary classifiers (``label_mean``; 0 when unknown, as for a stream).
    """
    method = getattr(config, f"{group}_init_method")
    if method == "mean":
        m = 0.0 if label_mean is None else float(label_mean)
        if config.predictor_type == "binary_classifier":
            p = min(max(m, 1e-6), 1 - 1e-6) if label_mean is not None else 0.5
            m = float(torch.logit(torch.tensor(p, dtype=torch.float64)))
        return torch.full(shape, m)
    if method == "constant":
        return torch.full(shape, float(getattr(config, f"{group}_init_value")))
    if method == "uniform":
        scale = float(getattr(config, f"{group}_init_scale"))
        return (torch.rand(shape, generator=generator) * 2 - 1) * scale
    sigma = float(getattr(config, f"{group}_init_sigma"))
    return torch.randn(shape, generator=generator) * sigma
