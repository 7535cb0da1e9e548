"""npz CSR: scipy-compatible layout, feature_dim, labels and weights survive; defects."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from fmkit.errors import FormatError
from fmkit.io import npz
from fmkit.sparse import SparseBatch


def test_round_trip_keeps_shape_labels_weights(tmp_path: Path) -> None:
    batch = SparseBatch.from_arrays([1, 4, 2], [0, 2, 2, 3], [1.0, 2.0, 3.0], [1, 0, 1],
                                    [0.5, 1, 2], feature_dim=10)
    path = tmp_path / "x.npz"
    with open(path, "wb") as f:
        npz.write_stream(f, batch)
    with open(path, "rb") as f:
        back = npz.read_stream(f, source="x.npz")
    assert back.feature_dim == 10 and back.n_rows == 3
    assert back.indices.tolist() == [1, 4, 2] and back.values.tolist() == [1, 2, 3]
    assert back.labels is not None and back.labels.tolist() == [1, 0, 1]
    assert back.weights is not None and back.weights.tolist() == [0.5, 1, 2]
    m = sp.load_npz(path)  # scipy reads it as a CSR matrix
    assert m.shape == (3, 10) and m.toarray()[0, 4] == 2.0


def test_scipy_written_files_are_read(tmp_path: Path) -> None:
    path = tmp_path / "s.npz"
    sp.save_npz(path, sp.csr_matrix(np.array([[0, 1.5], [2, 0]], np.float32)))
    with open(path, "rb") as f:
        back = npz.read_stream(f, source="s.npz")
    assert back.feature_dim == 2 and back.labels is None
    assert back.to_csr().toarray().tolist() == [[0, 1.5], [2, 0]]
    sp.save_npz(path, sp.csc_matrix(np.eye(2)))
    with open(path, "rb") as f, pytest.raises(FormatError, match="'csc' matrix; only CSR"):
        npz.read_stream(f, source="s.npz")


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"data": np.ones(1)}, "lacks the array"),
        ({"data": np.ones(1), "indices": np.array([5]), "indptr": np.array([0, 1]),
          "shape": np.array([1, 3])}, r"column index is outside \[0, 3\)"),
        ({"data": np.ones(2), "indices": np.array([0]), "indptr": np.array([0, 1]),
          "shape": np.array([1, 3])}, "inconsistent"),
        ({"data": np.ones(1), "indices": np.array([0]), "indptr": np.array([0, 1]),
          "shape": np.array([1, 3]), "labels": np.ones(3)}, "'labels' must hold one number"),
    ],
)
def test_inconsistent_arrays_are_rejected(arrays: dict[str, np.ndarray], message: str) -> None:
    f = io.BytesIO()
    np.savez(f, **arrays)
    with pytest.raises(FormatError, match=message):
        npz.read_stream(io.BytesIO(f.getvalue()), source="b.npz")


def test_garbage_and_pickles_are_format_errors() -> None:
    with pytest.raises(FormatError, match=r"b\.npz: not a readable npz"):
        npz.read_stream(io.BytesIO(b"PK\x03\x04garbage"), source="b.npz")
    f = io.BytesIO()
    np.savez(f, data=np.array([{"a": 1}], dtype=object))
    with pytest.raises(FormatError, match="not a readable npz"):
        npz.read_stream(io.BytesIO(f.getvalue()), source="b.npz")
