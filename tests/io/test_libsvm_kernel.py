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


def test_two_thread_parse_equals_one_thread(rng, monkeypatch):
    monkeypatch.setattr(libsvm_kernel, "PARALLEL_BYTES", 64)
    rows = []
    for r in range(300):
        keys = np.sort(rng.choice(5000, int(rng.integers(0, 6)), replace=False))
        rows.append(f"{r % 3} " + " ".join(f"{k}:{rng.normal():.5g}" for k in keys))
        if r % 41 == 0:
            rows.append("   ")  # blank lines carry no row, but count as lines
    text = ("\n".join(rows)).encode()  # no final newline
    one = libsvm_kernel.parse_block(text, threads=1)
    two = libsvm_kernel.parse_block(text, threads=2)
    assert one is not None and two is not None
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b)
    _, slow, slow_lines = _both(text)
    np.testing.assert_array_equal(two[3], slow.offsets)
    np.testing.assert_array_equal(two[4] + 1, slow_lines)
    # a bad token in either half makes the whole block decline
    half = len(text) // 2
    for at in (10, half + 10):
        cut = text.index(b" ", at)
        bad = text[:cut] + b" 7:x" + text[cut:]
        assert libsvm_kernel.parse_block(bad, threads=2) is None


def test_one_digit_values_take_the_short_path_and_equal_numpy():
    text = (b"1 3:1 7:0 9:5\n0 2:1\t4:9\r\n1 1:1 5:10 6:1.5 8:-1 10:2e1\n"
            b"0 11:3 12:0.0 13:7")
    fast, slow, slow_lines = _both(text)
    assert fast is not None
    keys, values, labels, offsets, row_line = fast
    np.testing.assert_array_equal(keys, slow.indices)
    np.testing.assert_array_equal(values, slow.values)
    np.testing.assert_array_equal(values, [1, 0, 5, 1, 9, 1, 10, 1.5, -1, 20, 3, 0, 7])
    np.testing.assert_array_equal(offsets, slow.offsets)
    assert libsvm_kernel.parse_block(b"1 3:1x 4:1\n") is None  # glued token still declines
    assert libsvm_kernel.parse_block(b"1 3:\n") is None
