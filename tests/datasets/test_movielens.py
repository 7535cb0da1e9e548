"""MovieLens loading: folder and zip, encoding, side features, download checks, bad files."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from fmkit.datasets import movielens
from fmkit.datasets.movielens import load_movielens
from fmkit.errors import DataError
from helpers.movielens import write_fake_ml100k


def test_folder_and_zip_give_the_same_rows(tmp_path):
    src = write_fake_ml100k(tmp_path / "ml-100k")
    with zipfile.ZipFile(tmp_path / "ml-100k.zip", "w") as z:
        for f in src.iterdir():
            z.write(f, f"ml-100k/{f.name}")
    a = load_movielens(src, target="rating")
    b = load_movielens(tmp_path / "ml-100k.zip", target="rating")
    assert np.array_equal(a.train.indices, b.train.indices)
    assert np.array_equal(a.test.labels, b.test.labels)


def test_binary_threshold_and_side_features(tmp_path):
    src = write_fake_ml100k(tmp_path / "ml")
    rating = load_movielens(src, target="rating")
    binary = load_movielens(src, target="binary", threshold=3)
    assert np.array_equal(binary.train.labels, (rating.train.labels >= 3).astype(np.float32))
    side = load_movielens(src, target="rating", side_features=True)
    vocab = side.vocabulary
    genre = vocab.field("item_genre")
    assert not genre.one_hot and vocab.field("user_gender").one_hot
    # genre values of a row sum to 1 (multi-hot scaled)
    row = side.train.slice(0, 1)
    in_genre = (row.indices >= genre.offset) & (row.indices < genre.offset + genre.size)
    assert row.values[in_genre].sum() == pytest.approx(1.0)
    # the vocabulary maps a user's raw id to its key and side keys
    rows = vocab.entity_rows("user", ["3"])
    assert rows.indices[0] == 2 and rows.nnz == 4  # one-hot + age, gender, occupation
    assert vocab.item_counts is not None and sum(vocab.item_counts) == side.train.n_rows


def test_bad_inputs_name_the_file(tmp_path):
    src = write_fake_ml100k(tmp_path / "ml")
    with pytest.raises(DataError, match="split must be one of"):
        load_movielens(src, split="u9")
    (src / "ua.base").write_text("1\t2\tfive\t0\n")
    with pytest.raises(DataError, match="ua.base, line 1"):
        load_movielens(src)
    with pytest.raises(DataError, match="no MovieLens files"):
        load_movielens(tmp_path)


def test_download_is_checksum_verified(tmp_path, monkeypatch):
    monkeypatch.setattr(movielens.urllib.request, "urlopen",
                        lambda url, timeout: io.BytesIO(b"not the archive"))
    with pytest.raises(DataError, match="sha256"):
        movielens.download_ml100k(tmp_path)
    assert not (tmp_path / "ml-100k.zip").exists()

    def offline(url, timeout):
        raise OSError("network is unreachable")

    monkeypatch.setattr(movielens.urllib.request, "urlopen", offline)
    with pytest.raises(DataError, match="--data-dir"):
        movielens.download_ml100k(tmp_path)


@pytest.mark.slow
def test_real_ml100k_ua_and_side_features(ml100k):
    data = load_movielens(ml100k, split="ua", target="binary", side_features=True)
    assert (data.train.n_rows, data.test.n_rows) == (90570, 9430)
    names = [(f.name, f.size) for f in data.vocabulary.fields]
    assert names == [("user", 943), ("item", 1682), ("user_age", 7), ("user_gender", 2),
                     ("user_occupation", 21), ("item_genre", 19)]
    assert abs(float(data.train.labels.mean()) - 0.55) < 0.02
