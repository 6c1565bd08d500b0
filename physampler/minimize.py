"""Local energy minimisation (inherent structures) for batched walkers.

FIRE — Bitzek, Koskinen, Gähler, Moseler & Gumbsch, Phys. Rev. Lett. 97, 170201
(2006) — run independently for every walker (its own time step, mixing
parameter and counters), with unit masses:

    P = F·v;  v ← (1 − α)·v + α·|v|·F̂
    P > 0 for more than N_min steps:  Δt ← min(f_inc·Δt, Δt_max),  α ← f_α·α
    P ≤ 0:                            Δt ← f_dec·Δt,  v ← 0,  α ← α_start
    v ← v + F·Δt;  q ← q + v·Δt  (each atom's move capped at ``max_step``)

Parameters as in the paper: N_min = 5, f_inc = 1.1, f_dec = 0.5, α_start = 0.1,
f_α = 0.99; Δt_max = 10·Δt_0.  A walker stops when max_i |F_i| < ``fmax``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import _checks
from .system import System


@dataclass
class Minimized:
    positions: torch.Tensor  # [W, *shape]
    energy: torch.Tensor  # [W]
    max_force: torch.Tensor  # [W] max per-atom |F| at the end
    converged: torch.Tensor  # [W] bool
    steps: int


def fire(system: System, positions: torch.Tensor, *, fmax: float = 1e-6, max_steps: int = 20000, dt: float = 0.005,
         max_step: float = 0.1) -> Minimized:
    """Minimise every walker of ``positions`` [W, n, d] (or [W, d]) with FIRE."""
    fmax = _checks.positive("fmax", fmax)
    max_steps = _checks.positive_int("max_steps", max_steps)
    dt0 = _checks.positive("dt", dt)
    max_step = _checks.positive("max_step", max_step)
    system.check_positions(positions)
    q = positions.detach().clone()
    w = q.shape[0]
    per_atom = q.ndim == 3
    v = torch.zeros_like(q)
    dts = torch.full((w,), dt0, dtype=q.dtype, device=q.device)
    alpha = torch.full((w,), 0.1, dtype=q.dtype, device=q.device)
    npos = torch.zeros(w, dtype=torch.int64, device=q.device)
    active = torch.ones(w, dtype=torch.bool, device=q.device)
    shape1 = (w,) + (1,) * (q.ndim - 1)

    def atom_norm(x):
        return x.norm(dim=-1) if per_atom else x.abs()

    u, f = system.energy_and_forces(q)
    steps = 0
    for steps in range(1, max_steps + 1):
        fm = atom_norm(f).reshape(w, -1).max(dim=1).values
        active = active & (fm >= fmax)
        if not bool(active.any()):
            steps -= 1
            break
        p = (f * v).reshape(w, -1).sum(dim=1)
        vn = v.reshape(w, -1).norm(dim=1)
        fn = torch.clamp(f.reshape(w, -1).norm(dim=1), min=torch.finfo(q.dtype).tiny)
        a = alpha.reshape(shape1)
        v = (1 - a) * v + a * (vn / fn).reshape(shape1) * f
        up = p > 0
        npos = torch.where(up, npos + 1, torch.zeros_like(npos))
        grow = up & (npos > 5)
        dts = torch.where(grow, torch.clamp(dts * 1.1, max=10 * dt0), torch.where(up, dts, dts * 0.5))
        alpha = torch.where(grow, alpha * 0.99, torch.where(up, alpha, torch.full_like(alpha, 0.1)))
        v = torch.where(up.reshape(shape1), v, torch.zeros_like(v))
        d = dts.reshape(shape1)
        v = v + f * d
        dq = v * d
        n = atom_norm(dq)
        scale = torch.clamp(max_step / torch.clamp(n, min=torch.finfo(q.dtype).tiny), max=1.0)
        dq = dq * (scale[..., None] if per_atom else scale)
        dq = torch.where(active.reshape(shape1), dq, torch.zeros_like(dq))
        v = torch.where(active.reshape(shape1), v, torch.zeros_like(v))
        q = q + dq
        u, f = system.energy_and_forces(q)
    fm = atom_norm(f).reshape(w, -1).max(dim=1).values
    return Minimized(q, u, fm, fm < fmax, steps)


@dataclass
class InherentStructure:
    energy: float
    count: int


def inherent_structures(energies, tol: float = 1e-6) -> list[InherentStructure]:
    """Distinct minima among minimised energies (grouped within ``tol``), lowest first."""
    e = np.sort(np.asarray(energies.detach().cpu() if hasattr(energies, "detach") else energies, dtype=np.float64))
    tol = _checks.positive("tol", tol)
    out: list[InherentStructure] = []
    for x in e:
        if out and abs(x - out[-1].energy) <= tol:
            out[-1].count += 1
        else:
            out.append(InherentStructure(float(x), 1))
    return out
