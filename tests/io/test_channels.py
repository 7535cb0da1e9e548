"""Channels: listing files, sharding by file, row ranges."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fmkit.errors import ConfigError, DataError
from fmkit.io import channels


def _touch(root: Path, *names: str) -> None:
    for name in names:
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")


def test_folder_is_listed_recursively_sorted_without_hidden(tmp_path: Path) -> None:
    _touch(tmp_path, "b.rec", "a.rec", "sub/c.rec", ".hidden", "_SUCCESS", ".x/d.rec",
           "sub/.a.rec.123.tmp")
    files = channels.list_files(str(tmp_path))
    assert [Path(f).relative_to(tmp_path).as_posix() for f in files] == [
        "a.rec", "b.rec", "sub/c.rec"]
    assert channels.list_files(str(tmp_path / "a.rec")) == [str(tmp_path / "a.rec")]
    globbed = channels.list_files(str(tmp_path / "**" / "*.rec"))
    assert [Path(f).name for f in globbed] == ["a.rec", "b.rec", "c.rec"]


def test_empty_or_missing_channels_are_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no data files found"):
        channels.list_files(str(tmp_path))
    with pytest.raises(DataError, match="no such file or folder"):
        channels.list_files(str(tmp_path / "nope"))
    with pytest.raises(DataError, match="matches no files"):
        channels.list_files(str(tmp_path / "*.rec"))


def test_sharding_by_file() -> None:
    files = [f"f{i}" for i in range(5)]
    shards = [channels.shard_files(files, rank=r, world_size=2, distribution="ShardedByS3Key")
              for r in range(2)]
    assert shards == [["f0", "f2", "f4"], ["f1", "f3"]]
    assert channels.shard_files(files, rank=1, world_size=2) == files  # FullyReplicated
    with pytest.raises(DataError, match="2 file\\(s\\) for 3 processes"):
        channels.shard_files(files[:2], rank=0, world_size=3, distribution="ShardedByS3Key")
    with pytest.raises(ConfigError, match="distribution must be one of"):
        channels.shard_files(files, distribution="Sharded")
    with pytest.raises(ConfigError, match="rank must be in"):
        channels.shard_files(files, rank=2, world_size=2)


@given(st.integers(0, 1000), st.integers(1, 17))
def test_row_ranges_partition_the_rows(n: int, world: int) -> None:
    ranges = [channels.row_range(n, rank=r, world_size=world) for r in range(world)]
    assert ranges[0][0] == 0 and ranges[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    sizes = [b - a for a, b in ranges]
    assert max(sizes) - min(sizes) <= 1
