"""Storage through fsspec against a real S3-compatible server (moto) on 127.0.0.1."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

import fmkit.io as fio
from fmkit.datasets.synthetic import make_planted_fm
from fmkit.errors import DataError
from fmkit.io import paths
from fmkit.sparse import SparseBatch


@pytest.fixture
def data() -> SparseBatch:
    return make_planted_fm(120, feature_dim=30, seed=5).batch


def test_channel_on_s3_prefix_folder_and_glob(s3: str, data: SparseBatch) -> None:
    fio.write(f"{s3}/fm/train/part-1.rec", data.slice(60, 120))
    fio.write(f"{s3}/fm/train/part-0.rec", data.slice(0, 60))
    fio.write(f"{s3}/fm/test.libsvm", data.slice(0, 10))
    assert fio.list_files(f"{s3}/fm/train/") == [f"{s3}/fm/train/part-0.rec",
                                                 f"{s3}/fm/train/part-1.rec"]
    assert fio.list_files(f"{s3}/fm/tr") == fio.list_files(f"{s3}/fm/train")  # key prefix
    assert fio.list_files(f"{s3}/fm/train/*-1.rec") == [f"{s3}/fm/train/part-1.rec"]
    back = fio.read(f"{s3}/fm/train")
    assert np.array_equal(back.indices, data.indices) and back.feature_dim == 30
    batches = list(fio.iter_batches(f"{s3}/fm/train", 50, rank=1, world_size=2,
                                    distribution="ShardedByS3Key"))
    assert [b.n_rows for b in batches] == [50, 10]
    assert fio.detect_format(f"{s3}/fm/test.libsvm") == "libsvm"


def test_upload_and_download_a_model_folder(s3: str, tmp_path: Path) -> None:
    src = tmp_path / "model"
    (src / "sub").mkdir(parents=True)
    (src / "metadata.json").write_text('{"format_version": 1}')
    (src / "sub" / "weights.npz").write_bytes(b"\x00" * 1000)
    paths.upload_dir(str(src), f"{s3}/runs/fm64")
    dest = tmp_path / "copy"
    paths.download_dir(f"{s3}/runs/fm64", str(dest))
    assert (dest / "metadata.json").read_text() == '{"format_version": 1}'
    assert (dest / "sub" / "weights.npz").read_bytes() == b"\x00" * 1000
    with pytest.raises(DataError, match="no files found"):
        paths.download_dir(f"{s3}/runs/none", str(tmp_path / "x"))


def test_failed_s3_write_uploads_nothing(s3: str) -> None:
    with pytest.raises(RuntimeError), fio.open_writer(f"{s3}/out/x.rec") as w:
        w.write(SparseBatch.from_arrays([1], [0, 1], [1.0], feature_dim=3))
        raise RuntimeError("interrupted")
    assert not paths.exists(f"{s3}/out/x.rec")


def test_missing_bucket_and_empty_prefix_are_data_errors(s3: str) -> None:
    with pytest.raises(DataError, match=r"s3://no-such-bucket-x/train.*not found"):
        fio.read("s3://no-such-bucket-x/train/")
    with pytest.raises(DataError, match=r"s3://fmkit-test/nothing/: no data files"):
        fio.read(f"{s3}/nothing/")


def test_unreachable_endpoint_fails_fast(s3: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    started = time.monotonic()
    with pytest.raises(DataError, match=r"cannot list s3://fmkit-test/train/: Could not "
                       "connect"):
        fio.read(f"{s3}/train/")
    assert time.monotonic() - started < 30
