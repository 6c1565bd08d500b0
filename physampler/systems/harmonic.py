"""N-dimensional harmonic well.

    U(x) = ½ Σ_i k_i x_i²          (x: positions [W, N], k: ``stiffness`` [N])

Its density of states is exact (docs/science.md §13, α = 2 after rescaling each
coordinate by √(k_i/2)):

    g(U) ∝ U^(N/2 − 1),   S(U) = (N/2 − 1)·ln U + c,   C_V,conf = N/2,

independent of the stiffnesses, which only change the constant c.
"""
from __future__ import annotations

import math

import torch

from .. import _checks
from ..system import System


class HarmonicWell(System):
    analytic_forces = True

    def __init__(self, stiffness, *, masses=1.0, dtype=torch.float64, device=None):
        k = torch.as_tensor(stiffness, dtype=dtype, device=device)
        if k.ndim == 0:
            raise ValueError(f"stiffness: must be a vector with one entry per dimension (got a scalar {float(k)!r})")
        if k.ndim != 1 or k.numel() == 0:
            raise ValueError(f"stiffness: must be a non-empty 1-D vector (got shape {list(k.shape)})")
        if not torch.isfinite(k).all() or (k <= 0).any():
            raise ValueError(f"stiffness: every entry must be finite and > 0 (got {k.tolist()})")
        self.stiffness = k
        self.shape = (k.numel(),)
        self.masses = torch.as_tensor(masses, dtype=dtype, device=device)
        if not torch.isfinite(self.masses).all() or (self.masses <= 0).any():
            raise ValueError(f"masses: must be finite and > 0 (got {self.masses.tolist()})")

    @classmethod
    def isotropic(cls, n: int, k: float = 1.0, **kw) -> "HarmonicWell":
        n = _checks.positive_int("n", n)
        _checks.positive("k", k)
        return cls([k] * n, **kw)

    def energy(self, q):
        return 0.5 * (self.stiffness * q * q).sum(dim=-1)

    def forces(self, q):
        return -self.stiffness * q

    def exact_entropy_slope(self) -> float:
        """dS/d ln U = N/2 − 1."""
        return self.shape[0] / 2 - 1

    def exact_entropy(self, u: torch.Tensor) -> torch.Tensor:
        """ln g(U) including the constant: g(U) = (2π)^(N/2) / (Γ(N/2) Π√k_i) · U^(N/2−1)."""
        n = self.shape[0]
        c = (n / 2) * math.log(2 * math.pi) - math.lgamma(n / 2) - 0.5 * float(torch.log(self.stiffness).sum())
        return c + (n / 2 - 1) * torch.log(torch.as_tensor(u, dtype=torch.float64))
