"""Link functions: raw FM outputs -> scores on the model's scale, numpy only.

``identity`` (regressors), ``logit`` (the logistic sigmoid of SGD binary classifiers) and
``probit`` (the normal CDF of the Bayesian binary classifiers). Scoring, recommendations,
the trainers' metrics and the Bayesian samplers all map outputs through :func:`apply_link`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

LINKS = ("identity", "logit", "probit")


def apply_link(link: str, y: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Map raw FM outputs to scores: identity, logistic sigmoid or normal CDF."""
    if link == "identity":
        return y
    if link == "logit":
        return 0.5 * (1.0 + np.tanh(0.5 * y))  # overflow-free sigmoid
    if link == "probit":
        from scipy.special import ndtr  # (0.15-0.2 s to import: only for probit models)

        return np.asarray(ndtr(y), np.float64)
    raise ValueError(f"unknown link {link!r}")
