"""Hierarchical priors of the Bayesian FM and the draws of their hyperparameters.

The model (Rendle 2013, "Scaling factorization machines to relational data"; as in libFM
and myFM), for keys ``l`` of group ``g(l)`` and factor columns ``f``:

    w0        ~ N(0, 1 / w0_precision)
    w_l       ~ N(mu_w[g], 1 / lambda_w[g])
    v_lf      ~ N(mu_v[g, f], 1 / lambda_v[g, f])
    lambda_*  ~ Gamma(lambda_shape / 2, rate=lambda_rate / 2)
    mu_*      ~ N(mu_mean, 1 / (mu_strength * lambda_*))
    alpha     ~ Gamma(alpha_shape / 2, rate=alpha_rate / 2)   (regression noise precision)

The conditionals of ``lambda`` and ``mu`` given the parameters of a group are
Normal-Gamma, drawn by :func:`sample_group_priors`; ``alpha`` by :func:`sample_alpha`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

Float64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Hyperpriors:
    """Constants of the hyperpriors (libFM's defaults)."""

    alpha_shape: float = 1.0
    alpha_rate: float = 1.0
    lambda_shape: float = 1.0
    lambda_rate: float = 1.0
    mu_mean: float = 0.0
    mu_strength: float = 1.0
    w0_precision: float = 0.0


def membership(groups: npt.NDArray[np.int64]) -> sp.csr_matrix:
    """Return the (G, F) 0/1 matrix with a one where key l belongs to group g."""
    n_groups = int(groups.max()) + 1 if groups.size else 1
    return sp.csr_matrix(
        (np.ones(groups.size), (groups, np.arange(groups.size))),
        shape=(n_groups, groups.size),
    )


def sample_group_priors(
    rng: np.random.Generator,
    theta: Float64,
    member: sp.csr_matrix,
    counts: Float64,
    mu: Float64,
    prior: Hyperpriors,
) -> tuple[Float64, Float64]:
    """Draw ``(lambda, mu)`` of every group given the parameters ``theta``.

    Parameters
    ----------
    theta : float64 (F,) or (C, F)
        ``w``, or the factor columns as rows (C = num_factors); groups are over F.
    member : csr_matrix (G, F)
        :func:`membership` of the groups.
    counts : float64 (G,)
        Keys per group.
    mu : float64 (G,) or (C, G)
        The current means, used in the precision's conditional (as libFM).

    Returns
    -------
    lam, mu : float64 of shape (G,) or (C, G)
        Precision first (given the current mean), then the mean given that precision.
    """
    t = np.atleast_2d(theta)  # (C, F)
    sums = np.asarray(member @ t.T).T  # (C, G)
    sq = np.asarray(member @ (t * t).T).T
    lam, new_mu = sample_group_priors_from_sums(rng, sums, sq, counts, np.atleast_2d(mu),
                                                prior)
    if np.ndim(theta) == 1:
        return lam[0], new_mu[0]
    return lam, new_mu


def sample_group_priors_from_sums(
    rng: np.random.Generator,
    sums: Float64,
    sq: Float64,
    counts: Float64,
    mu: Float64,
    prior: Hyperpriors,
) -> tuple[Float64, Float64]:
    """Draw ``(lambda, mu)`` (C, G) from per-group sums and sums of squares (C, G).

    The statistics may come from any array library (the torch sampler computes them on
    its device); the draws use ``rng``.
    """
    m = mu
    # sum_l (t_l - m)^2 = sq - 2 m sums + n m^2
    dev = np.maximum(sq - 2.0 * m * sums + counts * m * m, 0.0)
    shape = 0.5 * (prior.lambda_shape + counts + 1.0)
    rate = 0.5 * (prior.lambda_rate + dev + prior.mu_strength * (m - prior.mu_mean) ** 2)
    lam = rng.gamma(np.broadcast_to(shape, rate.shape), 1.0 / rate)
    strength = counts + prior.mu_strength
    mean = (sums + prior.mu_strength * prior.mu_mean) / strength
    new_mu = mean + rng.standard_normal(mean.shape) / np.sqrt(strength * lam)
    return lam, new_mu


def alpha_from_sum(rng: np.random.Generator, n_rows: int, weighted_sse: float,
                   prior: Hyperpriors) -> float:
    """Draw the noise precision given ``sum_i r_i e_i^2`` over ``n_rows`` rows."""
    shape = 0.5 * (prior.alpha_shape + n_rows)
    rate = 0.5 * (prior.alpha_rate + weighted_sse)
    return float(rng.gamma(shape, 1.0 / rate))


def sample_alpha(
    rng: np.random.Generator, residuals: Float64, row_weights: Float64, prior: Hyperpriors
) -> float:
    """Draw the noise precision given the residuals (weighted rows count by weight).

    Vector sums use ``np.sum``, not ``np.dot``: a threaded BLAS dot of one vector is
    hundreds of times slower when other processes hold the cores.
    """
    sse = float(np.sum(row_weights * residuals * residuals))
    return alpha_from_sum(rng, residuals.shape[0], sse, prior)
