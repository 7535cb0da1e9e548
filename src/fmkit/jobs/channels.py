"""Training channels as every front end names them, opened as the trainer takes them.

A channel is a URI (file, folder, glob or ``s3://`` prefix) or a :class:`ChannelSpec`
(content type, distribution, File or Pipe mode, or an explicit file list such as a
SageMaker manifest). :func:`open_channel` returns a :class:`~fmkit.sparse.SparseBatch`
(read into memory) or a stream with ``iter_batches(batch_size)`` (``stream=True`` or Pipe
mode), holding this process's share when several processes train together.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fmkit.errors import ConfigError, DataError

if TYPE_CHECKING:
    from fmkit.features.vocabulary import Vocabulary
    from fmkit.sparse import SparseBatch

logger = logging.getLogger(__name__)

CHANNELS = ("train", "test", "validation")  # what Factorization Machines reads
DISTRIBUTIONS = ("FullyReplicated", "ShardedByS3Key")
MODES = ("File", "FastFile", "Pipe")


@dataclass(frozen=True)
class ChannelSpec:
    """One input channel.

    Attributes
    ----------
    uri : str
        File, folder (recursive), glob or ``s3://bucket/prefix``; in Pipe mode the FIFO
        path prefix (pass N reads ``<uri>_<N>``).
    content_type : str, optional
        The data format when the extension does not say (SageMaker's ContentType).
    distribution : {'FullyReplicated', 'ShardedByS3Key'}
        How several processes share the channel: row ranges of all files, or whole files.
    mode : {'File', 'FastFile', 'Pipe'}
        Pipe reads a new FIFO every pass (the SageMaker container's Pipe mode).
    files : tuple of str, optional
        An explicit list of files (a SageMaker ``ManifestFile``); ``uri`` is then only
        the name shown in messages.
    """

    uri: str
    content_type: str | None = None
    distribution: str = "FullyReplicated"
    mode: str = "File"
    files: tuple[str, ...] | None = None

    def check(self, name: str) -> ChannelSpec:
        """Return self; ConfigError naming the channel if a field is not allowed."""
        if self.distribution not in DISTRIBUTIONS:
            raise ConfigError(f"channel {name!r}: S3DataDistributionType must be "
                              f"FullyReplicated or ShardedByS3Key; got {self.distribution!r}.")
        if self.mode not in MODES:
            raise ConfigError(f"channel {name!r}: TrainingInputMode must be File, FastFile or "
                              f"Pipe; got {self.mode!r}.")
        if self.files is not None and not self.files:
            raise DataError(f"channel {name!r}: the manifest {self.uri} lists no files.")
        return self

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form with only the fields that differ from the defaults
        (:meth:`from_value` reads it back)."""
        out: dict[str, Any] = {"uri": self.uri}
        if self.content_type is not None:
            out["content_type"] = self.content_type
        if self.files is not None:
            out["files"] = list(self.files)
        if self.distribution != "FullyReplicated":
            out["distribution"] = self.distribution
        if self.mode != "File":
            out["mode"] = self.mode
        return out

    @classmethod
    def from_value(cls, value: Any, *, content_type: str | None = None,
                   distribution: str = "FullyReplicated") -> ChannelSpec:
        """A spec from a URI string, a dict (:meth:`to_dict`'s shape) or a spec."""
        if isinstance(value, ChannelSpec):
            return value
        if isinstance(value, Mapping):
            files = value.get("files")
            return cls(str(value["uri"]), value.get("content_type", content_type),
                       value.get("distribution", distribution), value.get("mode", "File"),
                       tuple(str(f) for f in files) if files is not None else None)
        return cls(str(value), content_type, distribution)


def normalize_channels(channels: Mapping[str, Any], *, content_type: str | None = None,
                       distribution: str = "FullyReplicated") -> dict[str, ChannelSpec]:
    """Return ``channels`` as specs (None values dropped); ``train`` is required.

    Raises
    ------
    ConfigError
        No train channel, or a spec with a value that is not allowed.
    """
    specs = {name: ChannelSpec.from_value(v, content_type=content_type,
                                          distribution=distribution).check(name)
             for name, v in channels.items() if v is not None and v != ""}
    if "train" not in specs:
        raise ConfigError("the 'train' channel is required.")
    return specs


def _read_files(spec: ChannelSpec, name: str, *, rank: int, world_size: int) -> SparseBatch:
    import fmkit.io as fio
    from fmkit.sparse import concat

    files = list(spec.files or ())
    if world_size > 1 and spec.distribution == "ShardedByS3Key":
        files = fio.shard_files(files, rank=rank, world_size=world_size,
                                distribution=spec.distribution)
    parts = [fio.read(f, content_type=spec.content_type, require_labels=True) for f in files]
    parts = [p for p in parts if p.n_rows]
    if not parts:
        raise DataError(f"the {name} channel {spec.uri} has no rows"
                        + (f" in the files of worker {rank} of {world_size}." if world_size > 1
                           else "."))
    batch = concat(parts)
    if world_size > 1 and spec.distribution == "FullyReplicated":
        start, stop = fio.row_range(batch.n_rows, rank=rank, world_size=world_size)
        batch = batch.slice(start, stop)
    return batch


def open_channel(spec: ChannelSpec, name: str, *, stream: bool = False,
                 feature_dim: int | None = None, rank: int = 0, world_size: int = 1
                 ) -> SparseBatch | StreamedChannel | PipeChannel:
    """Open a channel as the trainer takes it: in memory, streamed, or Pipe FIFOs.

    With ``world_size`` > 1 the result is this process's share: every world_size-th file
    (ShardedByS3Key) or a contiguous row range in memory / every world_size-th batch when
    streamed (FullyReplicated).

    Raises
    ------
    DataError
        The channel is missing, empty, or not readable.
    """
    import fmkit.io as fio
    from fmkit.sparse import concat

    if spec.mode == "Pipe":
        return PipeChannel(spec, name, feature_dim, rank=rank, world_size=world_size)
    if spec.files is not None:
        return _read_files(spec, name, rank=rank, world_size=world_size)
    if stream:
        return StreamedChannel(spec.uri, spec.content_type, feature_dim, rank=rank,
                               world_size=world_size, distribution=spec.distribution)
    path = spec.uri
    if world_size > 1 and spec.distribution == "ShardedByS3Key":
        parts = list(fio.iter_channel(path, content_type=spec.content_type, rank=rank,
                                      world_size=world_size, distribution=spec.distribution,
                                      require_labels=True))
        batch = concat(parts) if parts else None
        if batch is None or batch.n_rows == 0:
            raise DataError(f"the {name} channel {path} has no rows in the files of worker "
                            f"{rank} of {world_size}.")
        return batch
    batch = fio.read(path, content_type=spec.content_type, require_labels=True)
    if batch.n_rows == 0:
        raise DataError(f"the {name} channel {path} has no rows.")
    if world_size > 1:
        start, stop = fio.row_range(batch.n_rows, rank=rank, world_size=world_size)
        batch = batch.slice(start, stop)
    return batch


class StreamedChannel:
    """A channel read in a stream on every pass (constant memory).

    With ``world_size`` > 1 it yields only this process's share: its files
    (ShardedByS3Key) or every ``world_size``-th batch starting at ``rank``
    (FullyReplicated).
    """

    def __init__(self, uri: str, content_type: str | None, feature_dim: int | None, *,
                 rank: int = 0, world_size: int = 1,
                 distribution: str = "FullyReplicated") -> None:
        import fmkit.io as fio

        self.uri = uri
        self.content_type = content_type
        self.feature_dim = feature_dim
        self.rank, self.world_size, self.distribution = rank, world_size, distribution
        self.n_rows = None
        # libsvm's key base is guessed by a scan of the channel: do it once, not every pass
        files = fio.list_files(uri)
        formats = [fio.file_format(f, None, content_type) for f in files]
        self.zero_based = fio.libsvm_zero_based(files, formats, None)
        if feature_dim is None:
            first = next(iter(fio.iter_batches(uri, 1, content_type=content_type,
                                               zero_based=self.zero_based)), None)
            if first is None:
                raise DataError(f"{uri}: the channel has no rows.")
            self.feature_dim = first.feature_dim

    def iter_batches(self, batch_size: int) -> Iterator[SparseBatch]:
        """Yield this process's batches of one pass over the channel."""
        import fmkit.io as fio

        by_file = self.world_size > 1 and self.distribution == "ShardedByS3Key"
        batches = fio.iter_batches(self.uri, batch_size, content_type=self.content_type,
                                   require_labels=True, zero_based=self.zero_based,
                                   rank=self.rank if by_file else 0,
                                   world_size=self.world_size if by_file else 1,
                                   distribution=self.distribution if by_file
                                   else "FullyReplicated")
        if self.world_size == 1 or by_file:
            return batches
        return (b for i, b in enumerate(batches) if i % self.world_size == self.rank)


class PipeChannel:
    """A Pipe-mode channel: pass N reads the FIFO ``<uri>_<N>`` from start to end.

    With ``world_size`` > 1 and a FullyReplicated channel, this process keeps every
    ``world_size``-th batch starting at ``rank``.
    """

    def __init__(self, spec: ChannelSpec, name: str, feature_dim: int | None, *,
                 rank: int = 0, world_size: int = 1) -> None:
        self.spec = spec
        self.name = name
        self.feature_dim = feature_dim
        self.n_rows = None
        self.rank, self.world_size = rank, world_size
        self.passes = 0

    def fifo(self, epoch: int) -> Path:
        """The FIFO SageMaker creates for pass ``epoch``."""
        return Path(f"{self.spec.uri}_{epoch}")

    def iter_batches(self, batch_size: int) -> Iterator[SparseBatch]:
        """Yield this process's batches of the next pass (the next FIFO)."""
        from fmkit.io import formats, iter_stream, rebatch

        fifo = self.fifo(self.passes)
        self.passes += 1
        if not fifo.exists():
            raise DataError(f"Pipe mode: {fifo} does not exist; SageMaker creates "
                            f"{self.name}_<epoch> for every pass.")
        fmt = formats.from_content_type(self.spec.content_type
                                        or "application/x-recordio-protobuf")
        keep_every = self.world_size if self.spec.distribution == "FullyReplicated" else 1
        with open(fifo, "rb") as stream:
            batches = rebatch(iter_stream(stream, format=fmt, source=str(fifo),
                                          require_labels=True), batch_size)
            # replicated: this process takes every keep_every-th batch (islice drains the FIFO)
            yield from itertools.islice(batches, self.rank % keep_every, None, keep_every)


def find_vocabulary(explicit: str | None, train: ChannelSpec) -> Vocabulary | None:
    """Return the Vocabulary for a job: ``explicit``, else vocabulary.json in or next to a
    local train channel, else None."""
    from fmkit.features.vocabulary import FILENAME, Vocabulary

    if explicit:
        return Vocabulary.load(explicit)
    if "://" in train.uri or train.files is not None or train.mode == "Pipe":
        return None
    p = Path(train.uri)
    for candidate in (p / FILENAME, p.parent / FILENAME):
        if candidate.is_file():
            logger.info("using vocabulary %s", candidate)
            return Vocabulary.load(candidate)
    return None
