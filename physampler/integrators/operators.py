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


def noise_scale(c_f: float, kT: float, inv_mass, dtype, device) -> torch.Tensor:
    """√(c_f(2 − c_f)·kT/m) of the thermostat, in ``dtype`` on ``device`` (an engine computes it
    once: building it from Python numbers every step is a host-to-device copy)."""
    return torch.sqrt(torch.as_tensor(c_f * (2.0 - c_f) * kT, dtype=dtype, device=device) * inv_mass)


def thermostat(v: torch.Tensor, c_f: float, kT: float, inv_mass, noise: torch.Tensor, scale=None) -> torch.Tensor:
    """(1 − c_f)·v + √(c_f(2 − c_f)·kT/m)·η; ``inv_mass`` is 1/m (scalar or broadcastable);
    ``scale``: the :func:`noise_scale` of these arguments, when the caller holds it."""
    if c_f == 0.0:
        return v
    if scale is None:
        scale = noise_scale(c_f, kT, inv_mass, v.dtype, v.device)
    return (1.0 - c_f) * v + scale * noise


def friction_coefficient(gamma: float, dt: float) -> float:
    """c_f = 1 − e^(−γ·dt): the per-step velocity damping of a Langevin friction γ."""
    return -math.expm1(-gamma * dt)


def maxwell_boltzmann(rng, shape, kT: float, inv_mass, dtype=torch.float64) -> torch.Tensor:
    """Velocities ~ N(0, kT/m) for every walker, each from its own stream."""
    return rng.normal(shape, dtype=dtype) * torch.sqrt(torch.as_tensor(kT, dtype=dtype) * inv_mass).to(rng.device)
