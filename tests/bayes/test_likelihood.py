"""Probit latent draws and the hyperparameter conditionals."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.special import ndtr
from scipy.stats import norm

from fmkit.bayes.likelihood import sample_latent
from fmkit.bayes.priors import Hyperpriors, membership, sample_alpha, sample_group_priors


@pytest.mark.parametrize("y", [-2.0, 0.3, 4.0])
def test_truncated_normal_moments(rng, y):
    n = 200_000
    pos = sample_latent(rng, np.full(n, y), np.ones(n, bool))
    neg = sample_latent(rng, np.full(n, y), np.zeros(n, bool))
    assert pos.min() > 0 and neg.max() <= 0
    # E[z | z > 0] = y + phi(y) / Phi(y);  E[z | z <= 0] = y - phi(y) / Phi(-y)
    assert pos.mean() == pytest.approx(y + norm.pdf(y) / ndtr(y), abs=0.01)
    assert neg.mean() == pytest.approx(y - norm.pdf(y) / ndtr(-y), abs=0.01)


def test_far_tail_draws_stay_finite_and_on_the_right_side(rng):
    y = np.array([-30.0, 30.0, -8.0, 8.0])
    z = sample_latent(rng, y, np.array([True, False, True, False]))
    assert np.all(np.isfinite(z))
    assert z[0] > 0 and z[1] <= 0 and z[2] > 0 and z[3] <= 0


def test_group_priors_concentrate_on_the_group_spread(rng):
    groups = np.repeat([0, 1], 20_000)
    theta = np.concatenate([rng.normal(0.5, 0.1, 20_000), rng.normal(-1.0, 2.0, 20_000)])
    member = membership(groups)
    counts = np.asarray(member.sum(axis=1)).ravel()
    lam, mu = sample_group_priors(rng, theta, member, counts, np.array([0.5, -1.0]),
                                  Hyperpriors())
    np.testing.assert_allclose(lam, [100.0, 0.25], rtol=0.05)
    np.testing.assert_allclose(mu, [0.5, -1.0], atol=0.05)
    lam2, mu2 = sample_group_priors(rng, np.stack([theta, -theta]), member, counts,
                                    np.array([[0.5, -1.0], [-0.5, 1.0]]), Hyperpriors())
    assert lam2.shape == mu2.shape == (2, 2)
    np.testing.assert_allclose(mu2[1], [-0.5, 1.0], atol=0.05)
    assert isinstance(member, sp.csr_matrix)


def test_alpha_concentrates_on_the_inverse_noise_variance(rng):
    e = rng.normal(0, 0.5, 100_000)
    draws = [sample_alpha(rng, e, np.ones_like(e), Hyperpriors()) for _ in range(50)]
    assert np.mean(draws) == pytest.approx(4.0, rel=0.02)
