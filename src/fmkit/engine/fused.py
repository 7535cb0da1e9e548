"""A fused training step for uniform rows (every row has L keys): the fast GPU path.

Click-log data has one key per field, so a batch is an index matrix (B, L) and row sums
are reshapes. The step accumulates the gradient into dense (F,) / (F, K) buffers with
``index_add_`` and applies Adam to the whole table masked by the rows the batch touched:
the same lazy semantics as :class:`fmkit.engine.optim.RowSparseOptimizer` (untouched rows
get no update and no decay; bias correction uses the global step count), without the
sort/unique of keys. On a GPU one masked pass over a 1e6 x 16 table costs less than
finding the unique keys of 2.5M entries, and the whole step compiles (``torch.compile``)
into a few kernels.

Shapes: B rows, L keys per row, F features, K factors. Only torch is imported,
so ``benchmarks/gpu_train.py`` can load this file on a machine without fmkit installed.

Two implementations of the masked Adam pass, same semantics: ``kernel='torch'`` (tensor ops
with ``torch.where``, any device, compiles with ``torch.compile``) and ``kernel='triton'``
(CUDA, or the Triton interpreter): one kernel per group that loads the touched-row mask
first and reads and writes only touched rows, zeroing their gradient for the next step,
so untouched rows cost one mask byte instead of 8 passes over K + 1 floats.

Bytes moved per step (float32, int64 keys), the model the GPU benchmark reports against,
with T the fraction of table rows a batch touches (1 for ``kernel='torch'``):

    gather   B*L*(K+1)*4 + B*L*8          (V and w rows, keys)
    scatter  2 * B*L*(K+1)*4             (index_add_ read-modify-write of the gradient)
    dense    T*F*(K+1)*4 * 8 + F          (read g, m, v, p; write m, v, p, zero g; mask)
"""

from __future__ import annotations

from typing import Any

import torch

BETA1 = 0.9
BETA2 = 0.999


def bytes_per_step(batch: int, length: int, feature_dim: int, num_factors: int,
                   touched_fraction: float = 1.0) -> int:
    """Return the bytes one fused step moves through memory (see the module docstring)."""
    width = num_factors + 1
    gather = batch * length * (width * 4 + 8)
    scatter = 2 * batch * length * width * 4
    dense = int(touched_fraction * feature_dim * width * 4 * 8) + feature_dim
    return gather + scatter + dense


_TRITON_KERNEL: Any = None


