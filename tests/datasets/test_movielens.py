"""MovieLens loading: folder and zip, encoding, side features, download checks, bad files."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from helpers.movielens import write_fake_ml100k

from fmkit.datasets import movielens
from fmkit.datasets.movielens import load_movielens
from fmkit.errors import DataError


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
    # genre values of a row sum to the genre field's scale (multi-hot, shared by the genres)
    row = side.train.slice(0, 1)
    in_genre = (row.indices >= genre.offset) & (row.indices < genre.offset + genre.size)
    assert row.values[in_genre].sum() == pytest.approx(movielens.SIDE_SCALES["item_genre"])
    # the vocabulary maps a user's raw id to its key and side keys
    rows = vocab.entity_rows("user", ["3"])
    assert rows.indices[0] == 2 and rows.nnz == 4  # one-hot + age, gender, occupation
    assert vocab.item_counts is not None and sum(vocab.item_counts) == side.train.n_rows


def test_side_keys_carry_their_field_scale_in_rows_and_vocabulary(tmp_path, monkeypatch):
    src = write_fake_ml100k(tmp_path / "ml")
    plain = load_movielens(src, target="rating")
    monkeypatch.setattr(movielens, "SIDE_SCALES", {"user_age": 0.2, "user_gender": 0.3,
                                                   "user_occupation": 0.4, "item_genre": 0.5})
    side = load_movielens(src, target="rating", side_features=True)
    vocab = side.vocabulary
    batch = side.train
    n_plain = plain.vocabulary.feature_dim
    for f in vocab.fields[2:]:
        in_field = (batch.indices >= f.offset) & (batch.indices < f.offset + f.size)
        per_row = np.add.reduceat(np.where(in_field, batch.values, 0.0), batch.offsets[:-1])
        expected = movielens.SIDE_SCALES[f.name]
        if f.name == "item_genre":  # movies without genres have none
            per_row = per_row[per_row > 0]
        np.testing.assert_allclose(per_row, expected, rtol=1e-6, err_msg=f.name)
    # user and item keys stay one-hot 1.0, at the same keys as without side features
    first_two = np.concatenate([batch.offsets[:-1], batch.offsets[:-1] + 1])
    assert np.all(batch.values[first_two] == 1.0) and np.all(batch.indices[first_two] < n_plain)
    np.testing.assert_array_equal(
        batch.indices[batch.offsets[:-1]], plain.train.indices[plain.train.offsets[:-1]])
    # serving builds the same rows from the vocabulary as training saw
    users = [str(u) for u in batch.indices[batch.offsets[:-1]][:20] + 1]
    items = [str(k - vocab.field("item").offset + 1)
             for k in batch.indices[batch.offsets[:-1] + 1][:20]]
    built = (vocab.entity_rows("user", users) + vocab.entity_rows("item", items)).toarray()
    np.testing.assert_allclose(built, batch.slice(0, 20).to_csr().toarray(), rtol=1e-6)


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


def test_implicit_features_come_from_training_pairs_only(tmp_path):
    src = write_fake_ml100k(tmp_path / "ml")
    plain = load_movielens(src, target="rating", side_features=True)
    data = load_movielens(src, target="rating", side_features=True, implicit=True)
    vocab = data.vocabulary
    rated, raters = vocab.field("user_rated"), vocab.field("item_raters")
    assert (rated.role, raters.role) == ("user", "item")
    assert not rated.one_hot and not raters.one_hot
    activity, popularity = vocab.field("user_activity"), vocab.field("item_popularity")
    assert activity.offset == plain.vocabulary.feature_dim  # earlier keys do not move
    assert (activity.role, popularity.role) == ("user", "item")
    assert activity.one_hot and popularity.one_hot
    assert popularity.offset == activity.offset + activity.size
    assert rated.offset == popularity.offset + popularity.size
    assert vocab.feature_dim == rated.offset + 40 + 30
    base = np.loadtxt(src / "ua.base", dtype=np.int64)[:, :3]
    user_counts = np.bincount(base[:, 0], minlength=31)
    item_counts = np.bincount(base[:, 1], minlength=41)
    assert activity.size == int(np.log2(user_counts.max())) + 1
    assert activity.ids[:3] == ("1-1", "2-3", "4-7")
    for n, batch in (("train", data.train), ("test", data.test)):
        users = np.loadtxt(src / f"ua.{n if n == 'test' else 'base'}", dtype=np.int64)
        for k in (0, 7, batch.n_rows - 1):
            u, i = users[k, 0], users[k, 1]
            row = batch.slice(k, k + 1)
            keys, vals = row.indices, row.values
            mine = base[base[:, 0] == u, 1]  # the user's training movies, test excluded
            in_rated = (keys >= rated.offset) & (keys < rated.offset + rated.size)
            assert sorted(keys[in_rated] - rated.offset + 1) == sorted(mine)
            assert np.allclose(vals[in_rated], 1 / np.sqrt(len(mine)))
            theirs = base[base[:, 1] == i, 0]
            in_raters = (keys >= raters.offset) & (keys < raters.offset + raters.size)
            assert sorted(keys[in_raters] - raters.offset + 1) == sorted(theirs)
            if len(theirs):
                assert np.allclose(vals[in_raters], 1 / np.sqrt(len(theirs)))
            # one activity key per row: the log2 bucket of the training counts
            for field, count in ((activity, user_counts[u]), (popularity, item_counts[i])):
                inside = (keys >= field.offset) & (keys < field.offset + field.size)
                expected = [field.offset + int(np.log2(count))] if count else []
                assert list(keys[inside]) == expected
                assert np.all(vals[inside] == 1.0)
            # the earlier part of the row is the plain encoding's row, keys still sorted
            ref = getattr(plain, n).slice(k, k + 1)
            assert np.array_equal(keys[:ref.indices.size], ref.indices)
            assert np.all(np.diff(keys) > 0)
    # the vocabulary rebuilds a user's row exactly as training saw it
    first = data.train.slice(0, 1)
    user_row = vocab.entity_rows("user", [str(np.loadtxt(src / "ua.base", dtype=np.int64)[0, 0])])
    assert set(user_row.indices) <= set(first.indices)
    assert set(user_row.indices) >= set(first.indices[(first.indices >= rated.offset)
                                                      & (first.indices < raters.offset)])


def test_ml1m_layout_random_split_side_and_implicit(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    pairs = sorted({(int(rng.integers(1, 21)), int(rng.integers(1, 31))) for _ in range(400)})
    (folder / "ratings.dat").write_text("".join(
        f"{u}::{i}::{int(rng.integers(1, 6))}::97830{k:04d}\n" for k, (u, i) in enumerate(pairs)))
    (folder / "users.dat").write_text("".join(
        f"{u}::{'MF'[u % 2]}::{(1, 18, 25)[u % 3]}::{u % 4}::0000{u}\n" for u in range(1, 21)))
    (folder / "movies.dat").write_text("".join(
        f"{i}::Movie {i} (1990)::{('Drama', 'Comedy|Drama', 'Action')[i % 3]}\n"
        for i in range(1, 31)))
    data = load_movielens(folder, split="random", target="rating", side_features=True,
                          implicit=True, seed=1)
    vocab = data.vocabulary
    assert data.train.n_rows + data.test.n_rows == len(pairs)
    assert [f.name for f in vocab.fields] == ["user", "item", "user_age", "user_gender",
                                             "user_occupation", "item_genre", "user_activity",
                                             "item_popularity", "user_rated", "item_raters"]
    assert vocab.field("item_genre").ids == ("Action", "Comedy", "Drama")
    rated = vocab.field("user_rated")
    row = data.train.slice(0, 1)
    keys = row.indices
    in_rated = (keys >= rated.offset) & (keys < rated.offset + rated.size)
    assert in_rated.any() and np.allclose(row.values[in_rated],
                                          1 / np.sqrt(in_rated.sum()))
    with pytest.raises(DataError, match="no 'ua' split"):
        load_movielens(folder, split="ua")
