"""Validation runs against exact results (``physampler validate ...``).

Harmonic wells (docs/science.md §13): for U = ½ Σ k_i x_i² in N dimensions,
S(U) = (N/2 − 1)·ln U + c exactly and canonical reweighting gives ⟨U⟩ = N·T/2,
C_V,conf = N/2.  WLMD with ξ = U samples S on a grid chosen per N so that

* the canonical distribution at the check temperature T lies inside the grid
  (the truncated mass is < 1 %, which biases ⟨U⟩ and C_V by < 1 %: the 2 %
  tolerance covers it),
* S changes by < 0.5 per bin, so bin-centre values are meaningful.

Pass criteria, per N: max |S − (N/2 − 1)·ln U − c| ≤ 0.1 after a
least-squares fit of c over the sampled range — every bin except the
``EDGE_BINS`` outermost at each end, whose centres lie within the kernel width
σ = 1 bin of a grid edge: there the reflected kernel is mirror-symmetric,
which forces dS/dξ → 0 at the edge and cannot follow a steep ln g (their
deviation is reported separately as ``edge_deviation``); every bin of the production histogram
(second half of the run) within ±20 % of its mean; the least-squares slope
dS/d ln U within 2 % (or 0.05) of N/2 − 1; ⟨U⟩ and C_V from the sampled S
within 2 % of N·T/2 and N/2.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from .analysis import canonical, fit_offset
from .cvs import PotentialEnergy
from .grid import Axis
from .integrators import WLMD
from .landscape import Landscape
from .rng import WalkerRNG
from .schedules import InverseTime
from .systems import HarmonicWell


from .validation_cases import HARMONIC_CASES, HarmonicCase  # noqa: F401  (re-exported)

SIGMA_BINS = 1.0
WINDOW_OVERLAP = 0.75  # windowed validations: Vogel et al.'s overlap
SWAP_INTERVAL = 100  # and steps between swaps
EDGE_BINS = 1  # bins whose centre lies within SIGMA_BINS of an edge


@dataclass
class HarmonicResult:
    n: int
    slope: float
    exact_slope: float
    max_deviation: float
    edge_deviation: float
    flat_min: float
    flat_max: float
    mean_energy: float
    exact_mean_energy: float
    heat_capacity: float
    exact_heat_capacity: float
    wall_time: float
    steps: int
    walkers: int
    landscape: Landscape
    windows: dict | None = None  # windowed runs: the join's record (physampler.windows.WindowedLandscape.joined)

    @property
    def checks(self) -> dict[str, bool]:
        slope_tol = max(0.05, 0.02 * abs(self.exact_slope))
        return {
            "slope": abs(self.slope - self.exact_slope) <= slope_tol,
            "deviation": self.max_deviation <= 0.1,
            "flatness": self.flat_min >= 0.8 and self.flat_max <= 1.2,
            "mean_energy": abs(self.mean_energy / self.exact_mean_energy - 1) <= 0.02,
            "heat_capacity": abs(self.heat_capacity / self.exact_heat_capacity - 1) <= 0.02,
        }

    @property
    def passed(self) -> bool:
        return all(self.checks.values())


def harmonic_setup(n: int, *, walkers: int, seed: int, steps: int, device="cpu", case: HarmonicCase | None = None,
                   windows: int = 1, overlap: float = WINDOW_OVERLAP):
    """Build (integrator, initial state) for the N-dimensional harmonic validation; ``windows`` > 1:
    replica-exchange windows (:mod:`physampler.windows`, sharing ``overlap``), the integrator then a
    :class:`~physampler.windows.WindowedWLMD` of the torch engine."""
    from .windows import ReplicaExchange, WindowedLandscape, WindowedWLMD, layout

    case = case or HARMONIC_CASES[n]
    system = HarmonicWell.isotropic(n, device=device)
    axis = Axis("energy", case.lower, case.upper, bins=case.bins, units="epsilon", long_name="potential energy")
    kernel = dict(sigma=SIGMA_BINS, out_of_range="wall", wall_strength=2.0, device=device)
    if windows > 1:
        landscape = WindowedLandscape(layout(axis, windows, overlap), walkers=walkers, **kernel)
    else:
        landscape = Landscape([axis], **kernel)
    # F·t_WL = 1000 total deposit before the 1/t phase: several times the
    # ≈ (range of S)·bins/2 needed to build S, and small enough that the
    # final factor is ≈ 1e-2.
    schedule = InverseTime(F=0.5, t_wl=max(1, min(2000, steps // 20)))
    integ = WLMD(system, PotentialEnergy(system), landscape, schedule, dt=0.05, c_f=0.01, kT=1.0)
    rng = WalkerRNG(seed, walkers, device=device)
    # Walker w starts on the shell U_w = lower + (w + ½)/W·(upper − lower) in a random
    # direction from its own stream: the walkers cover the grid from step 0, so
    # the low-U end (a small volume, reached last from mid-grid) is not built late.
    u0 = case.lower + (torch.arange(walkers, dtype=torch.float64, device=device) + 0.5) / walkers * (case.upper - case.lower)
    d = rng.normal((n,))
    q0 = d / d.norm(dim=1, keepdim=True) * torch.sqrt(2 * u0)[:, None]
    if windows > 1:  # walker w starts in window ⌊wK/W⌋, which holds its shell
        integ = WindowedWLMD(integ, ReplicaExchange(landscape, SWAP_INTERVAL, seed))
    return integ, integ.init(q0, rng)


def run_harmonic(n: int, *, steps: int | None = None, walkers: int = 256, seed: int = 2026, device="cpu",
                 engine: str = "auto", windows: int = 1) -> HarmonicResult:
    """Validation run of the N-dim well (steps: default the case's own).  ``engine``: ``torch``
    (the generic step), ``compiled`` (the numba block loop, which follows it to round-off:
    tests/test_validation.py) or ``auto`` (compiled on the CPU).  ``windows`` > 1: that many
    replica-exchange windows, judged on their joined S by the same criteria."""
    from .integrators.compiled import CompiledWLMD
    from .windows import WindowedWLMD

    case = HARMONIC_CASES[n]
    steps = case.steps if steps is None else steps
    if engine not in ("auto", "torch", "compiled"):
        raise ValueError(f"engine: must be auto, torch or compiled (got {engine!r})")
    t0 = time.perf_counter()
    integ, state = harmonic_setup(n, walkers=walkers, seed=seed, steps=steps, device=device, windows=windows)
    land = integ.landscape
    if engine == "compiled" or (engine == "auto" and torch.device(device).type == "cpu"):
        if isinstance(integ, WindowedWLMD):
            integ = WindowedWLMD(CompiledWLMD(integ.wlmd), integ.exchange)
        else:
            integ = CompiledWLMD(integ)
    half = steps // 2
    if half:
        state = integ.run(state, half)[0]
    land.reset_histogram()  # production histogram: second half
    state = integ.run(state, steps - half)[0]
    wall = time.perf_counter() - t0
    record = None
    if windows > 1:
        land, record = land.joined()
    u = land.grid.axes[0].centres().numpy()
    s = land.S.detach().cpu().numpy()
    exact_slope = n / 2 - 1
    exact = exact_slope * np.log(u) if exact_slope != 0 else np.zeros_like(u)
    inner = slice(EDGE_BINS, len(u) - EDGE_BINS)
    c, maxdev = fit_offset(exact[inner], s[inner])
    edge_dev = float(np.max(np.abs(np.r_[s[:EDGE_BINS] - exact[:EDGE_BINS], s[-EDGE_BINS:] - exact[-EDGE_BINS:]] - c)))
    slope = float(np.polyfit(np.log(u), s, 1)[0])
    fmin, fmax = land.flatness(torch.ones_like(land.H, dtype=torch.bool))
    can = canonical(u, s, [case.temperature])
    return HarmonicResult(
        n=n,
        slope=slope,
        exact_slope=exact_slope,
        max_deviation=maxdev,
        edge_deviation=edge_dev,
        flat_min=fmin,
        flat_max=fmax,
        mean_energy=float(can.mean_energy[0]),
        exact_mean_energy=n * case.temperature / 2,
        heat_capacity=float(can.heat_capacity[0]),
        exact_heat_capacity=n / 2,
        wall_time=wall,
        steps=steps,
        walkers=walkers,
        landscape=land,
        windows=record,
    )
