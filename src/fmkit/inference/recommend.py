"""Top-k recommendations, similar items and cold start from a trained FM, numpy only.

Shapes use U (users in a chunk), I (candidate items), K (factors) and S (parameter samples).

An FM score splits into a user side and an item side. With ``x = x_u + x_i`` (user keys and
context on one side, item keys and item side features on the other, no key shared)::

    y(u, i) = a(u) + a(i) + <s(u), s(i)>
    s(.)    = sum_j x_j V_j                                  (K,) summed factors of a side
    a(u)    = w0 + x_u . w + 1/2 (|s(u)|^2 - sum_j x_j^2 |V_j|^2)
    a(i)    =      x_i . w + 1/2 (|s(i)|^2 - sum_j x_j^2 |V_j|^2)

so scoring every item for a user is one matrix-vector product with the (I, K + 1) table
``[s(i), a(i)]``, computed once per model and parameter sample. For S samples (MCMC) the
score is the mean over samples of ``link(y_s)``, one product per sample, as in
:class:`fmkit.inference.predictor.Predictor`.

A ``user_item`` model (:attr:`fmkit.artifact.Artifact.user_block`) has no pairs within a
block, so a side's constant has no self-interaction term; instead it holds the pairs
across the blocks inside that side (a context key of the item block on the user side)::

    a(u)    = w0 + x_u . w + <U(x_u), I(x_u)>        U(.), I(.): summed factors of the
    a(i)    =      x_i . w + <U(x_i), I(x_i)>        keys in and out of the user block
    y(u, i) = a(u) + a(i) + <U(x_u), I(x_i)> + <I(x_u), U(x_i)>

The tables are ``[U(x_u), a(u)]`` and ``[I(x_i), a(i)]`` (K + 1 columns, as above) when no
candidate item row has a user-block key, the usual case; otherwise ``[U(x_u), I(x_u), a(u)]``
and ``[I(x_i), U(x_i), a(i)]``. Similar items compare the item factors that meet the users,
s(i) for the ordinary FM and I(x_i) for a ``user_item`` model (the same vectors when the
item rows lie outside the user block).

The raw-id layer needs the model's vocabulary (:mod:`fmkit.features.vocabulary`): its user and
item fields, side features, ``item_counts`` and the training pairs ``seen``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from fmkit.artifact import Artifact
from fmkit.errors import DataError
from fmkit.features.vocabulary import Vocabulary
from fmkit.inference.links import apply_link

logger = logging.getLogger(__name__)

#: Cold-start flags of :class:`Recommendation`.
SIDE_FEATURES = "side_features"
POPULARITY = "popularity"

_CHUNK_FLOATS = 1 << 24  # score-matrix budget per chunk of users: 64 MB of float32


@dataclass(frozen=True)
class TopK:
    """Positions and scores of the best candidates, best first.

    ``ids`` int64 and ``scores`` float32, each (n_rows, k); rows with fewer than ``k``
    candidates are padded with id -1 and score NaN.
    """

    ids: npt.NDArray[np.int64]
    scores: npt.NDArray[np.float32]


@dataclass(frozen=True)
class Recommendation:
    """Items for one user (or items similar to one item), raw ids, best first.

    ``cold_start`` is None for a user seen in training, ``"side_features"`` when an unknown
    user was scored from side features or context only, and ``"popularity"`` when nothing
    was known: the user is then scored as the popularity-weighted average training user
    (:meth:`Recommender.cold_start_row`). Scores are always the model's scores (for a
    binary model, probabilities), and ``min_score`` / ``label_only`` apply to every answer.
    """

    query: str
    items: list[str]
    scores: list[float]
    cold_start: str | None = None
    titles: tuple[str | None, ...] | None = None  # per item, from the vocabulary's metadata

    def to_dict(self, key: str = "user") -> dict[str, Any]:
        """Return ``{"user": ..., "recommendations": [{"item", "score"}...]}`` (JSON-able);
        an item whose title is known also gets ``"title"``."""
        titles = self.titles or (None,) * len(self.items)
        out: dict[str, Any] = {
            key: self.query,
            "recommendations": [{"item": i, "score": s, **({"title": t} if t else {})}
                                for i, s, t in zip(self.items, self.scores, titles, strict=True)],
        }
        if self.cold_start is not None:
            out["cold_start"] = self.cold_start
        return out


def top_k(scores: npt.NDArray[Any], k: int) -> TopK:
    """Return the ``k`` largest finite-or-+inf entries of each row, best first.

    ``-inf`` marks excluded candidates. Ties break by position (lower first). ``scores``
    may be (I,) or (U, I); the result is always 2-D.
    """
    m = np.atleast_2d(np.asarray(scores))
    n_rows, n = m.shape
    k = max(0, min(int(k), n))
    ids = np.full((n_rows, k), -1, np.int64)
    out = np.full((n_rows, k), np.nan, np.float32)
    if k == 0 or n_rows == 0:
        return TopK(ids, out)
    if k < n:
        part = np.argpartition(m, n - k, axis=1)[:, n - k :]
    else:
        part = np.broadcast_to(np.arange(n), (n_rows, n))
    vals = np.take_along_axis(m, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)
    part = np.take_along_axis(part, order, axis=1)
    vals = np.take_along_axis(vals, order, axis=1)
    keep = vals > -np.inf
    ids[keep] = part[keep]
    out[keep] = vals[keep]
    return TopK(ids, out)


def load_recommender(model_dir: str | os.PathLike[str], *,
                     vocabulary: str | os.PathLike[str] | None = None) -> Recommender:
    """Load a model (fmkit folder or SageMaker artifact, local or ``s3://``:
    :func:`fmkit.model_store.load_model`) and return its :class:`Recommender`.

    ``vocabulary`` attaches a vocabulary.json to a model that has none (a SageMaker model).
    """
    from fmkit.model_store import load_model

    return Recommender(load_model(model_dir, vocabulary=vocabulary))


class Recommender:
    """Scores all candidate items at once for users given as CSR rows or raw ids.

    Parameters
    ----------
    artifact : Artifact
        The model; ``S`` parameter samples and its link are honoured.
    vocabulary : Vocabulary, optional
        Defaults to the artifact's; needed for raw ids, exclusions and cold start.
    items : csr_matrix of shape (I, feature_dim), optional
        Candidate item rows; default every id of the vocabulary's item field with its side
        features, in field order (so column ``j`` of ``artifact.seen`` is candidate ``j``).
    item_ids : sequence of str, optional
        Raw ids of ``items`` (default the item field's ids).
    """

    def __init__(
        self,
        artifact: Artifact,
        *,
        vocabulary: Vocabulary | None = None,
        items: sp.csr_matrix | None = None,
        item_ids: Sequence[str] | None = None,
    ) -> None:
        artifact.check()
        self.artifact = artifact
        if vocabulary is None and artifact.vocabulary is not None:
            vocabulary = Vocabulary.from_dict(artifact.vocabulary, source="model vocabulary")
        self.vocabulary = vocabulary
        if items is None:
            if vocabulary is None or vocabulary.item_field is None:
                raise DataError(
                    "recommendations need the model's vocabulary (user and item fields); this "
                    "model has none. Pass a vocabulary.json (--vocabulary) or train with "
                    "fmkit prepare's vocabulary."
                )
            item_ids = list(vocabulary.ids(vocabulary.item_field))
            items = vocabulary.entity_rows("item", item_ids)
        self.item_ids: list[str] = ([str(i) for i in item_ids] if item_ids is not None
                                    else [str(j) for j in range(items.shape[0])])
        if len(self.item_ids) != items.shape[0]:
            raise DataError(f"{len(self.item_ids)} item ids for {items.shape[0]} item rows.")
        self._position = {raw: j for j, raw in enumerate(self.item_ids)}
        self.n_items = int(items.shape[0])
        self._w0 = artifact.w0.astype(np.float64)
        self._w = artifact.w
        self._V = artifact.V
        self._user_block = artifact.user_block  # (F,) bool for user_item models, else None
        # user_item: do candidate rows hold user-block keys (the tables then need 2K factors)?
        self._cross = self._user_block is not None and bool(np.any(
            self._user_block[sp.csr_matrix(items).indices]))
        self._norms = (None if self._user_block is not None else
                       np.stack([np.einsum("ij,ij->i", artifact.V[s], artifact.V[s])
                                 for s in range(artifact.num_samples)]))  # (S, F) |V_j|^2
        # (S, I, K + 1): [s(i), a(i)] per sample, float32 (see the module docstring for
        # user_item models)
        self._item_table = np.stack([self._side_table(items, s, user_side=False)
                                     for s in range(artifact.num_samples)])
        self._unit: npt.NDArray[np.float32] | None = None
        self._cold_row: sp.csr_matrix | None = None

    # ------------------------------------------------------------------ tables
    def _side_table(self, rows: sp.csr_matrix, s: int, *, user_side: bool
                    ) -> npt.NDArray[np.float32]:
        """Return (n, K + 1): summed factors and the side's constant for sample ``s``.

        The user side's constant includes w0. Products stay in float32 so that no float64
        copy of V (F x K) is ever made; a row sums only its few non-zeros.
        """
        if not (sp.issparse(rows) and rows.format == "csr" and rows.dtype == np.float32):
            rows = sp.csr_matrix(rows, dtype=np.float32)
        if self._user_block is not None:
            return self._user_item_table(rows, s, user_side=user_side)
        assert self._norms is not None
        sq = rows.multiply(rows).tocsr()
        factors = np.asarray(rows @ self._V[s], np.float64)  # (n, K)
        const = (np.asarray(rows @ self._w[s], np.float64).reshape(-1)
                 + 0.5 * (np.einsum("ij,ij->i", factors, factors)
                          - np.asarray(sq @ self._norms[s], np.float64).reshape(-1)))
        return self._table(factors, const, s, user_side=user_side)

    def _user_item_table(self, rows: sp.csr_matrix, s: int, *, user_side: bool
                         ) -> npt.NDArray[np.float32]:
        """:meth:`_side_table` of a ``user_item`` model: ``[U(x), a]`` (user side) or
        ``[I(x), a]`` (item side), with the other block's factors in between when the item
        rows hold user-block keys."""
        assert self._user_block is not None
        in_u = self._user_block[rows.indices]
        rows_u = sp.csr_matrix((np.where(in_u, rows.data, 0), rows.indices, rows.indptr),
                               shape=rows.shape)
        rows_i = sp.csr_matrix((np.where(in_u, 0, rows.data), rows.indices, rows.indptr),
                               shape=rows.shape)
        fu = np.asarray(rows_u @ self._V[s], np.float64)  # (n, K)
        fi = np.asarray(rows_i @ self._V[s], np.float64)
        const = (np.asarray(rows @ self._w[s], np.float64).reshape(-1)
                 + np.einsum("ij,ij->i", fu, fi))
        first, second = (fu, fi) if user_side else (fi, fu)
        factors = np.concatenate([first, second], axis=1) if self._cross else first
        return self._table(factors, const, s, user_side=user_side)

    def _table(self, factors: npt.NDArray[np.float64], const: npt.NDArray[np.float64], s: int,
               *, user_side: bool) -> npt.NDArray[np.float32]:
        """Return ``[factors, const]`` in float32, w0 added to the user side's constant."""
        if user_side:
            const = const + self._w0[s]
        out = np.empty((factors.shape[0], factors.shape[1] + 1), np.float32)
        out[:, :-1] = factors
        out[:, -1] = const
        return out

    def _user_tables(self, users: sp.csr_matrix) -> npt.NDArray[np.float32]:
        """Return (S, U, K + 1): ``[s(u), 1]`` rows, the constant a(u) kept apart below."""
        return np.stack([self._side_table(users, s, user_side=True)
                         for s in range(self.artifact.num_samples)])

    def score_rows(self, users: sp.csr_matrix) -> npt.NDArray[np.float32]:
        """Return scores (U, I) of every candidate item for each user row (dense)."""
        return self._scores(self._user_tables(users))

    def _partial(self, tables: npt.NDArray[np.float32], s: int
                 ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Return ``(y - a(u), a(u))`` for sample ``s``: (U, I) and (U,), float32."""
        user = tables[s].copy()
        const = user[:, -1].copy()
        user[:, -1] = 1.0  # picks up a(i) from the item table's last column
        return user @ self._item_table[s].T, const  # (U, I): <s(u), s(i)> + a(i)

    def _scores(self, tables: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        S, U = tables.shape[0], tables.shape[1]
        link = self.artifact.link
        total: npt.NDArray[np.float32] | None = None
        for s in range(S):
            y, const = self._partial(tables, s)
            y += const[:, None]
            if link != "identity":
                y = apply_link(link, y).astype(np.float32, copy=False)  # type: ignore[arg-type]
            if total is None:
                total = y
            else:
                total += y
        assert total is not None
        if S > 1:
            total /= S
        return total.reshape(U, self.n_items)

    # ------------------------------------------------------------------ rows layer
    def recommend_rows(
        self,
        users: sp.csr_matrix,
        *,
        k: int = 10,
        exclude: sp.csr_matrix | None = None,
        min_score: float | None = None,
        chunk_size: int | None = None,
    ) -> Iterator[tuple[int, TopK]]:
        """Yield ``(first_row, TopK)`` for chunks of user rows, never holding all U x I scores.

        Parameters
        ----------
        users : csr_matrix of shape (U, feature_dim)
            One row per user (its one-hot key, side features and any context).
        k : int, default=10
            Items per user, clipped to the number of candidates.
        exclude : csr_matrix of shape (U, I), optional
            Non-zeros mark items never returned for that user (already rated).
        min_score : float, optional
            Drop items scoring below this (rows are then padded with -1 / NaN).
        chunk_size : int, optional
            Users per chunk; default keeps each chunk's score matrix near 64 MB.
        """
        if not (sp.issparse(users) and users.format == "csr"):
            users = sp.csr_matrix(users)
        n_users = users.shape[0]
        if chunk_size is None:
            chunk_size = max(1, _CHUNK_FLOATS // max(1, self.n_items))
        if exclude is not None:
            if not (sp.issparse(exclude) and exclude.format == "csr"):
                exclude = sp.csr_matrix(exclude)
            if exclude.shape != (n_users, self.n_items):
                raise DataError(f"exclude must have shape ({n_users}, {self.n_items}); got "
                                f"{exclude.shape}.")
        for start in range(0, n_users, chunk_size):
            stop = min(n_users, start + chunk_size)
            chunk = users if (start, stop) == (0, n_users) else users[start:stop]
            tables = self._user_tables(chunk)
            one = tables.shape[0] == 1
            # one sample: the link is monotone and a(u) is one constant per row, so rank the
            # partial scores and finish only the k selected (saves passes over all items)
            scores = self._partial(tables, 0)[0] if one else self._scores(tables)
            if exclude is not None:  # no scipy slicing: it costs more than the chunk's work
                ptr = exclude.indptr[start : stop + 1]
                cols = exclude.indices[ptr[0] : ptr[-1]]
                rows = np.repeat(np.arange(stop - start), np.diff(ptr))
                scores[rows, cols] = -np.inf
            if not one and min_score is not None:
                scores[scores < min_score] = -np.inf
            top = top_k(scores, k)
            if one:
                y = top.scores.astype(np.float64) + tables[0][:, -1:].astype(np.float64)
                final = apply_link(self.artifact.link, y).astype(np.float32)
                if min_score is not None:  # sorted best first: the dropped ones are the tail
                    final[final < min_score] = np.nan
                keep = ~np.isnan(final)
                top = TopK(np.where(keep, top.ids, -1), np.where(keep, final, np.nan)
                           .astype(np.float32))
            yield start, top

    # ------------------------------------------------------------------ raw-id layer
    def _vocab(self) -> Vocabulary:
        if self.vocabulary is None or self.vocabulary.user_field is None:
            raise DataError("recommendations by raw id need a vocabulary with a user field.")
        return self.vocabulary

    def user_position(self, raw_id: str) -> int | None:
        """Return the user's row in ``seen`` (position in the user field), or None if unknown."""
        vocab = self._vocab()
        assert vocab.user_field is not None
        key = vocab.key(vocab.user_field, str(raw_id))
        return None if key is None else key - vocab.field(vocab.user_field).offset

    def user_rows(self, raw_ids: Sequence[str],
                  context: Mapping[str, Any] | None = None) -> sp.csr_matrix:
        """Return CSR rows for raw user ids (one-hot + side features) plus ``context`` keys.

        ``context`` maps a field name to a raw id of that field (one-hot, value 1) or to a
        number for a one-key field (the value is that number).

        Raises
        ------
        DataError
            An unknown context field or value.
        """
        vocab = self._vocab()
        rows = vocab.entity_rows("user", [str(u) for u in raw_ids])
        if not context:
            return rows
        keys, vals = [], []
        for name, value in context.items():
            f = vocab.field(str(name))
            if isinstance(value, (int, float)) and not isinstance(value, bool) and f.size == 1:
                keys.append(f.offset)
                vals.append(float(value))
                continue
            key = vocab.key(f.name, str(value)) if f.ids is not None else None
            if key is None:
                raise DataError(f"context: {value!r} is not a known value of field {f.name!r}.")
            keys.append(key)
            vals.append(1.0)
        extra = sp.csr_matrix(
            (np.tile(np.asarray(vals, np.float32), rows.shape[0]),
             np.tile(np.asarray(keys, np.int64), rows.shape[0]),
             np.arange(rows.shape[0] + 1, dtype=np.int64) * len(keys)),
            shape=rows.shape,
        )
        return sp.csr_matrix(rows + extra)

    def _exclusions(self, positions: Sequence[int | None], exclude_seen: bool,
                    exclude: Iterable[str] | None) -> sp.csr_matrix:
        n = len(positions)
        cols: list[npt.NDArray[np.int64]] = []
        extra = np.asarray(sorted({self._position[str(i)] for i in (exclude or ())
                                   if str(i) in self._position}), np.int64)
        seen = self.artifact.seen
        for pos in positions:
            c = extra  # positions of candidates already
            if exclude_seen and seen is not None and pos is not None and pos < seen.shape[0]:
                row = seen.indices[seen.indptr[pos]:seen.indptr[pos + 1]].astype(np.int64)
                c = np.unique(np.concatenate([extra, row]))
                c = c[c < self.n_items]  # seen may be built on more items than the candidates
            cols.append(c)
        indptr = np.zeros(n + 1, np.int64)
        np.cumsum([c.shape[0] for c in cols], out=indptr[1:])
        indices = np.concatenate(cols) if cols else np.zeros(0, np.int64)
        return sp.csr_matrix((np.ones(indices.shape[0], np.float32), indices, indptr),
                             shape=(n, self.n_items))

    def recommend(
        self,
        user: str,
        *,
        k: int = 10,
        exclude_seen: bool = True,
        exclude: Iterable[str] | None = None,
        context: Mapping[str, Any] | None = None,
        min_score: float | None = None,
        label_only: bool = False,
    ) -> Recommendation:
        """Return the ``k`` best items for the raw user id ``user``, best first.

        Parameters
        ----------
        user : str
            Raw user id. An unknown id gets the cold-start answer: scored from its side
            features and ``context`` when it has any, else as the popularity-weighted
            average training user (:meth:`cold_start_row`).
        k : int, default=10
        exclude_seen : bool, default=True
            Leave out items the user interacted with in training (``artifact.seen``).
        exclude : iterable of str, optional
            More raw item ids to leave out.
        context : mapping, optional
            Context fields for this request (see :meth:`user_rows`).
        min_score : float, optional
            Return only items scoring at least this.
        label_only : bool, default=False
            Binary models: return only items whose predicted_label is 1 (score >= 0.5).
        """
        return next(iter(self.recommend_many([user], k=k, exclude_seen=exclude_seen,
                                             exclude=exclude, context=context,
                                             min_score=min_score, label_only=label_only)))

    def recommend_many(
        self,
        users: Sequence[str],
        *,
        k: int = 10,
        exclude_seen: bool = True,
        exclude: Iterable[str] | None = None,
        context: Mapping[str, Any] | None = None,
        min_score: float | None = None,
        label_only: bool = False,
        chunk_size: int | None = None,
    ) -> Iterator[Recommendation]:
        """Yield one :class:`Recommendation` per raw user id, in order, chunk by chunk.

        Every user x item score is computed, but only a chunk of users at a time (about
        64 MB of scores), so any number of users fits in memory.
        """
        if k < 0:
            raise DataError(f"k must be >= 0; got {k}.")
        threshold = min_score
        if label_only:
            if self.artifact.predictor_type != "binary_classifier":
                raise DataError("label_only applies to binary_classifier models only; use "
                                "min_score for regressors.")
            threshold = 0.5 if threshold is None else max(threshold, 0.5)
        vocab = self._vocab()
        exclude = list(exclude or ())
        chunk = chunk_size or max(1, _CHUNK_FLOATS // max(1, self.n_items))
        raw_all = [str(u) for u in users]
        popular: TopK | None = None
        for start in range(0, len(raw_all), chunk):
            raw = raw_all[start : start + chunk]
            positions = [self.user_position(u) for u in raw]
            cold = [p is None and u not in vocab.user_features and not context
                    for u, p in zip(raw, positions)]
            scored = [i for i, c in enumerate(cold) if not c]
            out: dict[int, Recommendation] = {}
            if scored:
                rows = self.user_rows([raw[i] for i in scored], context)
                excl = self._exclusions([positions[i] for i in scored], exclude_seen, exclude)
                for first, top in self.recommend_rows(rows, k=k, exclude=excl,
                                                      min_score=threshold, chunk_size=chunk):
                    for r in range(top.ids.shape[0]):
                        i = scored[first + r]
                        flag = None if positions[i] is not None else SIDE_FEATURES
                        out[i] = self._result(raw[i], top.ids[r], top.scores[r], flag)
            for i, c in enumerate(cold):
                if not c:
                    yield out[i]
                    continue
                if popular is None:  # the same for every cold user of the call
                    popular = self._popular_top(k, exclude, threshold)
                yield self._result(raw[i], popular.ids[0], popular.scores[0], POPULARITY)

    def _result(self, query: str, ids: npt.NDArray[np.int64], scores: npt.NDArray[np.float32],
                flag: str | None) -> Recommendation:
        keep = ids >= 0
        items = [self.item_ids[j] for j in ids[keep]]
        vocab = self.vocabulary
        titles = (tuple(vocab.item_title(i) for i in items)
                  if vocab is not None and vocab.item_metadata else None)
        return Recommendation(query, items, [float(s) for s in scores[keep]], flag, titles)

    def cold_start_row(self) -> sp.csr_matrix:
        """Return the (1, feature_dim) row scored for a user the model knows nothing about.

        It is the popularity-weighted average training user: the mean of the user field's
        rows (one-hot key and user side features), each weighted by that user's number of
        training interactions (``artifact.seen``), so a user who rated 400 movies counts
        400 times as much as one who rated one. Without ``seen`` every user of the field
        weighs the same; a vocabulary without a user field gives the empty row (the model's
        score of the items alone). The row's scores are the model's own predictions for it,
        like any other answer's.
        """
        if self._cold_row is not None:
            return self._cold_row
        vocab = self.vocabulary
        feature_dim = self.artifact.feature_dim
        row = sp.csr_matrix((1, feature_dim), dtype=np.float32)
        if vocab is not None and vocab.user_field is not None:
            f = vocab.field(vocab.user_field)
            ids = list(f.ids) if f.ids is not None else []
            if ids:
                weights = np.ones(len(ids), np.float64)
                seen = self.artifact.seen
                if seen is not None:
                    counts = np.diff(sp.csr_matrix(seen).indptr).astype(np.float64)
                    weights = np.zeros(len(ids), np.float64)
                    n = min(len(ids), counts.shape[0])
                    weights[:n] = counts[:n]
                    if weights.sum() <= 0:
                        weights[:] = 1.0
                weights /= weights.sum()
                users = vocab.entity_rows("user", ids)
                row = sp.csr_matrix(sp.csr_matrix(weights[None, :]) @ users, dtype=np.float32)
        self._cold_row = row
        return row

    def popular_scores(self) -> npt.NDArray[np.float32]:
        """Return the cold-start score (I,) of every candidate: the model's scores of
        :meth:`cold_start_row`."""
        scores: npt.NDArray[np.float32] = self.score_rows(self.cold_start_row())[0]
        return scores

    def _popular_top(self, k: int, exclude: Iterable[str], min_score: float | None) -> TopK:
        """The cold-start answer: the best items for :meth:`cold_start_row`, through the
        same path as any user (exclusions, then ``min_score``)."""
        excl = self._exclusions([None], False, exclude)
        return next(iter(self.recommend_rows(self.cold_start_row(), k=k, exclude=excl,
                                             min_score=min_score)))[1]

    # ------------------------------------------------------------------ similar items
    def similar(self, item: str, *, k: int = 10) -> Recommendation:
        """Return the ``k`` items whose summed factors s(i) are most cosine-similar to ``item``.

        For a ``user_item`` model the factors are I(x_i), those that meet the user block.

        With several parameter samples the similarity is the mean of per-sample cosines.

        Raises
        ------
        DataError
            ``item`` is not a candidate item.
        """
        pos = self._position.get(str(item))
        if pos is None:
            raise DataError(f"unknown item {item!r}: not among the model's {self.n_items} items.")
        if self._unit is None:
            # s(i), or I(x_i) for user_item models: the factors that meet the users
            factors = self._item_table[:, :, : self.artifact.num_factors].astype(np.float32)
            norms = np.linalg.norm(factors, axis=2, keepdims=True)
            self._unit = factors / np.maximum(norms, 1e-12)
        sims = np.mean(self._unit @ self._unit[:, pos, :, None], axis=0)[:, 0]  # (I,)
        sims[pos] = -np.inf
        top = top_k(sims, k)
        return self._result(str(item), top.ids[0], top.scores[0], None)
