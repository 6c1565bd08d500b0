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


# ----------------------------------------------------------------- the models' sizes
def network_parameters(s: dict) -> float:
    """Parameters of the ``[system]`` network (models/transformer.py, models/mlp.py)."""
    p = s["p"]
    if s["model"] == "transformer":
        d, hd, m = s["d_model"], s["heads"] * s["d_head"], s["d_mlp"]
        return (p + 1) * d + 3 * d + 3 * hd * d + d * hd + 2 * m * d + m + d + p * d
    h = s["hidden"]
    return h * 2 * p + h + p * h + p


def activations_per_example(s: dict) -> float:
    """Floats a forward pass keeps per example.  The transformer's fast path runs only the last
    position past the key/value tables: query, scores, attention output, residuals, the MLP's
    pre- and post-ReLU activations and the logits (measured at p = 67, d_model 128, CPU: 49 MiB
    per walker against 58 MiB estimated)."""
    p = s["p"]
    if s["model"] == "transformer":
        d, hd, h = s["d_model"], s["heads"] * s["d_head"], s["heads"]
        return hd + 3 * h + 3 * d + 2 * s["d_mlp"] + p
    return 2 * s["hidden"] + p


def _network_key(s: dict) -> str:
    """The width key whose doubling grows the network most."""
    keys = ("d_model", "d_mlp", "heads", "d_head", "p") if s["model"] == "transformer" else ("hidden", "p")
    base = network_parameters(s) + activations_per_example(s)
    return "system." + max(keys, key=lambda k: (network_parameters(s | {k: 2 * s[k]})
                                                 + activations_per_example(s | {k: 2 * s[k]})) / base)


def _kernel_window(sigma: float, cutoff: float, dims: int) -> float:
    return (2 * math.ceil(min(cutoff * sigma, 1e300)) + 1.0) ** dims


# ----------------------------------------------------------------- the estimates
def run_estimate(cfg: dict) -> list[Item]:
    """The memory of a ``physampler run`` config, item by item."""
    s, ls, run = cfg["system"], cfg["landscape"], cfg["run"]
    b = 8 if run["dtype"] == "float64" else 4
    w = run["walkers"]
    grid = math.prod(float(n) for n in ls["bins"])
    nn = s["kind"] == "nn"
    # S, H, their copies for the distributed sync and the export; + sums and counts of per-bin observables
    items = [Item("landscape.bins", "grid", grid * 8 * (6 + (4 if nn else 0))),
             Item("landscape.sigma", "deposit kernels", w * _kernel_window(ls["sigma"], ls["cutoff"], len(ls["bins"]))
                  * 16 * 3)]
    if s["kind"] == "harmonic":
        n, key = float(s["dims"]), "system.dims"
    elif s["kind"] == "double_well":
        n, key = 1.0, "system.dims"
    elif s["kind"] == "python":
        n, key = 1.0, "system.factory"  # the factory's own system is not known before it is built: not counted
    elif s["kind"] == "lj_cluster":
        n, key = 3.0 * s["atoms"], "system.atoms"
        # all-pairs distance vectors of the torch path and of the FIRE-quenched starts
        items.append(Item("system.atoms", "pair distances", w * float(s["atoms"]) ** 2 * 3 * 8 * 4))
    else:
        n, key = network_parameters(s), _network_key(s)
        examples = float(s["p"]) ** 2
        items.append(Item(key, "activations", w * examples * activations_per_example(s) * b * AUTOGRAD_FACTOR))
        items.append(Item("system.p", "data", examples * 3 * 8 * 2))
    state = w * n * b * STATE_ARRAYS + w * max(4096.0, n) * b  # + the walkers' blocks of random numbers
    items.append(Item("run.walkers" if w >= n else key, "walker states", state))
    return items


def train_estimate(cfg: dict) -> list[Item]:
    """The memory of a ``physampler train`` config, item by item."""
    s, o, t = cfg["system"], cfg["optimizer"], cfg["train"]
    b = 8 if t["dtype"] == "float64" else 4
    key = _network_key(s)
    n = network_parameters(s)
    examples = float(s["p"]) ** 2
    # parameters, gradients, the optimizer's moments (AdamW) or flat walker state (WanD)
    items = [Item(key, "parameters and optimizer state", n * b * (STATE_ARRAYS if o["name"] == "wand" else 4)),
             Item(key, "activations", examples * activations_per_example(s) * b * AUTOGRAD_FACTOR),
             Item("system.p", "data", examples * 3 * 8 * 2)]
    if o["name"] == "wand":
        items += [Item("optimizer.bins", "ln L grid", float(o["bins"]) * 8 * 6),
                  Item("optimizer.sigma", "deposit kernel", _kernel_window(o["sigma"], 4.0, 1) * 16 * 3)]
    return items


def guard(cfg: dict, kind: str = "run") -> float:
    """Raise :class:`ConfigError` naming the key of the largest item when the estimate of a ``run``
    or ``train`` config exceeds the memory available on its device; returns the estimate (bytes)."""
    items = run_estimate(cfg) if kind == "run" else train_estimate(cfg)
    device = cfg["run" if kind == "run" else "train"]["device"]
    total = sum(i.bytes for i in items)
    room = available_memory(device)
    if total > room:
        worst = max(items, key=lambda i: i.bytes)
        sec, name = worst.key.split(".")
        parts = ", ".join(f"{i.label} {format_bytes(i.bytes)}" for i in sorted(items, key=lambda i: -i.bytes)[:3])
        raise ConfigError(f"{worst.key}: the job needs an estimated {format_bytes(total)} ({parts}), more than the "
                          f"{format_bytes(room)} available on {device} (got {format_value(cfg[sec][name])})")
    return total
