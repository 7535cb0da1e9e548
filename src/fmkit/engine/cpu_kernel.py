"""A fused CPU training step in numba: forward, gradient and row-sparse update in one pass.

On the CPU, the torch step (:meth:`fmkit.engine.trainer.Trainer.step`) runs about twenty
separate tensor operations per mini-batch, each a pass over the batch's Z x K entries, and
torch's thread pool stalls when other processes share the cores. This kernel does the same
arithmetic in two loop nests:

1. per row: s = sum_i x_i V_i, q = sum_i x_i^2 |V_i|^2, y = w0 + sum_i w_i x_i + (|s|^2 - q)/2,
   then dL/dy (logistic or squared loss) times the row weight and the rescale; then, while
   the row's V_i are still in cache, each entry's gradient is added to the slot of its key
   (first-seen order; a per-key slot table, reset after the step), so only touched rows are
   stored; the next row's parameter rows and slots are prefetched meanwhile;
2. the optimiser (Adam, Adagrad or SGD with SageMaker's clip, weight decay and per-group
   learning rates, exactly as :mod:`fmkit.engine.optim`) updates the touched rows in place,
   in float32 as torch does, prefetching the parameter and state rows of the keys ahead.

Every gradient is taken at the parameters of the start of the step, and each key's entry
gradients are summed in entry order, so the result does not depend on the thread count.
With ``threads`` > 1 the rows' forward pass runs in parallel, then each thread sums and
updates the keys it owns (key modulo the number of threads) in one pass.

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
# threads per step: the one-thread kernel needs no barrier; with the 2 cores shared by other
# processes (load 5), threads=2 ran at 255K rows/s against one thread's 1.3M (adagrad, k=16,
# batch 4096, 39 keys a row); set threads= to use more
DEFAULT_THREADS = 1
# keys ahead whose parameter and state rows the update prefetches
_PREFETCH_AHEAD = 32
_EMPTY = np.zeros(0, np.float32)


def _prefetch(a: Any, i: int) -> None:  # pragma: no cover - replaced by an intrinsic
    """Hint the CPU to fetch row ``i`` of ``a`` into cache (no effect on results)."""


def _forward_row(r: int, indices: Any, offsets: Any, values: Any, labels: Any, weights: Any,
                 scale: float, binary: bool, w0: Any, w: Any, V: Any, use_bias: bool,
                 use_linear: bool, s: Any, y_out: Any, loss_out: Any
                 ) -> float:  # pragma: no cover - numba
    """Row ``r``'s logit and loss into ``y_out``/``loss_out``, s = sum x_i V_i into ``s``;
    return dL/dy times the row weight and ``scale``."""
    K = V.shape[1]
    for f in range(K):
        s[f] = 0.0
    y = w0[0] if use_bias else 0.0
    q = 0.0
    for j in range(offsets[r], offsets[r + 1]):
        i, x = indices[j], values[j]
        if use_linear:
            y += w[i] * x
        for f in range(K):
            v = V[i, f] * x
            s[f] += v
            q += v * v
    ss = 0.0
    for f in range(K):
        ss += s[f] * s[f]
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
    return dy * scale


def _add_entry(k: int, new: bool, i: int, x: float, dy: float, s: Any, V: Any, gW: Any,
               gV: Any) -> None:  # pragma: no cover - numba
    """Add entry (key ``i``, value ``x``)'s gradient to slot ``k`` (set it when ``new``)."""
    gx = np.float32(dy * x)
    if new:
        gW[k] = gx
        for f in range(V.shape[1]):
            gV[k, f] = gx * (s[f] - V[i, f] * x)
    else:
        gW[k] += gx
        for f in range(V.shape[1]):
            gV[k, f] += gx * (s[f] - V[i, f] * x)


