"""Bias terms added to the entropy that drives the walkers (docs/science.md §4).

The WLMD force uses S_tot(ξ) = S(ξ, t) + Σ S_bias(ξ); biases never enter the
exported landscape.  Each bias returns its value ``[W]`` and its gradient
``∂S_bias/∂ξ`` ``[W, K]`` for CV values ``ξ`` ``[W, K]``; ``axis`` is the index of
the CV it acts on.

Because the WLMD acceleration is −(T0/m)·∂S_tot/∂q, a positive S_bias acts like a
potential energy T0·S_bias: walls are positive outside their region.
"""
from __future__ import annotations

import abc

import torch

from . import _checks
from .grid import Grid

SIDES = ("upper", "lower")


class Bias(abc.ABC):
    @abc.abstractmethod
    def value(self, xi: torch.Tensor) -> torch.Tensor:
        """S_bias(ξ), shape [W]."""

    @abc.abstractmethod
    def gradient(self, xi: torch.Tensor) -> torch.Tensor:
        """∂S_bias/∂ξ, shape [W, K]."""


class _AxisBias(Bias):
    def __init__(self, axis: int):
        self.axis = _checks.non_negative_int("axis", axis)

    def _x(self, xi):
        if xi.ndim != 2 or xi.shape[1] <= self.axis:
            raise ValueError(f"xi: must have shape [W, K] with K > axis={self.axis} (got {list(xi.shape)})")
        return xi[:, self.axis]

    def _embed(self, xi, g):
        out = torch.zeros_like(xi, dtype=torch.float64)
        out[:, self.axis] = g
        return out


class _Wall(_AxisBias):
    def __init__(self, axis: int, at: float, strength: float, side: str):
        super().__init__(axis)
        self.at = _checks.finite("at", at)
        self.strength = _checks.positive("strength", strength)
        self.side = _checks.choice("side", side, SIDES)

    def _excess(self, x):
        """Distance beyond the wall, 0 inside: ξ − ξ0 (upper) or ξ0 − ξ (lower)."""
        d = x.to(torch.float64) - self.at if self.side == "upper" else self.at - x.to(torch.float64)
        return torch.clamp(d, min=0.0)

    def _outward(self):
        return 1.0 if self.side == "upper" else -1.0


class QuadraticWall(_Wall):
    """[P1] eq. 6: S_bias = β·(ξ − ξ0)² beyond ξ0 (ξ > ξ0 for ``upper``, ξ < ξ0 for ``lower``), else 0.

    β = ``strength``, ξ0 = ``at``.  ``max_slope`` s (default none): beyond the distance d = s/(2β)
    where its slope reaches s the wall continues linearly, S_bias = β·d² + s·(|ξ − ξ0| − d) — a
    walker that starts far outside is pulled in at the rate s instead of flung by a force that
    grows with the distance (the windows of :mod:`physampler.windows`).
    """

    def __init__(self, axis: int, at: float, strength: float, side: str, max_slope: float | None = None):
        super().__init__(axis, at, strength, side)
        self.max_slope = None if max_slope is None else _checks.positive("max_slope", max_slope)

    def value(self, xi):
        ex = self._excess(self._x(xi))
        if self.max_slope is None:
            return self.strength * ex ** 2
        d = self.max_slope / (2.0 * self.strength)
        return torch.where(ex <= d, self.strength * ex ** 2, self.strength * d * d + self.max_slope * (ex - d))

    def gradient(self, xi):
        slope = 2.0 * self.strength * self._excess(self._x(xi))
        if self.max_slope is not None:
            slope = slope.clamp(max=self.max_slope)
        return self._embed(xi, self._outward() * slope)


class LinearWall(_Wall):
    """S_bias = β·|ξ − ξ0| beyond ξ0, else 0 (constant push of size β)."""

    def value(self, xi):
        return self.strength * self._excess(self._x(xi))

    def gradient(self, xi):
        beyond = (self._excess(self._x(xi)) > 0).to(torch.float64)
        return self._embed(xi, self._outward() * self.strength * beyond)


class HarmonicRestraint(_AxisBias):
    """S_bias = ½·κ·(ξ − ξ0)² everywhere (κ = ``kappa``, ξ0 = ``center``)."""

    def __init__(self, axis: int, center: float, kappa: float):
        super().__init__(axis)
        self.center = _checks.finite("center", center)
        self.kappa = _checks.positive("kappa", kappa)

    def value(self, xi):
        return 0.5 * self.kappa * (self._x(xi).to(torch.float64) - self.center) ** 2

    def gradient(self, xi):
        return self._embed(xi, self.kappa * (self._x(xi).to(torch.float64) - self.center))


class GridBias(Bias):
    """A fixed S_bias tabulated on a grid (e.g. a landscape read from NetCDF),
    multilinearly interpolated between bin centres, gradient by central differences."""

    def __init__(self, grid: Grid, values: torch.Tensor):
        values = torch.as_tensor(values, dtype=torch.float64, device=grid.device)
        if tuple(values.shape) != grid.shape:
            raise ValueError(f"values: must have the grid's shape {list(grid.shape)} (got {list(values.shape)})")
        if not torch.isfinite(values).all():
            raise ValueError("values: must be finite everywhere (fill unvisited bins before using a landscape as a bias)")
        self.grid = grid
        self.values = values

    def value(self, xi):
        return self.grid.interpolate(self.values, xi)

    def gradient(self, xi):
        return self.grid.interpolate_gradient(self.values, xi)


def total_gradient(biases, xi: torch.Tensor) -> torch.Tensor | None:
    """Σ ∂S_bias/∂ξ over ``biases`` ([W, K]), or None when there are none."""
    out = None
    for b in biases:
        g = b.gradient(xi)
        out = g if out is None else out + g
    return out
