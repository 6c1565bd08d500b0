"""The bias-method protocol (docs/science.md §4)."""
from __future__ import annotations

import abc

import torch

from .. import _checks
from ..landscape import Landscape
from ..schedules import Schedule


class Method(abc.ABC):
    """A grid bias S_m(ξ) (units of kT) that walkers feel as the force −kT·∂S_m/∂ξ·∂ξ/∂q.

    Subclasses define :meth:`update` (the deposit of one step) and :meth:`log_density`;
    the landscape's edge policy (``raise`` or walls) and its gradient are shared.

    Attributes
    ----------
    landscape : the grid of S_m and of the visit histogram H, updated in place.  All walkers
        (and, under torchrun, all ranks) share it, so it is held by the method rather than
        copied into every step's state.
    schedule : the deposit factor f(t) (None for a frozen bias).
    physical_default : whether the walkers, by default, also feel the system's potential
        (False for Wang–Landau and a static entropy bias, True for metadynamics).
    """

    kind: str = ""
    physical_default: bool = False

    def __init__(self, landscape: Landscape, schedule: Schedule | None):
        if not isinstance(landscape, Landscape):
            raise ValueError(f"landscape: must be a Landscape (got {type(landscape).__name__})")
        if schedule is not None and not isinstance(schedule, Schedule):
            raise ValueError(f"schedule: must be a Schedule (got {type(schedule).__name__})")
        self.landscape = landscape
        self.schedule = schedule

    def check_range(self, xi: torch.Tensor, step: int, walkers=None) -> torch.Tensor:
        """[W] mask of walkers on the grid; under ``raise`` a walker off it raises with step and walker."""
        return self.landscape.check_range(xi, step, walkers)

    def gradient(self, xi: torch.Tensor) -> torch.Tensor:
        """∂S_m/∂ξ at ξ, [W, K] (edge walls included)."""
        return self.landscape.gradient(xi)

    def factor(self, step: int | torch.Tensor) -> float | torch.Tensor:
        """The deposit factor f(t) of step t (0 for a frozen bias): a float for a Python step, a
        float64 tensor on its device for a step held in a tensor (no host sync)."""
        if isinstance(step, torch.Tensor):
            if self.schedule is None:
                return torch.zeros(step.shape, dtype=torch.float64, device=step.device)
            return self.schedule.tensor(step)
        return 0.0 if self.schedule is None else float(self.schedule(step))

    @abc.abstractmethod
    def update(self, xi: torch.Tensor, step, inside: torch.Tensor, walkers: int):
        """Deposit of step ``step`` (an int, or a 0-d integer tensor: see :meth:`factor`) for CV values ``xi`` [W, K] of in-grid walkers ``inside``,
        ``walkers`` walkers sharing the grid; returns the factor f(t) used (:meth:`factor`)."""

    @abc.abstractmethod
    def log_density(self, kT: float) -> torch.Tensor:
        """ln ρ(ξ) + const on the grid: the log density of ξ in the dynamics without the bias
        at temperature ``kT`` (ln g(ξ) when walkers feel no potential)."""

    def params(self) -> dict:
        """The method's parameters, for output attributes."""
        return {"method": self.kind}

    def state_dict(self) -> dict:
        return {"kind": self.kind, "landscape": self.landscape.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        _checks.same("method state: kind", state.get("kind", self.kind), self.kind)
        self.landscape.load_state_dict(state["landscape"])
