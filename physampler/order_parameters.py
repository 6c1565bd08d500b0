"""Structural CVs of particle systems (positions [W, n, 3]): radius of gyration
and the Steinhardt bond-orientational order parameter Q_l (l = 6 by default).

Radius of gyration (unit masses):

    R_g = √( (1/n) Σ_i |q_i − q̄|² ),   q̄ = (1/n) Σ_i q_i

Steinhardt, Nelson & Ronchetti, Phys. Rev. B 28, 784 (1983), eqs. 1.2–1.4,
with a smooth bond weight so that the CV is differentiable:

    Q̄_lm = Σ_(i<j) s(r_ij) Y_lm(r̂_ij) / Σ_(i<j) s(r_ij)
    Q_l   = √( 4π/(2l+1) · Σ_(m=−l..l) |Q̄_lm|² )
    s(r)  = 1 (r ≤ r_on),  1 − 3x² + 2x³ with x = (r − r_on)/(r_off − r_on),  0 (r ≥ r_off)

Symbols: r_on = ``r_on``, r_off = ``r_off`` (defaults 1.3σ and 1.5σ: all nearest
neighbours of LJ solids and clusters, none of the second shell of fcc).  For even
l, Y_lm(−r̂) = Y_lm(r̂), so bond direction does not matter.  Reference values for
perfect nearest-neighbour shells: fcc 0.57452, bcc 0.62854, simple cubic 0.35355,
icosahedron 0.66332.

Y_lm is evaluated without angles, which keeps its gradient finite on the poles:
Y_lm(r̂) = N_lm · P_l^(m)(z/r) · ((x + iy)/r)^m for m ≥ 0, with P_l^(m) the m-th
derivative of the Legendre polynomial and N_lm = (−1)^m √((2l+1)/(4π) · (l−m)!/(l+m)!)
(Condon–Shortley phase, as scipy.special.sph_harm_y);
Σ_m over −l..l is |Q̄_l0|² + 2 Σ_(m>0) |Q̄_lm|² (|Y_l,−m| = |Y_lm|).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from . import _checks
from .cvs import CV


def _positions(q: torch.Tensor) -> torch.Tensor:
    if q.ndim != 3 or q.shape[-1] != 3:
        raise ValueError(f"positions: must have shape [W, n, 3] (got {list(q.shape)})")
    return q


class RadiusOfGyration(CV):
    """R_g of every walker (see the module docstring)."""

    def __init__(self, name: str = "rg", units: str = "sigma", long_name: str = "radius of gyration"):
        super().__init__(name, units, long_name)

    def value(self, q):
        q = _positions(q)
        d = q - q.mean(dim=1, keepdim=True)
        return torch.sqrt((d * d).sum(dim=-1).mean(dim=1))


def legendre_derivative_coefficients(l: int, m: int) -> np.ndarray:
    """Power-series coefficients (lowest first) of d^m P_l / dx^m."""
    c = np.polynomial.legendre.leg2poly([0] * l + [1])
    return np.polynomial.polynomial.polyder(c, m) if m else c


class Steinhardt(CV):
    """Global bond-orientational order Q_l over all pairs of each walker."""

    def __init__(self, l: int = 6, *, r_on: float = 1.3, r_off: float = 1.5, name: str | None = None,
                 units: str = "1", long_name: str | None = None):
        self.l = _checks.positive_int("l", l)
        self.r_on, self.r_off = _checks.ordered("r_on", r_on, "r_off", r_off)
        if self.r_on <= 0:
            raise ValueError(f"r_on: must be > 0 (got {r_on})")
        super().__init__(name or f"q{self.l}", units, long_name or f"Steinhardt Q{self.l} bond order")
        self._poly = [legendre_derivative_coefficients(self.l, m) for m in range(self.l + 1)]
        # (−1)^m: the Condon–Shortley phase, so Y_lm equals scipy's sph_harm_y.
        self._norm = [(-1) ** m * math.sqrt((2 * self.l + 1) / (4 * math.pi) * math.factorial(self.l - m)
                                            / math.factorial(self.l + m)) for m in range(self.l + 1)]

    def switch(self, r: torch.Tensor) -> torch.Tensor:
        x = torch.clamp((r - self.r_on) / (self.r_off - self.r_on), 0.0, 1.0)
        return 1.0 - x * x * (3.0 - 2.0 * x)

    def harmonics(self, d: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(Re Y_lm, Im Y_lm) for m = 0..l of the directions of ``d`` [..., 3]."""
        r = torch.sqrt((d * d).sum(dim=-1))
        ux, uy, uz = (d[..., k] / r for k in range(3))
        re, im = [], []
        cm, sm = torch.ones_like(uz), torch.zeros_like(uz)  # ((x+iy)/r)^m
        for m in range(self.l + 1):
            p = torch.zeros_like(uz)
            for c in reversed(self._poly[m]):  # Horner in z/r
                p = p * uz + float(c)
            re.append(self._norm[m] * p * cm)
            im.append(self._norm[m] * p * sm)
            cm, sm = cm * ux - sm * uy, sm * ux + cm * uy
        return re, im

    def value(self, q):
        q = _positions(q)
        n = q.shape[1]
        i, j = torch.triu_indices(n, n, 1, device=q.device)
        d = q[:, i] - q[:, j]  # [W, P, 3]
        r = torch.sqrt((d * d).sum(dim=-1))
        s = self.switch(r)
        # Pairs beyond r_off have weight 0; keep their harmonics finite (coincident atoms would give 0/0).
        d = torch.where((s > 0)[..., None], d, torch.tensor([0.0, 0.0, 1.0], dtype=d.dtype, device=d.device))
        re, im = self.harmonics(d)
        norm = torch.clamp(s.sum(dim=1), min=torch.finfo(q.dtype).tiny)
        total = None
        for m in range(self.l + 1):
            a = (s * re[m]).sum(dim=1) / norm
            b = (s * im[m]).sum(dim=1) / norm
            term = a * a + b * b
            total = term if m == 0 else total + 2.0 * term
        # √ of a sum of squares: add a tiny floor so the gradient stays finite at Q = 0.
        return torch.sqrt(4 * math.pi / (2 * self.l + 1) * total + 1e-300)
