"""--groups files, group checks and the sampling-block plan."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from fmkit.artifact import group_runs
from fmkit.bayes import read_groups
from fmkit.bayes.groups import check_groups, plan_blocks
from fmkit.errors import DataError


def test_json_ranges(tmp_path):
    p = tmp_path / "groups.json"
    p.write_text(json.dumps({"user": [0, 3], "item": [3, 5], "genre": [[6, 8], [9, 10]]}))
    assert read_groups(p).tolist() == [0, 0, 0, 1, 1, 3, 2, 2, 3, 2]


def test_text_one_name_per_line(tmp_path):
    p = tmp_path / "groups.txt"
    p.write_text("user\nuser\nitem\n genre \nitem\n")
    assert read_groups(p).tolist() == [0, 0, 1, 2, 1]


def test_vocabulary_file_gives_its_fields(tmp_path):
    from fmkit.features.vocabulary import Field, Vocabulary

    vocab = Vocabulary(6, [Field("user", 0, 2, "user"), Field("item", 2, 3, "item")],
                       "user", "item")
    vocab.save(tmp_path / "vocabulary.json")
    assert read_groups(tmp_path / "vocabulary.json").tolist() == [0, 0, 1, 1, 1, 2]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"user": [0, 3], "item": [2, 5]}', "groups 'user' and 'item' overlap at key 2"),
        ('{"user": [3, 1]}', "group 'user': expected a key range [start, stop)"),
        ('{"user": [0, "9"]}', "group 'user'"),
        ('{"user": [0, 3.5]}', "group 'user'"),
        ('{"user": [0, 1}', "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ("{}", "expected a JSON object"),
        ("user\n\nitem\n", "line 2: empty group name for feature key 1"),
        ("", "groups file is empty"),
    ],
)
def test_bad_groups_file_names_file_and_place(tmp_path, content, message):
    p = tmp_path / "bad-groups"
    p.write_text(content)
    with pytest.raises(DataError) as info:
        read_groups(p)
    assert str(p) in str(info.value)
    assert message in str(info.value)


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(DataError, match="cannot read groups file"):
        read_groups(tmp_path / "nope.json")
    p = tmp_path / "bin"
    p.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(DataError, match="not UTF-8"):
        read_groups(p)


def test_check_groups_pads_renumbers_and_rejects():
    assert check_groups(np.array([5, 5, 9]), 5).tolist() == [0, 0, 1, 2, 2]
    with pytest.raises(DataError, match="names 4 feature keys but the data has feature_dim=3"):
        check_groups(np.zeros(4, np.int64), 3)
    with pytest.raises(DataError, match="must be >= 0; key 1 has -2"):
        check_groups(np.array([0, -2]), 3)
    with pytest.raises(DataError, match="1-D int array"):
        check_groups(np.array([0.5, 1.0]), 3)
    assert group_runs(np.array([0, 0, 1, 1, 1, 0])) == [[0, 0, 2], [1, 2, 5], [0, 5, 6]]


def _csc(rows: list[list[int]], width: int) -> sp.csc_matrix:
    indptr = np.cumsum([0] + [len(r) for r in rows])
    idx = np.concatenate([np.asarray(r, np.int64) for r in rows])
    return sp.csr_matrix((np.ones(idx.size), idx, indptr), shape=(len(rows), width)).tocsc()


def test_plan_blocks_one_hot_fields_and_multi_hot_run():
    # users 0-2 one-hot, items 3-4 one-hot, genres 5-7 co-occur
    rows = [[0, 3, 5, 6], [1, 4, 6, 7], [2, 3, 5, 7], [0, 4, 5, 6, 7]]
    blocks = plan_blocks(_csc(rows, 8))
    assert [(b.start, b.stop, b.independent) for b in blocks] == [
        (0, 3, True), (3, 5, True), (5, 8, False)]


def test_plan_blocks_never_marks_co_occurring_keys_independent(rng):
    for _ in range(20):
        rows = [sorted(rng.choice(12, size=int(rng.integers(1, 4)), replace=False).tolist())
                for _ in range(15)]
        csc = _csc(rows, 12)
        blocks = plan_blocks(csc)
        assert blocks[0].start == 0 and blocks[-1].stop == 12
        assert all(a.stop == b.start for a, b in zip(blocks, blocks[1:]))
        dense = csc.toarray() != 0
        for b in blocks:
            if b.independent:
                assert dense[:, b.start:b.stop].sum(axis=1).max() <= 1


def test_compiled_and_python_block_plans_agree(rng):
    from fmkit.bayes.groups import _block_starts
    from fmkit.bayes.kernels import HAVE_NUMBA, block_starts

    if not HAVE_NUMBA:
        pytest.skip("numba is not installed")
    for cap in (3, 100):
        rows = [sorted(rng.choice(30, size=int(rng.integers(1, 3)), replace=False).tolist())
                for _ in range(40)]
        csc = _csc(rows, 30)
        indptr, idx = csc.indptr.astype(np.int64), csc.indices.astype(np.int64)
        assert _block_starts(indptr, idx, 40, 30, cap) == \
            block_starts(indptr, idx, 40, 30, cap).tolist()
