"""MovieLens 100K and 1M as FM rows, encoded as the SageMaker FM notebook does.

Rows are one-hot ``[user | movie]``: for ml-100k the keys are ``user_id - 1`` and
``943 + movie_id - 1`` (feature_dim 2625). With ``side_features`` the user's age bucket,
gender and occupation and the movie's genres (multi-hot) are appended after those keys,
with the values of :data:`SIDE_SCALES` (0.1 for each user side key; a movie's genres share
0.2), smaller than the 1.0 of the user and item keys so that the side factors do not
overfit (docs/movielens.md). With ``implicit`` each row also gets the log2 bucket of its
user's and its movie's number of training ratings, then its user's training movies and its
movie's training users (implicit feedback: which pairs were rated, not how), each with
value 1/sqrt(count), after every other key. The label is the rating
(``target='rating'``) or 1.0 when rating >= ``threshold`` (``target='binary'``).

The data comes from a folder in the original layout (``u.data``, ``u.user``, ``u.item``,
``ua.base``... for 100K; ``ratings.dat``, ``users.dat``, ``movies.dat`` with ``::`` for 1M),
from the GroupLens zip, or is downloaded (checksum verified) when neither is given.

The vocabulary keeps each movie's title and genres (from ``u.item`` or ``movies.dat``) in its
``item_metadata``, so that recommendations can show ``title`` beside the raw item id.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmkit.errors import DataError
from fmkit.features.vocabulary import Field, Vocabulary
from fmkit.io import paths
from fmkit.sparse import SparseBatch

logger = logging.getLogger(__name__)

ML100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
ML100K_SHA256 = "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229"
SPLITS_100K = ("ua", "ub", "u1", "u2", "u3", "u4", "u5")
AGE_BUCKETS = ((0, 18, "<18"), (18, 25, "18-24"), (25, 35, "25-34"), (35, 45, "35-44"),
               (45, 50, "45-49"), (50, 56, "50-55"), (56, 200, "56+"))
# Value of each side key (the user and item keys are 1.0; a movie's genres share its value).
# Chosen on two hold-outs of ua.base (10% of its ratings; 5 ratings of each user) with fmkit's
# default hyperparameters (ua.test only reports): at 1.0 the side factors overfit (a side key sits
# in most mini-batches, so its lazy weight decay barely holds it) and the metrics fall below
# those without side features; a smaller value shrinks the key's weight in the score and,
# with Adagrad, makes its decay relatively stronger (docs/movielens.md).
SIDE_SCALES = {"user_age": 0.1, "user_gender": 0.1, "user_occupation": 0.1, "item_genre": 0.2}
# value of the user_activity / item_popularity key (--implicit)
ACTIVITY_VALUE = 1.0


@dataclass
class MovieLensData:
    """Encoded train and test rows plus the vocabulary that maps raw ids to keys."""

    train: SparseBatch
    test: SparseBatch
    vocabulary: Vocabulary


class _Source:
    """Read files by name from a folder or a zip (members may sit in a sub-folder)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.zip: zipfile.ZipFile | None = None
        self.members: dict[str, str] = {}
        if path.is_file():
            try:
                self.zip = zipfile.ZipFile(path)
            except zipfile.BadZipFile:
                raise DataError(f"{path}: not a zip file and not a folder.") from None
            self.members = {Path(n).name: n for n in self.zip.namelist()}

    def has(self, name: str) -> bool:
        return name in self.members if self.zip else (self.path / name).is_file()

    def read(self, name: str) -> str:
        if not self.has(name):
            raise DataError(f"{self.path}: missing {name} (expected the original MovieLens "
                            "layout).")
        if self.zip:
            raw = self.zip.read(self.members[name])
        else:
            raw = (self.path / name).read_bytes()
        return raw.decode("latin-1")


