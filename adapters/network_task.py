"""A user's own network and data as a sampled system: what a ``[system] kind = "python"`` factory
returns in place of a System when the walkers are the parameters of an ``nn.Module``.

The job machinery (config, checkpoints, resume, NetCDF, progress, torchrun) then runs it like
the built-in ``kind = "nn"`` networks: the adapter's :class:`~physampler.adapters.torch_module.ModuleSystem`
with the CVs of docs/science.md §7–8 (ln L_train, Ã_test and its logit, ln L_test, the
validation split's, |θ|), its loss (classification, regression or a callable), its evaluation
strategy and the parameter constraint of §5.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class NetworkTask:
    """``module`` with data ``train = (x, y)`` and ``test = (x, y)``.

    ``loss``: ``"cross_entropy"`` (integer labels), ``"mse"`` (float targets) or a callable
    ``loss(outputs, targets) -> scalar`` of one walker; ``validation``: a fraction of the training
    set carved off as a validation set (``validation_seed``); ``strategy`` / ``chunk``: how the
    walkers are evaluated (:class:`~physampler.adapters.torch_module.ModuleSystem`).

    ``constraint``: ``"box"`` (reflective |θ_i| ≤ c/√m per tensor, ``box_c``, ``box_dim``),
    ``"norm"`` (the fixed global norm ``norm_radius``) or ``"none"``; ``sharpness``: k of the
    smoothed accuracy sigmoid(k·margin).  ``init(generator) -> nn.Module`` draws one walker's
    initial network (default: every walker starts at ``module``'s own parameters).
    """

    module: torch.nn.Module
    train: tuple
    test: tuple
    constraint: str = "box"
    box_c: float = 3.0
    box_dim: str = "first"
    norm_radius: float = 30.0
    sharpness: float = 6.0
    init: object = None
    loss: object = "cross_entropy"
    validation: float | None = None
    validation_seed: int = 0
    strategy: str = "auto"
    chunk: int | None = None

    def __post_init__(self):
        from .torch_module import BOX_DIMS

        if not isinstance(self.module, torch.nn.Module):
            raise TypeError(f"module: must be a torch.nn.Module (got {type(self.module).__name__})")
        for name in ("train", "test"):
            v = getattr(self, name)
            if not (isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(t, torch.Tensor) for t in v)):
                raise TypeError(f"{name}: must be a pair (inputs, targets) of tensors")
        if self.constraint not in ("box", "norm", "none"):
            raise ValueError(f"constraint: must be one of box, norm, none (got {self.constraint!r})")
        if self.box_dim not in BOX_DIMS:
            raise ValueError(f"box_dim: must be one of {', '.join(BOX_DIMS)} (got {self.box_dim!r})")

    def starts(self, system, walkers: int, generator: torch.Generator) -> torch.Tensor:
        """The walkers' initial parameters [W, P], moved onto the constraint."""
        from .modular import constrained_starts

        q = system.initial_positions(walkers, generator=generator, init=self.init)
        return constrained_starts(q, system, self.constraint, box_c=self.box_c, box_dim=self.box_dim,
                                  norm_radius=self.norm_radius)


def build_network_task(task: NetworkTask, cfg: dict, dtype, device):
    """The :class:`~physampler.registry.Built` of a factory's NetworkTask under the job config ``cfg``."""
    from ..registry import Built
    from .modular import constraints_of
    from .torch_module import ModuleCVSet, ModuleSystem

    from ..config import ConfigError
    from ..rules import PHYSICAL_DEFAULT

    it = cfg["integrator"]
    if (PHYSICAL_DEFAULT[cfg["method"]["kind"]] if it["potential"] is None else it["potential"]):
        raise ConfigError("integrator.potential: must be false for a network, whose walkers feel only the CV forces "
                          f"(got {it['potential']})")
    if cfg["cvs"]["observe"]:
        raise ConfigError(f"cvs.observe: a network run records test accuracy per bin by itself; observe takes "
                          f"physical CVs (got {cfg['cvs']['observe']})")
    try:
        system = ModuleSystem(task.module, task.train, task.test, sharpness=task.sharpness, dtype=dtype, device=device,
                              loss=task.loss, validation=task.validation, validation_seed=task.validation_seed,
                              strategy=task.strategy, chunk=task.chunk)
        system.check_cvs(cfg["cvs"]["names"])
    except ValueError as e:
        msg = str(e)
        raise ConfigError("cvs.names:" + msg[4:] if msg.startswith("cvs:") else
                          f"system.factory: the NetworkTask's {msg}") from None
    cons = constraints_of(system, task.constraint, box_c=task.box_c, box_dim=task.box_dim,
                          norm_radius=task.norm_radius, device=device)
    return Built(system, ModuleCVSet(system, cfg["cvs"]["names"]), cons,
                 starts=lambda walkers, generator: task.starts(system, walkers, generator))
