"""Synthetic data with a known (planted) FM, for tests and benchmarks.

- :func:`make_planted_fm`: random sparse rows with real values, labels from known
  ``w0, w, V`` plus noise (regression) or a Bernoulli draw (binary).
- :func:`make_click_data`: click-log-like rows, one hashed feature per categorical field
  (Zipf-distributed within each field), labels from a planted FM.

Both return a :class:`PlantedData` holding the batch and the true parameters, so a test can
compare a trained model with the noise floor, and a benchmark can report the planted AUC.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fmkit.sparse import SparseBatch


@dataclass
class PlantedData:
    """Rows plus the parameters that generated their labels."""

    batch: SparseBatch
    w0: float
    w: npt.NDArray[np.float64]
    V: npt.NDArray[np.float64]
    logits: npt.NDArray[np.float64]  # (N,) noiseless y(x)


def fm_scores(batch: SparseBatch, w0: float, w: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Return y(x) for every row in float64 by the O(nnz * k) identity."""
    x = batch.values.astype(np.float64)
    rows = np.repeat(np.arange(batch.n_rows), np.diff(batch.offsets))
    lin = np.bincount(rows, weights=w[batch.indices] * x, minlength=batch.n_rows)
    xv = V[batch.indices] * x[:, None]
    s = np.zeros((batch.n_rows, V.shape[1]))
    np.add.at(s, rows, xv)
    q = np.zeros((batch.n_rows, V.shape[1]))
    np.add.at(q, rows, xv * xv)
    return w0 + lin + 0.5 * (s * s - q).sum(1)


def make_planted_fm(
    n_rows: int = 2000,
    feature_dim: int = 50,
    num_factors: int = 4,
    *,
    nnz_per_row: int = 5,
    task: str = "regressor",
    noise: float = 0.1,
    seed: int = 0,
    empty_rows: int = 0,
) -> PlantedData:
    """Draw rows with ``nnz_per_row`` distinct keys and N(1, 0.3) values from a planted FM.

    ``task='binary_classifier'`` draws labels ~ Bernoulli(sigmoid(y)); otherwise labels are
    y + N(0, noise^2). ``empty_rows`` rows (at the start) have no features.
    """
    rng = np.random.default_rng(seed)
    w0 = 0.3
    w = rng.normal(0, 0.5, feature_dim)
    V = rng.normal(0, 0.5, (feature_dim, num_factors))
    lengths = np.full(n_rows, nnz_per_row)
    lengths[:empty_rows] = 0
    offsets = np.zeros(n_rows + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    indices = np.concatenate(
        [rng.choice(feature_dim, size=n, replace=False) for n in lengths]
    ).astype(np.int64) if n_rows else np.zeros(0, np.int64)
    values = rng.normal(1.0, 0.3, offsets[-1]).astype(np.float32)
    batch = SparseBatch.from_arrays(indices, offsets, values, feature_dim=feature_dim)
    y = fm_scores(batch, w0, w, V)
    if task == "binary_classifier":
        labels = (rng.random(n_rows) < 1 / (1 + np.exp(-y))).astype(np.float32)
    else:
        labels = (y + rng.normal(0, noise, n_rows)).astype(np.float32)
    return PlantedData(batch.with_labels(labels), w0, w, V, y)


def make_click_data(
    n_rows: int = 100_000,
    *,
    num_fields: int = 39,
    feature_dim: int = 200_000,
    num_factors: int = 8,
    seed: int = 0,
    zipf: float = 1.1,
    planted_scale: float = 1.0,
) -> PlantedData:
    """Draw click-log rows: one key per field, field f owning keys [f*F/n, (f+1)*F/n).

    Within a field, keys follow a Zipf-like law (a few frequent values, a long tail), as
    hashed categorical click data does. Labels ~ Bernoulli(sigmoid(y - 1)) of a planted FM
    whose weights shrink with ``planted_scale``; about a quarter of rows are clicks.
    """
    rng = np.random.default_rng(seed)
    per_field = feature_dim // num_fields
    ranks = np.arange(1, per_field + 1, dtype=np.float64)
    p = ranks**-zipf
    p /= p.sum()
    cdf = np.cumsum(p)
    u = rng.random((n_rows, num_fields))
    local = np.minimum(np.searchsorted(cdf, u), per_field - 1)
    indices = (local + np.arange(num_fields) * per_field).astype(np.int64).ravel()
    offsets = np.arange(n_rows + 1, dtype=np.int64) * num_fields
    values = np.ones(indices.shape[0], np.float32)
    w = rng.normal(0, 0.3 * planted_scale, feature_dim)
    V = rng.normal(0, 0.15 * planted_scale, (feature_dim, num_factors))
    batch = SparseBatch.from_arrays(indices, offsets, values, feature_dim=feature_dim)
    raw = fm_scores(batch, 0.0, w, V)
    w0 = float(-np.median(raw) - 1.0)
    y = raw + w0
    labels = (rng.random(n_rows) < 1 / (1 + np.exp(-y))).astype(np.float32)
    return PlantedData(batch.with_labels(labels), w0, w, V, y)
