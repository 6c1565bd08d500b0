"""Keep freed memory in the process for the next step (glibc's malloc; ``physampler run``, ``train``,
``validate`` and the benchmarks call :func:`keep_freed_memory` at start-up).

A step of W walkers allocates tensors of W·P numbers afresh — the new positions and velocities,
the gradient, the activations of a batched forward.  glibc serves every request above its mmap
threshold (dynamic, at most 32 MiB) with a fresh ``mmap`` and returns it to the system on free,
and even below it gives the top of its heap back once more than ``M_TRIM_THRESHOLD`` is free.
Either way the next step's tensor of the same size is new address space: the kernel zeroes and
maps it one 4 KiB page fault at a time.  At 16 walkers of a 1M-parameter MLP that was three
64 MiB tensors a step and 7–11 % of its time; a plain single-network loop, whose tensors are
W times smaller and updated in place, pays none of it (benchmarks/RESULTS.md, 2026-12-07).

:func:`keep_freed_memory` sets ``M_MMAP_MAX = 0`` (every request from the heap) and a 2 GiB
``M_TRIM_THRESHOLD`` (freed memory stays mapped), so each step reuses the pages of the last
one.  The process then keeps its peak size until it exits, which a job of fixed shapes reaches
after its first step.  ``PHYSAMPLER_KEEP_MEMORY=0`` leaves malloc as it is; elsewhere than on
glibc (musl, macOS) the call does nothing.  Numbers are unchanged: this is where memory comes
from, not what is computed in it.
"""
from __future__ import annotations

import ctypes
import os

#: mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
#: bytes that may stay free at the heap's top before glibc returns them (mallopt takes an int)
TRIM_THRESHOLD = 2**31 - 1

_state: dict[str, str] = {}


def keep_freed_memory() -> str:
    """Ask glibc's malloc to keep freed memory for reuse; returns what was done, in words (also in
    :func:`status`).  Idempotent."""
    if "status" in _state:
        return _state["status"]
    if os.environ.get("PHYSAMPLER_KEEP_MEMORY", "").strip() == "0":
        status = "system default (PHYSAMPLER_KEEP_MEMORY=0)"
    else:
        try:
            libc = ctypes.CDLL(None)
            mallopt, version = libc.mallopt, libc.gnu_get_libc_version
        except (OSError, AttributeError):
            status = "system default (not glibc)"
        else:
            version.restype = ctypes.c_char_p
            mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
            ok = mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
            status = (f"freed memory kept (glibc {version().decode()}: M_MMAP_MAX 0, M_TRIM_THRESHOLD 2 GiB)"
                      if ok else "system default (mallopt refused)")
    _state["status"] = status
    return status


def status() -> str:
    """What :func:`keep_freed_memory` did in this process ("system default" if it was not called)."""
    return _state.get("status", "system default")
