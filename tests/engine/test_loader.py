"""epoch_batches: every row once an epoch, in the seeded permutation, batch by batch."""

from __future__ import annotations

import numpy as np
import pytest

from fmkit.datasets.synthetic import make_planted_fm
from fmkit.engine.loader import epoch_batches
from fmkit.sparse import concat


@pytest.mark.parametrize("uniform", [True, False])
def test_shuffled_batches_are_the_seeded_permutation_of_the_rows(uniform):
    data = make_planted_fm(1000, 40, 3, nnz_per_row=5, empty_rows=0 if uniform else 30,
                           seed=2).batch
    assert (data.row_length is not None) == uniform
    batches = list(epoch_batches(data, 96, shuffle=True, rng=np.random.default_rng(7)))
    assert [b.n_rows for b in batches] == [96] * 10 + [40]
    order = np.random.default_rng(7).permutation(1000)
    expected, got = data.take(order), concat(batches)
    np.testing.assert_array_equal(got.offsets, expected.offsets)
    np.testing.assert_array_equal(got.indices, expected.indices)
    np.testing.assert_array_equal(got.values, expected.values)
    np.testing.assert_array_equal(got.labels, data.labels[order])
    plain = list(epoch_batches(data, 96, shuffle=False, rng=np.random.default_rng(7)))
    np.testing.assert_array_equal(concat(plain).indices, data.indices)
