"""Resource guard: the memory a job will need, estimated from its config before anything is allocated.

``physampler run`` and ``physampler train`` refuse a config whose estimate exceeds the
memory this process can get, as a config error that names the key driving the
largest part and prints the estimate::

    config error: landscape.bins: the job needs an estimated 14.9 GiB (grid 14.9 GiB, ...),
    more than the 3.2 GiB available on cpu (got [1000000000])

The estimate counts the arrays a step holds at once, with the integrator's and
autograd's temporaries folded into small constant factors; it is meant to be right
within a factor of about two, which is what separates "fits" from "cannot fit".
Available memory: on CPU the smaller of ``MemAvailable`` (/proc/meminfo) and the
cgroup limit minus its usage; on CUDA the device's free memory; in either case at
most ``PHYSAMPLER_MEMORY_LIMIT`` (bytes, or with a K/M/G/T suffix) when that is set
— a cap for shared machines whose limits the process cannot see.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

from .config import ConfigError, format_value

#: arrays of the size of one walker's coordinates held during a step: positions, velocities,
#: acceleration, forces, the drift's new positions and the noise
STATE_ARRAYS = 8
#: the forward's activations kept for the backward, plus their gradients
AUTOGRAD_FACTOR = 2


@dataclass(frozen=True)
class Item:
    key: str  # the config key that drives this part
    label: str
    bytes: float


def format_bytes(n: float) -> str:
    if not math.isfinite(n):
        return "more than can be counted"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.3g} EiB"


def _parse_limit(text: str) -> float | None:
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    scale = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}.get(text[-1:], 1)
    try:
        return float(text.rstrip("KMGT")) * scale
    except ValueError:
        return None


def _cgroup_room() -> float | None:
    try:
        limit = open("/sys/fs/cgroup/memory.max").read().strip()
        used = float(open("/sys/fs/cgroup/memory.current").read())
    except (OSError, ValueError):
        return None
    return None if limit == "max" else max(float(limit) - used, 0.0)


def available_memory(device: str) -> float:
    """Bytes this process can still allocate on ``device`` (see the module docstring)."""
    room = math.inf
    if device.startswith("cuda"):
        import torch

        room = float(torch.cuda.mem_get_info(torch.device(device))[0])
    else:
        try:
            for line in open("/proc/meminfo"):
                if line.startswith("MemAvailable:"):
                    room = float(line.split()[1]) * 1024
        except OSError:
            pass
        cg = _cgroup_room()
        if cg is not None:
            room = min(room, cg)
    cap = _parse_limit(os.environ.get("PHYSAMPLER_MEMORY_LIMIT", "") or "x")
    return min(room, cap) if cap is not None else room


def kernel_window(sigma: float, cutoff: float, dims: int) -> float:
    return (2 * math.ceil(min(cutoff * sigma, 1e300)) + 1.0) ** dims


# ----------------------------------------------------------------- the estimates
def run_estimate(cfg: dict) -> list[Item]:
    """The memory of a ``physampler run`` config, item by item; the system kind counts its
    coordinates and adds its own items (:class:`physampler.registry.SystemKind`)."""
    from .registry import system_kind

    kind = system_kind(cfg["system"]["kind"])
    ls, run = cfg["landscape"], cfg["run"]
    b = 8 if run["dtype"] == "float64" else 4
    w = run["walkers"]
    grid = math.prod(float(n) for n in ls["bins"])
    # S, H, their copies for the distributed sync and the export
    items = [Item("landscape.bins", "grid", grid * 8 * 6),
             Item("landscape.sigma", "deposit kernels", w * kernel_window(ls["sigma"], ls["cutoff"], len(ls["bins"]))
                  * 16 * 3)]
    n, key = kind.coordinates(cfg) if kind.coordinates is not None else (1.0, "system.kind")
    if kind.memory is not None:
        items += kind.memory(cfg, b)
    state = w * n * b * STATE_ARRAYS + w * max(4096.0, n) * b  # + the walkers' blocks of random numbers
    items.append(Item("run.walkers" if w >= n else key, "walker states", state))
    return items


def guard(cfg: dict, kind: str = "run") -> float:
    """Raise :class:`ConfigError` naming the key of the largest item when the estimate of a ``run``
    or ``train`` config exceeds the memory available on its device; returns the estimate (bytes)."""
    if kind == "run":
        items, device = run_estimate(cfg), cfg["run"]["device"]
    else:
        from .registry import job_kinds

        job = job_kinds()[kind]
        items, device = job.memory(cfg), cfg[job.section]["device"]
    total = sum(i.bytes for i in items)
    room = available_memory(device)
    if total > room:
        worst = max(items, key=lambda i: i.bytes)
        sec, name = worst.key.split(".")
        parts = ", ".join(f"{i.label} {format_bytes(i.bytes)}" for i in sorted(items, key=lambda i: -i.bytes)[:3])
        raise ConfigError(f"{worst.key}: the job needs an estimated {format_bytes(total)} ({parts}), more than the "
                          f"{format_bytes(room)} available on {device} (got {format_value(cfg[sec][name])})")
    return total