def download_ml100k(cache_dir: Path) -> Path:
    """Download ml-100k.zip from GroupLens into ``cache_dir`` (sha256 verified); return its path."""
    target = cache_dir / "ml-100k.zip"
    if target.is_file() and _sha256(target.read_bytes()) == ML100K_SHA256:
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    logger.info("downloading %s", ML100K_URL)
    try:
        with urllib.request.urlopen(ML100K_URL, timeout=60) as resp:  # noqa: S310 (fixed https URL)
            data = resp.read()
    except OSError as exc:
        raise DataError(
            f"cannot download MovieLens 100K from {ML100K_URL} ({exc}); pass --data-dir with a "
            "local copy (folder or zip) or set FMKIT_DATA_DIR."
        ) from None
    if _sha256(data) != ML100K_SHA256:
        raise DataError(f"downloaded {ML100K_URL} but its sha256 {_sha256(data)} is not "
                        f"{ML100K_SHA256}; not using it.")
    with paths.atomic_write(str(target)) as f:
        f.write(data)
    return target


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _parse_ratings(text: str, sep: str, name: str) -> np.ndarray:
    """Return int64 (N, 3): user, item, rating (timestamps dropped), in file order."""
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(sep)
        try:
            rows.append((int(parts[0]), int(parts[1]), int(float(parts[2]))))
        except (IndexError, ValueError):
            raise DataError(f"{name}, line {lineno}: expected user{sep}item{sep}rating; "
                            f"got {line[:60]!r}.") from None
    if not rows:
        raise DataError(f"{name}: no ratings.")
    return np.asarray(rows, dtype=np.int64)


def _age_bucket(age: int) -> str:
    for lo, hi, label in AGE_BUCKETS:
        if lo <= age < hi:
            return label
    return AGE_BUCKETS[-1][2]


def load_movielens(
    data_dir: str | os.PathLike[str],
    *,
    split: str = "ua",
    target: str = "binary",
    threshold: float = 4.0,
    side_features: bool = False,
    implicit: bool = False,
    seed: int = 0,
) -> MovieLensData:
    """Load MovieLens (100K or 1M) and encode train/test rows.

    Parameters
    ----------
    data_dir : path
        A folder in the original layout or the GroupLens zip.
    split : {'ua', 'ub', 'u1', ..., 'u5', 'random'}, default='ua'
        The 100K split files; 'random' holds out 10% of ratings (seeded), the only split
        of ml-1m.
    target : {'binary', 'rating'}
        Label: 1.0 if rating >= ``threshold`` else 0.0, or the rating itself.
    side_features : bool
        Append age bucket, gender, occupation and genres.
    implicit : bool
        Append implicit feedback from the training ratings: the bucket of the user's and the
        movie's rating counts (fields ``user_activity``, ``item_popularity``), the movies the
        row's user rated (``user_rated``) and the users who rated the row's movie
        (``item_raters``), each with value 1/sqrt(the count). Test ratings never enter.
    seed : int
        Seed of the 'random' split.

    Raises
    ------
    DataError
        Missing files, an unknown split or target, or malformed lines (file and line named).
    """
    if target not in ("binary", "rating"):
        raise DataError(f"target must be 'binary' or 'rating'; got {target!r}.")
    src = _Source(Path(data_dir))
    if src.has("u.data"):
        return _load_100k(src, split, target, threshold, side_features, implicit, seed)
    if src.has("ratings.dat"):
        return _load_1m(src, split, target, threshold, side_features, implicit, seed)
    raise DataError(f"{data_dir}: no MovieLens files found (expected u.data for ml-100k or "
                    "ratings.dat for ml-1m).")


