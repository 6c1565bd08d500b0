"""Torch intra-op threads, chosen deliberately for every job (``run.threads``, ``train.threads``,
``--threads``; the benchmarks state theirs).

Torch's default — one thread per core — collapses when the cores are shared: its OpenMP
workers wait for each other at every operation, and one descheduled worker stalls them all
(measured on 2 cores with one competing CPU-bound process: 13× slower than one thread;
benchmarks/RESULTS.md).  ``auto`` (0) takes the cores this process may run on (its CPU
affinity and cgroup quota) minus those other runnable processes occupy at the start
(``procs_running`` of /proc/stat, the median of a few samples), and at least one; under
torchrun the cores are split between the local ranks.  ``PHYSAMPLER_THREADS=N`` in the
environment replaces auto by N (for a scheduler that hands out cores, and for the test
suite, whose workers share the machine).  The count is decided once; a resumed
job keeps the one its checkpoint ran with, because a different count changes the order of
floating-point reductions and so the trajectory's last bits.
"""
from __future__ import annotations

import os
import statistics
import time


def available_cores() -> int:
    """Cores this process may run on: its affinity mask, capped by a cgroup v2 CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()
        if quota != "max":
            n = min(n, max(1, int(float(quota) / float(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


def _running() -> int | None:
    try:
        for line in open("/proc/stat"):
            if line.startswith("procs_running"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def other_running(samples: int = 5, interval: float = 0.01) -> int:
    """Runnable tasks of other processes: the median of ``samples`` readings of procs_running, less
    this one (0 where /proc/stat cannot be read)."""
    seen = []
    for i in range(samples):
        r = _running()
        if r is None:
            return 0
        seen.append(r)
        if i + 1 < samples:
            time.sleep(interval)
    return max(0, int(statistics.median(seen)) - 1)


def choose(cores: int, others: int, local_ranks: int = 1) -> int:
    """Threads for one process of ``local_ranks`` on ``cores`` cores with ``others`` busy: the
    free cores split between the ranks, at least one."""
    return max(1, (cores - others) // max(1, local_ranks))


def resolve(setting: int, *, stored: int | None = None) -> tuple[int, str]:
    """(threads, how they were chosen) for ``setting`` (> 0: that many; 0: auto, or the count a
    checkpoint ran with when ``stored`` is given)."""
    if setting > 0:
        return setting, "set"
    if stored is not None:
        return stored, "checkpoint"
    env = os.environ.get("PHYSAMPLER_THREADS", "")
    if env.strip():
        if not (env.strip().isdigit() and int(env) > 0):
            from .config import ConfigError

            raise ConfigError(f"PHYSAMPLER_THREADS: must be a positive integer (got {env!r})")
        return int(env), "PHYSAMPLER_THREADS"
    ranks = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    cores = available_cores()
    if ranks > 1:  # the ranks start together and would count each other as load
        return choose(cores, 0, ranks), f"auto: {cores} cores / {ranks} local ranks"
    others = other_running()
    return choose(cores, others), f"auto: {cores} cores, {others} busy"


def apply(setting: int, *, stored: int | None = None) -> tuple[int, str]:
    """Set torch's intra-op threads as :func:`resolve` decides; returns (threads, how)."""
    import torch

    n, how = resolve(setting, stored=stored)
    torch.set_num_threads(n)
    return n, how


def stored_threads(ck: dict | None) -> int | None:
    """The thread count a checkpoint ran with (None: not recorded, or not a positive integer)."""
    n = (ck or {}).get("threads")
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else None
