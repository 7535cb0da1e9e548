"""fmkit.io's public API: read, iter_batches, write, detect_format over channels."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fmkit.io as fio
from fmkit.datasets.synthetic import make_planted_fm
from fmkit.errors import DataError, FormatError
from fmkit.sparse import SparseBatch, concat

U1_SHA256 = "8eb845266955272b1f9c75f23916db21fabec2137460e6b75c7ab37aab8f8267"
FORMATS = ["recordio-protobuf", "libsvm", "csv", "npz"]
EXT = {"recordio-protobuf": "rec", "libsvm": "svm", "csv": "csv", "npz": "npz"}


@pytest.fixture
def data() -> SparseBatch:
    return make_planted_fm(250, feature_dim=40, nnz_per_row=4, empty_rows=3, seed=3).batch


def _same_rows(a: SparseBatch, b: SparseBatch) -> None:
    assert np.array_equal(a.offsets, b.offsets)
    assert np.array_equal(a.indices, b.indices)
    assert a.values.tobytes() == b.values.tobytes()
    assert (a.labels is None) == (b.labels is None)
    if a.labels is not None:
        assert a.labels.tobytes() == b.labels.tobytes()  # type: ignore[union-attr]


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_round_trips(fmt: str, data: SparseBatch, tmp_path: Path) -> None:
    path = str(tmp_path / f"d.{EXT[fmt]}")
    fio.write(path, data)
    assert fio.detect_format(path) == fmt
    with open(path, "rb") as f:
        assert fio.detect_format(f.read(64)) == fmt
    back = fio.read(path, require_labels=True)
    if fmt == "csv":  # dense text keeps non-zeros in column order
        assert np.array_equal(back.to_csr(40).toarray(), data.to_csr(40).toarray())
        assert np.array_equal(back.labels, data.labels)  # type: ignore[arg-type]
    else:
        _same_rows(back, data)
    assert back.feature_dim == (None if fmt == "libsvm" else 40)
    assert os.listdir(tmp_path) == [f"d.{EXT[fmt]}"]  # no temporary files left


def test_channel_reads_files_in_sorted_order_and_batches_span_files(
    data: SparseBatch, tmp_path: Path
) -> None:
    parts = [(0, 70), (70, 71), (71, 200), (200, 250)]
    names = ["part-3.rec", "part-1.svm", "part-0.rec", "part-2.npz"]  # sorted: 0,1,2,3
    order = sorted(range(4), key=lambda i: names[i])
    for (lo, hi), i in zip(parts, order):
        fio.write(str(tmp_path / names[i]), data.slice(lo, hi))
    whole = fio.read(str(tmp_path))
    _same_rows(whole, data)
    batches = list(fio.iter_batches(str(tmp_path), 32))
    assert [b.n_rows for b in batches] == [32] * 7 + [26]
    _same_rows(concat(batches), data)
    assert {b.feature_dim for b in batches} <= {40, None}


def test_sharded_by_s3_key_splits_files(data: SparseBatch, tmp_path: Path) -> None:
    for i in range(5):
        fio.write(str(tmp_path / f"p{i}.rec"), data.slice(50 * i, 50 * i + 50))
    shards = [concat(list(fio.iter_batches(str(tmp_path), 1000, rank=r, world_size=2,
                                           distribution="ShardedByS3Key"))) for r in range(2)]
    assert [s.n_rows for s in shards] == [150, 100]
    _same_rows(shards[1], concat([data.slice(50, 100), data.slice(150, 200)]))
    full = list(fio.iter_batches(str(tmp_path), 1000, rank=1, world_size=2))
    assert sum(b.n_rows for b in full) == 250  # FullyReplicated


def test_u1_file_round_trips_through_write_and_npz(sagemaker_u1: Path, tmp_path: Path) -> None:
    batch = fio.read(str(sagemaker_u1 / "test.protobuf"), require_labels=True)
    fio.write(str(tmp_path / "u1.npz"), batch)
    fio.write(str(tmp_path / "u1.rec"), fio.read(str(tmp_path / "u1.npz")))
    digest = hashlib.sha256((tmp_path / "u1.rec").read_bytes()).hexdigest()
    assert digest == U1_SHA256


def test_libsvm_key_base_is_guessed_per_channel(tmp_path: Path) -> None:
    (tmp_path / "a.svm").write_text("1 1:1 5:1\n")
    (tmp_path / "b.svm").write_text("0 0:1\n")
    assert fio.read(str(tmp_path / "a.svm")).indices.tolist() == [0, 4]  # 1-based
    assert fio.read(str(tmp_path)).indices.tolist() == [1, 5, 0]  # a 0 key: 0-based
    with pytest.raises(FormatError, match=r"b\.svm, line 1: key 0 in 1-based"):
        fio.read(str(tmp_path), zero_based=False)


def test_missing_labels_and_mixed_feature_dims(tmp_path: Path) -> None:
    fio.write(str(tmp_path / "a.rec"), SparseBatch.from_arrays([1], [0, 1], [1.0], [1.0],
                                                              feature_dim=5))
    fio.write(str(tmp_path / "b.rec"), SparseBatch.from_arrays([1], [0, 1], [1.0],
                                                              feature_dim=5))
    assert fio.read(str(tmp_path)).labels is None
    with pytest.raises(FormatError, match=r"b\.rec, record 0 at byte 0: no label"):
        fio.read(str(tmp_path), require_labels=True)
    fio.write(str(tmp_path / "b.rec"), SparseBatch.from_arrays([1], [0, 1], [1.0], [1.0],
                                                              feature_dim=6))
    with pytest.raises(DataError, match=r"b\.rec states feature_dim=6, but .*a\.rec states 5"):
        fio.read(str(tmp_path))


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out.rec"
    with pytest.raises(RuntimeError), fio.open_writer(str(target)) as w:
        w.write(SparseBatch.from_arrays([1], [0, 1], [1.0], feature_dim=3))
        raise RuntimeError("interrupted")
    assert os.listdir(tmp_path) == []
    target.write_bytes(b"old")
    with pytest.raises(FormatError), fio.open_writer(str(target), feature_dim=3) as w:
        w.write(SparseBatch.from_arrays([7], [0, 1], [1.0]))
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.rec"]


def test_content_type_and_format_override_extension(tmp_path: Path) -> None:
    path = tmp_path / "part-0"
    path.write_text("1 1:2 3:1\n")
    assert fio.read(str(path)).values.tolist() == [2.0, 1.0]  # sniffed as libsvm
    with pytest.raises(FormatError, match="expected magic"):
        fio.read(str(path), content_type="application/x-recordio-protobuf")
    with pytest.raises(FormatError, match="is not a number"):
        fio.read(str(path), format="csv")


def test_iter_batches_rejects_bad_batch_size(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="batch_size must be >= 1"):
        next(fio.iter_batches(str(tmp_path), 0))


def test_pipe_mode_fifo_is_streamed(data: SparseBatch, tmp_path: Path) -> None:
    import threading

    from fmkit.io import protobuf

    fifo = tmp_path / "train_0"
    os.mkfifo(fifo)
    body = protobuf.encode_batch(data)

    def feed() -> None:
        with open(fifo, "wb") as f:
            for i in range(0, len(body), 1000):  # arrives in pieces, as from a pipe
                f.write(body[i : i + 1000])

    thread = threading.Thread(target=feed)
    thread.start()
    with open(fifo, "rb") as f:
        got = concat(list(fio.iter_stream(f, source=str(fifo), require_labels=True)))
    thread.join()
    _same_rows(got, data)


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(FORMATS), st.integers(1, 8), st.integers(1, 60),
       st.integers(0, 2**31 - 1))
def test_write_then_read_is_the_identity_for_every_codec(fmt: str, n: int, width: int,
                                                         seed: int) -> None:
    rng = np.random.default_rng(seed)
    dense = rng.normal(size=(n, width)).astype(np.float32)
    dense[rng.random((n, width)) < 0.7] = 0
    dense[:, -1] = 1.0  # the last column is used, so every format knows the width
    batch = SparseBatch.from_matrix(dense, rng.integers(0, 5, n).astype(np.float32))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"x.{EXT[fmt]}")
        fio.write(path, batch)
        back = fio.read(path, require_labels=True)
    _same_rows(back, batch)
    assert back.width == width
