"""The kick / drift / thermostat operators shared by every integrator.

    kick:        v ← v + a·dt                                   ("B")
    drift:       q ← q + v·dt                                   ("A")
    thermostat:  v ← (1 − c_f)·v + √(c_f(2 − c_f)·kT/m)·η       ("O"), η ~ N(0, 1)

The thermostat is [P1] eq. 5 / docs/science.md §3.  With c_f = 1 − e^(−γ·dt) it is
exactly the Ornstein–Uhlenbeck step of BAOAB (Leimkuhler & Matthews 2013),
since c_f(2 − c_f) = 1 − e^(−2γ·dt); so WLMD and BAOAB share one operator.
"""
from __future__ import annotations

import math

import torch


def kick(v: torch.Tensor, a: torch.Tensor, dt: float) -> torch.Tensor:
    return v + a * dt


def drift(q: torch.Tensor, v: torch.Tensor, dt: float) -> torch.Tensor:
    return q + v * dt


def thermostat(v: torch.Tensor, c_f: float, kT: float, inv_mass, noise: torch.Tensor) -> torch.Tensor:
    """(1 − c_f)·v + √(c_f(2 − c_f)·kT/m)·η; ``inv_mass`` is 1/m (scalar or broadcastable)."""
    if c_f == 0.0:
        return v
    sigma = torch.sqrt(torch.as_tensor(c_f * (2.0 - c_f) * kT, dtype=v.dtype, device=v.device) * inv_mass)
    return (1.0 - c_f) * v + sigma * noise


def friction_coefficient(gamma: float, dt: float) -> float:
    """c_f = 1 − e^(−γ·dt): the per-step velocity damping of a Langevin friction γ."""
    return -math.expm1(-gamma * dt)


def maxwell_boltzmann(rng, shape, kT: float, inv_mass, dtype=torch.float64) -> torch.Tensor:
    """Velocities ~ N(0, kT/m) for every walker, each from its own stream."""
    return rng.normal(shape, dtype=dtype) * torch.sqrt(torch.as_tensor(kT, dtype=dtype) * inv_mass).to(rng.device)
