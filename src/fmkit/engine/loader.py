"""Batches for the trainer: in-memory or streamed SparseBatch rows -> device tensors.

A source is either a :class:`~fmkit.sparse.SparseBatch` held in memory (shuffled per epoch
when asked) or any object with ``iter_batches(batch_size)`` yielding SparseBatch chunks
(a streamed channel; shuffling then happens within a window of chunks).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from fmkit.sparse import SparseBatch, concat

if TYPE_CHECKING:  # torch is imported by the functions that move batches to a device
    import torch

    from fmkit.model.fm import DeviceBatch


class BatchSource(Protocol):
    """A re-iterable stream of rows (one full pass per call)."""

    def iter_batches(self, batch_size: int) -> Iterator[SparseBatch]: ...


# device nodes of an NVIDIA driver (Linux, WSL): without one CUDA cannot be available
_CUDA_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg", "/proc/driver/nvidia/version")


def _cuda_possible() -> bool:
    """Whether CUDA may be available, answered without importing torch where possible."""
    if "torch" not in sys.modules:
        import importlib.util

        if importlib.util.find_spec("torch") is None:
            return False
        if sys.platform.startswith("linux") and not any(os.path.exists(p) for p in _CUDA_NODES):
            return False
    import torch

    return bool(torch.cuda.is_available())


def device_kind(name: str) -> str:
    """The kind of device ``name`` ('auto' | 'cpu' | 'cuda') trains on: 'cpu' or 'cuda'.

    'auto' is 'cuda' when a CUDA device is available; on a Linux machine without an NVIDIA
    driver this is known without importing torch.
    """
    if name == "auto":
        return "cuda" if _cuda_possible() else "cpu"
    return name


def resolve_device(name: str) -> torch.device:
    """Map 'auto' | 'cpu' | 'cuda' to a torch device; 'cuda' without CUDA is an error."""
    import torch

    from fmkit.errors import ConfigError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device is 'cuda' but no CUDA device is available; use "
                          "device='cpu' or 'auto'.")
    return torch.device(name)


def to_device(batch: SparseBatch, device: torch.device) -> DeviceBatch:
    """Copy a SparseBatch to ``device`` and add the per-entry row numbers.

    Duplicate keys within a row are summed first, so that x_i is the row's value of
    feature i, as in a matrix.
    """
    import torch

    from fmkit.model.fm import DeviceBatch
    batch = batch.canonical()
    rows = np.repeat(np.arange(batch.n_rows, dtype=np.int64), np.diff(batch.offsets))
    non_blocking = device.type == "cuda"

    def put(a: np.ndarray | None) -> torch.Tensor | None:
        if a is None:
            return None
        t = torch.from_numpy(np.ascontiguousarray(a))
        if non_blocking:
            t = t.pin_memory()
        return t.to(device, non_blocking=non_blocking)

    return DeviceBatch(
        indices=put(batch.indices),  # type: ignore[arg-type]
        rows=put(rows),  # type: ignore[arg-type]
        values=put(batch.values),  # type: ignore[arg-type]
        n_rows=batch.n_rows,
        labels=put(batch.labels),
        weights=put(batch.weights),
        row_length=batch.row_length,
    )


def epoch_batches(
    source: SparseBatch | BatchSource,
    batch_size: int,
    *,
    shuffle: bool,
    rng: np.random.Generator,
    shuffle_window: int = 64,
) -> Iterator[SparseBatch]:
    """Yield one epoch of mini-batches of ``batch_size`` rows (the last may be shorter).

    In-memory data is permuted as a whole when ``shuffle`` (the same batches as gathering
    the permuted set, batch by batch); streamed data is shuffled within windows of
    ``shuffle_window`` batches, keeping memory bounded.
    """
    if isinstance(source, SparseBatch):
        # one permutation per epoch, each batch gathered when it is needed: no copy of the
        # whole set (a fresh 230 MB for 500K click rows, whose page faults cost more than
        # the numba CPU step's epoch when the memory had gone back to the system)
        order = rng.permutation(source.n_rows) if shuffle else None
        for start in range(0, source.n_rows, batch_size):
            if order is None:
                yield source.slice(start, start + batch_size)
            else:
                yield source.take(order[start:start + batch_size])
        return
    if not shuffle:
        yield from source.iter_batches(batch_size)
        return
    window: list[SparseBatch] = []
    for chunk in source.iter_batches(batch_size):
        window.append(chunk)
        if len(window) == shuffle_window:
            yield from _shuffled(window, batch_size, rng)
            window = []
    if window:
        yield from _shuffled(window, batch_size, rng)


def _shuffled(window: list[SparseBatch], batch_size: int, rng: np.random.Generator
              ) -> Iterator[SparseBatch]:
    data = concat(window)
    data = data.take(rng.permutation(data.n_rows))
    for start in range(0, data.n_rows, batch_size):
        yield data.slice(start, start + batch_size)


def count_rows(source: Any) -> int | None:
    """Return the number of rows of an in-memory source, None for a stream."""
    return source.n_rows if isinstance(source, SparseBatch) else getattr(source, "n_rows", None)
