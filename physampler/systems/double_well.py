"""Double wells.

1-D:  U(x) = a (x² − 1)²                       (positions [W, 1])
2-D:  U(x, y) = a (x² − 1)² + ½ k y²            (positions [W, 2])

The 1-D density of states is known in closed form (docs/science.md §13), with
s = √(U/a):  g(U) = 1/(2a s √(1+s)) + [U < a] · 1/(2a s √(1−s)),
an integrable divergence at U → 0 and a jump at the barrier top U = a.
"""
from __future__ import annotations

import torch

from .. import _checks
from ..system import System


class DoubleWell1D(System):
    analytic_forces = True

    def __init__(self, a: float = 1.0, *, masses=1.0, dtype=torch.float64, device=None):
        self.a = _checks.positive("a", a)
        self.shape = (1,)
        self.masses = torch.as_tensor(_checks.positive("masses", masses), dtype=dtype, device=device)

    def energy(self, q):
        x = q[..., 0]
        return self.a * (x * x - 1.0) ** 2

    def forces(self, q):
        return -4.0 * self.a * q * (q * q - 1.0)

    def density_of_states(self, u: torch.Tensor) -> torch.Tensor:
        u = torch.as_tensor(u, dtype=torch.float64)
        s = torch.sqrt(u / self.a)
        outer = 1.0 / (2 * self.a * s * torch.sqrt(1 + s))
        inner = torch.where(u < self.a, 1.0 / (2 * self.a * s * torch.sqrt(torch.clamp(1 - s, min=1e-300))), torch.zeros_like(u))
        return outer + inner

    def states_below(self, u) -> torch.Tensor:
        """Ω(U) = ∫_{U(x) < U} dx = ∫₀^U g: the measure of {x : a(x² − 1)² < U}, exactly,
        2(√(1 + √(U/a)) − √(1 − √(U/a))) below the barrier and 2√(1 + √(U/a)) above it."""
        u = torch.clamp(torch.as_tensor(u, dtype=torch.float64), min=0.0)
        r = torch.sqrt(u / self.a)
        outer = torch.sqrt(1 + r)
        inner = torch.where(u < self.a, torch.sqrt(torch.clamp(1 - r, min=0.0)), torch.zeros_like(u))
        return 2 * (outer - inner)

    def bin_log_density(self, edges) -> torch.Tensor:
        """ln of the mean of g over each bin, ln[(Ω(U_{i+1}) − Ω(U_i)) / ΔU] — the exact answer a
        binned S(U) converges to, finite also where g itself diverges (U → 0 and U = a)."""
        e = torch.as_tensor(edges, dtype=torch.float64)
        om = self.states_below(e)
        return torch.log((om[1:] - om[:-1]) / (e[1:] - e[:-1]))


class DoubleWell2D(System):
    analytic_forces = True

    def __init__(self, a: float = 1.0, k: float = 1.0, *, masses=1.0, dtype=torch.float64, device=None):
        self.a = _checks.positive("a", a)
        self.k = _checks.positive("k", k)
        self.shape = (2,)
        self.masses = torch.as_tensor(_checks.positive("masses", masses), dtype=dtype, device=device)

    def energy(self, q):
        x, y = q[..., 0], q[..., 1]
        return self.a * (x * x - 1.0) ** 2 + 0.5 * self.k * y * y

    def forces(self, q):
        x, y = q[..., 0], q[..., 1]
        return torch.stack([-4.0 * self.a * x * (x * x - 1.0), -self.k * y], dim=-1)