def _random_split(ratings: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    test = rng.random(ratings.shape[0]) < 0.1
    return ratings[~test], ratings[test]


def _load_100k(src: _Source, split: str, target: str, threshold: float, side: bool,
               implicit: bool, seed: int) -> MovieLensData:
    if split == "random":
        train, test = _random_split(_parse_ratings(src.read("u.data"), "\t", "u.data"), seed)
    elif split in SPLITS_100K:
        train = _parse_ratings(src.read(f"{split}.base"), "\t", f"{split}.base")
        test = _parse_ratings(src.read(f"{split}.test"), "\t", f"{split}.test")
    else:
        raise DataError(f"split must be one of {', '.join(SPLITS_100K)} or 'random'; "
                        f"got {split!r}.")
    users: dict[int, tuple[str, str, str]] = {}
    if src.has("u.user"):
        for line in src.read("u.user").splitlines():
            p = line.split("|")
            if len(p) >= 4:
                users[int(p[0])] = (_age_bucket(int(p[1])), p[2], p[3])
    items: dict[int, list[str]] = {}
    titles: dict[int, str] = {}
    genre_names: list[str] = []
    if src.has("u.genre"):
        pairs = [ln.split("|") for ln in src.read("u.genre").splitlines() if "|" in ln]
        genre_names = [name for name, _ in sorted(pairs, key=lambda p: int(p[1]))]
    if src.has("u.item"):
        for line in src.read("u.item").splitlines():
            p = line.split("|")
            if len(p) >= 5 + len(genre_names) and genre_names:
                flags = p[-len(genre_names):]
                items[int(p[0])] = [g for g, f in zip(genre_names, flags, strict=True)
                                    if f.strip() == "1"]
            elif p and p[0].isdigit():
                items[int(p[0])] = []
            if len(p) >= 2 and p[0].isdigit() and p[1].strip():
                titles[int(p[0])] = p[1].strip()
    n_users = max(max(users, default=0), int(train[:, 0].max()), int(test[:, 0].max()))
    n_items = max(max(items, default=0), int(train[:, 1].max()), int(test[:, 1].max()))
    return _encode(train, test, n_users, n_items, users, items, genre_names, target, threshold,
                   side, implicit, titles)


def _load_1m(src: _Source, split: str, target: str, threshold: float, side: bool,
             implicit: bool, seed: int) -> MovieLensData:
    if split != "random":
        raise DataError(f"ml-1m has no {split!r} split files; use --split random.")
    ratings = _parse_ratings(src.read("ratings.dat"), "::", "ratings.dat")
    train, test = _random_split(ratings, seed)
    ages = {"1": "<18", "18": "18-24", "25": "25-34", "35": "35-44", "45": "45-49",
            "50": "50-55", "56": "56+"}
    users = {}
    if src.has("users.dat"):
        for line in src.read("users.dat").splitlines():
            p = line.split("::")
            if len(p) >= 4:
                users[int(p[0])] = (ages.get(p[2], p[2]), p[1], p[3])
    items = {}
    titles: dict[int, str] = {}
    genres: set[str] = set()
    if src.has("movies.dat"):
        for line in src.read("movies.dat").splitlines():
            p = line.split("::")
            if len(p) >= 3:
                gs = [g for g in p[2].strip().split("|") if g]
                items[int(p[0])] = gs
                genres.update(gs)
                if p[1].strip():
                    titles[int(p[0])] = p[1].strip()
    n_users = max(max(users, default=0), int(ratings[:, 0].max()))
    n_items = max(max(items, default=0), int(ratings[:, 1].max()))
    return _encode(train, test, n_users, n_items, users, items, sorted(genres), target,
                   threshold, side, implicit, titles)


def _encode(train: np.ndarray, test: np.ndarray, n_users: int, n_items: int,
            users: dict[int, tuple[str, str, str]], items: dict[int, list[str]],
            genre_names: list[str], target: str, threshold: float,
            side: bool, implicit: bool, titles: dict[int, str] | None = None) -> MovieLensData:
    fields = [
        Field("user", 0, n_users, "user", True, tuple(str(u) for u in range(1, n_users + 1))),
        Field("item", n_users, n_items, "item", True,
              tuple(str(i) for i in range(1, n_items + 1))),
    ]
    user_side: dict[str, list[tuple[int, float]]] = {}
    item_side: dict[str, list[tuple[int, float]]] = {}
    offset = n_users + n_items
    if side:
        for fname, pos in (("user_age", 0), ("user_gender", 1), ("user_occupation", 2)):
            scale = SIDE_SCALES[fname]
            present = {u[pos] for u in users.values()}
            order = [b[2] for b in AGE_BUCKETS] if fname == "user_age" else sorted(present)
            labels = [v for v in order if v in present]
            if not labels:
                continue
            index = {v: offset + i for i, v in enumerate(labels)}
            fields.append(Field(fname, offset, len(labels), "user", True, tuple(labels)))
            for uid, info in users.items():
                user_side.setdefault(str(uid), []).append((index[info[pos]], scale))
            offset += len(labels)
        if genre_names:
            scale = SIDE_SCALES["item_genre"]
            index = {g: offset + i for i, g in enumerate(genre_names)}
            fields.append(Field("item_genre", offset, len(genre_names), "item", False,
                                tuple(genre_names)))
            for iid, gs in items.items():
                if gs:
                    item_side[str(iid)] = [(index[g], scale / len(gs)) for g in gs]
            offset += len(genre_names)
    if implicit:
        offset = _add_implicit(train, n_users, n_items, offset, fields, user_side, item_side)
    counts = np.bincount(train[:, 1] - 1, minlength=n_items)
    vocab = Vocabulary(offset, fields, "user", "item", user_side, item_side,
                       [int(c) for c in counts], _item_metadata(items, titles or {}))
    # one row per user and per item, exactly as serving rebuilds them from the vocabulary
    users_csr = vocab.entity_rows("user", vocab.ids("user"))
    items_csr = vocab.entity_rows("item", vocab.ids("item"))

    def rows(r: np.ndarray) -> SparseBatch:
        # user and item keys, then their side keys, in key order (the two parts never overlap)
        x = (users_csr[r[:, 0] - 1] + items_csr[r[:, 1] - 1]).tocsr()
        x.sort_indices()
        labels = (r[:, 2] >= threshold).astype(np.float32) if target == "binary" \
            else r[:, 2].astype(np.float32)
        return SparseBatch.from_arrays(x.indices.astype(np.int64), x.indptr.astype(np.int64),
                                       x.data.astype(np.float32), labels, feature_dim=offset)

    return MovieLensData(rows(train), rows(test), vocab)


def _item_metadata(genres: dict[int, list[str]], titles: dict[int, str]
                   ) -> dict[str, dict[str, object]]:
    """Return raw item id -> ``{"title", "genres"}`` for the movies with a known title."""
    return {str(i): {"title": t, "genres": list(genres.get(i, []))}
            for i, t in sorted(titles.items())}


def _add_implicit(train: np.ndarray, n_users: int, n_items: int, offset: int,
                  fields: list[Field], user_side: dict[str, list[tuple[int, float]]],
                  item_side: dict[str, list[tuple[int, float]]]) -> int:
    """Append the ``user_activity`` and ``item_popularity`` fields (one-hot: the bucket
    ``2^b .. 2^(b+1)-1`` that holds the entity's number of training ratings), then
    ``user_rated`` and ``item_raters`` (last, where the samplers' relation blocks and
    myFM's RelationBlocks expect them); return the new feature_dim."""
    pairs = np.unique(train[:, :2] - 1, axis=0)  # (user, item), 0-based, each pair once
    # training ratings per user (column 0) and per item (column 1)
    n_rated = [np.bincount(pairs[:, 0], minlength=n_users),
               np.bincount(pairs[:, 1], minlength=n_items)]
    for role, own, side, name in (("user", 0, user_side, "user_activity"),
                                  ("item", 1, item_side, "item_popularity")):
        counts = n_rated[own]
        rated = np.flatnonzero(counts)
        buckets = np.floor(np.log2(counts[rated])).astype(np.int64)
        size = int(buckets.max()) + 1 if buckets.size else 1
        fields.append(Field(name, offset, size, role, True,
                            tuple(f"{1 << b}-{(2 << b) - 1}" for b in range(size))))
        for e, b in zip(rated, buckets, strict=True):
            side.setdefault(str(e + 1), []).append((offset + int(b), ACTIVITY_VALUE))
        offset += size
    for role, own, other, n_other, side, name in (
            ("user", 0, 1, n_items, user_side, "user_rated"),
            ("item", 1, 0, n_users, item_side, "item_raters")):
        fields.append(Field(name, offset, n_other, role, False,
                            tuple(str(i) for i in range(1, n_other + 1))))
        order = np.lexsort((pairs[:, other], pairs[:, own]))
        other_ids = pairs[order, other]
        counts = n_rated[own]
        starts = np.concatenate([[0], np.cumsum(counts)])
        for e in np.flatnonzero(counts):
            value = float(1.0 / np.sqrt(counts[e]))
            keys = offset + other_ids[starts[e]:starts[e + 1]]
            side.setdefault(str(e + 1), []).extend((int(k), value) for k in keys)
        offset += n_other
    return offset


def resolve_data_dir(data_dir: str | None, cache_dir: Path) -> Path:
    """Return ``data_dir`` if given, else a downloaded (cached) ml-100k zip."""
    if data_dir:
        p = Path(data_dir)
        if not p.exists():
            raise DataError(f"--data-dir {p} does not exist.")
        return p
    return download_ml100k(cache_dir)

