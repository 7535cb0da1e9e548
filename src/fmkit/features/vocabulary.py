"""Vocabulary: raw ids <-> feature keys, grouped in fields, with side features.

A vocabulary is what ``fmkit prepare`` writes next to the data (``vocabulary.json``) and
what a trained model keeps, so that later commands speak in raw ids ("user 196, item 50").

JSON layout::

    {
      "feature_dim": 2650,
      "user_field": "user", "item_field": "item",
      "fields": [
        {"name": "user", "role": "user", "offset": 0, "size": 943, "one_hot": true,
         "ids": ["1", "2", ...]},                      # key = offset + position in ids
        {"name": "item", "role": "item", "offset": 943, "size": 1682, "one_hot": true,
         "ids": [...]},
        {"name": "item_genre", "role": "item", "offset": 2632, "size": 19, "one_hot": false,
         "ids": ["Action", ...]},
        ...
      ],
      "user_features": {"196": [[2625, 1.0], [2633, 1.0]]},   # side keys of each raw user
      "item_features": {"50": [[2640, 0.5], [2641, 0.5]]},
      "item_counts": [452, 131, ...],                         # training rows per item
      "item_metadata": {"50": {"title": "Star Wars (1977)",   # optional: what a person
                               "genres": ["Action", ...]}}    # reads beside the raw id
    }

``role`` is ``user``, ``item`` or ``context``; ``one_hot`` says that no two keys of the field
occur in the same row (the Bayesian solver samples such a field as one block).
``item_metadata`` (optional, absent from older files) maps a raw item id to facts a person
reads beside it, such as the MovieLens ``title`` and ``genres``; it never changes a feature key.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from fmkit.errors import DataError

FILENAME = "vocabulary.json"


@dataclass(frozen=True)
class Field:
    """A contiguous range of feature keys: ``offset .. offset + size - 1``."""

    name: str
    offset: int
    size: int
    role: str = "context"
    one_hot: bool = True
    ids: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "role": self.role, "offset": self.offset,
                               "size": self.size, "one_hot": self.one_hot}
        if self.ids is not None:
            out["ids"] = list(self.ids)
        return out


@dataclass
class Vocabulary:
    """Fields of feature keys plus per-user and per-item side features."""

    feature_dim: int
    fields: list[Field]
    user_field: str | None = None
    item_field: str | None = None
    user_features: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    item_features: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    item_counts: list[int] | None = None
    item_metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    _index: dict[str, dict[str, int]] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "feature_dim": self.feature_dim,
            "user_field": self.user_field,
            "item_field": self.item_field,
            "fields": [f.to_dict() for f in self.fields],
            "user_features": {k: [[int(a), float(b)] for a, b in v]
                              for k, v in self.user_features.items()},
            "item_features": {k: [[int(a), float(b)] for a, b in v]
                              for k, v in self.item_features.items()},
        }
        if self.item_counts is not None:
            out["item_counts"] = [int(c) for c in self.item_counts]
        if self.item_metadata:
            out["item_metadata"] = {str(k): dict(v) for k, v in self.item_metadata.items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "vocabulary") -> Vocabulary:
        """Parse the JSON layout above; raise DataError naming ``source`` on bad content."""
        try:
            fields = [
                Field(
                    name=str(f["name"]),
                    offset=int(f["offset"]),
                    size=int(f["size"]),
                    role=str(f.get("role", "context")),
                    one_hot=bool(f.get("one_hot", True)),
                    ids=None if f.get("ids") is None else tuple(str(i) for i in f["ids"]),
                )
                for f in data["fields"]
            ]
            vocab = cls(
                feature_dim=int(data["feature_dim"]),
                fields=fields,
                user_field=data.get("user_field"),
                item_field=data.get("item_field"),
                user_features={str(k): [(int(a), float(b)) for a, b in v]
                               for k, v in (data.get("user_features") or {}).items()},
                item_features={str(k): [(int(a), float(b)) for a, b in v]
                               for k, v in (data.get("item_features") or {}).items()},
                item_counts=data.get("item_counts"),
                item_metadata=_metadata(data.get("item_metadata"), source),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{source}: malformed vocabulary ({type(exc).__name__}: {exc}).") \
                from None
        vocab.check(source=source)
        return vocab

    def check(self, *, source: str = "vocabulary") -> None:
        """Raise DataError if fields overlap, leave feature_dim or disagree with their ids."""
        spans = sorted((f.offset, f.offset + f.size, f.name) for f in self.fields)
        for (_, a1, an), (b0, _, bn) in zip(spans, spans[1:], strict=False):
            if b0 < a1:
                raise DataError(f"{source}: fields {an!r} and {bn!r} overlap.")
        for f in self.fields:
            if f.offset < 0 or f.size < 1 or f.offset + f.size > self.feature_dim:
                raise DataError(
                    f"{source}: field {f.name!r} (offset {f.offset}, size {f.size}) lies "
                    f"outside feature_dim={self.feature_dim}."
                )
            if f.ids is not None and len(f.ids) != f.size:
                raise DataError(f"{source}: field {f.name!r} has size {f.size} but "
                                f"{len(f.ids)} ids.")
        names = [f.name for f in self.fields]
        for role_field in (self.user_field, self.item_field):
            if role_field is not None and role_field not in names:
                raise DataError(f"{source}: no field named {role_field!r}.")

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write JSON to ``path`` (a file, or a folder that gets vocabulary.json) atomically."""
        p = Path(path)
        if p.is_dir():
            p = p / FILENAME
        from fmkit.io import paths

        with paths.atomic_write(str(p)) as f:
            f.write(json.dumps(self.to_dict()).encode())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Vocabulary:
        """Read ``path`` (a vocabulary.json, or a folder holding one)."""
        p = Path(path)
        if p.is_dir():
            p = p / FILENAME
        try:
            data = json.loads(p.read_text())
        except OSError as exc:
            raise DataError(f"{p}: cannot read vocabulary: {exc.strerror or exc}.") from None
        except ValueError as exc:
            raise DataError(f"{p}: vocabulary is not valid JSON: {exc}.") from None
        return cls.from_dict(data, source=str(p))

    # ------------------------------------------------------------------ lookups
    def item_title(self, raw_id: str) -> str | None:
        """Return the title recorded for raw item ``raw_id`` (MovieLens), or None."""
        title = self.item_metadata.get(str(raw_id), {}).get("title")
        return None if title is None else str(title)

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise DataError(f"the vocabulary has no field {name!r}; fields: "
                        f"{', '.join(f.name for f in self.fields)}.")

    def key(self, field_name: str, raw_id: str) -> int | None:
        """Return the feature key of ``raw_id`` in ``field_name``, or None if unknown."""
        index = self._index.get(field_name)
        if index is None:
            f = self.field(field_name)
            if f.ids is None:
                raise DataError(f"field {field_name!r} has no raw ids.")
            index = {raw: f.offset + i for i, raw in enumerate(f.ids)}
            self._index[field_name] = index
        return index.get(str(raw_id))

    def ids(self, field_name: str) -> tuple[str, ...]:
        f = self.field(field_name)
        if f.ids is None:
            raise DataError(f"field {field_name!r} has no raw ids.")
        return f.ids

    def groups(self) -> npt.NDArray[np.int64]:
        """Return the field number of every key (F,); keys in no field get their own group."""
        groups = np.full(self.feature_dim, -1, dtype=np.int64)
        for g, f in enumerate(self.fields):
            groups[f.offset : f.offset + f.size] = g
        unassigned = groups < 0
        if unassigned.any():
            groups[unassigned] = len(self.fields)
        return groups

    def role_mask(self, role: str) -> npt.NDArray[np.bool_]:
        """Return which keys (F,) lie in fields of ``role`` ('user', 'item', 'context')."""
        mask = np.zeros(self.feature_dim, bool)
        for f in self.fields:
            if f.role == role:
                mask[f.offset : f.offset + f.size] = True
        return mask

    def entity_rows(self, role: str, raw_ids: Iterable[str]) -> sp.csr_matrix:
        """Return one CSR row per raw id of ``role`` ('user' or 'item'): one-hot + side keys.

        Unknown ids get an empty one-hot part (side features still apply if listed).
        """
        field_name = self.user_field if role == "user" else self.item_field
        if field_name is None:
            raise DataError(f"the vocabulary names no {role} field.")
        side = self.user_features if role == "user" else self.item_features
        indices: list[int] = []
        values: list[float] = []
        offsets = [0]
        for raw in raw_ids:
            raw = str(raw)
            k = self.key(field_name, raw)
            if k is not None:
                indices.append(k)
                values.append(1.0)
            for a, b in side.get(raw, ()):
                indices.append(a)
                values.append(b)
            offsets.append(len(indices))
        return sp.csr_matrix(
            (np.asarray(values, np.float32), np.asarray(indices, np.int64),
             np.asarray(offsets, np.int64)),
            shape=(len(offsets) - 1, self.feature_dim),
        )

    def seen_pairs(self, indices: npt.NDArray[np.int64], offsets: npt.NDArray[np.int64]
                   ) -> sp.csr_matrix | None:
        """Return the (n_users, n_items) matrix of (user, item) pairs found in CSR rows.

        A row contributes when it holds one key of the user field and one of the item field.
        Returns None when the vocabulary has no user or item field.
        """
        if self.user_field is None or self.item_field is None:
            return None
        uf, itf = self.field(self.user_field), self.field(self.item_field)
        rows = np.repeat(np.arange(offsets.shape[0] - 1), np.diff(offsets))
        is_user = (indices >= uf.offset) & (indices < uf.offset + uf.size)
        is_item = (indices >= itf.offset) & (indices < itf.offset + itf.size)
        n_rows = offsets.shape[0] - 1
        user_of = np.full(n_rows, -1, np.int64)
        item_of = np.full(n_rows, -1, np.int64)
        user_of[rows[is_user]] = indices[is_user] - uf.offset
        item_of[rows[is_item]] = indices[is_item] - itf.offset
        ok = (user_of >= 0) & (item_of >= 0)
        m = sp.csr_matrix(
            (np.ones(int(ok.sum()), np.float32), (user_of[ok], item_of[ok])),
            shape=(uf.size, itf.size),
        )
        m.sum_duplicates()
        m.data[:] = 1.0
        return m


def _metadata(value: Any, source: str) -> dict[str, dict[str, Any]]:
    """Parse ``item_metadata``: an object of raw id -> object (absent in older files)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(v, Mapping) for v in value.values()):
        raise DataError(f"{source}: item_metadata must be an object of raw item id -> object.")
    return {str(k): dict(v) for k, v in value.items()}