def _update_keys(keys: Any, lo: int, hi: int, slot: Any, gW: Any, gV: Any, w: Any, V: Any,
                 w1: Any, w2: Any, V1: Any, V2: Any, kind: int, lin: bool, fac: bool,
                 lrw: Any, lrv: Any, wdw: Any, wdv: Any, clip: Any, eps: Any
                 ) -> None:  # pragma: no cover - numba
    """Optimiser step for the keys ``keys[lo:hi]`` (gradients in the same slots), in float32.

    ``lrw``/``lrv`` already carry Adam's bias correction; the slot table entries are reset.
    """
    K = V.shape[1]
    b1, b2 = np.float32(BETA1), np.float32(BETA2)
    c1, c2 = np.float32(1.0 - BETA1), np.float32(1.0 - BETA2)
    for k in range(lo, hi):
        if k + _PREFETCH_AHEAD < hi:
            ip = keys[k + _PREFETCH_AHEAD]
            if fac:
                _prefetch(V, ip)
                if kind >= 1:
                    _prefetch(V1, ip)
                if kind == 2:
                    _prefetch(V2, ip)
            if lin:
                _prefetch(w, ip)
                if kind >= 1:
                    _prefetch(w1, ip)
                if kind == 2:
                    _prefetch(w2, ip)
        i = keys[k]
        slot[i] = -1
        if lin:
            g = min(max(gW[k], -clip), clip) + wdw * w[i]
            if kind == 1:
                a = w1[i] + g * g
                w1[i] = a
                w[i] -= lrw * g / (np.sqrt(a) + eps)
            elif kind == 2:
                m = b1 * w1[i] + c1 * g
                v = b2 * w2[i] + c2 * g * g
                w1[i] = m
                w2[i] = v
                w[i] -= lrw * m / (np.sqrt(v) + eps)
            else:
                w[i] -= lrw * g
        if fac:
            if kind == 1:
                for f in range(K):
                    g = min(max(gV[k, f], -clip), clip) + wdv * V[i, f]
                    a = V1[i, f] + g * g
                    V1[i, f] = a
                    V[i, f] -= lrv * g / (np.sqrt(a) + eps)
            elif kind == 2:
                for f in range(K):
                    g = min(max(gV[k, f], -clip), clip) + wdv * V[i, f]
                    m = b1 * V1[i, f] + c1 * g
                    v = b2 * V2[i, f] + c2 * g * g
                    V1[i, f] = m
                    V2[i, f] = v
                    V[i, f] -= lrv * m / (np.sqrt(v) + eps)
            else:
                for f in range(K):
                    g = min(max(gV[k, f], -clip), clip) + wdv * V[i, f]
                    V[i, f] -= lrv * g


def _is_canonical(indices: Any, offsets: Any) -> bool:  # pragma: no cover - numba
    """Whether every row's keys are strictly increasing (sorted, no duplicates)."""
    for r in range(offsets.shape[0] - 1):
        for j in range(offsets[r] + 1, offsets[r + 1]):
            if indices[j] <= indices[j - 1]:
                return False
    return True


def _update_bias(w0: Any, gb: float, b1: Any, b2: Any, kind: int, lr: float, wd: float,
                 clip: Any, eps: Any) -> None:  # pragma: no cover - numba
    """Optimiser step of the bias w0 (1,) with summed gradient ``gb``; ``lr`` as above."""
    g = min(max(np.float32(gb), -clip), clip) + np.float32(wd) * w0[0]
    if kind == 2:
        b1[0] = np.float32(BETA1) * b1[0] + np.float32(1.0 - BETA1) * g
        b2[0] = np.float32(BETA2) * b2[0] + np.float32(1.0 - BETA2) * g * g
        w0[0] -= np.float32(lr) * b1[0] / (np.sqrt(b2[0]) + eps)
    elif kind == 1:
        b1[0] += g * g
        w0[0] -= np.float32(lr) * g / (np.sqrt(b1[0]) + eps)
    else:
        w0[0] -= np.float32(lr) * g


