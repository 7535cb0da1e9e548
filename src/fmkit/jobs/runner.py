"""The detached process of a background job: ``python -m fmkit.jobs.runner KIND NAME``.

:func:`fmkit.jobs.training.start` (and the tuning and transform services) record a job
with its request and start this module in a new session. It waits for a capacity slot
(:mod:`fmkit.jobs.capacity`), then runs the job to its end through the same service code
as the foreground. SIGTERM and SIGINT stop the job as Ctrl-C does (after the current
batch, keeping the model reached).
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fmkit.jobs.capacity import Slots
    from fmkit.registry import Registry

logger = logging.getLogger("fmkit.jobs.runner")  # by name: run as __main__, not under fmkit


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _wait_for_slot(registry: Registry, slots_wanted: int,
                   stop_requested: Callable[[], bool]) -> Slots | None:
    """Take ``slots_wanted`` capacity slots, waiting while they are taken; None if the job
    was asked to stop first."""
    from fmkit.jobs.capacity import Slots, slot_count
    from fmkit.registry.home import job_slots, slots_dir

    slots = Slots(slots_dir(registry.home), slot_count(job_slots()))
    if not slots.try_acquire(slots_wanted):
        logger.info("waiting for a free slot (%d jobs train at once on this machine)",
                    slots.total)
        if not slots.acquire(slots_wanted, cancelled=stop_requested):
            return None
    return slots


def run_training(name: str) -> int:
    """Run the recorded training job ``name`` once a slot is free; return the exit code."""
    from fmkit.jobs import training
    from fmkit.registry import Registry

    registry = Registry()
    job = registry.jobs.get(name)
    request = training.TrainingRequest.from_dict(job.request or {})
    slots = _wait_for_slot(registry, request.instance_count,
                           lambda: registry.jobs.stop_requested(name))
    if slots is None:
        registry.jobs.finish(name, status="Stopped", failure_reason="stopped by user before "
                             "it started")
        return 0
    try:
        record = training.execute(name, request, registry=registry)
    except Exception:  # recorded Failed by the service; the traceback goes to process.log
        logger.debug("training job %s failed", name, exc_info=True)
        return 2
    finally:
        slots.release()
    return 0 if record.status != "Failed" else 2


def run_tuning(name: str) -> int:
    from fmkit.jobs import tuning

    return tuning.run_recorded(name)


def run_transform(name: str) -> int:
    from fmkit.jobs import transform

    return transform.run_recorded(name)


_KINDS = {"training": run_training, "tuning": run_tuning, "transform": run_transform}


def main(argv: list[str] | None = None) -> int:
    """The process entry: ``KIND NAME`` from ``argv`` (default ``sys.argv[1:]``)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in _KINDS:
        print("usage: python -m fmkit.jobs.runner training|tuning|transform NAME",
              file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    return _KINDS[args[0]](args[1])


if __name__ == "__main__":
    raise SystemExit(main())
