"""The numba libsvm kernel returns exactly what the numpy parser returns, or declines."""

from __future__ import annotations

import numpy as np
import pytest

from fmkit.io import libsvm, libsvm_kernel
from fmkit.io.text import Lines

pytest.importorskip("numba")


def _both(text: bytes):
    lines = Lines(text, 0, 1)
    fast = libsvm_kernel.parse_block(text)
    slow, slow_lines = libsvm.parse_lines_numpy(lines, source="t")
    return fast, slow, slow_lines


def test_kernel_equals_numpy_on_random_numbers(rng):
    formats = [lambda v: f"{v:.15g}", lambda v: f"{v:.6g}", lambda v: f"{v:e}",
               lambda v: f"{v:.3f}", lambda v: str(np.float32(v))]
    rows = []
    for r in range(400):
        label = rng.choice([0, 1, rng.normal() * 3])
        n = int(rng.integers(0, 8))
        keys = np.sort(rng.choice(100000, n, replace=False))
        vals = rng.normal(size=n) * 10.0 ** rng.integers(-6, 6, n)
        fmt = formats[r % len(formats)]
        rows.append(fmt(float(label)) + "".join(f" {k}:{fmt(float(v))}" for k, v in zip(keys, vals)))
        if r % 37 == 0:
            rows.append("")  # blank lines carry no row
    text = ("\n".join(rows) + "\n").encode()
    fast, slow, slow_lines = _both(text)
    assert fast is not None
    keys, values, labels, offsets, row_line = fast
    np.testing.assert_array_equal(keys, slow.indices)
    np.testing.assert_array_equal(values, slow.values)
    np.testing.assert_array_equal(labels, slow.labels)
    np.testing.assert_array_equal(offsets, slow.offsets)
    np.testing.assert_array_equal(row_line + 1, slow_lines)


@pytest.mark.parametrize("text", [
    b"1 1:2 # comment\n", b"1 qid:3 1:2\n", b"1 1:nan\n", b"1 1:inf\n", b"x 1:2\n",
    b"1 1:2:3\n", b"1 1.5:2\n", b"1 1:2 3\n", b"1 1:0.12345678901234567\n", b"1 -1:2\n",
    b"1 1:2x\n", b"1 1:0.30000000000000004\n",
])
def test_kernel_declines_what_it_cannot_parse_exactly(text):
    assert libsvm_kernel.parse_block(text) is None


def test_parse_lines_reports_bad_tokens_with_line_numbers():
    from fmkit.errors import FormatError

    with pytest.raises(FormatError, match="line 3"):
        libsvm.parse_lines(Lines(b"1 1:2\n0 2:1\n1 3:x\n", 0, 1), source="f.libsvm")
