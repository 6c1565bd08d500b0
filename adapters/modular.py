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
                          precision=s["precision"], compile=s["compile"])
    cons = []
    if s["constraint"] == "box":
        cons = [ReflectiveBox(system.box_bounds(s["box_c"], s["box_dim"]).to(dev))]
    elif s["constraint"] == "norm":
        cons = [FixedNormShell(s["norm_radius"])]
    return system, ModuleCVSet(system, cfg["cvs"]["names"]), cons

