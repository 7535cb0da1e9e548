"""SparseBatch: rows of a sparse design matrix in CSR form, with labels and weights.

Shapes use N (rows), Z (stored non-zeros) and F (feature_dim):

- ``indices``: int64 (Z,), column of each stored value;
- ``offsets``: int64 (N + 1,), row starts, ``offsets[0] == 0``, ``offsets[-1] == Z``;
- ``values``: float32 (Z,);
- ``labels``: float32 (N,) or None; ``weights``: float32 (N,) or None;
- ``feature_dim``: F when the source states it (recordIO shape, npz), else None.

Duplicate columns within a row are allowed and add up, as in scipy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from fmkit.errors import DataError, DataTypeError

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]

# entries from which SparseBatch.take gathers fixed-width rows with numba's parallel loop
# (fmkit.sparse_gather) when numba is installed; below it np.take. Training batches (4096
# click rows, 160K entries) stay below it: on shared cores the parallel loop's thread
# wake-ups made that gather 5x slower than np.take (0.27 s against 0.05 s an epoch of 500K
# rows, 2026-12-04), against a 14 ms gain when the cores are idle
_PARALLEL_GATHER = 1 << 20


# cached properties of a batch that depend on its rows alone (indices, offsets, values)
_ROW_FACTS = ("row_length", "values_finite")


@dataclass(frozen=True, eq=False)
class SparseBatch:
    """CSR rows plus optional labels and weights; see the module docstring for shapes."""

    indices: IntArray
    offsets: IntArray
    values: FloatArray
    labels: FloatArray | None = None
    weights: FloatArray | None = None
    feature_dim: int | None = None

    @property
    def n_rows(self) -> int:
        return int(self.offsets.shape[0] - 1)

    @property
    def nnz(self) -> int:
        return int(self.indices.shape[0])

    def __len__(self) -> int:
        return self.n_rows

    @cached_property
    def row_length(self) -> int | None:
        """The number of entries of every row when all rows have the same (click data's
        fixed fields), else None; computed once per batch."""
        n = self.n_rows
        if n == 0 or self.nnz % n:
            return None
        width = self.nnz // n
        return width if bool(np.all(np.diff(self.offsets) == width)) else None

    @cached_property
    def values_finite(self) -> bool:
        """Whether every stored value is finite; computed once per batch (the face's input
        check and the trainer's validation share it)."""
        return all_finite(self.values)

    @property
    def width(self) -> int:
        """``feature_dim`` if known, else 1 + the largest column used (0 when empty)."""
        if self.feature_dim is not None:
            return self.feature_dim
        return int(self.indices.max()) + 1 if self.nnz else 0

    @classmethod
    def from_arrays(
        cls,
        indices: Any,
        offsets: Any,
        values: Any,
        labels: Any = None,
        weights: Any = None,
        feature_dim: int | None = None,
    ) -> SparseBatch:
        """Build a batch from array-likes, converting dtypes (no validation of content)."""
        return cls(
            np.ascontiguousarray(indices, dtype=np.int64),
            np.ascontiguousarray(offsets, dtype=np.int64),
            np.ascontiguousarray(values, dtype=np.float32),
            None if labels is None else np.ascontiguousarray(labels, dtype=np.float32),
            None if weights is None else np.ascontiguousarray(weights, dtype=np.float32),
            feature_dim,
        )

    @classmethod
    def from_matrix(
        cls, X: Any, labels: Any = None, weights: Any = None, feature_dim: int | None = None
    ) -> SparseBatch:
        """Build a batch from a scipy.sparse matrix or a dense 2-D array-like.

        Dense input keeps only its non-zeros. ``feature_dim`` defaults to X's column count.

        Raises
        ------
        DataError
            X is not 2-D, or labels/weights do not have one entry per row.
        """
        if sp.issparse(X):
            csr = sp.csr_matrix(X)
        else:
            arr = np.asarray(X)
            if arr.ndim != 2:
                raise DataError(f"X must be 2-D (rows x features); got shape {arr.shape}. "
                                "Reshape your data: X.reshape(1, -1) for a single row.")
            if arr.dtype.kind == "O":
                try:
                    arr = arr.astype(np.float64)
                except TypeError as exc:
                    raise DataTypeError(f"X must be numeric; {exc}.") from None
                except ValueError as exc:
                    raise DataError(f"X must be numeric; {exc}.") from None
            if arr.dtype.kind not in "biuf":
                raise DataError(f"X must be numeric; got dtype {arr.dtype}.")
            csr = sp.csr_matrix(arr.astype(np.float32, copy=False))
        batch = cls.from_arrays(
            csr.indices, csr.indptr, csr.data, labels, weights,
            csr.shape[1] if feature_dim is None else feature_dim,
        )
        for name, arr in (("labels", batch.labels), ("weights", batch.weights)):
            if arr is not None and arr.shape != (batch.n_rows,):
                raise DataError(
                    f"{name} must have one entry per row of X: X has {batch.n_rows} rows, "
                    f"{name} has shape {arr.shape}."
                )
        return batch

    def to_csr(self, feature_dim: int | None = None) -> sp.csr_matrix:
        """Return the rows as a float32 scipy CSR matrix of shape (N, feature_dim).

        The matrix shares this batch's arrays: copy it before changing it in place.
        """
        width = feature_dim if feature_dim is not None else self.width
        return sp.csr_matrix(
            (self.values, self.indices, self.offsets), shape=(self.n_rows, width)
        )

    def canonical(self) -> SparseBatch:
        """Return the rows with duplicate keys summed and keys sorted (self if already so)."""
        if self._strictly_increasing_rows():
            return self
        csr = self.to_csr()
        if csr.has_canonical_format:
            return self
        csr = csr.copy()  # to_csr shares our arrays; sum_duplicates works in place
        csr.sum_duplicates()
        return SparseBatch.from_arrays(csr.indices, csr.indptr, csr.data, self.labels,
                                       self.weights, self.feature_dim)

    def _strictly_increasing_rows(self) -> bool:
        """Whether every row's keys strictly increase (scipy's canonical format), found
        with two array passes instead of building a checked scipy matrix."""
        if self.nnz < 2:
            return True
        rising = self.indices[1:] > self.indices[:-1]
        starts = self.offsets[1:-1]  # a row's first entry need not exceed the one before
        starts = starts[(starts > 0) & (starts < self.nnz)]
        rising[starts - 1] = True
        return bool(rising.all())

    def slice(self, start: int, stop: int) -> SparseBatch:
        """Return rows ``start:stop`` (views where possible)."""
        stop = min(stop, self.n_rows)
        lo, hi = int(self.offsets[start]), int(self.offsets[stop])
        return SparseBatch(
            self.indices[lo:hi],
            self.offsets[start : stop + 1] - lo,
            self.values[lo:hi],
            None if self.labels is None else self.labels[start:stop],
            None if self.weights is None else self.weights[start:stop],
            self.feature_dim,
        )

    def take(self, rows: npt.ArrayLike) -> SparseBatch:
        """Return the rows at positions ``rows`` (int array), in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        n, width = self.n_rows, self.row_length
        if width:
            # every row holds ``width`` entries: a 2-D gather of whole rows, without
            # per-entry position arrays: numba's parallel loop for large ones, else np.take
            # (2x fancy indexing)
            keys, values = self.indices.reshape(n, width), self.values.reshape(n, width)
            gathered = None
            if rows.shape[0] * width >= _PARALLEL_GATHER:
                from fmkit.sparse_gather import gather_rows

                gathered = gather_rows(keys, values, rows)
            keys, values = gathered if gathered is not None else (
                np.take(keys, rows, axis=0), np.take(values, rows, axis=0))
            return SparseBatch(
                keys.reshape(-1),
                np.arange(rows.shape[0] + 1, dtype=np.int64) * width,
                values.reshape(-1),
                None if self.labels is None else self.labels[rows],
                None if self.weights is None else self.weights[rows],
                self.feature_dim,
            )
        starts, ends = self.offsets[rows], self.offsets[rows + 1]
        lengths = ends - starts
        offsets = np.zeros(rows.shape[0] + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        # position of every gathered non-zero in the source arrays
        gather = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
        return SparseBatch(
            self.indices[gather],
            offsets,
            self.values[gather],
            None if self.labels is None else self.labels[rows],
            None if self.weights is None else self.weights[rows],
            self.feature_dim,
        )

    def with_labels(self, labels: Any) -> SparseBatch:
        """Return a copy that carries ``labels`` (float32, one per row)."""
        return self._sharing_rows(labels=np.ascontiguousarray(labels, dtype=np.float32))

    def with_weights(self, weights: Any) -> SparseBatch:
        """Return a copy that carries ``weights`` (float32, one per row)."""
        weights = np.ascontiguousarray(weights, dtype=np.float32)
        if weights.shape != (self.n_rows,):
            raise DataError(
                f"sample weights must have one entry per row: {self.n_rows} rows, "
                f"got shape {weights.shape}."
            )
        return self._sharing_rows(weights=weights)

    def with_feature_dim(self, feature_dim: int | None) -> SparseBatch:
        """Return a copy whose ``feature_dim`` is ``feature_dim`` (self if it has it)."""
        if feature_dim == self.feature_dim:
            return self
        return self._sharing_rows(feature_dim=feature_dim)

    def _sharing_rows(self, **changes: Any) -> SparseBatch:
        """A copy with ``changes`` (labels, weights, feature_dim) and this batch's rows:
        what was found of the rows (``row_length``, ``values_finite``) comes along."""
        copy = replace(self, **changes)
        for name in _ROW_FACTS:
            if name in self.__dict__:
                copy.__dict__[name] = self.__dict__[name]
        return copy

    def validate(
        self,
        *,
        feature_dim: int | None = None,
        predictor_type: str | None = None,
        require_labels: bool = False,
        source: str = "input",
    ) -> None:
        """Check structure and values; raise DataError naming ``source`` and the row.

        Checks: offsets monotone and consistent, keys in ``[0, feature_dim)``, finite
        values, labels present when required and finite, binary labels in {0, 1},
        non-negative finite weights.
        """
        n = self.n_rows
        if n < 0 or self.offsets[0] != 0 or self.offsets[-1] != self.nnz:
            raise DataError(f"{source}: CSR offsets are inconsistent with {self.nnz} values.")
        if self.values.shape != self.indices.shape:
            raise DataError(f"{source}: {self.values.shape[0]} values but "
                            f"{self.indices.shape[0]} indices.")
        if n and np.any(np.diff(self.offsets) < 0):
            raise DataError(f"{source}: CSR offsets decrease.")
        # one pass for both bounds: as unsigned, a negative key is larger than any feature_dim
        in_range = (feature_dim is not None and self.nnz > 0
                    and self.indices.dtype == np.int64
                    and int(self.indices.view(np.uint64).max()) < feature_dim)
        if self.nnz and not in_range:
            if self.indices.min() < 0:
                row = _row_of(self.offsets, int(np.argmax(self.indices < 0)))
                raise DataError(f"{source}, row {row}: negative feature key "
                                f"{int(self.indices.min())}.")
            if feature_dim is not None and self.indices.max() >= feature_dim:
                pos = int(np.argmax(self.indices >= feature_dim))
                raise DataError(
                    f"{source}, row {_row_of(self.offsets, pos)}: feature key "
                    f"{int(self.indices[pos])} is out of range for feature_dim={feature_dim} "
                    f"(keys must be < feature_dim)."
                )
        if self.nnz:
            if not self.values_finite:
                pos = int(np.argmax(~np.isfinite(self.values)))
                raise DataError(f"{source}, row {_row_of(self.offsets, pos)}: feature value "
                                f"{self.values[pos]} is not finite.")
        if self.labels is None:
            if require_labels:
                raise DataError(f"{source}: training data needs a label for every row; "
                                "found none.")
        else:
            if self.labels.shape != (n,):
                raise DataError(f"{source}: {n} rows but {self.labels.shape[0]} labels.")
            if not np.all(np.isfinite(self.labels)):
                row = int(np.argmax(~np.isfinite(self.labels)))
                raise DataError(f"{source}, row {row}: label {self.labels[row]} is not finite.")
            if predictor_type == "binary_classifier":
                bad = (self.labels != 0) & (self.labels != 1)
                if np.any(bad):
                    row = int(np.argmax(bad))
                    raise DataError(
                        f"{source}, row {row}: binary_classifier labels must be 0 or 1; got "
                        f"{self.labels[row]:g}. Threshold the labels (fmkit prepare "
                        "--target binary) or use predictor_type=regressor."
                    )
        if self.weights is not None:
            if self.weights.shape != (n,):
                raise DataError(f"{source}: {n} rows but {self.weights.shape[0]} weights.")
            bad = ~np.isfinite(self.weights) | (self.weights < 0)
            if np.any(bad):
                row = int(np.argmax(bad))
                raise DataError(f"{source}, row {row}: sample weight {self.weights[row]} must "
                                "be finite and >= 0.")
            if n and not self.weights.sum() > 0:
                raise DataError(f"{source}: sample weights are all zero; at least one must be "
                                "positive.")


def all_finite(values: npt.NDArray[np.floating[Any]]) -> bool:
    """Whether every value is finite, in one pass without a boolean copy: the float64 sum
    of float32 (or smaller) values cannot overflow, so it is finite exactly when they all
    are (NaN and inf propagate); wider floats are checked element by element."""
    if values.dtype.itemsize <= 4:
        return bool(np.isfinite(values.sum(dtype=np.float64)))
    return bool(np.all(np.isfinite(values)))


def _row_of(offsets: IntArray, position: int) -> int:
    """Return the row holding stored value number ``position``."""
    return int(np.searchsorted(offsets, position, side="right") - 1)


def concat(batches: Sequence[SparseBatch]) -> SparseBatch:
    """Stack batches row-wise; labels/weights are kept only if every batch has them."""
    if not batches:
        return SparseBatch.from_arrays([], [0], [])
    if len(batches) == 1:
        return batches[0]
    starts = np.cumsum([0] + [b.nnz for b in batches[:-1]])
    offsets = np.concatenate(
        [np.zeros(1, np.int64)] + [b.offsets[1:] + s for b, s in zip(batches, starts)]
    )
    labels = (np.concatenate([b.labels for b in batches])  # type: ignore[misc]
              if all(b.labels is not None for b in batches) else None)
    weights = (np.concatenate([b.weights for b in batches])  # type: ignore[misc]
               if all(b.weights is not None for b in batches) else None)
    dims = [b.feature_dim for b in batches if b.feature_dim is not None]
    return SparseBatch(
        np.concatenate([b.indices for b in batches]),
        offsets,
        np.concatenate([b.values for b in batches]),
        labels,
        weights,
        max(dims) if dims else None,
    )