def _fm_step(indices: Any, offsets: Any, values: Any, labels: Any, weights: Any,
             scale: float, binary: bool, w0: Any, w: Any, V: Any, use_bias: bool,
             use_linear: bool, kind: int, lr: Any, wd: Any, clip: float, eps: float,
             b1: Any, b2: Any, w1: Any, w2: Any, V1: Any, V2: Any,
             slot: Any, keys: Any, gW: Any, gV: Any, S: Any, dY: Any, counts: Any,
             y_out: Any, loss_out: Any, n_parts: int) -> None:  # pragma: no cover - numba
    """One training step on a mini-batch in one thread; ``lr`` (bias, linear, factors)
    carries Adam's bias correction. (The row and entry loops are written out here, not
    called: numba's inlined calls kept LLVM from vectorising them, at half the speed.)"""
    clipf = np.float32(clip if clip >= 0.0 else np.inf)
    epsf = np.float32(eps)
    lin = use_linear and lr[1] != 0.0
    fac = lr[2] != 0.0
    K = V.shape[1]
    s = S[0]
    n_keys = 0
    gb = 0.0
    n_rows = offsets.shape[0] - 1
    for r in range(n_rows):
        lo, hi = offsets[r], offsets[r + 1]
        if r + 1 < n_rows:  # the next row's parameter rows and slots, while this one runs
            for j in range(hi, offsets[r + 2]):
                _prefetch(V, indices[j])
                _prefetch(slot, indices[j])
        # forward: s = sum x_i V_i, q = sum x_i^2 |V_i|^2
        for f in range(K):
            s[f] = 0.0
        y = w0[0] if use_bias else 0.0
        q = 0.0
        for j in range(lo, hi):
            i, x = indices[j], values[j]
            if use_linear:
                y += w[i] * x
            for f in range(K):
                v = V[i, f] * x
                s[f] += v
                q += v * v
        ss = 0.0
        for f in range(K):
            ss += s[f] * s[f]
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
        dy *= scale
        gb += dy
        # backward, while the row's V_i are in cache: slot k of key i += dy x (s - x V_i)
        for j in range(lo, hi):
            i, x = indices[j], values[j]
            gx = np.float32(dy * x)
            k = slot[i]
            if k < 0:
                k = n_keys
                slot[i] = k
                keys[k] = i
                n_keys += 1
                gW[k] = gx
                for f in range(K):
                    gV[k, f] = gx * (s[f] - V[i, f] * x)
            else:
                gW[k] += gx
                for f in range(K):
                    gV[k, f] += gx * (s[f] - V[i, f] * x)
    _update_keys(keys, 0, n_keys, slot, gW, gV, w, V, w1, w2, V1, V2, kind, lin, fac,
                 np.float32(lr[1]), np.float32(lr[2]), np.float32(wd[1]), np.float32(wd[2]),
                 clipf, epsf)
    if use_bias and lr[0] != 0.0:
        _update_bias(w0, gb, b1, b2, kind, lr[0], wd[0], clipf, epsf)


def _fm_step_parallel(indices: Any, offsets: Any, values: Any, labels: Any, weights: Any,
                      scale: float, binary: bool, w0: Any, w: Any, V: Any, use_bias: bool,
                      use_linear: bool, kind: int, lr: Any, wd: Any, clip: float, eps: float,
                      b1: Any, b2: Any, w1: Any, w2: Any, V1: Any, V2: Any,
                      slot: Any, keys: Any, gW: Any, gV: Any, S: Any, dY: Any, counts: Any,
                      y_out: Any, loss_out: Any, n_parts: int) -> None:  # pragma: no cover
    """:func:`_fm_step` over ``n_parts`` threads: rows in parallel, then each thread sums
    and updates the keys it owns (key % n_parts) in entry order, so the sums, hence the
    result, equal the one-thread step's."""
    clipf = np.float32(clip if clip >= 0.0 else np.inf)
    epsf = np.float32(eps)
    lin = use_linear and lr[1] != 0.0
    fac = lr[2] != 0.0
    n_rows = offsets.shape[0] - 1
    cap = keys.shape[0] // n_parts
    for r in prange(n_rows):
        dY[r] = _forward_row(r, indices, offsets, values, labels, weights, scale, binary, w0,
                             w, V, use_bias, use_linear, S[r], y_out, loss_out)
    for p in prange(n_parts):
        base = p * cap
        n_keys = 0
        for r in range(n_rows):
            dy = dY[r]
            for j in range(offsets[r], offsets[r + 1]):
                i = indices[j]
                if i % n_parts != p:
                    continue
                k = slot[i]
                new = k < 0
                if new:
                    k = base + n_keys
                    slot[i] = k
                    keys[k] = i
                    n_keys += 1
                _add_entry(k, new, i, values[j], dy, S[r], V, gW, gV)
        counts[p] = n_keys
        _update_keys(keys, base, base + n_keys, slot, gW, gV, w, V, w1, w2, V1, V2, kind, lin,
                     fac, np.float32(lr[1]), np.float32(lr[2]), np.float32(wd[1]),
                     np.float32(wd[2]), clipf, epsf)
    gb = 0.0
    for r in range(n_rows):
        gb += dY[r]
    if use_bias and lr[0] != 0.0:
        _update_bias(w0, gb, b1, b2, kind, lr[0], wd[0], clipf, epsf)


