"""Launching workers: results come back; a failed or dead worker fails the job fast."""

from __future__ import annotations

import pytest

from fmkit.distributed.launch import Rendezvous, launch, torchrun_env
from fmkit.errors import ConfigError, WorkerError

from . import workers

pytestmark = pytest.mark.distributed


def test_launch_returns_rank0_value():
    assert launch(workers.return_rank_sum, nprocs=3) == 0.0 + 1.0 + 2.0


def test_killed_worker_fails_the_job_at_once():
    # the launcher reports the death itself; otherwise rank 0's error (a lost peer,
    # or its 60 s collective timeout) would be reported (issue 14 item 8: no time bound)
    with pytest.raises(WorkerError, match=r"worker 1 of 2 was killed by signal SIGKILL"):
        launch(workers.reduce_forever_rank1_killed, nprocs=2, timeout_s=60)


def test_worker_fmkit_error_is_raised_as_the_same_class():
    with pytest.raises(ConfigError, match=r"worker 1 of 2: num_factors must be"):
        launch(workers.rank1_raises_config_error, nprocs=2, timeout_s=60)


def test_torchrun_env_is_read_from_the_mapping():
    assert torchrun_env({}) is None
    env = {"RANK": "3", "WORLD_SIZE": "8", "MASTER_ADDR": "node0", "MASTER_PORT": "29400",
           "LOCAL_RANK": "1"}
    r = torchrun_env(env)
    assert r == Rendezvous(3, 8, "node0", 29400, 1)
    assert r.init_method == "tcp://node0:29400"
    with pytest.raises(ConfigError, match="RANK must be in"):
        torchrun_env({**env, "RANK": "8"})
    with pytest.raises(ConfigError, match="must be integers"):
        torchrun_env({**env, "WORLD_SIZE": "eight"})


def test_instance_count_must_be_positive():
    with pytest.raises(ConfigError, match="instance_count"):
        launch(workers.return_rank_sum, nprocs=0)


def test_hung_worker_fails_the_job_after_the_timeout():
    # the error names the 2 s timeout that ended the wait (the hung rank sleeps 120 s)
    with pytest.raises(WorkerError, match=r"worker 0 of 2 failed: .*[Tt]imed out.*a peer did "
                                          r"not answer for timeout_s=2 s"):
        launch(workers.rank1_hangs, nprocs=2, timeout_s=2)
