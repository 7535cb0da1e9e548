"""A fused CPU training step in numba: forward, gradient and row-sparse update in one pass.

On the CPU, the torch step (:meth:`fmkit.engine.trainer.Trainer.step`) runs about twenty
separate tensor operations per mini-batch, each a pass over the batch's Z x K entries, and
torch's thread pool stalls when other processes share the cores. This kernel does the same
arithmetic in two loop nests:

1. per row: s = sum_i x_i V_i, q = sum_i x_i^2 |V_i|^2, y = w0 + sum_i w_i x_i + (|s|^2 - q)/2,
   then g = dL/dy (logistic or squared loss) times the row weight and the rescale; then
   each entry (key i, value x) adds g x, g x^2 and g x s to the slot of its key (first-seen
   order; a per-key slot table, reset after the step), so only touched rows are stored;
   the next row's parameter rows and slots are prefetched meanwhile;
2. the optimiser (Adam, Adagrad or SGD with SageMaker's clip, weight decay and per-group
   learning rates, exactly as :mod:`fmkit.engine.optim`) updates the touched rows in place,
   in float32 as torch does, prefetching the parameter and state rows of the keys ahead;
   the gradient of V_i, sum g x (s - x V_i), is formed here as sum g x s - (sum g x^2) V_i,
   so that pass 1 need not read V_i again (V_i is the same all step).

Every gradient is taken at the parameters of the start of the step, and each key's entry
gradients are summed in entry order, so the result does not depend on the thread count.
The kernel checks that each row's keys are strictly increasing as it reads them; a row
that repeats a key stops the step before any parameter changes, and the batch is summed
(scipy's canonical form) and stepped again.
With more threads (the parallel step) each runs the forward pass of its share of the rows,
filing every entry under the thread that owns its key; then each thread sums and updates
the keys it owns. :class:`ThreadChoice` times one thread against all now and then and
keeps the faster, since other processes on the cores can make the parallel step slower.

A ``user_item`` model (``model.user_block``) has its own build of both steps: the forward
pass keeps the user block's sum u apart from the other keys' s, y takes <u, s> in place of
(|s|^2 - q)/2, and an entry's gradient is g x times the other block's sum (no x V_i term).

It reads and writes the arrays of the model and optimiser in place: the numpy ones of the
CPU trainer (:mod:`fmkit.engine.params`), or the very tensors of the torch trainer (CPU
tensors share memory with numpy), so either step can follow the other. Used for CPU
training in a single process when numba is installed; the tests check it against the torch
step. This module imports no torch.

:func:`_make_fm_epoch` runs many batches of an epoch in one call (gathering each batch's
rows in the epoch's order, then the one-thread step), so that MovieLens-size batches (256
rows of 2 keys) do not pay a Python round trip each: it computes exactly what the same
batches stepped one call at a time compute, bit for bit.

numba keeps its builds in ``__pycache__`` (``cache=True``): the first process on a machine
compiles them (about a minute for all of them), later ones load them.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np

from fmkit.engine.params import BETA1, BETA2
from fmkit.sparse import SparseBatch

logger = logging.getLogger(__name__)

try:
    import numba
    from numba import get_num_threads, prange
except ImportError:  # pragma: no cover - numba is in the 'bayes'/'all' extras
    numba = None
    prange = range

    def get_num_threads() -> int:
        return 1

_OPTIMIZERS = {"sgd": 0, "adagrad": 1, "adam": 2}
# keys ahead whose parameter and state rows the update prefetches
_PREFETCH_AHEAD = 32
# batches with fewer entries take one thread when the count is chosen (threads=None): a
# parallel step cannot win there, and waking sleeping threads for the timing probes cost
# MovieLens training (256 rows x 2 keys a batch) 0.3 s of its 0.8 s
PARALLEL_MIN_ENTRIES = 1 << 15
# entries ahead whose slots the parallel gradient pass prefetches
_ENTRIES_AHEAD = 16
_EMPTY = np.zeros(0, np.float32)


def _prefetch(a: Any, i: int) -> None:  # pragma: no cover - replaced by an intrinsic
    """Hint the CPU to fetch row ``i`` of ``a`` into cache (no effect on results)."""


def _update_keys(keys: Any, lo: int, hi: int, slot: Any, gW: Any, gV: Any, w: Any, V: Any,
                 w1: Any, w2: Any, V1: Any, V2: Any, kind: int, lin: bool, fac: bool,
                 lrw: Any, lrv: Any, wdw: Any, wdv: Any, clip: Any, eps: Any
                 ) -> None:  # pragma: no cover - numba
    """Optimiser step for the keys ``keys[lo:hi]`` (their sums in the same slots: ``gW``
    g x and g x^2, ``gV`` g x s), in float32.

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
            g = min(max(gW[k, 0], -clip), clip) + wdw * w[i]
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
            c = gW[k, 1]
            if kind == 1:
                for f in range(K):
                    g = min(max(gV[k, f] - c * V[i, f], -clip), clip) + wdv * V[i, f]
                    a = V1[i, f] + g * g
                    V1[i, f] = a
                    V[i, f] -= lrv * g / (np.sqrt(a) + eps)
            elif kind == 2:
                for f in range(K):
                    g = min(max(gV[k, f] - c * V[i, f], -clip), clip) + wdv * V[i, f]
                    m = b1 * V1[i, f] + c1 * g
                    v = b2 * V2[i, f] + c2 * g * g
                    V1[i, f] = m
                    V2[i, f] = v
                    V[i, f] -= lrv * m / (np.sqrt(v) + eps)
            else:
                for f in range(K):
                    g = min(max(gV[k, f] - c * V[i, f], -clip), clip) + wdv * V[i, f]
                    V[i, f] -= lrv * g


