"""fmkit.threads: work split over threads gives the numbers of one thread."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from fmkit import metrics
from fmkit.bayes.likelihood import sample_latent
from fmkit.threads import MIN_PART, concurrently, in_parts, n_threads


def test_in_parts_covers_every_element_once_and_raises_a_parts_error(monkeypatch):
    monkeypatch.setenv("FMKIT_NUM_THREADS", "3")
    assert n_threads() == 3
    n = 3 * MIN_PART + 7
    hits = np.zeros(n, np.int64)
    ranges = []

    def work(a: int, b: int) -> None:
        ranges.append((a, b))
        hits[a:b] += 1

    in_parts(n, work)
    assert sorted(ranges)[0][0] == 0 and len(ranges) == 3
    assert np.all(hits == 1)

    def fail(a: int, b: int) -> None:
        if a > 0:
            raise ValueError(f"part {a}")

    with pytest.raises(ValueError, match="part"):
        in_parts(n, fail)


def test_concurrently_keeps_the_order_of_the_calls(monkeypatch):
    for threads in ("1", "2"):
        monkeypatch.setenv("FMKIT_NUM_THREADS", threads)
        assert concurrently(lambda: 1, lambda: "two", lambda: 3.0) == [1, "two", 3.0]


@pytest.mark.parametrize("threads", ["1", "2", "4"])
def test_latent_draws_and_auc_do_not_depend_on_the_thread_count(monkeypatch, threads):
    rng = np.random.default_rng(0)
    n = 2 * MIN_PART + 11
    y = rng.normal(0, 4, n)
    y[:4] = [40.0, -40.0, 0.0, -0.0]
    positive = rng.random(n) < 0.5
    monkeypatch.setenv("FMKIT_NUM_THREADS", "1")
    want = sample_latent(np.random.default_rng(3), y, positive)
    # the latent target lies on its label's side (within the clip at |y| = 37)
    inside = np.abs(y) < 37
    assert np.all(want[positive & inside] >= 0) and np.all(want[~positive & inside] <= 0)
    scores = np.round(rng.random(n), 3).astype(np.float32)  # many ties
    want_auc = metrics.auc(positive, scores)
    monkeypatch.setenv("FMKIT_NUM_THREADS", threads)
    np.testing.assert_array_equal(sample_latent(np.random.default_rng(3), y, positive), want)
    assert metrics.auc(positive, scores) == want_auc
    # the weighted formula (argsort, tie groups) agrees to rounding
    assert metrics.auc(positive, scores, np.ones(n)) == pytest.approx(want_auc, abs=1e-12)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_gets_its_own_pool(monkeypatch):
    """A child forked after the pool started must not wait on the parent's threads."""
    monkeypatch.setenv("FMKIT_NUM_THREADS", "2")
    assert concurrently(lambda: 1, lambda: 2) == [1, 2]  # the parent's pool is running
    pid = os.fork()
    if pid == 0:  # the child: a hang here would fail the test by its timeout below
        try:
            ok = concurrently(lambda: 3, lambda: 4) == [3, 4]
        finally:
            os._exit(0 if ok else 1)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    pytest.fail("the forked child hung on the parent's thread pool")


def test_a_split_inside_a_pool_thread_runs_there_instead_of_waiting_on_the_pool(monkeypatch):
    """concurrently/in_parts called from work already on the pool must not wait for pool
    threads that are all busy waiting on it (a deadlock with a one-thread pool)."""
    import threading

    from fmkit import threads

    monkeypatch.setenv("FMKIT_NUM_THREADS", "2")
    monkeypatch.setattr(threads, "_pool", None)  # a fresh pool of one worker thread

    def inner() -> list[int]:
        hits = np.zeros(3 * MIN_PART, np.int64)
        in_parts(hits.shape[0], lambda a, b: hits[a:b].__iadd__(1))
        return [int(hits.sum()), *concurrently(lambda: 1, lambda: 2)]

    got: list = []
    runner = threading.Thread(target=lambda: got.append(concurrently(lambda: "main", inner)),
                              daemon=True)
    runner.start()
    runner.join(30)
    assert not runner.is_alive(), "a nested split waited on the busy pool (deadlock)"
    assert got == [["main", [3 * MIN_PART, 1, 2]]]


@pytest.mark.parametrize("value", ["abc", "0", "-3"])
def test_a_bad_thread_count_is_ignored_with_one_warning(monkeypatch, caplog, value):
    from fmkit import threads

    monkeypatch.setattr(threads, "_WARNED", set())
    monkeypatch.setenv("FMKIT_NUM_THREADS", value)
    with caplog.at_level("WARNING", logger="fmkit.threads"):
        assert n_threads() >= 1 and n_threads() >= 1
    warnings = [r.getMessage() for r in caplog.records if r.name == "fmkit.threads"]
    assert len(warnings) == 1 and f"FMKIT_NUM_THREADS={value!r}" in warnings[0]
