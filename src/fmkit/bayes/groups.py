"""Prior groups of feature keys and the sampling blocks of a design matrix.

Two different partitions of the F feature keys are used by the Bayesian solvers:

- **groups** (one int per key, shape (F,)): keys sharing the hyperpriors ``mu`` and
  ``lambda`` of ``w`` and of each factor column. They come from the vocabulary
  ``fmkit prepare`` writes (:meth:`fmkit.features.vocabulary.Vocabulary.groups`) or from a
  ``--groups`` file read by :func:`read_groups`.
- **blocks** (contiguous key ranges): keys whose parameters are sampled together. In a
  block flagged ``independent`` no two keys share a row (a one-hot field), so their
  conditionals do not depend on each other and are computed at once; other blocks are
  updated one key after the other. :func:`plan_blocks` finds them from the data.

A ``--groups`` file is either

- JSON: an object mapping a group name to a ``[start, stop)`` key range, such as
  ``{"user": [0, 943], "item": [943, 2625], "genre": [2625, 2644]}``, or to a list of such
  ranges; a vocabulary.json (an object with ``"fields"``) is accepted too and gives one
  group per field; or
- text: one group name per line, line ``k`` (0-based, ``#`` comments and blank lines not
  allowed in between) naming the group of feature key ``k``.

Keys that no group covers go to one extra group.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from fmkit.errors import DataError

GroupArray = npt.NDArray[np.int64]


def read_groups(path: str | os.PathLike[str]) -> GroupArray:
    """Read a ``--groups`` file (JSON ranges, a vocabulary.json, or one name per line).

    Parameters
    ----------
    path : path-like
        The file; see the module docstring for the two layouts.

    Returns
    -------
    ndarray of int64, shape (F,)
        The group number of every key, numbered in order of first appearance; F is the
        largest range end (JSON) or the number of lines (text). Keys in no range get the
        number after the last group.

    Raises
    ------
    DataError
        The file cannot be read, or names the file and the group or line that is wrong:
        a range that is not two ints ``0 <= start < stop``, overlapping ranges, an empty
        line.
    """
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise DataError(f"{p}: cannot read groups file: {exc.strerror or exc}.") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{p}: groups file is not UTF-8 text (byte {exc.start}).") from None
    if text.lstrip()[:1] in ("{", "["):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise DataError(f"{p}: groups file is not valid JSON: {exc}.") from None
        if isinstance(data, dict) and "fields" in data:
            from fmkit.features.vocabulary import Vocabulary

            return Vocabulary.from_dict(data, source=str(p)).groups()
        return _groups_from_ranges(data, str(p))
    return _groups_from_lines(text, str(p))


def _groups_from_ranges(data: Any, source: str) -> GroupArray:
    if not isinstance(data, dict) or not data:
        raise DataError(f"{source}: expected a JSON object mapping group names to "
                        '[start, stop) key ranges, such as {"user": [0, 943]}.')
    spans: list[tuple[int, int, int, str]] = []
    for number, (name, value) in enumerate(data.items()):
        ranges = value if (isinstance(value, list) and value
                           and all(isinstance(r, list) for r in value)) else [value]
        for r in ranges:
            ok = (isinstance(r, list) and len(r) == 2
                  and all(isinstance(v, int) and not isinstance(v, bool) for v in r)
                  and 0 <= r[0] < r[1])
            if not ok:
                raise DataError(f"{source}, group {name!r}: expected a key range [start, stop) "
                                f"of two ints with 0 <= start < stop; got {r!r}.")
            spans.append((r[0], r[1], number, name))
    spans.sort()
    for (a0, a1, _, an), (b0, _, _, bn) in zip(spans, spans[1:]):
        if b0 < a1:
            raise DataError(f"{source}: groups {an!r} and {bn!r} overlap at key {b0}.")
    size = max(s[1] for s in spans)
    groups = np.full(size, len(data), dtype=np.int64)
    for start, stop, number, _ in spans:
        groups[start:stop] = number
    return groups


def _groups_from_lines(text: str, source: str) -> GroupArray:
    lines = text.splitlines()
    if not lines:
        raise DataError(f"{source}: groups file is empty; expected one group name per "
                        "feature key, one per line.")
    numbers: dict[str, int] = {}
    groups = np.empty(len(lines), dtype=np.int64)
    for k, line in enumerate(lines):
        name = line.strip()
        if not name:
            raise DataError(f"{source}, line {k + 1}: empty group name for feature key {k}; "
                            "every line must name the group of its key.")
        groups[k] = numbers.setdefault(name, len(numbers))
    return groups


def check_groups(groups: Any, feature_dim: int, *, source: str = "groups") -> GroupArray:
    """Return ``groups`` as int64 (F,) renumbered 0..G-1; pad keys past its end.

    Keys at or beyond ``len(groups)`` (features the groups file does not know) get one
    extra group of their own.

    Raises
    ------
    DataError
        ``groups`` is not 1-D integral, is longer than ``feature_dim`` or holds negatives.
    """
    arr = np.asarray(groups)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise DataError(f"{source} must be a 1-D int array with one group per feature key; "
                        f"got shape {arr.shape}, dtype {arr.dtype}.")
    if arr.shape[0] > feature_dim:
        raise DataError(f"{source} names {arr.shape[0]} feature keys but the data has "
                        f"feature_dim={feature_dim}.")
    if arr.size and arr.min() < 0:
        raise DataError(f"{source}: group numbers must be >= 0; key {int(np.argmin(arr))} "
                        f"has {int(arr.min())}.")
    if arr.shape[0] < feature_dim:
        extra = (int(arr.max()) + 1) if arr.size else 0
        arr = np.concatenate([arr, np.full(feature_dim - arr.shape[0], extra)])
    _, renumbered = np.unique(arr, return_inverse=True)
    return renumbered.astype(np.int64).reshape(-1)


@dataclass(frozen=True)
class Block:
    """Keys ``start .. stop - 1`` sampled together; ``independent``: no shared rows."""

    start: int
    stop: int
    independent: bool


def plan_blocks(csc: sp.csc_matrix, *, max_block: int | None = None) -> list[Block]:
    """Split the keys into contiguous blocks in which no two keys share a row.

    Greedy, in key order: a key joins the current block unless one of its rows already
    holds a key of the block. Runs of single keys that co-occur with their neighbours
    (a multi-hot field such as genres) are merged into one sequential block.

    Parameters
    ----------
    csc : csc_matrix (N, F)
        The design matrix with duplicates summed.
    max_block : int, optional
        Cap on keys per independent block (for tests); unlimited by default.
    """
    n_rows, n_keys = csc.shape
    cap = n_keys + 1 if max_block is None else max_block
    indptr = csc.indptr.astype(np.int64)
    rows = csc.indices.astype(np.int64)
    try:
        starts = _block_starts_numba(indptr, rows, n_rows, n_keys, cap)
    except ImportError:
        starts = _block_starts(indptr, rows, n_rows, n_keys, cap)
    bounds = [int(k) for k in starts] + [n_keys]
    raw = [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]
    out: list[Block] = []
    for a, b in raw:
        single = b - a == 1
        if single and out and not out[-1].independent:
            out[-1] = Block(out[-1].start, b, False)
        else:
            out.append(Block(a, b, not single))
    return out


def _block_starts(indptr: Any, rows: Any, n_rows: int, n_keys: int, cap: int) -> list[int]:
    """First key of every greedy block (see :func:`plan_blocks`); plain Python."""
    owner = np.full(n_rows, -1, dtype=np.int64)
    starts = [0]
    block = 0
    for key in range(n_keys):
        r = rows[indptr[key]:indptr[key + 1]]
        if (r.size and np.any(owner[r] == block)) or key - starts[-1] >= cap:
            starts.append(key)
            block += 1
        owner[r] = block
    return starts


def _block_starts_numba(indptr: Any, rows: Any, n_rows: int, n_keys: int, cap: int) -> Any:
    """The same as :func:`_block_starts`, compiled (100x faster for 10^5 keys)."""
    from fmkit.bayes.kernels import HAVE_NUMBA, block_starts

    if not HAVE_NUMBA:
        raise ImportError("numba")
    return block_starts(indptr, rows, n_rows, n_keys, cap)