def _row_output(r: int, y: float, labels: Any, weights: Any, binary: bool, scale: float,
                y_out: Any, loss_out: Any) -> float:  # pragma: no cover - numba
    """Row ``r``'s logit ``y`` and loss into ``y_out``/``loss_out``; return dL/dy times the
    row weight and ``scale`` (scalar code: inlining it costs the K-loops nothing)."""
    t_r = labels[r]
    if binary:
        e = math.exp(-abs(y))  # exp(-y) for y >= 0, exp(y) below: one exp for p and loss
        p = 1.0 / (1.0 + e) if y >= 0 else e / (1.0 + e)
        dy = p - t_r
        loss_out[r] = max(y, 0.0) - y * t_r + math.log1p(e)
    else:
        dy = y - t_r
        loss_out[r] = 0.5 * dy * dy
    y_out[r] = y
    if weights.shape[0] > 0:
        dy *= weights[r]
    return dy * scale


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


def _make_fm_step(ui: bool) -> Any:
    """Build the one-thread step for ordinary FMs (``ui`` False) or ``user_item`` models
    (True). ``ui`` is a compile-time constant: the ordinary step carries none of the
    user_item code (a runtime flag made it 4% slower, the parallel step 14%)."""
    def _fm_step(indices: Any, offsets: Any, values: Any, labels: Any, weights: Any,
                 scale: float, binary: bool, w0: Any, w: Any, V: Any, use_bias: bool,
                 use_linear: bool, kind: int, lr: Any, wd: Any, clip: float, eps: float,
                 b1: Any, b2: Any, w1: Any, w2: Any, V1: Any, V2: Any,
                 slot: Any, keys: Any, gW: Any, gV: Any, S: Any, dY: Any, counts: Any,
                 block: Any, U: Any, y_out: Any, loss_out: Any,
                 n_parts: int) -> bool:  # pragma: no cover - numba
        """One training step on a mini-batch in one thread; ``lr`` (bias, linear, factors)
        carries Adam's bias correction. Returns False, having changed no parameter, at the
        first row whose keys are not strictly increasing.

        (The row and entry loops are written out here, not called: numba's inlined calls kept
        LLVM from vectorising them, at half the speed.)"""
        clipf = np.float32(clip if clip >= 0.0 else np.inf)
        epsf = np.float32(eps)
        lin = use_linear and lr[1] != 0.0
        fac = lr[2] != 0.0
        K = V.shape[1]
        s = S[0]
        u = U[0]
        n_keys = 0
        gb = 0.0
        n_rows = offsets.shape[0] - 1
        for r in range(n_rows):
            lo, hi = offsets[r], offsets[r + 1]
            if r + 1 < n_rows:  # the next row's parameter rows and slots, while this one runs
                # (w's too: 1.16x faster in the parallel step's A/B)
                for j in range(hi, offsets[r + 2]):
                    _prefetch(V, indices[j])
                    _prefetch(w, indices[j])
                    _prefetch(slot, indices[j])
            # forward: s = sum x_i V_i, q = sum x_i^2 |V_i|^2 (user_item: u over the user
            # block's keys, s over the others)
            for f in range(K):
                s[f] = 0.0
            if ui:
                for f in range(K):
                    u[f] = 0.0
            y = w0[0] if use_bias else 0.0
            q = 0.0
            last = -1
            for j in range(lo, hi):
                i, x = indices[j], values[j]
                if i <= last:  # a repeated or unsorted key: release the slots, change nothing
                    for k in range(n_keys):
                        slot[keys[k]] = -1
                    return False
                last = i
                if use_linear:
                    y += w[i] * x
                if ui and block[i]:
                    for f in range(K):
                        u[f] += V[i, f] * x
                else:
                    for f in range(K):
                        v = V[i, f] * x
                        s[f] += v
                        q += v * v
            ss = 0.0
            if ui:
                for f in range(K):
                    ss += u[f] * s[f]
                y += ss
            else:
                for f in range(K):
                    ss += s[f] * s[f]
                y += 0.5 * (ss - q)
            dy = _row_output(r, y, labels, weights, binary, scale, y_out, loss_out)
            gb += dy
            # backward: key i's slot k gathers dy x s and dy x^2; the gradient of V_i,
            # sum dy x (s - x V_i), is formed in the update, where V_i is read anyway
            # (user_item: dy x times the other block's sum, and no x V_i term)
            for j in range(lo, hi):
                i, x = indices[j], values[j]
                gx = np.float32(dy * x)
                t = u if ui and not block[i] else s
                c = np.float32(0.0) if ui else gx * x
                k = slot[i]
                if k < 0:
                    k = n_keys
                    slot[i] = k
                    keys[k] = i
                    n_keys += 1
                    gW[k, 0] = gx
                    gW[k, 1] = c
                    for f in range(K):
                        gV[k, f] = gx * t[f]
                else:
                    gW[k, 0] += gx
                    gW[k, 1] += c
                    for f in range(K):
                        gV[k, f] += gx * t[f]
        _update_keys(keys, 0, n_keys, slot, gW, gV, w, V, w1, w2, V1, V2, kind, lin, fac,
                     np.float32(lr[1]), np.float32(lr[2]), np.float32(wd[1]), np.float32(wd[2]),
                     clipf, epsf)
        if use_bias and lr[0] != 0.0:
            _update_bias(w0, gb, b1, b2, kind, lr[0], wd[0], clipf, epsf)
        return True
    # a name of its own for each variant: numba's cache files are named after it
    _fm_step.__qualname__ = f"_fm_step_{'user_item' if ui else 'all'}"
    return _fm_step



