"""The one driver loop of every job: ``physampler run`` (one process or torchrun ranks) and
``physampler train`` (docs/architecture.md).

A job is a :class:`Task`; the driver owns what all of them share and writes it once:

* chunking — the task advances to the next report, sync (torchrun) or checkpoint step or the
  end, whichever comes first, so they fall on fixed steps whatever the engine's block size;
* signals — SIGINT/SIGTERM set a flag (installed before the task says it starts); the task
  may stop within a chunk (the torch engine asks after every step), ranks stop together at
  the next sync, and an interrupted run always ends with a checkpoint and exit 128 + signal;
* progress — one bar, updated by the task at each report;
* checkpoint cadence — every ``checkpoint`` steps before the end, and once at the end.

What a checkpoint holds, how a report is recorded and how ranks merge is the task's: the
engines' own ``state_dict()`` format (:func:`physampler.integrators.wlmd.engine_state_dict`,
WanD's torch.optim state dict) is what they write.
"""
from __future__ import annotations

import signal
from typing import Callable, Protocol

from .progress import Progress
from .signals import catch_signals, restore


class Task(Protocol):
    """A job the driver can run (the attributes it reads and the calls it makes)."""

    #: steps between landscape syncs across processes; None for one process
    sync_interval: int | None

    @property
    def step(self) -> int: ...

    def advance(self, n: int, stop: Callable[[], bool]) -> None:
        """``n`` steps, or fewer once ``stop()`` is true (one process only)."""

    def sync(self, step: int, stop: bool) -> bool:
        """Merge with the other processes at a sync step; True when any of them asked to stop."""

    def report(self, bar: Progress, merged: bool) -> bool:
        """Record a report step (``merged``: the landscape holds every process's deposits) and
        update ``bar``; True ends the run early (e.g. a stopping rule)."""

    def checkpoint(self, final: bool) -> None:
        """Write a checkpoint (and the outputs it goes with); ``final`` at the end of the run."""

    def stopped(self, sig: int) -> str:
        """Finish an interrupted run after its checkpoint; returns the closing line."""


def drive(task: Task, *, total: int, report: int, checkpoint: int, progress: bool, log, flag=None,
          handlers=None) -> int:
    """Run ``task`` to step ``total``: reports every ``report`` steps, checkpoints every
    ``checkpoint`` (0: only at the end).  Returns the exit status: 0, or 128 + signal after the
    checkpoint of an interrupted run.  ``flag, handlers`` from :func:`catch_signals` when the
    caller installed them already (before its start line)."""
    if flag is None:
        flag, handlers = catch_signals()
    K = task.sync_interval
    bar = Progress(total, task.step, progress)
    try:
        while task.step < total:
            step = task.step
            n = min(report - step % report, total - step, K - step % K if K else total,
                    checkpoint - step % checkpoint if checkpoint else total)
            task.advance(n, lambda: flag.signal is not None)
            step = task.step
            merged = not K or step % K == 0 or step == total
            stop = flag.signal is not None
            if K and merged:
                stop = task.sync(step, stop)
            if (step % report == 0 or step == total) and task.report(bar, merged):
                break
            if stop:
                sig = flag.signal or signal.SIGTERM  # a signal on another rank
                task.checkpoint(False)
                log(task.stopped(sig))
                return 128 + sig
            if checkpoint and step % checkpoint == 0 and step < total:
                task.checkpoint(False)
        task.checkpoint(True)
    finally:
        bar.close()
        restore(handlers)
    return 0
