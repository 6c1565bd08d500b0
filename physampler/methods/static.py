"""A frozen bias: the multicanonical production run (docs/science.md §4, §5)."""
from __future__ import annotations

import torch

from ..landscape import Landscape
from ..rules import PHYSICAL_DEFAULT
from .base import Method


class StaticBias(Method):
    """S_m(ξ) held fixed — typically a converged Wang–Landau S ≈ ln g(ξ) — so that walkers
    sample ρ_b(ξ) ∝ g(ξ)·e^(−S_m(ξ)), nearly flat, and nothing is deposited; the histogram H
    and the per-bin observables are still recorded.

    The density of states follows from the production histogram as ln g = S_m + ln H (exact
    multicanonical reweighting whatever the error of S_m), and every per-bin observable is
    reweighted to any temperature by :func:`physampler.analysis.reweight_observables`:
    ⟨O⟩(T) = Σ_ξ g(ξ)·⟨O⟩_ξ·e^(−U(ξ)/T) / Σ_ξ g(ξ)·e^(−U(ξ)/T).
    """

    kind = "static"
    physical_default = PHYSICAL_DEFAULT[kind]

    def __init__(self, landscape: Landscape):
        super().__init__(landscape, None)
        if not bool(torch.isfinite(landscape.S).all()):
            raise ValueError("landscape: a static bias must be finite in every bin (fill unvisited bins first)")

    @classmethod
    def from_entropy(cls, landscape: Landscape, entropy: torch.Tensor) -> "StaticBias":
        """A static bias of ``entropy`` (a grid with NaN at unvisited bins, as landscape.nc stores
        it) on ``landscape``; unvisited bins take the highest visited value, which keeps walkers
        away from them rather than pulling them in."""
        s = torch.as_tensor(entropy, dtype=torch.float64, device=landscape.device)
        if tuple(s.shape) != tuple(landscape.S.shape):
            raise ValueError(f"entropy: must have the grid's shape {list(landscape.S.shape)} (got {list(s.shape)})")
        ok = torch.isfinite(s)
        if not bool(ok.any()):
            raise ValueError("entropy: has no finite bin to build a static bias from")
        landscape.S.copy_(torch.where(ok, s, s[ok].max()))
        return cls(landscape)

    def update(self, xi: torch.Tensor, step, inside: torch.Tensor, walkers: int):
        self.landscape.count(xi, inside)
        return self.factor(step)

    def log_density(self, kT: float) -> torch.Tensor:
        h = self.landscape.H
        return torch.where(h > 0, self.landscape.S + torch.log(h.clamp(min=1.0)), torch.full_like(h, float("nan")))