def _make_fm_step_parallel(ui: bool) -> Any:
    """Build the parallel step for ordinary FMs or ``user_item`` models, as
    :func:`_make_fm_step`."""
    def _fm_step_parallel(indices: Any, offsets: Any, values: Any, labels: Any, weights: Any,
                          scale: float, binary: bool, w0: Any, w: Any, V: Any, use_bias: bool,
                          use_linear: bool, kind: int, lr: Any, wd: Any, clip: float, eps: float,
                          b1: Any, b2: Any, w1: Any, w2: Any, V1: Any, V2: Any,
                          slot: Any, keys: Any, gW: Any, gV: Any, S: Any, dY: Any, counts: Any,
                          block: Any, U: Any,
                          y_out: Any, loss_out: Any, n_parts: int, entries: Any,
                          entry_rows: Any, flags: Any) -> bool:  # pragma: no cover - numba
        """The one-thread step over ``n_parts`` threads, with the same result.

        1. Thread p runs the forward pass of the p-th run of rows, keeping each row's s and
           dL/dy, and files each entry under the thread that owns its key (a hash of the key's
           block of 16: keys sharing a cache line of ``slot`` or ``w`` share an owner) in
           ``entries[p, owner]`` (its row in ``entry_rows``); if a row's keys are not strictly
           increasing, the step returns False here, before any parameter changes;
        2. thread q sums the gradients of the entries filed under it in row order (run 0's,
           then run 1's, ...: the one-thread order), prefetching the slots of the entries
           ahead, then updates its keys.

        (Writing each entry's gradient in pass 1 measured slower: a Z x K buffer costs more
        memory traffic than pass 2's reads of the rows' s.)

        Counters stay in thread-local arrays: shared ones, in one cache line written by every
        thread at every entry, serialised the threads."""
        clipf = np.float32(clip if clip >= 0.0 else np.inf)
        epsf = np.float32(eps)
        lin = use_linear and lr[1] != 0.0
        fac = lr[2] != 0.0
        K = V.shape[1]
        n_rows = offsets.shape[0] - 1
        run = (n_rows + n_parts - 1) // n_parts
        for p in prange(n_parts):
            filed = np.zeros(n_parts, np.int64)
            r_end = min(n_rows, (p + 1) * run)
            ok = True
            for r in range(p * run, r_end):
                lo, hi = offsets[r], offsets[r + 1]
                s = S[r]
                u = U[r if ui else 0]
                if r + 1 < r_end:
                    for j in range(hi, offsets[r + 2]):
                        _prefetch(V, indices[j])
                        _prefetch(w, indices[j])
                for f in range(K):
                    s[f] = 0.0
                if ui:
                    for f in range(K):
                        u[f] = 0.0
                y = w0[0] if use_bias else 0.0
                q = 0.0
                last = -1
                for j in range(lo, hi):
                    i, x = indices[j], values[j]
                    if i <= last:
                        ok = False
                    last = i
                    if use_linear:
                        y += w[i] * x
                    if ui and block[i]:
                        for f in range(K):
                            u[f] += V[i, f] * x
                    else:
                        for f in range(K):
                            v = V[i, f] * x
                            s[f] += v
                            q += v * v
                    owner = ((((i >> 4) * 2654435761) & 0xFFFFFFFF) * n_parts) >> 32
                    entries[p, owner, filed[owner]] = j
                    entry_rows[p, owner, filed[owner]] = r
                    filed[owner] += 1
                ss = 0.0
                if ui:
                    for f in range(K):
                        ss += u[f] * s[f]
                    y += ss
                else:
                    for f in range(K):
                        ss += s[f] * s[f]
                    y += 0.5 * (ss - q)
                dY[r] = _row_output(r, y, labels, weights, binary, scale, y_out, loss_out)
            for o in range(n_parts):
                counts[p * n_parts + o] = filed[o]
            flags[p] = ok
        for p in range(n_parts):
            if not flags[p]:
                return False
        cap = keys.shape[0] // n_parts
        for o in prange(n_parts):
            base = o * cap
            n_keys = 0
            for p in range(n_parts):
                n_filed = counts[p * n_parts + o]
                for e in range(n_filed):
                    if e + _ENTRIES_AHEAD < n_filed:
                        _prefetch(slot, indices[entries[p, o, e + _ENTRIES_AHEAD]])
                    j, r = entries[p, o, e], entry_rows[p, o, e]
                    i, x = indices[j], values[j]
                    gx = np.float32(dY[r] * x)
                    T = U if ui and not block[i] else S  # user_item: the other block's sums
                    c = np.float32(0.0) if ui else gx * x
                    k = slot[i]
                    if k < 0:
                        k = base + n_keys
                        slot[i] = k
                        keys[k] = i
                        n_keys += 1
                        gW[k, 0] = gx
                        gW[k, 1] = c
                        for f in range(K):  # (T[r, f], not a row view: 1.3x faster here)
                            gV[k, f] = gx * T[r, f]
                    else:
                        gW[k, 0] += gx
                        gW[k, 1] += c
                        for f in range(K):
                            gV[k, f] += gx * T[r, f]
            _update_keys(keys, base, base + n_keys, slot, gW, gV, w, V, w1, w2, V1, V2, kind, lin,
                         fac, np.float32(lr[1]), np.float32(lr[2]), np.float32(wd[1]),
                         np.float32(wd[2]), clipf, epsf)
        gb = 0.0
        for r in range(n_rows):
            gb += dY[r]
        if use_bias and lr[0] != 0.0:
            _update_bias(w0, gb, b1, b2, kind, lr[0], wd[0], clipf, epsf)
        return True
    # a name of its own for each variant: numba's cache files are named after it
    _fm_step_parallel.__qualname__ = f"_fm_step_parallel_{'user_item' if ui else 'all'}"
    return _fm_step_parallel



