"""SparseBatch.take: the rows asked for, in order, whatever the row lengths."""

from __future__ import annotations

import numpy as np
import pytest

from fmkit.sparse import SparseBatch


def _batch(lengths: list[int], rng: np.random.Generator) -> SparseBatch:
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    nnz = int(offsets[-1])
    return SparseBatch.from_arrays(rng.integers(0, 50, nnz), offsets,
                                   rng.normal(size=nnz).astype(np.float32),
                                   rng.random(len(lengths)).astype(np.float32),
                                   rng.random(len(lengths)).astype(np.float32), feature_dim=50)


def _reference(batch: SparseBatch, rows: np.ndarray) -> tuple[list, list]:
    idx = [batch.indices[batch.offsets[r]:batch.offsets[r + 1]].tolist() for r in rows]
    val = [batch.values[batch.offsets[r]:batch.offsets[r + 1]].tolist() for r in rows]
    return idx, val


@pytest.mark.parametrize("lengths", [[3, 3, 3, 3, 3], [2, 0, 4, 1, 3], [0, 0, 0], [5]],
                         ids=["uniform", "ragged", "all-empty", "one-row"])
def test_take_gathers_the_rows_in_order(lengths):
    rng = np.random.default_rng(0)
    batch = _batch(lengths, rng)
    n = len(lengths)
    for rows in (rng.permutation(n), np.array([n - 1, 0, n - 1]), np.zeros(0, np.int64)):
        out = batch.take(rows)
        idx, val = _reference(batch, rows)
        assert out.n_rows == len(rows)
        assert [out.indices[out.offsets[k]:out.offsets[k + 1]].tolist()
                for k in range(out.n_rows)] == idx
        assert [out.values[out.offsets[k]:out.offsets[k + 1]].tolist()
                for k in range(out.n_rows)] == val
        np.testing.assert_array_equal(out.labels, batch.labels[rows])
        np.testing.assert_array_equal(out.weights, batch.weights[rows])
        assert out.feature_dim == batch.feature_dim
        out.validate(feature_dim=50, source="take")


def test_row_length_and_the_parallel_gather_of_large_uniform_batches():
    import fmkit.sparse as sparse

    rng = np.random.default_rng(1)
    assert _batch([3, 3, 3], rng).row_length == 3
    assert _batch([3, 2, 4], rng).row_length is None  # same total, rows differ
    assert _batch([0, 0], rng).row_length == 0
    n, width = 40_000, 30  # 1.2M entries: past the parallel-gather threshold
    assert n * width >= sparse._PARALLEL_GATHER
    batch = _batch([width] * n, rng)
    rows = rng.permutation(n)
    out = batch.take(rows)
    np.testing.assert_array_equal(out.indices.reshape(n, width),
                                  batch.indices.reshape(n, width)[rows])
    np.testing.assert_array_equal(out.values.reshape(n, width),
                                  batch.values.reshape(n, width)[rows])
    np.testing.assert_array_equal(out.offsets, np.arange(n + 1) * width)
    # negative row numbers count from the end, as in numpy; past the end is an IndexError
    back = batch.take(np.concatenate([rows[:5000], [-1, -n]]))
    np.testing.assert_array_equal(back.indices[-2 * width:].reshape(2, width),
                                  batch.indices.reshape(n, width)[[-1, 0]])
    with pytest.raises(IndexError):
        batch.take(np.concatenate([rows[:5000], [n]]))


def test_canonical_is_self_exactly_when_scipy_calls_the_rows_canonical():
    rng = np.random.default_rng(3)
    for lengths in ([3, 0, 2, 4], [0, 0], [1], [5, 5, 5]):
        batch = _batch(lengths, rng)
        csr_says = batch.to_csr().has_canonical_format
        assert batch._strictly_increasing_rows() == csr_says
        assert (batch.canonical() is batch) == csr_says
    # a repeated key and a descending pair inside rows; a new row may start lower
    rows = SparseBatch.from_arrays([1, 1, 5, 2, 0, 3], [0, 2, 4, 6], np.ones(6), feature_dim=6)
    assert not rows._strictly_increasing_rows()
    fixed = rows.canonical()
    assert fixed._strictly_increasing_rows() and fixed.to_csr().has_canonical_format
    assert SparseBatch.from_arrays([4, 0, 5], [0, 1, 3], np.ones(3))._strictly_increasing_rows()


def test_values_finite_is_computed_once_and_kept_by_an_unchanged_feature_dim():
    batch = SparseBatch.from_arrays([0, 2, 1], [0, 2, 3], [1.0, np.nan, 3.0], [1, 0],
                                    feature_dim=4)
    assert batch.values_finite is False
    assert batch.with_feature_dim(4) is batch
    other = batch.with_feature_dim(5)
    assert other is not batch and other.feature_dim == 5
    # copies that keep the rows keep what was found of them, and only that
    for copy in (other, batch.with_labels([0, 1]), batch.with_weights([1.0, 2.0])):
        assert copy.__dict__.get("values_finite") is False
        assert copy.indices is batch.indices and copy.values is batch.values
    assert list(batch.with_labels([0, 1]).labels) == [0.0, 1.0]
    assert SparseBatch.from_arrays([0, 1], [0, 1, 2], [1.0, -2.5]).values_finite is True
    with pytest.raises(ValueError, match="row 0: feature value nan is not finite"):
        batch.validate(feature_dim=4)
