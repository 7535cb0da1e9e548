"""The degree-2 factorization machine in PyTorch: CSR batch -> logits, and its gradient.

For a row x with stored entries (i, x_i) (Rendle, "Factorization Machines", ICDM 2010):

    y(x) = w0 + sum_i w_i x_i + 1/2 * sum_f [ (sum_i V_if x_i)^2 - sum_i V_if^2 x_i^2 ]

computed in O(nnz * K). Names: ``w0`` is the global bias (``bias`` group), ``w`` (F,) the
linear weights (``linear`` group), ``V`` (F, K) the factors (``factors`` group).

Shapes: B rows, Z stored entries, K factors. A batch is CSR: ``indices`` (Z,) int64,
``offsets`` (B + 1,), ``values`` (Z,); ``rows`` (Z,) is the row of every entry.

The gradient is written out rather than taken by autograd: the trainer needs the gradient
of only the rows a batch touches (lazy, row-sparse updates, as SageMaker's MXNet graph
does), and the closed form avoids building an autograd graph per step:

    dy/dw0 = 1,  dy/dw_i = x_i,  dy/dV_if = x_i * (s_f - V_if x_i),  s_f = sum_j V_jf x_j.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class DeviceBatch:
    """A CSR batch on the training device; see the module docstring for shapes."""

    indices: torch.Tensor  # (Z,) int64
    rows: torch.Tensor  # (Z,) int64, row of each entry
    values: torch.Tensor  # (Z,) float32
    n_rows: int
    labels: torch.Tensor | None = None  # (B,) float32
    weights: torch.Tensor | None = None  # (B,) float32
    row_length: int | None = None  # L when every row has L entries (Z = B * L), else None

    def row_sum(self, per_entry: torch.Tensor) -> torch.Tensor:
        """Sum per-entry values (Z, ...) into rows (B, ...)."""
        if self.row_length is not None:
            return per_entry.reshape((self.n_rows, self.row_length) + per_entry.shape[1:]).sum(1)
        out = torch.zeros((self.n_rows,) + per_entry.shape[1:], dtype=per_entry.dtype,
                          device=per_entry.device)
        return out.index_add_(0, self.rows, per_entry)

    def per_entry(self, per_row: torch.Tensor) -> torch.Tensor:
        """Repeat per-row values (B, ...) for each of the row's entries (Z, ...)."""
        if self.row_length is not None:
            return per_row.repeat_interleave(self.row_length, dim=0)
        return per_row.index_select(0, self.rows)


class FactorizationMachine:
    """Parameters of one FM and its forward pass and row-sparse gradient.

    Parameters
    ----------
    w0 : tensor of shape (1,)
    w : tensor of shape (F,)
    V : tensor of shape (F, K)
    use_bias, use_linear : bool
        When False, that term is held at zero (SageMaker's use_bias/use_linear).
    """

    def __init__(
        self,
        w0: torch.Tensor,
        w: torch.Tensor,
        V: torch.Tensor,
        *,
        use_bias: bool = True,
        use_linear: bool = True,
    ) -> None:
        self.w0 = w0
        self.w = w
        self.V = V
        self.use_bias = use_bias
        self.use_linear = use_linear
        if not use_bias:
            self.w0.zero_()
        if not use_linear:
            self.w.zero_()

    @property
    def feature_dim(self) -> int:
        return int(self.w.shape[0])

    @property
    def num_factors(self) -> int:
        return int(self.V.shape[1])

    def forward(self, batch: DeviceBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(y, xv, s)``: logits (B,), per-entry x_i V_i (Z, K), row sums s (B, K)."""
        x = batch.values
        xv = self.V.index_select(0, batch.indices) * x.unsqueeze(1)  # (Z, K)
        s = batch.row_sum(xv)  # (B, K)
        per_entry = (xv * xv).sum(1)  # (Z,)
        if self.use_linear:
            per_entry = per_entry.mul(-0.5).add_(self.w.index_select(0, batch.indices) * x)
        else:
            per_entry = per_entry.mul(-0.5)
        y = batch.row_sum(per_entry)
        y.add_(0.5 * (s * s).sum(1))
        if self.use_bias:
            y.add_(self.w0)
        return y, xv, s

    def predict(self, batch: DeviceBatch) -> torch.Tensor:
        """Return logits (B,)."""
        return self.forward(batch)[0]

    def entry_gradients(
        self, batch: DeviceBatch, dy: torch.Tensor, xv: torch.Tensor, s: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Given dL/dy (B,), return the gradient of w0 (1,), and per entry of w (Z,) and V (Z, K).

        Per-entry gradients still have to be summed over equal keys (see
        :func:`fmkit.engine.optim.sum_by_key`); an entry of key i holds
        dL/dy * x_i for w and dL/dy * x_i * (s - V_i x_i) for V.
        """
        gx = batch.per_entry(dy) * batch.values  # (Z,)
        gw0 = dy.sum().reshape(1)
        gw = gx
        gV = (batch.per_entry(s) - xv) * gx.unsqueeze(1)
        return gw0, gw, gV