def _make_fm_epoch(ui: bool) -> Any:
    """Build the many-batches call around the one-thread step of the same ``ui``.

    The step is called through the globals ``_STEP_ALL``/``_STEP_USER_ITEM``, not a closure
    variable: numba's cache key pickles closure variables, and a dispatcher pickles
    differently in every process, so a closure over it compiled anew each run."""
    def _fm_epoch(indices: Any, offsets: Any, values: Any, labels: Any, weights: Any,
                  order: Any, batch_size: int, b_start: int, b_stop: int, lrs: Any,
                  rescale: float, binary: bool, w0: Any, w: Any, V: Any, use_bias: bool,
                  use_linear: bool, kind: int, wd: Any, clip: float, eps: float,
                  b1: Any, b2: Any, w1: Any, w2: Any, V1: Any, V2: Any,
                  slot: Any, keys: Any, gW: Any, gV: Any, S: Any, dY: Any, counts: Any,
                  block: Any, U: Any, bi: Any, bo: Any, bv: Any, bl: Any, bw: Any,
                  y_out: Any, loss_out: Any, status: Any) -> int:  # pragma: no cover - numba
        """Step batches ``b_start`` to ``b_stop`` of an epoch; return how many were stepped.

        Batch b holds rows ``order[b * batch_size:(b + 1) * batch_size]`` of the set
        (``indices``, ``offsets``, ``values``, ``labels``, ``weights`` (empty: none)); it is
        gathered into ``bi``/``bo``/``bv``/``bl``/``bw`` and stepped with ``lrs[b - b_start]``
        (Adam's bias correction applied by the caller, as for one step) and the scale
        ``rescale`` (< 0: 1 / rows of the batch). Logits and losses go to ``y_out`` and
        ``loss_out`` at the rows' epoch positions. Stops early with ``status[0]`` = 1 after a
        batch whose loss is not finite, or 2 before a batch with a row whose keys are not
        strictly increasing (nothing of that batch changed).
        """
        n_total = order.shape[0]
        has_w = weights.shape[0] > 0
        status[0] = 0
        for b in range(b_start, b_stop):
            lo_row = b * batch_size
            hi_row = min(n_total, lo_row + batch_size)
            n = hi_row - lo_row
            z = 0
            bo[0] = 0
            for r in range(n):
                src = order[lo_row + r]
                a, e = offsets[src], offsets[src + 1]
                for j in range(a, e):
                    bi[z] = indices[j]
                    bv[z] = values[j]
                    z += 1
                bo[r + 1] = z
                bl[r] = labels[src]
                if has_w:
                    bw[r] = weights[src]
            scale = rescale if rescale >= 0.0 else 1.0 / max(n, 1)
            n_w = n if has_w else 0
            if ui:
                ok = _STEP_USER_ITEM(
                    bi[:z], bo[:n + 1], bv[:z], bl[:n], bw[:n_w], scale, binary, w0, w, V,
                    use_bias, use_linear, kind, lrs[b - b_start], wd, clip, eps, b1, b2, w1,
                    w2, V1, V2, slot, keys, gW, gV, S, dY, counts, block, U,
                    y_out[lo_row:hi_row], loss_out[lo_row:hi_row], 1)
            else:
                ok = _STEP_ALL(
                    bi[:z], bo[:n + 1], bv[:z], bl[:n], bw[:n_w], scale, binary, w0, w, V,
                    use_bias, use_linear, kind, lrs[b - b_start], wd, clip, eps, b1, b2, w1,
                    w2, V1, V2, slot, keys, gW, gV, S, dY, counts, block, U,
                    y_out[lo_row:hi_row], loss_out[lo_row:hi_row], 1)
            if not ok:
                status[0] = 2
                return b - b_start
            for r in range(lo_row, hi_row):
                if not np.isfinite(loss_out[r]):
                    status[0] = 1
                    return b - b_start + 1
        return b_stop - b_start
    _fm_epoch.__qualname__ = f"_fm_epoch_{'user_item' if ui else 'all'}"
    return _fm_epoch


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
    _update_keys = _inline(_update_keys)  # type: ignore[assignment]
    _row_output = _inline(_row_output)  # type: ignore[assignment]
    _update_bias = _jit(_update_bias)  # type: ignore[assignment]
    _parallel = numba.njit(cache=True, fastmath=_FAST, parallel=True, error_model="numpy")
    # (one thread, parallel) steps of the ordinary FM (False) and of user_item models (True)
    _STEPS = {ui: (_jit(_make_fm_step(ui)), _parallel(_make_fm_step_parallel(ui)))
              for ui in (False, True)}
    # many batches per call around each one-thread step
    _STEP_ALL, _STEP_USER_ITEM = _STEPS[False][0], _STEPS[True][0]
    _EPOCHS = {ui: _jit(_make_fm_epoch(ui)) for ui in (False, True)}


