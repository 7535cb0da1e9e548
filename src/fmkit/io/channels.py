"""Channels: the files behind ``--train``/``--test`` and how processes share them.

A channel is a file, a folder (recursive), a glob, or an ``s3://bucket/prefix``; its files
are read in sorted path order. With several processes (``world_size > 1``):

- ``FullyReplicated``: every process reads every file (then takes its rows, see
  :func:`row_range`), as SageMaker copies the whole channel to every instance;
- ``ShardedByS3Key``: process ``rank`` reads files ``rank, rank + world_size, ...``, as
  SageMaker gives each instance a disjoint subset of the S3 keys.
"""

from __future__ import annotations

from fmkit.errors import ConfigError, DataError
from fmkit.io import paths

DISTRIBUTIONS = ("FullyReplicated", "ShardedByS3Key")


def list_files(uri: str) -> list[str]:
    """Return a channel's files, sorted by path.

    Raises
    ------
    DataError
        Nothing matches, the folder holds no files, or storage is unreachable.
    """
    files = paths.find_files(uri)
    if not files:
        if paths.has_glob(uri):
            raise DataError(f"{uri}: the pattern matches no files.")
        raise DataError(f"{uri}: no data files found (empty folder or prefix; names starting "
                        "with '.' or '_' are skipped).")
    return files


def shard_files(files: list[str], *, rank: int = 0, world_size: int = 1,
                distribution: str = "FullyReplicated") -> list[str]:
    """Return the files process ``rank`` of ``world_size`` reads.

    Raises
    ------
    ConfigError
        An unknown distribution or rank.
    DataError
        ``ShardedByS3Key`` with fewer files than processes.
    """
    if distribution not in DISTRIBUTIONS:
        raise ConfigError(f"distribution must be one of {', '.join(DISTRIBUTIONS)}; "
                          f"got {distribution!r}.")
    if world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError(f"rank must be in [0, world_size); got rank={rank}, "
                          f"world_size={world_size}.")
    if distribution == "FullyReplicated" or world_size == 1:
        return list(files)
    if len(files) < world_size:
        raise DataError(f"ShardedByS3Key needs at least one file per process: "
                        f"{len(files)} file(s) for {world_size} processes; split the data "
                        "into more files or use FullyReplicated.")
    return files[rank::world_size]


def row_range(n_rows: int, *, rank: int = 0, world_size: int = 1) -> tuple[int, int]:
    """Return the contiguous ``[start, stop)`` rows of process ``rank``; sizes differ by <= 1."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError(f"rank must be in [0, world_size); got rank={rank}, "
                          f"world_size={world_size}.")
    base, extra = divmod(n_rows, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)
