"""The Gibbs sweep on torch tensors, for CUDA (or CPU torch): backend 'torch'.

:class:`TorchSampler` runs the same sweep as :class:`~fmkit.bayes.sampler.CoordinateSampler`
(same order, same conditionals) with the residuals, ``q``, ``w`` and the factors on a torch
device. An independent block (a one-hot field) is updated at once with vectorised
per-key sums (``index_add_``); co-occurring keys one after the other. Hyperparameter draws
use per-group sums computed on the device and numpy's generator on the (tiny) results.

All random numbers come from the numpy generator (the few per block are copied to the
device), so with the same seed the torch backend follows the numpy and numba backends up
to float rounding; on CUDA the sums use atomic adds, so repeated runs may differ in the
last bits.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from fmkit.bayes.priors import alpha_from_sum, sample_group_priors_from_sums
from fmkit.bayes.sampler import CoordinateSampler

Float64 = npt.NDArray[np.float64]


class TorchSampler(CoordinateSampler):
    """Gibbs sampler with its large state on ``device`` (see the module docstring).

    Takes :class:`CoordinateSampler`'s arguments plus ``device`` ('cuda', 'cpu', ...);
    ``mode`` must be 'gibbs'. The numpy attributes ``w``, ``Vt``, ``w0`` are refreshed by
    :meth:`sync` (called by :meth:`parameters`).
    """

    def __init__(self, X: sp.spmatrix, target: Float64, groups: npt.NDArray[np.int64],
                 num_factors: int, rng: np.random.Generator, *, device: str = "cuda",
                 **kw: Any) -> None:
        import torch

        kw["backend"] = "numpy"  # the parent's own arrays (block plan, init) on the host
        super().__init__(X, target, groups, num_factors, rng, **kw)
        self.torch = torch
        self.device = torch.device(device)
        dev, f64 = self.device, torch.float64

        def t(a: Any, dtype: Any = f64) -> Any:
            return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=dev)

        self.t = t
        csr = self.X
        with warnings.catch_warnings():  # torch's "sparse CSR is in beta" notice
            warnings.simplefilter("ignore", UserWarning)
            self.X_t, self.X2_t = (
                torch.sparse_csr_tensor(t(m.indptr, torch.int64), t(m.indices, torch.int64),
                                        t(m.data), size=m.shape, check_invariants=True)
                for m in (csr, self.X2))
        self.rows_t = t(self.rows.astype(np.int64), torch.int64)
        self.vals_t = t(self.vals)
        self.group_t = t(self.groups, torch.int64)
        self.r_t = t(self.r)
        self.weighted = self._kernel_r is not None
        self.target_t = t(self.target)
        self.positive_t = t(self.positive, torch.bool)
        self.w_t = t(self.w)
        self.Vt_t = t(self.Vt)
        self.Q_t = torch.zeros((num_factors, self.n_rows), dtype=f64, device=dev)
        self.e_t = torch.zeros(self.n_rows, dtype=f64, device=dev)
        self.latent_t = self.target_t.clone()
        # per block: rows, values and local key of its non-zeros (CSC order) on the device
        self.block_data = []
        for b in self.blocks:
            lo, hi = int(self.indptr[b.start]), int(self.indptr[b.stop])
            lengths = np.diff(self.indptr[b.start:b.stop + 1]).astype(np.int64)
            local = np.repeat(np.arange(b.stop - b.start), lengths)
            self.block_data.append((self.rows_t[lo:hi], self.vals_t[lo:hi],
                                    t(local, torch.int64)))
        self.r_sum = float(self.r.sum())

    # ------------------------------------------------------------------ predictions
    def predict_train(self) -> Any:
        """Return the FM outputs on the training rows (N,) as a device tensor; fill Q."""
        torch = self.torch
        V = self.Vt_t.T
        q = torch.sparse.mm(self.X_t, V.contiguous())  # (N, K)
        q2 = torch.sparse.mm(self.X2_t, (V * V).contiguous())
        self.Q_t = q.T.contiguous()
        lin = torch.sparse.mm(self.X_t, self.w_t[:, None])[:, 0]
        return self.w0 + lin + 0.5 * (q * q - q2).sum(dim=1)

    def _latent(self, y: Any) -> Any:
        """Probit latent targets, the same formula as :func:`sample_latent` in torch."""
        torch = self.torch
        u = self.t(1.0 - self.rng.random(self.n_rows))
        s = torch.where(self.positive_t, 1.0, -1.0).to(torch.float64)
        m = torch.clamp(s * y, -37.0, 37.0)
        tail = -torch.special.ndtri(u * torch.special.ndtr(m))
        return y + s * torch.maximum(tail, -m)

    # ------------------------------------------------------------------ sweep
    def _update(self, k: int, q: Any, theta: Any, lam: Any, mu: Any, alpha: float) -> None:
        """Update ``theta[block k]`` (``w`` when ``q`` is None); correct e and q."""
        torch = self.torch
        b = self.blocks[k]
        noise = self.t(self.rng.standard_normal(b.stop - b.start))
        rr_all, x_all, local_all = self.block_data[k]
        g = self.group_t[b.start:b.stop]
        spans = [(b.start, b.stop)] if b.independent else \
            [(key, key + 1) for key in range(b.start, b.stop)]
        for start, stop in spans:
            if b.independent:
                rr, x, local = rr_all, x_all, local_all
            else:
                lo = int(self.indptr[start] - self.indptr[b.start])
                hi = int(self.indptr[stop] - self.indptr[b.start])
                rr, x = rr_all[lo:hi], x_all[lo:hi]
                local = torch.zeros(hi - lo, dtype=torch.int64, device=self.device)
            n = stop - start
            old = theta[start:stop].clone()
            old_l = old[local]
            h = x if q is None else x * (q[rr] - old_l * x)
            a = alpha * self.r_t[rr] if self.weighted else alpha
            gg = g[start - b.start:stop - b.start]
            prec = lam[gg] + torch.zeros(n, dtype=torch.float64, device=self.device) \
                .index_add_(0, local, a * h * h)
            num = lam[gg] * mu[gg] + torch.zeros(n, dtype=torch.float64, device=self.device) \
                .index_add_(0, local, a * h * (self.e_t[rr] + old_l * h))
            new = num / prec + noise[start - b.start:stop - b.start] / torch.sqrt(prec)
            d = (new - old)[local]
            self.e_t.index_add_(0, rr, -d * h)
            if q is not None:
                q.index_add_(0, rr, d * x)
            theta[start:stop] = new

    def _group_sums(self, theta: Any) -> tuple[Float64, Float64]:
        """Per-group sums and sums of squares of ``theta`` (C, F) -> numpy (C, G)."""
        torch = self.torch
        C = theta.shape[0]
        sums = torch.zeros((C, self.n_groups), dtype=torch.float64, device=self.device)
        sq = torch.zeros_like(sums)
        sums.index_add_(1, self.group_t, theta)
        sq.index_add_(1, self.group_t, theta * theta)
        return sums.cpu().numpy(), sq.cpu().numpy()

    def sweep(self) -> None:
        """Run one Gibbs sweep (the order of :meth:`CoordinateSampler.sweep`)."""
        torch = self.torch
        if self.mode != "gibbs":
            raise ValueError("the torch backend samples only (mode='gibbs').")
        if self.sweeps % self.refresh == 0:
            y = self.predict_train()
        else:
            y = self.latent_t - self.e_t
        if self.likelihood == "probit":
            self.latent_t = self._latent(y)
        self.e_t = self.latent_t - y
        self.sweeps += 1
        if self.likelihood == "gaussian":
            sse = float(torch.sum(self.r_t * self.e_t * self.e_t))
            self.alpha = alpha_from_sum(self.rng, self.n_rows, sse, self.prior)
        alpha = self.alpha

        prec = self.w0_precision + alpha * self.r_sum
        num = alpha * float(torch.sum(self.r_t * (self.e_t + self.w0)))
        new = num / prec + float(self.rng.standard_normal(1)[0]) / np.sqrt(prec)
        self.e_t -= new - self.w0
        self.w0 = new

        sums, sq = self._group_sums(self.w_t[None, :])
        lam, mu = sample_group_priors_from_sums(self.rng, sums, sq, self.counts,
                                                self.mu_w[None, :], self.prior)
        self.lam_w, self.mu_w = lam[0], mu[0]
        lam_w, mu_w = self.t(self.lam_w), self.t(self.mu_w)
        for k in range(len(self.blocks)):
            self._update(k, None, self.w_t, lam_w, mu_w, alpha)
        sums, sq = self._group_sums(self.Vt_t)
        self.lam_v, self.mu_v = sample_group_priors_from_sums(
            self.rng, sums, sq, self.counts, self.mu_v, self.prior)
        lam_v, mu_v = self.t(self.lam_v), self.t(self.mu_v)
        for f in range(self.num_factors):
            q, v = self.Q_t[f], self.Vt_t[f]
            for k in range(len(self.blocks)):
                self._update(k, q, v, lam_v[f], mu_v[f], alpha)

    def sync(self) -> None:
        """Copy ``w`` and the factors back to the numpy attributes."""
        self.w = self.w_t.cpu().numpy()
        self.Vt = self.Vt_t.cpu().numpy()

    def residuals(self) -> Float64:
        """Return the current residuals (N,) as numpy."""
        return np.asarray(self.e_t.cpu().numpy())

    def outputs(self) -> Float64:
        """Return the current sample's FM outputs on the training rows (N,) as numpy."""
        return np.asarray((self.latent_t - self.e_t).cpu().numpy())

    def snapshot(self) -> tuple[float, Float64, Float64]:
        """Return ``(w0, w, Vt)`` copied to numpy."""
        self.sync()
        return self.w0, self.w, self.Vt

    def parameters(self) -> tuple[float, Float64, Float64]:
        """Return ``(w0, w (F,), V (F, K))`` as float64 numpy copies."""
        self.sync()
        return super().parameters()