# seconds a first call may take (loading numba's cached build) before it is logged as a
# compile
COMPILE_NOTICE_S = 1.0


class _CompileNotice:
    """Log "compiling ..." when a kernel's first call in this process runs long (numba
    compiling it: once per machine and argument types, tens of seconds; later processes
    load the cached build in a fraction of a second)."""

    def __init__(self, fn: Any, what: str) -> None:
        self.timer: Any = None
        if numba is not None and not fn.overloads:
            import threading

            self.timer = threading.Timer(COMPILE_NOTICE_S, logger.info, (
                "compiling %s for these argument types (once: numba caches the build "
                "beside fmkit's sources; later runs load it)", what))
            self.timer.daemon = True

    def __enter__(self) -> None:
        if self.timer is not None:
            self.timer.start()

    def __exit__(self, *exc: Any) -> None:
        if self.timer is not None:
            self.timer.cancel()


def limit_threads(n: int) -> None:
    """Let CPU steps started from the calling thread use at most ``n`` numba threads
    (numba's count is per calling thread): for tuning trials that share the cores."""
    if numba is not None:
        numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))


class ThreadChoice:
    """Chooses each step's thread count, 1 or ``most``, by timing both now and then.

    The two kernels give the same result, so the choice changes the speed only: on idle
    cores more threads win (2.5-2.7M against 1.4-1.5M rows/s here, adagrad, k=16, batch
    4096, 39 keys a row), while on cores that other processes load a parallel step waits
    for its slowest thread, and one thread can win. The first ``2 * probes`` of every ``period``
    steps alternate the two (the first step of each, which may compile, is not timed), and
    the faster by median seconds per row is kept until the next probe.
    """

    def __init__(self, most: int, *, period: int = 200, probes: int = 4) -> None:
        self.options = (1, most) if most > 1 else (1,)
        self.period, self.probes = period, probes
        self.best = self.options[-1]
        self.steps = 0
        self.warm: set[int] = set()
        self.samples: dict[int, list[float]] = {n: [] for n in self.options}

    def _probing(self) -> bool:
        return len(self.options) > 1 and self.steps % self.period < 2 * self.probes

    def pick(self) -> int:
        """Return the thread count for the next step."""
        return self.options[self.steps % 2] if self._probing() else self.best

    def record(self, threads: int, seconds: float, rows: int) -> None:
        """Note the time of the step :meth:`pick` chose; choose at the end of a probe."""
        probing, last = self._probing(), self.steps % self.period == 2 * self.probes - 1
        self.steps += 1
        if not probing:
            return
        if threads in self.warm:
            self.samples[threads].append(seconds / max(rows, 1))
        self.warm.add(threads)
        if last:
            if all(self.samples.values()):
                self.best = min(self.options, key=lambda n: float(np.median(self.samples[n])))
            for v in self.samples.values():
                v.clear()


