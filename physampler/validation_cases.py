"""The validation cases of ``physampler validate`` (grids, run lengths, literature ranges).

Plain numbers only — no torch — so that the command line can list the cases in its
``--help`` without loading torch.  The runs themselves live in
:mod:`physampler.validation` (harmonic wells) and :mod:`physampler.validation_lj`
(Lennard-Jones clusters).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class HarmonicCase:
    n: int
    lower: float
    upper: float
    bins: int
    temperature: float  # canonical check temperature
    steps: int  # WLMD steps of the validation run (the N = 10 well's low-U end fills slowest)


HARMONIC_CASES = {
    2: HarmonicCase(2, 0.0, 30.0, 150, 2.0, 60000),
    4: HarmonicCase(4, 0.1, 30.1, 150, 2.5, 60000),
    10: HarmonicCase(10, 1.0, 31.0, 120, 1.5, 120000),
}


@dataclass(frozen=True)
class LJCase:
    n: int
    radius: float  # R_c (σ)
    lower: float  # U grid (ε)
    upper: float
    bins: int
    sigma_bins: float
    wall_strength: float  # β of the grid-edge walls (1/ε²): walkers start in minima below the grid
    edge_push: float  # slope of a linear wall at the upper edge (1/ε), well above dln g/dU there
    kT: float  # thermostat temperature T0 (sets the time scale only)
    dt: float
    c_f: float
    fill: float  # ∫ f_WL dt over the run; sets F (see :func:`schedule_for`)
    t_wl_fraction: float  # t_WL as a fraction of the run's steps (the 1/t phase then covers the rest)
    steps: int  # per walker (validate default)
    walkers: int  # per replica
    replicas: int
    temperatures: tuple  # comparison temperatures
    peak_range: tuple  # literature range of the C_V peak temperature
    reference_temperatures: tuple  # OpenMM runs for MBAR
    reference_steps: int  # per OpenMM temperature
    start_temperature: float = 0.5  # S starts as (U − lower)/T: canonical forces at T, not free flight (ε)


LJ_CASES = {
    "lj13": LJCase(
        n=13, radius=2.0, lower=-43.0, upper=-20.0, bins=460, sigma_bins=1.0, wall_strength=2.0, edge_push=10.0, kT=0.3, dt=0.005, c_f=0.005,
        fill=24000.0, t_wl_fraction=0.125, steps=1_500_000, walkers=16, replicas=4,
        temperatures=tuple(np.round(np.arange(0.22, 0.4201, 0.02), 3)), peak_range=(0.27, 0.31),
        reference_temperatures=tuple(np.round(np.arange(0.18, 0.4801, 0.03), 3)), reference_steps=400_000,
    ),
    "lj38": LJCase(
        n=38, radius=2.8, lower=-172.5, upper=-125.0, bins=475, sigma_bins=1.0, wall_strength=1.0, edge_push=20.0, kT=0.15, dt=0.005, c_f=0.005,
        fill=200000.0, t_wl_fraction=0.125, steps=50_000_000, walkers=16, replicas=4,
        temperatures=tuple(np.round(np.arange(0.08, 0.2501, 0.01), 3)), peak_range=(0.15, 0.19),
        reference_temperatures=tuple(np.round(np.arange(0.10, 0.2501, 0.0125), 4)), reference_steps=4_000_000,
    ),
}
