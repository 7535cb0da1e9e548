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

A ``user_item`` model (``user_block`` given: the keys of the user block, the rest being the
item block) keeps only the pairs of a user-block key with an item-block key:

    y(x) = w0 + sum_i w_i x_i + sum_f u_f q_f,   u = sum_{i in user} V_i x_i,
    q = sum_{i in item} V_i x_i;   dy/dV_if = x_i q_f for a user key, x_i u_f for an item key.
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
    user_block : tensor of shape (F,), optional
        1.0 for the keys of the user block, 0.0 for the others: a ``user_item`` model.
        None (default): the ordinary FM, pairs between every two keys.
    """

    def __init__(
        self,
        w0: torch.Tensor,
        w: torch.Tensor,
        V: torch.Tensor,
        *,
        use_bias: bool = True,
        use_linear: bool = True,
        user_block: torch.Tensor | None = None,
    ) -> None:
        self.w0 = w0
        self.w = w
        self.V = V
        self.user_block = user_block
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
        """Return ``(y, xv, s)``: logits (B,), per-entry x_i V_i (Z, K), and the row sums
        s (B, K), or for a ``user_item`` model the user and item sums side by side (B, 2K)."""
        x = batch.values
        xv = self.V.index_select(0, batch.indices) * x.unsqueeze(1)  # (Z, K)
        if self.user_block is None:
            s = batch.row_sum(xv)  # (B, K)
            per_entry = (xv * xv).sum(1).mul_(-0.5)  # (Z,)
            pairs = 0.5 * (s * s).sum(1)
        else:
            user = self.user_block.index_select(0, batch.indices).unsqueeze(1)  # (Z, 1)
            u = batch.row_sum(xv * user)
            s = torch.cat([u, batch.row_sum(xv) - u], 1)  # (B, 2K)
            per_entry = torch.zeros_like(x)
            pairs = (u * s[:, u.shape[1]:]).sum(1)
        if self.use_linear:
            per_entry.add_(self.w.index_select(0, batch.indices) * x)
        y = batch.row_sum(per_entry)
        y.add_(pairs)
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
        dL/dy * x_i for w and dL/dy * x_i * (s - V_i x_i) for V (for a ``user_item``
        model dL/dy * x_i times the other block's sum).
        """
        gx = batch.per_entry(dy) * batch.values  # (Z,)
        gw0 = dy.sum().reshape(1)
        if self.user_block is None:
            gV = (batch.per_entry(s) - xv) * gx.unsqueeze(1)
        else:
            K = xv.shape[1]
            user = self.user_block.index_select(0, batch.indices).unsqueeze(1)  # (Z, 1)
            u, q = batch.per_entry(s[:, :K]), batch.per_entry(s[:, K:])
            gV = (q * user + u * (1.0 - user)) * gx.unsqueeze(1)
        return gw0, gx, gV