class CpuKernelPath:
    """Runs the one-thread or parallel step on the trainer's own arrays (numpy, or CPU
    torch tensors); see the module docstring.

    Parameters
    ----------
    model : NumpyFM or FactorizationMachine
        ``w0``, ``w``, ``V`` (and ``user_block``), updated in place.
    optimizer : NumpyOptimizer or RowSparseOptimizer
        Its ``kind``, ``groups``, ``clip``, ``eps``, ``state`` and step count ``t``.
    predictor_type : str
    rescale_grad : float or None
        The gradient scale; None: the batch mean.
    threads : int, optional
        None: 1 or every numba thread, whichever measures faster; a number: that many.
    """

    def __init__(self, model: Any, optimizer: Any, predictor_type: str,
                 rescale_grad: float | None, *, threads: int | None = None) -> None:
        self.model = model
        # torch tensors in, torch tensors out of step() (the torch trainer's contract)
        self._torch = not isinstance(model.V, np.ndarray)
        # threads None: 1 or every numba thread, whichever is faster now; a number: that many
        most = get_num_threads()
        self.threads = most if threads is None else max(1, min(int(threads), most))
        self.choice = ThreadChoice(most) if threads is None else None
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
        self.arrays = {name: np.asarray(t) for name, t in
                       (("w0", model.w0), ("w", model.w), ("V", model.V))}
        self.state = {}
        for group, name in (("bias", "w0"), ("linear", "w"), ("factors", "V")):
            st = optimizer.state.get(group, ())
            ref = self.arrays[name]
            self.state[group] = tuple(
                np.asarray(st[k]) if k < len(st) else np.zeros((1,) + ref.shape[1:],
                                                               np.float32)
                for k in range(2))
        # the slot of every key in the current batch, -1 if none (int32: half the cache lines)
        self.slot = np.full(model.feature_dim, -1, np.int32)
        # user_item models: which keys form the user block; empty for the ordinary FM
        self.block = (np.zeros(0, np.bool_) if model.user_block is None
                      else np.asarray(model.user_block) > 0.5)
        self._steps = _STEPS[self.block.shape[0] > 0]  # (one-thread, parallel) build
        self._grow(0, 0)

    @classmethod
    def create(cls, config: Any, model: Any, optimizer: Any, *, device: Any,
               world_size: int) -> CpuKernelPath | None:
        """Return a kernel path when it applies (numba, CPU, one process, float32), else None.

        ``device`` is a torch device or its name.
        """
        if numba is None or getattr(device, "type", device) != "cpu" or world_size != 1:
            return None
        if np.asarray(model.V).dtype != np.float32 or optimizer.kind not in _OPTIMIZERS:
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
            # user_item: the user block's sums beside S's (those of the other keys)
            self.U = np.empty((self.S.shape[0] if self.block.shape[0] else 1, K), np.float32)
            self.y = np.empty(cap_rows, np.float32)
            self.dY = np.empty(cap_rows, np.float64)
            self.loss = np.empty(cap_rows, np.float32)
            self._cap_rows = cap_rows
        if cap_nnz != getattr(self, "_cap_nnz", -1):
            if parts * cap_nnz >= 2**31 and self.slot.dtype != np.int64:
                self.slot = self.slot.astype(np.int64)  # slot numbers past int32
            # slots of thread p are p * cap_nnz + 0, 1, ...; pages never touched cost nothing
            self.keys = np.empty(parts * cap_nnz, np.int64)
            self.gW = np.empty((parts * cap_nnz, 2), np.float32)
            self.gV = np.empty((parts * cap_nnz, K), np.float32)
            self.counts = np.zeros(parts * parts, np.int64)
            self.flags = np.zeros(parts, np.bool_)
            self._cap_nnz = cap_nnz

    def _entries(self, offsets: np.ndarray, parts: int) -> tuple[np.ndarray, np.ndarray]:
        """The (parts, parts, n) tables the parallel step files entries and their rows in;
        n is the most entries of one thread's run of rows."""
        n_rows = offsets.shape[0] - 1
        ends = np.minimum(np.arange(parts + 1) * -(-n_rows // parts), n_rows)
        need = max(int(np.max(np.diff(offsets[ends]))), 1)
        have = getattr(self, "_filed", None)
        if have is None or have[0].shape[0] != parts or have[0].shape[2] < need:
            self._filed = (np.empty((parts, parts, need), np.int64),
                           np.empty((parts, parts, need), np.int32))
        return self._filed

    def step(self, batch: SparseBatch) -> tuple[Any, Any]:
        """Train on one labelled mini-batch; return (logits, per-row loss): CPU tensors
        for a torch model, float32 arrays for a numpy one.

        The gradient is the batch mean (``rescale_grad`` when set), as in the torch step.
        Rows with a repeated key are summed first (scipy's canonical form), as in a matrix.
        """
        n = batch.n_rows
        self._grow(n, batch.nnz)
        scale = self.rescale_grad if self.rescale_grad is not None else 1.0 / max(n, 1)
        lr = self._step_lr()
        choice = self.choice if batch.nnz >= PARALLEL_MIN_ENTRIES else None
        if choice is not None:
            parts = choice.pick()
        else:  # a fixed count, or a batch too small to time
            parts = self.threads if self.choice is None else 1
        started = time.perf_counter()
        if not self._run(batch, parts, scale, lr):
            # a row with a repeated (or unsorted) key: nothing changed; sum them, rerun
            self._run(batch.canonical(), parts, scale, lr)
        if choice is not None:
            choice.record(parts, time.perf_counter() - started, n)
        y, loss = self.y[:n].copy(), self.loss[:n].copy()
        if self._torch:
            import torch

            return torch.from_numpy(y), torch.from_numpy(loss)
        return y, loss

    def _step_lr(self) -> np.ndarray:
        """Advance the step count; return this step's (bias, linear, factors) rates."""
        self.optimizer.begin_step()
        if self.kind != 2:
            return self.lr
        t = self.optimizer.t  # Adam's bias correction, as RowSparseOptimizer.update
        return self.lr * (math.sqrt(1.0 - BETA2**t) / (1.0 - BETA1**t))

    def batches_per_call(self, data: SparseBatch, batch_size: int) -> int:
        """How many batches :meth:`step_batches` takes per call (0: step them one by one).

        Batches that the thread choice would give one thread (fewer than
        ``PARALLEL_MIN_ENTRIES`` entries), or all batches when one thread is fixed, go many
        per call: about 2^20 entries each, a few milliseconds between returns to Python
        (stop requests, Ctrl-C, progress). Larger batches keep one call each, where the
        parallel step can win and the call costs little beside the step.
        """
        per_batch = batch_size * data.nnz / max(data.n_rows, 1)
        if self.threads > 1 and (self.choice is None or per_batch >= PARALLEL_MIN_ENTRIES):
            return 0
        return int(max(1, (1 << 20) // max(per_batch, 1.0)))

    def step_batches(self, data: SparseBatch, order: np.ndarray, batch_size: int,
                     b_start: int, b_stop: int, y_out: np.ndarray, loss_out: np.ndarray
                     ) -> tuple[int, int]:
        """Step batches ``b_start`` to ``b_stop`` of an epoch over ``data`` in one call.

        Batch b is rows ``order[b * batch_size:(b + 1) * batch_size]``; their logits and
        losses go to ``y_out``/``loss_out`` at the same positions. ``data`` must be canonical
        (:meth:`SparseBatch.canonical`). Returns ``(batches stepped, status)``: status 0,
        or 1 when the last batch stepped had a non-finite loss (the caller stops there).
        The parameters end bit for bit as after :meth:`step` on each gathered batch.
        """
        count = b_stop - b_start
        self._grow(min(batch_size, data.n_rows), _max_entries(data, batch_size))
        lrs = np.empty((count, 3), np.float64)
        for i in range(count):
            lrs[i] = self._step_lr()
        a, st = self.arrays, self.state
        cap = self._cap_rows
        if getattr(self, "_batch_buffers", (np.empty(0),))[0].shape[0] < self._cap_nnz or \
                self._batch_buffers[1].shape[0] < cap + 1:
            self._batch_buffers = (np.empty(self._cap_nnz, np.int64),
                                   np.empty(cap + 1, np.int64),
                                   np.empty(self._cap_nnz, np.float32),
                                   np.empty(cap, np.float32), np.empty(cap, np.float32))
        status = np.zeros(1, np.int64)
        epoch_fn = _EPOCHS[self.block.shape[0] > 0]
        with _CompileNotice(epoch_fn, "the fused CPU training step"):
            done = int(epoch_fn(
                data.indices, data.offsets, data.values, data.labels,
                _EMPTY if data.weights is None else data.weights, order, batch_size, b_start,
                b_stop, lrs, -1.0 if self.rescale_grad is None else float(self.rescale_grad),
                self.binary, a["w0"], a["w"], a["V"], self.model.use_bias, self.model.use_linear,
                self.kind, self.wd, self.clip, self.eps,
                st["bias"][0], st["bias"][1], st["linear"][0], st["linear"][1],
                st["factors"][0], st["factors"][1],
                self.slot, self.keys, self.gW, self.gV, self.S, self.dY, self.counts,
                self.block, self.U, *self._batch_buffers, y_out, loss_out, status))
        self.optimizer.t -= count - done  # steps not taken
        if int(status[0]) == 2:
            raise ValueError("step_batches needs canonical rows (SparseBatch.canonical()).")
        return done, int(status[0])

    def _run(self, batch: SparseBatch, parts: int, scale: float, lr: np.ndarray) -> bool:
        """One kernel call on ``batch`` with ``parts`` threads; False if it found a row
        whose keys are not strictly increasing (and changed nothing)."""
        a, st = self.arrays, self.state
        args = (batch.indices, batch.offsets, batch.values, batch.labels,
                _EMPTY if batch.weights is None else batch.weights, float(scale), self.binary,
                a["w0"], a["w"], a["V"], self.model.use_bias, self.model.use_linear,
                self.kind, lr, self.wd, self.clip, self.eps,
                st["bias"][0], st["bias"][1], st["linear"][0], st["linear"][1],
                st["factors"][0], st["factors"][1],
                self.slot, self.keys, self.gW, self.gV, self.S, self.dY, self.counts,
                self.block, self.U, self.y, self.loss, parts)
        one, parallel = self._steps
        if parts == 1:
            with _CompileNotice(one, "the fused CPU training step"):
                return bool(one(*args))
        previous = get_num_threads()
        numba.set_num_threads(parts)
        try:
            with _CompileNotice(parallel, "the parallel CPU training step"):
                return bool(parallel(*args, *self._entries(batch.offsets, parts), self.flags))
        finally:
            numba.set_num_threads(previous)


def _max_entries(data: SparseBatch, batch_size: int) -> int:
    """The most entries ``batch_size`` rows of ``data`` can hold (the sum of its
    ``batch_size`` longest rows): room for any batch of an epoch over it."""
    if data.row_length is not None:
        return min(data.n_rows, batch_size) * data.row_length
    lengths = np.diff(data.offsets)
    if lengths.shape[0] <= batch_size:
        return int(lengths.sum())
    return int(np.partition(lengths, lengths.shape[0] - batch_size)[-batch_size:].sum())
