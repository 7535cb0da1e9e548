"""Bayesian FM solvers: Gibbs sampling (MCMC) and alternating least squares (ALS).

- :func:`fit_mcmc`: posterior samples of a Bayesian FM (Gaussian or probit likelihood,
  hierarchical priors grouped by field); the artifact keeps the samples and predictions
  average over them.
- :func:`fit_als`: deterministic coordinate descent for the L2-regularised regressor.
- :func:`read_groups`: a ``--groups`` file -> the prior group of every feature key.

Both solvers work on CPU with numpy, and use numba kernels when numba is installed
(the 'bayes' extra); MCMC also runs on a torch device (``device='cuda'``). See
docs/bayesian.md.
"""

from fmkit.bayes.als import fit_als
from fmkit.bayes.gibbs import fit_mcmc
from fmkit.bayes.groups import read_groups

__all__ = ["fit_als", "fit_mcmc", "read_groups"]
