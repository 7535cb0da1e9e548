"""Losses on logits, one per predictor_type: value and derivative with respect to y.

- ``regressor``: squared loss 1/2 (y - t)^2, dL/dy = y - t; score = y.
- ``binary_classifier``: log loss of sigmoid(y), dL/dy = sigmoid(y) - t; score = sigmoid(y).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def loss_and_grad(
    predictor_type: str, y: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return per-row loss (B,) and dL/dy (B,) for logits ``y`` and labels ``t``."""
    if predictor_type == "regressor":
        d = y - t
        return 0.5 * d * d, d
    return F.binary_cross_entropy_with_logits(y, t, reduction="none"), torch.sigmoid(y) - t


def scores(predictor_type: str, y: torch.Tensor) -> torch.Tensor:
    """Map logits to scores: identity for regressors, sigmoid for binary classifiers."""
    return y if predictor_type == "regressor" else torch.sigmoid(y)
