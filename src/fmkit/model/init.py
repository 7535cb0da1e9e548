"""Parameter initialisation by SageMaker's ``*_init_method`` rules, seeded."""

from __future__ import annotations

import torch

from fmkit.config import FMConfig


def init_tensor(
    config: FMConfig, group: str, shape: tuple[int, ...], generator: torch.Generator
) -> torch.Tensor:
    """Return a float32 CPU tensor for ``group`` ('bias', 'linear' or 'factors').

    ``normal``: N(0, sigma^2); ``uniform``: U(-scale, scale); ``constant``: value.
    """
    method = getattr(config, f"{group}_init_method")
    if method == "constant":
        return torch.full(shape, float(getattr(config, f"{group}_init_value")))
    if method == "uniform":
        scale = float(getattr(config, f"{group}_init_scale"))
        return (torch.rand(shape, generator=generator) * 2 - 1) * scale
    sigma = float(getattr(config, f"{group}_init_sigma"))
    return torch.randn(shape, generator=generator) * sigma
