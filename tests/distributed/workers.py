"""Module-level functions run inside launched workers (they are pickled by reference)."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from fmkit.config import FMConfig
from fmkit.distributed.strategy import DistributedStrategy
from fmkit.engine.trainer import fit
from fmkit.errors import ConfigError
from fmkit.io.channels import row_range
from fmkit.sparse import SparseBatch


def fit_shard(values: dict[str, Any], train: SparseBatch, test: SparseBatch | None
              ) -> dict[str, Any]:
    """Train on this rank's row range of ``train`` (and score its range of ``test``).

    Returns rank 0's parameters and metrics; checks that every replica ended with
    bit-identical parameters.
    """
    strategy = DistributedStrategy()
    rank, world = strategy.rank, strategy.world_size
    start, stop = row_range(train.n_rows, rank=rank, world_size=world)
    shard_test = None
    if test is not None:
        t0, t1 = row_range(test.n_rows, rank=rank, world_size=world)
        shard_test = test.slice(t0, t1)
    result = fit(FMConfig.from_values(values), train.slice(start, stop), test=shard_test,
                 strategy=strategy)
    art = result.artifact
    digest = np.array([float(np.float64(art.V).sum()), float(np.float64(art.w).sum()),
                       float(art.w0[0])])
    gathered = strategy.gather_rows([digest])[0]
    assert gathered is not None
    if not np.array_equal(gathered.reshape(world, 3), np.tile(digest, (world, 1))):
        raise RuntimeError(f"replicas differ: {gathered.reshape(world, 3)}")
    return {"w0": art.w0, "w": art.w, "V": art.V, "metrics": result.metrics,
            "history": result.history, "bytes_sent": strategy.bytes_sent,
            "steps": strategy.steps}


def fit_replicated(values: dict[str, Any], train: SparseBatch, test: SparseBatch
                   ) -> dict[str, Any]:
    """Train on the whole of ``train`` in every rank (FullyReplicated data: each rank its
    part of each global batch); score this rank's range of ``test``."""
    strategy = DistributedStrategy(replicated=True)
    t0, t1 = row_range(test.n_rows, rank=strategy.rank, world_size=strategy.world_size)
    result = fit(FMConfig.from_values(values), train, test=test.slice(t0, t1),
                 strategy=strategy)
    art = result.artifact
    return {"w0": art.w0, "w": art.w, "V": art.V, "metrics": result.metrics,
            "steps": strategy.steps}


def batch_shares(mini_batch_size: int, global_batch: bool) -> list[int]:
    """Every rank's rows per step for ``mini_batch_size``, gathered in rank order."""
    strategy = DistributedStrategy(global_batch=global_batch)
    share = np.array([strategy.local_batch_size(mini_batch_size)], np.int64)
    gathered = strategy.gather_rows([share])[0]
    assert gathered is not None
    return [int(x) for x in gathered]


class _DieAtEpoch:
    def __init__(self, rank: int, epoch: int) -> None:
        self.rank, self.epoch = rank, epoch

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        if dist.get_rank() == self.rank and epoch == self.epoch:
            os._exit(3)


def fit_and_die(values: dict[str, Any], train: SparseBatch) -> None:
    """Train; rank 1 vanishes (os._exit) at the end of epoch 0 while rank 0 goes on."""
    strategy = DistributedStrategy()
    start, stop = row_range(train.n_rows, rank=strategy.rank, world_size=strategy.world_size)
    fit(FMConfig.from_values(values), train.slice(start, stop), strategy=strategy,
        callbacks=[_DieAtEpoch(1, 0)])


def reduce_forever_rank1_killed() -> None:
    """Rank 1 is killed by SIGKILL after one all-reduce; rank 0 keeps reducing."""
    t = torch.ones(4)
    dist.all_reduce(t)
    if dist.get_rank() == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    while True:
        dist.all_reduce(t)
        time.sleep(0.01)


def rank1_raises_config_error() -> None:
    """Rank 1 fails with an fmkit error; rank 0 waits in a collective."""
    if dist.get_rank() == 1:
        raise ConfigError("num_factors must be an int >= 1; got 0.")
    dist.barrier()


def return_rank_sum() -> float:
    """Every rank adds its rank; rank 0 returns the total."""
    t = torch.tensor([float(dist.get_rank())])
    dist.all_reduce(t)
    return float(t.item())


def rank1_hangs() -> None:
    """Rank 1 stops answering (alive, but never joins the next collective)."""
    t = torch.ones(4)
    dist.all_reduce(t)
    if dist.get_rank() == 1:
        time.sleep(120)
    dist.all_reduce(t)
