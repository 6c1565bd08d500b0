"""Wang–Landau deposition ([P1] eq. 4; docs/science.md §1, §3)."""
from __future__ import annotations

import torch

from ..landscape import Landscape
from ..schedules import Schedule
from ..rules import PHYSICAL_DEFAULT
from .base import Method


class WangLandau(Method):
    """S ← S + (f_WL(t)/W)·K(ξ) for every in-grid walker, H[ξ] += 1.

    Converged, S = ln g(ξ) + const when the walkers feel no potential, so the
    :meth:`log_density` is S itself.  Symbols: f_WL = ``schedule``, W = ``walkers``,
    K = the landscape's normalised Gaussian kernel.
    """

    kind = "wang_landau"
    physical_default = PHYSICAL_DEFAULT[kind]

    def __init__(self, landscape: Landscape, schedule: Schedule):
        if schedule is None:
            raise ValueError("schedule: Wang–Landau needs a schedule f_WL(t) (got None)")
        super().__init__(landscape, schedule)

    def update(self, xi: torch.Tensor, step, inside: torch.Tensor, walkers: int):
        f = self.factor(step)
        self.landscape.deposit(xi, f / walkers, inside)
        return f

    def log_density(self, kT: float) -> torch.Tensor:
        return self.landscape.S.clone()
