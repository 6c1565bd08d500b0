"""Well-tempered metadynamics on the Wang–Landau deposit machinery (docs/science.md §4).

Barducci, Bussi, Parrinello, PRL 100, 020603 (2008), doi:10.1103/PhysRevLett.100.020603;
the equivalence with WLMD: Junghans, Perez, Vogel, JCTC 10, 1843 (2014), doi:10.1021/ct500077d.
"""
from __future__ import annotations

import torch

from .. import _checks
from ..landscape import Landscape
from ..schedules import Schedule
from ..rules import PHYSICAL_DEFAULT
from .base import Method


class WellTemperedMetadynamics(Method):
    """Bias V(ξ) = kT·S_m(ξ) grown by heights damped where it is already high:

        S_m ← S_m + (f(t)/W)·exp(−V(ξ)/ΔT)·K(ξ),      γ = (T + ΔT)/T,

    so that at long times V → −(ΔT/(T + ΔT))·F(ξ) + const and the free energy is

        F(ξ) = −((T + ΔT)/ΔT)·V(ξ),      ln ρ(ξ) = −F/kT = ((T + ΔT)/ΔT)·S_m(ξ).

    Symbols: T = ``kT`` (the integrator's temperature), ΔT = ``delta_T``, f = ``schedule``
    (in kT per step; a constant in standard metadynamics), W = ``walkers`` sharing the bias,
    V(ξ) = kT·``landscape.S`` interpolated at the walker, K = the normalised Gaussian kernel.
    With the system's potential on (the default) F is the physical free energy at T; without
    it (pure entropy dynamics) F = −T·ln g(ξ).
    """

    kind = "well_tempered_metadynamics"
    physical_default = PHYSICAL_DEFAULT[kind]

    def __init__(self, landscape: Landscape, schedule: Schedule, *, delta_T: float, kT: float):
        if schedule is None:
            raise ValueError("schedule: metadynamics needs a deposit schedule f(t) (got None)")
        super().__init__(landscape, schedule)
        self.delta_T = _checks.positive("delta_T", delta_T)
        self.kT = _checks.positive("kT", kT)

    @property
    def bias_factor(self) -> float:
        """γ = (T + ΔT)/T."""
        return (self.kT + self.delta_T) / self.kT

    def update(self, xi: torch.Tensor, step, inside: torch.Tensor, walkers: int):
        f = self.factor(step)
        v = self.kT * self.landscape.value(xi)
        self.landscape.deposit(xi, (f / walkers) * torch.exp(-v / self.delta_T), inside)
        return f

    def free_energy(self) -> torch.Tensor:
        """F(ξ) = −((T + ΔT)/ΔT)·V(ξ) on the grid, in units of energy."""
        return -(self.kT + self.delta_T) / self.delta_T * self.kT * self.landscape.S

    def log_density(self, kT: float) -> torch.Tensor:
        return -self.free_energy() / self.kT

    def params(self) -> dict:
        return {"method": self.kind, "method_delta_T": self.delta_T, "method_bias_factor": self.bias_factor}
