"""A fused CPU training step in numba: forward, gradient and row-sparse update in one pass.

On the CPU, the torch step (:meth:`fmkit.engine.trainer.Trainer.step`) runs about twenty
separate tensor operations per mini-batch, each a pass over the batch's Z x K entries, and
torch's thread pool stalls when other processes share the cores. This kernel does the same
arithmetic in a few loop nests:

1. per row: s = sum_i x_i V_i, q = sum_i x_i^2 |V_i|^2, y = w0 + sum_i w_i x_i + (|s|^2 - q)/2;
2. dL/dy (logistic or squared loss) times the row weight and the rescale;
3. per entry, the gradient is added to a slot of its key (first-seen order, a per-key slot
   table reset after the step), so only touched rows are stored;
4. the optimiser (Adam, Adagrad or SGD with SageMaker's clip, weight decay and per-group
   learning rates, exactly as :mod:`fmkit.engine.optim`) updates the touched rows in place.

Rows (forward), keys (gradient sums, each thread owning a share of the keys) and touched
rows (update) run in parallel over numba's threads.

It reads and writes the very tensors of the torch model and optimiser (CPU tensors share
memory with numpy), so either step can follow the other. Used for CPU training in a single
process when numba is installed; the tests check it against the torch step.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from fmkit.engine.optim import BETA1, BETA2, RowSparseOptimizer
from fmkit.model.fm import FactorizationMachine
from fmkit.sparse import SparseBatch

try:
    import numba
    from numba import get_num_threads, prange
except ImportError:  # pragma: no cover - numba is in the 'bayes'/'all' extras
    numba = None
    prange = range

    def get_num_threads() -> int:
        return 1

_OPTIMIZERS = {"sgd": 0, "adagrad": 1, "adam": 2}
# threads per step: gathers of random rows are latency-bound, and on a machine whose cores
# other processes share, a second thread waits at every loop's barrier (measured here: one
# thread 310K rows/s, two 110K rows/s with the cores busy); set threads= to use more
DEFAULT_THREADS = 1
_EMPTY = np.zeros(0, np.float32)


def _update_row(p: Any, g: Any, s1: Any, s2: Any, kind: int, lr: float, lr_t: float,
                wd: float, clip: float, eps: float) -> None:  # pragma: no cover - numba
    """One optimiser step for a parameter row ``p`` (1-D) with gradient ``g``, in place."""
    for f in range(p.shape[0]):
        gf = g[f]
        if clip >= 0.0:
            gf = min(max(gf, -clip), clip)
        gf += wd * p[f]
        if kind == 2:
            s1[f] = BETA1 * s1[f] + (1.0 - BETA1) * gf
            s2[f] = BETA2 * s2[f] + (1.0 - BETA2) * gf * gf
            p[f] -= lr_t * s1[f] / (math.sqrt(s2[f]) + eps)
        elif kind == 1:
            s1[f] += gf * gf
            p[f] -= lr * gf / (math.sqrt(s1[f]) + eps)
        else:
            p[f] -= lr * gf


def _fm_step(indices: Any, offsets: Any, values: Any, labels: Any, weights: Any,
             scale: float, binary: bool, w0: Any, w: Any, V: Any, use_bias: bool,
             use_linear: bool, kind: int, t: int, lr: Any, wd: Any, clip: float, eps: float,
             b1: Any, b2: Any, w1: Any, w2: Any, V1: Any, V2: Any,
             slot: Any, keys: Any, entry_slot: Any, entry_row: Any, gW: Any, gV: Any, S: Any,
             dY: Any, gbias: Any, y_out: Any, loss_out: Any,
             n_parts: int) -> None:  # pragma: no cover - numba
    n_rows = offsets.shape[0] - 1
    K = V.shape[1]
    # A. rows in parallel: row sums s, logits, losses and dL/dy
    for r in prange(n_rows):
        lo, hi = offsets[r], offsets[r + 1]
        for f in range(K):
            S[r, f] = 0.0
        y = w0[0] if use_bias else 0.0
        q = 0.0
        for j in range(lo, hi):
            i, x = indices[j], values[j]
            if use_linear:
                y += w[i] * x
            for f in range(K):
                v = V[i, f] * x
                S[r, f] += v
                q += v * v
        ss = 0.0
        for f in range(K):
            ss += S[r, f] * S[r, f]
        y += 0.5 * (ss - q)
        t_r = labels[r]
        if binary:
            p = 1.0 / (1.0 + math.exp(-y)) if y >= 0 else math.exp(y) / (1.0 + math.exp(y))
            dy = p - t_r
            loss_out[r] = max(y, 0.0) - y * t_r + math.log1p(math.exp(-abs(y)))
        else:
            dy = y - t_r
            loss_out[r] = 0.5 * dy * dy
        y_out[r] = y
        if weights.shape[0] > 0:
            dy *= weights[r]
        dY[r] = dy * scale
    # B. one slot per distinct key, in first-seen order (sequential, cheap)
    gb = 0.0
    n_keys = 0
    for r in range(n_rows):
        gb += dY[r]
        for j in range(offsets[r], offsets[r + 1]):
            i = indices[j]
            k = slot[i]
            if k < 0:
                k = n_keys
                slot[i] = k
                keys[k] = i
                n_keys += 1
            entry_slot[j] = k
            entry_row[j] = r
    # C. per-key gradient sums; each thread owns the keys whose slot % n_parts is its part
    for k in prange(n_keys):
        gW[k] = 0.0
        for f in range(K):
            gV[k, f] = 0.0
    for part in prange(n_parts):
        for j in range(indices.shape[0]):
            k = entry_slot[j]
            if k % n_parts != part:
                continue
            i, x, r = indices[j], values[j], entry_row[j]
            gx = dY[r] * x
            gW[k] += gx
            for f in range(K):
                gV[k, f] += gx * (S[r, f] - V[i, f] * x)
    # D. optimiser over the touched rows in parallel (distinct rows), then the bias
    lr_t = 0.0
    if kind == 2:
        lr_t = math.sqrt(1.0 - BETA2 ** t) / (1.0 - BETA1 ** t)
    # optimiser state rows: Adam keeps two tables, Adagrad one, SGD none (a 1-row dummy)
    s1 = kind >= 1
    s2 = kind == 2
    for k in prange(n_keys):
        i = keys[k]
        slot[i] = -1
        i1 = i if s1 else 0
        i2 = i if s2 else 0
        if use_linear and lr[1] != 0.0:
            _update_row(w[i:i + 1], gW[k:k + 1], w1[i1:i1 + 1], w2[i2:i2 + 1], kind, lr[1],
                        lr[1] * lr_t, wd[1], clip, eps)
        if lr[2] != 0.0:
            _update_row(V[i], gV[k], V1[i1], V2[i2], kind, lr[2], lr[2] * lr_t, wd[2], clip,
                        eps)
    if use_bias and lr[0] != 0.0:
        gbias[0] = gb
        _update_row(w0, gbias, b1, b2, kind, lr[0], lr[0] * lr_t, wd[0], clip, eps)


if numba is not None:
    # reassociation lets the K-loops vectorise; NaN and inf stay honest (no nnan/ninf), so a
    # diverging run still produces a non-finite loss that the trainer reports
    _FAST = {"contract", "arcp", "reassoc", "nsz", "afn"}
    _update_row = numba.njit(cache=True, fastmath=_FAST,  # type: ignore[assignment]
                             error_model="numpy")(_update_row)
    _fm_step = numba.njit(cache=True, fastmath=_FAST, parallel=True,  # type: ignore[assignment]
                          error_model="numpy")(_fm_step)


class CpuKernelPath:
    """Runs :func:`_fm_step` on the trainer's own tensors; see the module docstring."""

    def __init__(self, model: FactorizationMachine, optimizer: RowSparseOptimizer,
                 predictor_type: str, rescale_grad: float | None, *,
                 threads: int = DEFAULT_THREADS) -> None:
        self.model = model
        self.threads = max(1, min(int(threads), get_num_threads()))
        self.optimizer = optimizer
        self.binary = predictor_type == "binary_classifier"
        self.rescale_grad = rescale_grad
        self.kind = _OPTIMIZERS[optimizer.kind]
        groups = optimizer.groups
        self.lr = np.asarray([groups[g].lr if g in groups else 0.0
                              for g in ("bias", "linear", "factors")], np.float64)
        self.wd = np.asarray([groups[g].wd if g in groups else 0.0
                              for g in ("bias", "linear", "factors")], np.float64)
        self.clip = -1.0 if optimizer.clip is None else float(optimizer.clip)
        self.eps = float(optimizer.eps)
        self.arrays = {name: t.numpy() for name, t in
                       (("w0", model.w0), ("w", model.w), ("V", model.V))}
        self.state = {}
        for group, name in (("bias", "w0"), ("linear", "w"), ("factors", "V")):
            st = optimizer.state.get(group, ())
            ref = self.arrays[name]
            self.state[group] = tuple(
                st[k].numpy() if k < len(st) else np.zeros((1,) + ref.shape[1:], np.float32)
                for k in range(2))
        self.slot = np.full(model.feature_dim, -1, np.int64)
        self.gbias = np.zeros(1, np.float32)
        self._grow(0, 0)

    @classmethod
    def create(cls, config: Any, model: FactorizationMachine, optimizer: RowSparseOptimizer,
               *, device: torch.device, world_size: int) -> CpuKernelPath | None:
        """Return a kernel path when it applies (numba, CPU, one process, float32), else None."""
        if numba is None or device.type != "cpu" or world_size != 1:
            return None
        if model.V.dtype != torch.float32 or optimizer.kind not in _OPTIMIZERS:
            return None
        return cls(model, optimizer, config.predictor_type, config.rescale_grad)

    def _grow(self, n_rows: int, nnz: int) -> None:
        K = self.model.num_factors
        cap_rows = max(n_rows, getattr(self, "_cap_rows", 0), 1)
        cap_nnz = max(nnz, getattr(self, "_cap_nnz", 0), 1)
        if cap_rows != getattr(self, "_cap_rows", -1):
            self.S = np.empty((cap_rows, K), np.float32)
            self.y = np.empty(cap_rows, np.float32)
            self.dY = np.empty(cap_rows, np.float64)
            self.loss = np.empty(cap_rows, np.float32)
            self._cap_rows = cap_rows
        if cap_nnz != getattr(self, "_cap_nnz", -1):
            self.keys = np.empty(cap_nnz, np.int64)
            self.entry_slot = np.empty(cap_nnz, np.int64)
            self.entry_row = np.empty(cap_nnz, np.int64)
            self.gW = np.empty(cap_nnz, np.float32)
            self.gV = np.empty((cap_nnz, K), np.float32)
            self._cap_nnz = cap_nnz

    def step(self, batch: SparseBatch, device: torch.device | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """Train on one labelled mini-batch; return (logits, per-row loss) as CPU tensors.

        The gradient is the batch mean (``rescale_grad`` when set), as in the torch step.
        """
        batch = batch.canonical()
        n = batch.n_rows
        self._grow(n, batch.nnz)
        scale = self.rescale_grad if self.rescale_grad is not None else 1.0 / max(n, 1)
        self.optimizer.begin_step()
        a, st = self.arrays, self.state
        previous = get_num_threads()
        numba.set_num_threads(self.threads)
        _fm_step(batch.indices, batch.offsets, batch.values, batch.labels,
                 _EMPTY if batch.weights is None else batch.weights, float(scale), self.binary,
                 a["w0"], a["w"], a["V"], self.model.use_bias, self.model.use_linear,
                 self.kind, self.optimizer.t, self.lr, self.wd, self.clip, self.eps,
                 st["bias"][0], st["bias"][1], st["linear"][0], st["linear"][1],
                 st["factors"][0], st["factors"][1],
                 self.slot, self.keys, self.entry_slot, self.entry_row, self.gW, self.gV,
                 self.S, self.dY, self.gbias, self.y, self.loss, self.threads)
        numba.set_num_threads(previous)
        return torch.from_numpy(self.y[:n].copy()), torch.from_numpy(self.loss[:n].copy())
