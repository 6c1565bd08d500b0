"""Well-tempered metadynamics against exact answers (``physampler validate metad``;
docs/science.md §4, §13).

Both cases run :class:`~physampler.methods.WellTemperedMetadynamics` on the BAOAB splitting
with the walkers feeling the system's potential at T = 1, the deposit factor on the
inverse-time schedule (heights f_WL(t)·exp(−V/ΔT): the well-tempered damping and a 1/t
decay that lets the final bias settle), and read the answer from the final bias alone,
F = −((T + ΔT)/ΔT)·V.

* ``double_well``: U = a(x² − 1)², a = 3 kT, ξ = x.  In one dimension F(x) = U(x) + c
  exactly; pass: max |F − U − c| ≤ 0.1 kT over |x| ≤ 1.5, c the mean offset there.
* ``harmonic10``: U = ½|q|² in 10 dimensions, ξ = U.  ln g(U) = 4 ln U + c; the estimate
  S(U) = −F(U)/T + U/T must meet the Wang–Landau validation's criteria on S
  (:mod:`physampler.validation`): max |S − 4 ln U − c| ≤ 0.1 over the interior bins,
  dS/d ln U within 2 % of 4, ⟨U⟩ and C_V from S within 2 % of N·T/2 and N/2 at T = 1.5.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .analysis import canonical, fit_offset
from .cvs import Coordinate, PotentialEnergy
from .grid import Axis
from .integrators import BiasedMD
from .landscape import Landscape
from .methods import WellTemperedMetadynamics
from .rng import WalkerRNG
from .schedules import InverseTime
from .systems import DoubleWell1D, HarmonicWell


@dataclass(frozen=True)
class MetadCase:
    name: str
    lower: float
    upper: float
    bins: int
    sigma_bins: float
    delta_T: float
    F: float  # peak deposit factor of the inverse-time schedule (kT per step, all walkers together)
    t_wl: float
    dt: float
    friction: float  # Langevin γ; c_f = 1 − e^(−γ·dt)
    walkers: int
    steps: int


METAD_CASES = {
    "double_well": MetadCase("double_well", -1.9, 1.9, 76, 1.0, 6.0, 0.1, 2000, 0.01, 5.0, 64, 80000),
    "harmonic10": MetadCase("harmonic10", 1.0, 31.0, 120, 1.0, 19.0, 0.5, 2000, 0.02, 1.0, 64, 80000),
}


@dataclass
class MetadResult:
    name: str
    measured: dict  # label → value
    limits: dict  # label → (limit text, passed)
    wall_time: float
    steps: int
    walkers: int
    landscape: Landscape = field(repr=False)

    @property
    def passed(self) -> bool:
        return all(ok for _, ok in self.limits.values())


def _run(case: MetadCase, system, cv, q0: torch.Tensor, seed: int, steps: int, walkers: int):
    land = Landscape([Axis(cv.name, case.lower, case.upper, bins=case.bins, units=cv.units)], sigma=case.sigma_bins,
                     out_of_range="wall")
    method = WellTemperedMetadynamics(land, InverseTime(case.F, case.t_wl), delta_T=case.delta_T, kT=1.0)
    md = BiasedMD(system, [cv], method, dt=case.dt, c_f=-math.expm1(-case.friction * case.dt), kT=1.0,
                  splitting="baoab")
    state = md.init(q0, WalkerRNG(seed, walkers))
    t0 = time.perf_counter()
    for _ in range(steps):
        state, _ = md.step(state)
    return md, time.perf_counter() - t0


def run_double_well(*, steps: int | None = None, walkers: int | None = None, seed: int = 2026) -> MetadResult:
    case = METAD_CASES["double_well"]
    steps, walkers = steps or case.steps, walkers or case.walkers
    system = DoubleWell1D(3.0)
    q0 = -1.0 + 0.1 * torch.randn((walkers, 1), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    md, wall = _run(case, system, Coordinate(0, "x"), q0, seed, steps, walkers)
    x = md.landscape.grid.axes[0].centres()
    inner = x.abs() <= 1.5
    d = (md.method.free_energy() - system.energy(x[:, None]))[inner]
    dev = float((d - d.mean()).abs().max())
    return MetadResult("double_well", {"max|F - U - c| (kT)": dev}, {"max|F - U - c| (kT)": ("<= 0.1", dev <= 0.1)},
                       wall, steps, walkers, md.landscape)


def run_harmonic10(*, steps: int | None = None, walkers: int | None = None, seed: int = 2026) -> MetadResult:
    case = METAD_CASES["harmonic10"]
    steps, walkers = steps or case.steps, walkers or case.walkers
    n, temperature = 10, 1.5
    system = HarmonicWell.isotropic(n)
    rng = WalkerRNG(seed + 1, walkers)
    u0 = case.lower + (torch.arange(walkers, dtype=torch.float64) + 0.5) / walkers * (case.upper - case.lower)
    d = rng.normal((n,))
    q0 = d / d.norm(dim=1, keepdim=True) * torch.sqrt(2 * u0)[:, None]
    md, wall = _run(case, system, PotentialEnergy(system), q0, seed, steps, walkers)
    u = md.landscape.grid.axes[0].centres().numpy()
    s = md.log_density_of_states().numpy()
    exact = (n / 2 - 1) * np.log(u)
    c, maxdev = fit_offset(exact[1:-1], s[1:-1])
    slope = float(np.polyfit(np.log(u), s, 1)[0])
    can = canonical(u, s, [temperature])
    mean_u, heat = float(can.mean_energy[0]), float(can.heat_capacity[0])
    measured = {"max|S - 4 ln U - c|": maxdev, "dS/dlnU": slope, "<U>(T=1.5)": mean_u, "C_V(T=1.5)": heat}
    limits = {"max|S - 4 ln U - c|": ("<= 0.1", maxdev <= 0.1),
              "dS/dlnU": ("4 +- 2 %", abs(slope / 4 - 1) <= 0.02),
              "<U>(T=1.5)": ("7.5 +- 2 %", abs(mean_u / (n * temperature / 2) - 1) <= 0.02),
              "C_V(T=1.5)": ("5 +- 2 %", abs(heat / (n / 2) - 1) <= 0.02)}
    return MetadResult("harmonic10", measured, limits, wall, steps, walkers, md.landscape)


RUNS = {"double_well": run_double_well, "harmonic10": run_harmonic10}
