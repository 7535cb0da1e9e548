"""Row-sparse optimisers with SageMaker's per-group learning rates and weight decay.

Each parameter group (``bias`` w0, ``linear`` w, ``factors`` V) has its own lr and wd. A
step receives the rows a batch touched and their summed gradients; rows not in the batch
get no update and no decay (lazy updates, as MXNet's row-sparse Adam with lazy_update).
The update follows MXNet's Adam:

    g = clip(rescale_grad * g, -c, c) + wd * p
    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
    p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)

with t the number of steps taken. ``adagrad`` (acc += g^2; p -= lr g / (sqrt(acc) + eps))
and plain ``sgd`` share the same row-sparse plumbing.
"""

from __future__ import annotations

import math

import torch

from fmkit.config import FMConfig
from fmkit.engine.params import (
    BETA1,
    BETA2,
    STATE_ARRAYS,
    GroupSettings,
    optimizer_settings,
)

__all__ = ["BETA1", "BETA2", "GroupSettings", "RowSparseOptimizer", "sum_by_key"]


def sum_by_key(
    indices: torch.Tensor, *grads: torch.Tensor, positions: torch.Tensor | None = None
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Sum per-entry gradients over equal keys.

    Parameters
    ----------
    indices : int64 (Z,)
        Key of every entry.
    grads : tensors of shape (Z,) or (Z, K)

    positions : int64 (F,), optional
        Scratch space of one slot per feature key. With it, keys are found in O(Z) by
        scattering entry numbers (no sort) and come out in first-seen order; without it,
        by ``torch.unique`` (ascending).

    Returns
    -------
    keys : int64 (U,), the distinct keys
    sums : one tensor per input, (U,) or (U, K)
    """
    if positions is None:
        keys, inverse = torch.unique(indices, sorted=True, return_inverse=True)
    else:
        entry = torch.arange(indices.shape[0], device=indices.device)
        positions.index_put_((indices,), entry)  # one winner per key, whichever it is
        winner = positions.index_select(0, indices)  # same value for all entries of a key
        first = winner == entry
        keys = indices[first]
        inverse = (torch.cumsum(first, 0) - 1).index_select(0, winner)
    sums = []
    for g in grads:
        out = torch.zeros((keys.shape[0],) + tuple(g.shape[1:]), dtype=g.dtype, device=g.device)
        out.index_add_(0, inverse, g)
        sums.append(out)
    return keys, sums


class RowSparseOptimizer:
    """Adam, Adagrad or SGD over dense tensors, updating only the given rows.

    Parameters
    ----------
    params : dict of str to tensor
        ``{"bias": w0 (1,), "linear": w (F,), "factors": V (F, K)}``; updated in place.
    config : FMConfig
        Supplies optimizer, ``*_lr``, ``*_wd``, ``eps``, ``clip_gradient``.
    """

    def __init__(self, params: dict[str, torch.Tensor], config: FMConfig) -> None:
        self.params = params
        self.kind, self.eps, self.clip, self.groups = optimizer_settings(config, params)
        self.t = 0
        self.state: dict[str, tuple[torch.Tensor, ...]] = {
            g: tuple(torch.zeros_like(p) for _ in range(STATE_ARRAYS[self.kind]))
            for g, p in params.items()}

    def begin_step(self) -> None:
        """Advance the step counter used for Adam's bias correction (once per batch)."""
        self.t += 1

    def update(self, group: str, rows: torch.Tensor | None, grad: torch.Tensor) -> None:
        """Apply one step to ``rows`` of ``group`` (all rows when None) with summed ``grad``.

        ``grad`` must already carry the rescale (mean over the batch).
        """
        settings = self.groups[group]
        if settings.lr == 0.0:
            return
        p_all = self.params[group]
        p = p_all if rows is None else p_all.index_select(0, rows)
        g = grad
        if self.clip is not None:
            g = g.clamp(-self.clip, self.clip)
        if settings.wd:
            g = g.add(p, alpha=settings.wd)
        if self.kind == "adam":
            m_all, v_all = self.state[group]
            m = m_all if rows is None else m_all.index_select(0, rows)
            v = v_all if rows is None else v_all.index_select(0, rows)
            m.mul_(BETA1).add_(g, alpha=1 - BETA1)
            v.mul_(BETA2).addcmul_(g, g, value=1 - BETA2)
            lr = settings.lr * math.sqrt(1 - BETA2**self.t) / (1 - BETA1**self.t)
            p.addcdiv_(m, v.sqrt().add_(self.eps), value=-lr)
            if rows is not None:
                m_all.index_copy_(0, rows, m)
                v_all.index_copy_(0, rows, v)
        elif self.kind == "adagrad":
            (acc_all,) = self.state[group]
            acc = acc_all if rows is None else acc_all.index_select(0, rows)
            acc.addcmul_(g, g)
            p.addcdiv_(g, acc.sqrt().add_(self.eps), value=-settings.lr)
            if rows is not None:
                acc_all.index_copy_(0, rows, acc)
        else:
            p.add_(g, alpha=-settings.lr)
        if rows is not None:
            p_all.index_copy_(0, rows, p)