def _triton_adam() -> Any:
    """Build (once) the masked Adam Triton kernel; None when Triton is not installed."""
    global _TRITON_KERNEL
    if _TRITON_KERNEL is not None:
        return _TRITON_KERNEL
    try:
        import triton  # type: ignore[import-not-found, unused-ignore]
        import triton.language as tl  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None

    @triton.jit  # type: ignore[untyped-decorator, unused-ignore]
    def masked_adam(  # type: ignore[no-untyped-def]
                    p_ptr, g_ptr, m_ptr, v_ptr, mask_ptr, factor_ptr, n_rows, width,
                    lr, wd, eps, beta1, beta2,
                    BLOCK_R: tl.constexpr, BLOCK_K: tl.constexpr):
        rows = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
        touched = tl.load(mask_ptr + rows, mask=rows < n_rows, other=0) != 0
        cols = tl.arange(0, BLOCK_K)
        offs = rows[:, None] * width + cols[None, :]
        live = touched[:, None] & (cols[None, :] < width)
        g = tl.load(g_ptr + offs, mask=live, other=0.0)
        p = tl.load(p_ptr + offs, mask=live, other=0.0)
        m = tl.load(m_ptr + offs, mask=live, other=0.0)
        v = tl.load(v_ptr + offs, mask=live, other=0.0)
        factor = tl.load(factor_ptr)
        g = g + wd * p
        m = beta1 * m + (1.0 - beta1) * g
        v = beta2 * v + (1.0 - beta2) * g * g
        p = p - (lr * factor) * m / (tl.sqrt(v) + eps)
        tl.store(p_ptr + offs, p, mask=live)
        tl.store(m_ptr + offs, m, mask=live)
        tl.store(v_ptr + offs, v, mask=live)
        tl.store(g_ptr + offs, tl.zeros_like(g), mask=live)

    def launch(p: torch.Tensor, g: torch.Tensor, m: torch.Tensor, v: torch.Tensor,
               mask: torch.Tensor, factor: torch.Tensor, lr: float, wd: float,
               eps: float) -> None:
        n_rows = p.shape[0]
        width = 1 if p.dim() == 1 else p.shape[1]
        block_k = max(2, triton.next_power_of_2(width))
        block_r = max(1, min(1024, 4096 // block_k))
        grid = (triton.cdiv(n_rows, block_r),)
        masked_adam[grid](p, g, m, v, mask, factor, n_rows, width, lr, wd, eps, BETA1, BETA2,
                          BLOCK_R=block_r, BLOCK_K=block_k)

    _TRITON_KERNEL = launch
    return launch


def triton_available() -> bool:
    """True when Triton can be imported (the masked Adam kernel can be built)."""
    return _triton_adam() is not None


class FusedUniformFM:
    """FM parameters plus Adam state, trained by :meth:`step` on (B, L) index batches.

    Parameters
    ----------
    w0 : tensor (1,), w : tensor (F,), V : tensor (F, K)
        Initial parameters (copied); their device and dtype are the step's.
    lr, wd : dict with keys 'bias', 'linear', 'factors'
        Per-group learning rate and L2 weight decay (SageMaker's ``*_lr``, ``*_wd``).
    predictor_type : {'binary_classifier', 'regressor'}
    eps : float
        Adam epsilon.
    kernel : {'auto', 'torch', 'triton'}
        The masked Adam pass: 'auto' is Triton on CUDA when installed, else torch ops.
    """

    def __init__(self, w0: torch.Tensor, w: torch.Tensor, V: torch.Tensor, *,
                 lr: dict[str, float], wd: dict[str, float],
                 predictor_type: str = "binary_classifier", eps: float = 1e-8,
                 kernel: str = "auto", share: bool = False,
                 state: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None) -> None:
        # share=True trains the given tensors in place (the trainer's model)
        self.w0, self.w, self.V = (w0, w, V) if share else (w0.clone(), w.clone(), V.clone())
        self.lr, self.wd, self.eps = dict(lr), dict(wd), float(eps)
        self.binary = predictor_type == "binary_classifier"
        if kernel == "auto":
            kernel = "triton" if self.V.is_cuda and triton_available() else "torch"
        if kernel not in ("torch", "triton"):
            raise ValueError(f"kernel must be 'auto', 'torch' or 'triton'; got {kernel!r}.")
        if kernel == "triton" and not triton_available():
            raise RuntimeError("kernel='triton' needs the triton package.")
        self.kernel = kernel
        self.state = dict(state or {})  # Adam moments shared with RowSparseOptimizer
        for name, p in (("bias", self.w0), ("linear", self.w), ("factors", self.V)):
            if name not in self.state:  # allocate only the moments not given
                self.state[name] = (torch.zeros_like(p), torch.zeros_like(p))
        self.grad_w0 = torch.zeros_like(self.w0)
        self.grad_w = torch.zeros_like(self.w)
        self.grad_V = torch.zeros_like(self.V)
        dev = self.w.device
        self.touched = torch.zeros(self.w.shape[0], dtype=torch.uint8, device=dev)
        self.bias_mask = torch.ones(1, dtype=torch.uint8, device=dev)
        self.t = torch.zeros((), dtype=torch.float64, device=dev)
        self.factor = torch.zeros(1, dtype=torch.float32, device=dev)

    def forward(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return logits (B,), gathered factors (B, L, K) and their row sums (B, K)."""
        e = self.V[idx]  # (B, L, K)
        s = e.sum(1)  # (B, K)
        y = self.w0 + self.w[idx].sum(1) + 0.5 * (s * s - (e * e).sum(1)).sum(1)
        return y, e, s

    def predict(self, idx: torch.Tensor) -> torch.Tensor:
        """Return logits (B,) for an index batch (B, L)."""
        return self.forward(idx)[0]

    def step(self, idx: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Train on one batch: ``idx`` (B, L) int64 keys, ``labels`` (B,); return loss (B,).

        The gradient is the mean over the batch, as in :class:`fmkit.engine.trainer.Trainer`.
        Equivalent to :meth:`accumulate` then :meth:`apply`.
        """
        loss: torch.Tensor = self.accumulate(idx, labels)
        self.apply()
        return loss

    def accumulate(self, idx: torch.Tensor, labels: torch.Tensor, *,
                   return_logits: bool = False) -> Any:
        """Forward and gradient of one batch into the dense buffers; return loss (B,).

        With ``return_logits``, return ``(logits (B,), loss (B,))``.
        """
        B, L = idx.shape
        K = self.V.shape[1]
        y, e, s = self.forward(idx)
        if self.binary:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(y, labels,
                                                                        reduction="none")
            dy = (torch.sigmoid(y) - labels) / B
        else:
            d = y - labels
            loss = 0.5 * d * d
            dy = d / B
        flat = idx.reshape(-1)
        gV = (s.unsqueeze(1) - e) * dy.view(B, 1, 1)  # (B, L, K)
        if self.kernel == "torch":
            # the Triton pass zeroes the touched rows it consumed; others are zero already
            self.grad_V.zero_()
            self.grad_w.zero_()
        self.touched.zero_()
        self.grad_V.index_add_(0, flat, gV.reshape(B * L, K))
        self.grad_w.index_add_(0, flat, dy.view(B, 1).expand(B, L).reshape(-1))
        self.touched.index_fill_(0, flat, 1)
        self.grad_w0.copy_(dy.sum().reshape(1))
        self.t += 1
        self.factor.copy_((torch.sqrt(1 - BETA2 ** self.t) / (1 - BETA1 ** self.t)).reshape(1))
        return (y, loss) if return_logits else loss

    def apply(self) -> None:
        """Apply masked (lazy) Adam to every group from the accumulated gradient."""
        groups = (("bias", self.w0, self.grad_w0, self.bias_mask),
                  ("linear", self.w, self.grad_w, self.touched),
                  ("factors", self.V, self.grad_V, self.touched))
        if self.kernel == "triton":
            launch = _triton_adam()
            for name, p, g, mask in groups:
                if self.lr[name] != 0.0:
                    m, v = self.state[name]
                    launch(p, g, m, v, mask, self.factor, self.lr[name], self.wd[name],
                           self.eps)
            return
        for name, p, g, mask in groups:
            self._adam(name, p, g, mask.bool() if p.dim() == 1 else mask.bool().unsqueeze(1))

    def _adam(self, group: str, p: torch.Tensor, g: torch.Tensor, mask: torch.Tensor) -> None:
        lr, wd = self.lr[group], self.wd[group]
        if lr == 0.0:
            return
        m, v = self.state[group]
        if wd:
            g = g + wd * p
        m_new = BETA1 * m + (1 - BETA1) * g
        v_new = BETA2 * v + (1 - BETA2) * g * g
        step = (lr * self.factor) * m_new / (torch.sqrt(v_new) + self.eps)
        m.copy_(torch.where(mask, m_new, m))
        v.copy_(torch.where(mask, v_new, v))
        p.sub_(torch.where(mask, step, torch.zeros((), dtype=p.dtype, device=p.device)))


class TrainerFastPath:
    """The fused step inside :class:`fmkit.engine.trainer.Trainer`, for batches it fits.

    It trains the trainer's own parameter and Adam tensors in place, so batches it does
    not take (rows of different lengths, values other than 1, sample weights) go through
    the row-sparse path and both share one model and one optimiser state.
    """

    def __init__(self, fm: FusedUniformFM, optimizer: Any) -> None:
        self.fm = fm
        self.optimizer = optimizer
        self.steps = 0  # batches this path trained

    @classmethod
    def create(cls, config: Any, model: Any, optimizer: Any, *, world_size: int,
               force: bool | None = None) -> TrainerFastPath | None:
        """Return a fast path when it applies: CUDA (or ``force``), Adam, one process,
        no clip_gradient or rescale_grad. ``force=False`` turns it off."""
        if force is False:
            return None
        eligible = (config.optimizer == "adam" and config.clip_gradient is None
                    and config.rescale_grad is None and world_size == 1)
        if not eligible or not (force or model.V.is_cuda):
            return None
        groups = optimizer.groups
        fm = FusedUniformFM(
            model.w0, model.w, model.V, share=True, state=dict(optimizer.state),
            lr={g: groups[g].lr if g in groups else 0.0 for g in ("bias", "linear", "factors")},
            wd={g: groups[g].wd if g in groups else 0.0 for g in ("bias", "linear", "factors")},
            predictor_type=config.predictor_type, eps=optimizer.eps)
        return cls(fm, optimizer)

    def step(self, batch: Any, device: torch.device
             ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Train on ``batch`` (a SparseBatch) and return (logits, loss), or None to decline."""
        import numpy as np

        batch = batch.canonical()  # keys sorted, repeats within a row summed (as to_device)
        n, L = batch.n_rows, batch.row_length  # L: entries of every row, if all alike
        if not L or batch.weights is not None or not np.all(batch.values == 1):
            return None
        idx = torch.from_numpy(np.ascontiguousarray(batch.indices, np.int64)).view(n, L)
        labels = torch.from_numpy(np.ascontiguousarray(batch.labels, np.float32))
        non_blocking = device.type == "cuda"
        idx = idx.to(device, non_blocking=non_blocking)
        labels = labels.to(device, non_blocking=non_blocking)
        self.fm.t.fill_(float(self.optimizer.t))
        y, loss = self.fm.accumulate(idx, labels, return_logits=True)
        self.fm.apply()
        self.optimizer.t += 1
        self.steps += 1
        return y.detach(), loss.detach()
