"""How a training step is shared between processes: the Strategy protocol.

The trainer computes per-entry gradients of its own rows and hands them to the strategy,
which returns the summed gradient of every key touched anywhere in the global batch. A
single process (:class:`LocalStrategy`) just sums by key; ``fmkit.distributed`` provides
a strategy that exchanges row-sparse gradients between processes, so that every process
applies the same update (synchronous data parallelism).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch

from fmkit.engine.optim import sum_by_key


class Strategy(Protocol):
    """What the trainer needs from a (possibly multi-process) execution strategy."""

    rank: int
    world_size: int

    @property
    def is_main(self) -> bool: ...

    def setup(self, feature_dim: int, device: torch.device) -> None:
        """Prepare for a model of ``feature_dim`` keys on ``device`` (called once)."""
        ...

    def reduce_gradients(
        self, indices: torch.Tensor, gw: torch.Tensor, gV: torch.Tensor, gw0: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(keys (U,), gw (U,), gV (U, K), gw0 (1,))`` summed over the global batch."""
        ...

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Return the element-wise sum of ``tensor`` over processes."""
        ...

    def broadcast(self, tensor: torch.Tensor) -> torch.Tensor:
        """Make every process hold rank 0's ``tensor`` (in place) and return it."""
        ...

    def gather_rows(self, arrays: Sequence[np.ndarray | None]) -> list[np.ndarray | None]:
        """Concatenate each 1-D array over processes in rank order; None stays None."""
        ...


# keys are found with a per-key scratch array (O(Z), no sort) up to this many features
SCRATCH_MAX_FEATURES = 50_000_000


class LocalStrategy:
    """One process: gradients are summed by key, nothing is exchanged."""

    rank = 0
    world_size = 1

    def __init__(self) -> None:
        self._positions: torch.Tensor | None = None

    @property
    def is_main(self) -> bool:
        return True

    def reduce_gradients(
        self, indices: torch.Tensor, gw: torch.Tensor, gV: torch.Tensor, gw0: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        keys, (sw, sV) = sum_by_key(indices, gw, gV, positions=self._positions)
        return keys, sw, sV, gw0

    def setup(self, feature_dim: int, device: torch.device) -> None:
        if feature_dim <= SCRATCH_MAX_FEATURES:
            self._positions = torch.zeros(feature_dim, dtype=torch.int64, device=device)

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    def broadcast(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    def gather_rows(self, arrays: Sequence[np.ndarray | None]) -> list[np.ndarray | None]:
        return list(arrays)