if numba is not None:
    from llvmlite import ir  # type: ignore[import-untyped]
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    @intrinsic
    def _prefetch_intrinsic(typingctx: Any, a: Any, i: Any) -> Any:  # pragma: no cover
        if not isinstance(a, types.Array) or not isinstance(i, types.Integer):
            return None

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            aryty = signature.args[0]
            ary = context.make_array(aryty)(context, builder, args[0])
            zero = ir.Constant(args[1].type, 0)
            ptr = cgutils.get_item_pointer2(
                context, builder, data=ary.data,
                shape=cgutils.unpack_tuple(builder, ary.shape, aryty.ndim),
                strides=cgutils.unpack_tuple(builder, ary.strides, aryty.ndim),
                layout=aryty.layout, inds=[args[1]] + [zero] * (aryty.ndim - 1))
            i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                "llvm.prefetch.p0")
            # read, keep in all cache levels, data cache
            builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
            return context.get_dummy_value()

        return types.void(a, i), codegen

    _prefetch = _prefetch_intrinsic  # type: ignore[assignment]
    # reassociation lets the K-loops vectorise; NaN and inf stay honest (no nnan/ninf), so a
    # diverging run still produces a non-finite loss that the trainer reports
    _FAST = {"contract", "arcp", "reassoc", "nsz", "afn"}
    _jit = numba.njit(cache=True, fastmath=_FAST, error_model="numpy")
    _inline = numba.njit(cache=True, fastmath=_FAST, error_model="numpy", inline="always")
    _forward_row = _inline(_forward_row)  # type: ignore[assignment]
    _add_entry = _inline(_add_entry)  # type: ignore[assignment]
    _update_keys = _inline(_update_keys)  # type: ignore[assignment]
    _update_bias = _jit(_update_bias)  # type: ignore[assignment]
    _is_canonical = _jit(_is_canonical)  # type: ignore[assignment]
    _fm_step_parallel = numba.njit(  # type: ignore[assignment]
        cache=True, fastmath=_FAST, parallel=True, error_model="numpy")(_fm_step_parallel)
    _fm_step = _jit(_fm_step)  # type: ignore[assignment]


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
        # the slot of every key in the current batch, -1 if none (int32: half the cache lines)
        self.slot = np.full(model.feature_dim, -1, np.int32)
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
        parts = self.threads
        cap_rows = max(n_rows, getattr(self, "_cap_rows", 0), 1)
        cap_nnz = max(nnz, getattr(self, "_cap_nnz", 0), 1)
        if cap_rows != getattr(self, "_cap_rows", -1):
            # one thread keeps s of the current row only; more keep every row's
            self.S = np.empty((cap_rows if parts > 1 else 1, K), np.float32)
            self.y = np.empty(cap_rows, np.float32)
            self.dY = np.empty(cap_rows, np.float64)
            self.loss = np.empty(cap_rows, np.float32)
            self._cap_rows = cap_rows
        if cap_nnz != getattr(self, "_cap_nnz", -1):
            if parts * cap_nnz >= 2**31 and self.slot.dtype != np.int64:
                self.slot = self.slot.astype(np.int64)  # slot numbers past int32
            # slots of thread p are p * cap_nnz + 0, 1, ...; pages never touched cost nothing
            self.keys = np.empty(parts * cap_nnz, np.int64)
            self.gW = np.empty(parts * cap_nnz, np.float32)
            self.gV = np.empty((parts * cap_nnz, K), np.float32)
            self.counts = np.zeros(parts, np.int64)
            self._cap_nnz = cap_nnz

    def step(self, batch: SparseBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Train on one labelled mini-batch; return (logits, per-row loss) as CPU tensors.

        The gradient is the batch mean (``rescale_grad`` when set), as in the torch step.
        """
        if not _is_canonical(batch.indices, batch.offsets):  # duplicate keys: sum them first
            batch = batch.canonical()
        n = batch.n_rows
        self._grow(n, batch.nnz)
        scale = self.rescale_grad if self.rescale_grad is not None else 1.0 / max(n, 1)
        self.optimizer.begin_step()
        lr = self.lr
        if self.kind == 2:  # Adam's bias correction, as RowSparseOptimizer.update
            t = self.optimizer.t
            lr = lr * (math.sqrt(1.0 - BETA2**t) / (1.0 - BETA1**t))
        a, st = self.arrays, self.state
        if self.threads > 1:
            previous = get_num_threads()
            numba.set_num_threads(self.threads)
        kernel = _fm_step if self.threads == 1 else _fm_step_parallel
        kernel(batch.indices, batch.offsets, batch.values, batch.labels,
               _EMPTY if batch.weights is None else batch.weights, float(scale), self.binary,
               a["w0"], a["w"], a["V"], self.model.use_bias, self.model.use_linear,
               self.kind, lr, self.wd, self.clip, self.eps,
               st["bias"][0], st["bias"][1], st["linear"][0], st["linear"][1],
               st["factors"][0], st["factors"][1],
               self.slot, self.keys, self.gW, self.gV, self.S, self.dY, self.counts,
               self.y, self.loss, self.threads)
        if self.threads > 1:
            numba.set_num_threads(previous)
        return torch.from_numpy(self.y[:n].copy()), torch.from_numpy(self.loss[:n].copy())
