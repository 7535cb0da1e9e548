"""A one-pass libsvm parser in numba: the fast path of :mod:`fmkit.io.libsvm`.

The numpy parser in ``libsvm.py`` makes several passes over a block (separators, token
starts, one ``float`` parse of every number); this kernel walks the bytes once, line by
line: ``label key:value key:value ...``. Numbers are parsed as a decimal mantissa and
exponent and scaled by an exact power of ten (Clinger's fast path), which is correctly
rounded to float64 whenever the mantissa has at most 15 significant digits and the exponent
is within +-22, as printed floats are; anything else (more digits, ``nan``, ``inf``, ``#``
comments, ``qid:``, a malformed token) makes the kernel decline, and the block goes to the
numpy parser, which also words the error. Both give float64 values then rounded to float32,
so the two paths return identical arrays. A one-digit value (one-hot data's ``k:1``) skips
the general number parser, which more than doubles the speed on such files.

Used when numba is installed (the ``bayes``/``all`` extras); ``parse_block`` returns None
otherwise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fmkit.threads import concurrently

try:
    import numba
except ImportError:  # pragma: no cover - numba is optional
    numba = None

_POW10 = np.asarray([10.0**k for k in range(23)], np.float64)
_OK, _DECLINE = 0, 1


def _number(buf: Any, pos: int, end: int, pow10: Any) -> tuple[float, int, int]:  # pragma: no cover
    """Parse a decimal float at ``pos``; return (value, next position, status)."""
    neg = False
    if pos < end and (buf[pos] == 45 or buf[pos] == 43):  # - +
        neg = buf[pos] == 45
        pos += 1
    mant = 0
    digits = 0
    exp10 = 0
    seen = False
    while pos < end and 48 <= buf[pos] <= 57:
        if digits < 19:
            mant = mant * 10 + (buf[pos] - 48)
            if mant > 0:
                digits += 1
        else:
            exp10 += 1
        pos += 1
        seen = True
    if pos < end and buf[pos] == 46:  # .
        pos += 1
        while pos < end and 48 <= buf[pos] <= 57:
            if digits < 19:
                mant = mant * 10 + (buf[pos] - 48)
                if mant > 0:
                    digits += 1
                exp10 -= 1
            pos += 1
            seen = True
    if not seen:
        return 0.0, pos, _DECLINE
    if pos < end and (buf[pos] == 101 or buf[pos] == 69):  # e E
        pos += 1
        eneg = False
        if pos < end and (buf[pos] == 45 or buf[pos] == 43):
            eneg = buf[pos] == 45
            pos += 1
        e = 0
        eseen = False
        while pos < end and 48 <= buf[pos] <= 57:
            if e < 10000:
                e = e * 10 + (buf[pos] - 48)
            pos += 1
            eseen = True
        if not eseen:
            return 0.0, pos, _DECLINE
        exp10 += -e if eneg else e
    if digits > 15 or exp10 > 22 or exp10 < -22:
        return 0.0, pos, _DECLINE
    value = float(mant)
    value = value * pow10[exp10] if exp10 >= 0 else value / pow10[-exp10]
    return (-value if neg else value), pos, _OK


def _parse(buf: Any, pos: int, n: int, keys: Any, vals: Any, labels: Any, offsets: Any,
           row_line: Any, nnz0: int, row0: int, pow10: Any
           ) -> tuple[int, int, int, int]:  # pragma: no cover - compiled by numba
    """Parse the whole lines of ``buf[pos:n]``, storing pairs from ``nnz0`` and rows from
    ``row0`` (``offsets[row0 + r + 1]`` is the absolute end of row r); return (rows,
    stored values, lines, status). Values and labels are rounded to float32 on store."""
    line = 0
    rows = 0
    nnz = 0
    while pos < n:
        # one line: skip leading blanks
        while pos < n and (buf[pos] == 32 or buf[pos] == 9 or buf[pos] == 13):
            pos += 1
        if pos >= n:
            break
        if buf[pos] == 10:
            pos += 1
            line += 1
            continue
        label, pos, status = _number(buf, pos, n, pow10)
        if status != _OK:
            return rows, nnz, line, _DECLINE
        labels[row0 + rows] = label
        while True:
            if pos < n and not (buf[pos] == 32 or buf[pos] == 9 or buf[pos] == 13
                                or buf[pos] == 10):
                return rows, nnz, line, _DECLINE  # a token glued to the previous one
            while pos < n and (buf[pos] == 32 or buf[pos] == 9 or buf[pos] == 13):
                pos += 1
            if pos >= n or buf[pos] == 10:
                break
            key = 0
            kd = 0
            while pos < n and 48 <= buf[pos] <= 57:
                if kd < 18:
                    key = key * 10 + (buf[pos] - 48)
                kd += 1
                pos += 1
            if kd == 0 or kd > 17 or pos >= n or buf[pos] != 58:  # ':'
                return rows, nnz, line, _DECLINE
            pos += 1
            d = buf[pos] - 48 if pos < n else -1
            c = buf[pos + 1] if pos + 1 < n else 10
            if 0 <= d <= 9 and (c == 32 or c == 10 or c == 9 or c == 13):
                value = float(d)  # one digit, as one-hot data's 1: no general parse
                pos += 1
            else:
                value, pos, status = _number(buf, pos, n, pow10)
                if status != _OK:
                    return rows, nnz, line, _DECLINE
            keys[nnz0 + nnz] = key
            vals[nnz0 + nnz] = value
            nnz += 1
        row_line[row0 + rows] = line
        rows += 1
        offsets[row0 + rows] = nnz0 + nnz
        if pos < n:
            pos += 1  # the newline
        line += 1
    return rows, nnz, line, _OK


def _count(buf: Any, lo: int, hi: int) -> tuple[int, int]:  # pragma: no cover - numba
    """Return the number of ':' and of newlines in ``buf[lo:hi]``."""
    colons = 0
    newlines = 0
    for p in range(lo, hi):
        colons += buf[p] == 58
        newlines += buf[p] == 10
    return colons, newlines


if numba is not None:
    _number = numba.njit(cache=True, inline="always")(_number)  # type: ignore[assignment]
    _parse = numba.njit(cache=True, nogil=True)(_parse)  # type: ignore[assignment]
    _count = numba.njit(cache=True, nogil=True)(_count)  # type: ignore[assignment]

#: blocks at least this long are parsed in two halves on two threads (the kernel releases
#: the GIL; fmkit.threads), each writing its own part of the output arrays
PARALLEL_BYTES = 1 << 20


def parse_block(text: bytes, *, threads: int = 2) -> tuple[Any, Any, Any, Any, Any] | None:
    """Parse a block of whole libsvm lines.

    Returns (keys int64 as written, values float32, labels float32, offsets int64, line of
    each row counted from 0 in the block), or None when numba is missing or the block needs
    the general parser (comments, qid, nan/inf, long mantissas, or a malformed line).
    Blocks of ``PARALLEL_BYTES`` or more are cut at a newline and parsed in two threads
    when ``threads`` > 1; the result is the same.
    """
    if numba is None:
        return None
    # no search for '#' or 'qid:' first: the parser declines at either (a token that is
    # not index:value), which costs nothing on the blocks without them
    buf = np.frombuffer(text, np.uint8)
    n = buf.shape[0]
    cut = n
    if threads > 1 and n >= PARALLEL_BYTES:
        cut = text.rfind(b"\n", 0, n // 2) + 1
        cut = n if cut <= 0 else cut
    c1, l1 = _count(buf, 0, cut)
    c2, l2 = _count(buf, cut, n) if cut < n else (0, 0)
    # rows 0..l1 of the first part, then the second's from row l1 + 1
    keys = np.empty(c1 + c2, np.int64)
    vals = np.empty(c1 + c2, np.float32)
    labels = np.empty(l1 + l2 + 2, np.float32)
    offsets = np.empty(l1 + l2 + 3, np.int64)
    row_line = np.empty(l1 + l2 + 2, np.int64)
    offsets[0] = 0
    calls = [lambda: _parse(buf, 0, cut, keys, vals, labels, offsets, row_line, 0, 0,
                            _POW10)]
    if cut < n:
        calls.append(lambda: _parse(buf, cut, n, keys, vals, labels, offsets, row_line, c1,
                                    l1 + 1, _POW10))
    parsed = concurrently(*calls)
    rows, nnz, lines, status = parsed[0]
    if cut < n:
        rows2, nnz2, _, status2 = parsed[1]
        if status != _OK or nnz != c1:
            return None
        status = status2
        if rows2:  # move the second part's rows down to follow the first's
            src, dst = slice(l1 + 1, l1 + 1 + rows2), slice(rows, rows + rows2)
            labels[dst] = labels[src]
            row_line[dst] = row_line[src] + lines
            offsets[rows + 1:rows + rows2 + 1] = offsets[l1 + 2:l1 + rows2 + 2]
        rows += rows2
        nnz += nnz2
    if status != _OK:
        return None
    return keys[:nnz], vals[:nnz], labels[:rows], offsets[:rows + 1], row_line[:rows]
