"""A one-pass libsvm parser in numba: the fast path of :mod:`fmkit.io.libsvm`.

The numpy parser in ``libsvm.py`` makes several passes over a block (separators, token
starts, one ``float`` parse of every number); this kernel walks the bytes once, line by
line: ``label key:value key:value ...``. Numbers are parsed as a decimal mantissa and
exponent and scaled by an exact power of ten (Clinger's fast path), which is correctly
rounded to float64 whenever the mantissa has at most 15 significant digits and the exponent
is within +-22, as printed floats are; anything else (more digits, ``nan``, ``inf``, ``#``
comments, ``qid:``, a malformed token) makes the kernel decline, and the block goes to the
numpy parser, which also words the error. Both give float64 values then rounded to float32,
so the two paths return identical arrays.

Used when numba is installed (the ``bayes``/``all`` extras); ``parse_block`` returns None
otherwise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

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


def _parse(buf: Any, keys: Any, vals: Any, labels: Any, offsets: Any, row_line: Any,
           pow10: Any) -> tuple[int, int, int]:  # pragma: no cover - compiled by numba
    """Parse whole lines; return (rows, stored values, status)."""
    n = buf.shape[0]
    pos = 0
    line = 0
    rows = 0
    nnz = 0
    offsets[0] = 0
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
            return rows, nnz, _DECLINE
        labels[rows] = label
        while True:
            if pos < n and not (buf[pos] == 32 or buf[pos] == 9 or buf[pos] == 13
                                or buf[pos] == 10):
                return rows, nnz, _DECLINE  # a token glued to the previous one
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
                return rows, nnz, _DECLINE
            pos += 1
            value, pos, status = _number(buf, pos, n, pow10)
            if status != _OK:
                return rows, nnz, _DECLINE
            keys[nnz] = key
            vals[nnz] = value
            nnz += 1
        row_line[rows] = line
        rows += 1
        offsets[rows] = nnz
        if pos < n:
            pos += 1  # the newline
        line += 1
    return rows, nnz, _OK


if numba is not None:
    _number = numba.njit(cache=True, inline="always")(_number)  # type: ignore[assignment]
    _parse = numba.njit(cache=True)(_parse)  # type: ignore[assignment]


def parse_block(text: bytes) -> tuple[Any, Any, Any, Any, Any] | None:
    """Parse a block of whole libsvm lines.

    Returns (keys int64 as written, values float32, labels float32, offsets int64, line of
    each row counted from 0 in the block), or None when numba is missing or the block needs
    the general parser (comments, qid, nan/inf, long mantissas, or a malformed line).
    """
    if numba is None or b"#" in text or b"qid:" in text:
        return None
    buf = np.frombuffer(text, np.uint8)
    max_nnz = int(np.count_nonzero(buf == 58))
    max_rows = int(np.count_nonzero(buf == 10)) + 1
    keys = np.empty(max_nnz, np.int64)
    vals = np.empty(max_nnz, np.float64)
    labels = np.empty(max_rows, np.float64)
    offsets = np.empty(max_rows + 1, np.int64)
    row_line = np.empty(max_rows, np.int64)
    rows, nnz, status = _parse(buf, keys, vals, labels, offsets, row_line, _POW10)
    if status != _OK:
        return None
    with np.errstate(over="ignore"):
        return (keys[:nnz], vals[:nnz].astype(np.float32), labels[:rows].astype(np.float32),
                offsets[:rows + 1].copy(), row_line[:rows].copy())
