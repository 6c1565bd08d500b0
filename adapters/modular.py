"""Networks on modular-arithmetic tasks built from a job config (``[system] kind = "nn"``).

Keeps the job layer free of torch.nn specifics: it asks this module for the System,
its CVs and its parameter constraint.
"""
from __future__ import annotations

import torch

from ..constraints import FixedNormShell, ReflectiveBox
from ..models.tasks import ModularTask
from .torch_module import ModuleCVSet, ModuleSystem


def network_from_config(cfg: dict, generator: torch.Generator, dtype):
    s = cfg["system"]
    if s["model"] == "transformer":
        from ..models.transformer import OneLayerTransformer

        return OneLayerTransformer(s["p"], d_model=s["d_model"], n_heads=s["heads"], d_head=s["d_head"],
                                   d_mlp=s["d_mlp"], generator=generator, dtype=dtype)
    from ..models.mlp import ModularMLP

    return ModularMLP(s["p"], hidden=s["hidden"], generator=generator, dtype=dtype)


def system_from_config(cfg: dict, dtype, dev):
    """A network on a modular task through the PyTorch adapter, its CVs and its constraint."""
    s = cfg["system"]
    task = ModularTask(s["task"], s["p"], train_fraction=s["train_fraction"], split_seed=s["split_seed"])
    net = network_from_config(cfg, torch.Generator().manual_seed(cfg["run"]["seed"]), dtype)
    system = ModuleSystem(net, *task.split(), sharpness=s["sharpness"], dtype=dtype, device=dev,
                          precision=s["precision"], compile=s["compile"], strategy=s["strategy"], chunk=s["chunk"],
                          validation=s["validation_fraction"], validation_seed=s["split_seed"])
    cons = constraints_of(system, s["constraint"], box_c=s["box_c"], box_dim=s["box_dim"],
                          norm_radius=s["norm_radius"], device=dev)
    return system, ModuleCVSet(system, cfg["cvs"]["names"]), cons



def initial_parameters(cfg: dict, system: ModuleSystem, walkers: int, generator: torch.Generator) -> torch.Tensor:
    """One network initialisation per walker (docs/science.md §8 init) from ``generator``; on the
    fixed-norm shell scaled to R, in the box clipped to it."""
    dtype = system.dtype
    q = torch.stack([system.flatten_module(network_from_config(cfg, generator, dtype)) for _ in range(walkers)])
    return constrained_starts(q, system, cfg["system"]["constraint"], box_c=cfg["system"]["box_c"],
                              box_dim=cfg["system"]["box_dim"], norm_radius=cfg["system"]["norm_radius"])


def constrained_starts(q: torch.Tensor, system: ModuleSystem, constraint: str, *, box_c: float, box_dim: str,
                       norm_radius: float) -> torch.Tensor:
    """Starts ``q`` [W, P] moved onto the constraint: scaled to the shell |θ| = R, or clipped to the box."""
    if constraint == "norm":
        return q / q.norm(dim=1, keepdim=True) * norm_radius
    if constraint == "box":
        bound = system.box_bounds(box_c, box_dim).to(q.device, q.dtype)
        return torch.maximum(torch.minimum(q, bound), -bound)
    return q


def constraints_of(system: ModuleSystem, constraint: str, *, box_c: float, box_dim: str, norm_radius: float,
                   device) -> list:
    """The walker constraint objects of ``constraint``."""
    if constraint == "box":
        return [ReflectiveBox(system.box_bounds(box_c, box_dim).to(device))]
    if constraint == "norm":
        return [FixedNormShell(norm_radius)]
    return []
