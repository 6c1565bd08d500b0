"""Regular grids over collective variables, and the O(1)-per-walker operations on them.

Bin b of axis k covers [lower_k + b·w_k, lower_k + (b+1)·w_k) and has its centre at
lower_k + (b + ½)·w_k.  Positions on an axis are handled in *fractional centre
index* u = (ξ − lower)/w − ½, so bin centres sit at integers.

Everything here costs O(2^K) (interpolation) or O(kernel support) (deposit) per
walker and never touches the whole grid.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Sequence

import torch

from . import _checks


@dataclass(frozen=True)
class Axis:
    """One CV axis: ``bins`` bins of width ``(upper − lower)/bins``.

    Give either ``bins`` or ``width``; with ``width``, (upper − lower)/width must be
    an integer to 1e-9 relative.
    """

    name: str
    lower: float
    upper: float
    bins: int | None = None
    width: float | None = None
    units: str = "1"
    long_name: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"axis name: must be an identifier such as 'energy' (got {self.name!r})")
        lo, hi = _checks.ordered(f"{self.name}.lower", self.lower, f"{self.name}.upper", self.upper)
        object.__setattr__(self, "lower", lo)
        object.__setattr__(self, "upper", hi)
        if (self.bins is None) == (self.width is None):
            raise ValueError(f"{self.name}.bins: give exactly one of bins or width (got bins={self.bins!r}, width={self.width!r})")
        if self.width is not None:
            w = _checks.positive(f"{self.name}.width", self.width)
            n = (hi - lo) / w
            nr = round(n)
            if nr < 3 or abs(n - nr) > 1e-9 * max(1.0, n):
                raise ValueError(
                    f"{self.name}.width: (upper - lower)/width must be an integer >= 3 "
                    f"(got ({hi} - {lo})/{w} = {n:g})"
                )
            object.__setattr__(self, "bins", int(nr))
        bins = _checks.positive_int(f"{self.name}.bins", self.bins)
        if bins < 3:
            # the second-order edge derivative needs three centres
            raise ValueError(f"{self.name}.bins: must be >= 3 (got {bins})")
        object.__setattr__(self, "bins", bins)
        object.__setattr__(self, "width", (hi - lo) / bins)
        if not self.long_name:
            object.__setattr__(self, "long_name", self.name)

    def centres(self) -> torch.Tensor:
        return self.lower + (torch.arange(self.bins, dtype=torch.float64) + 0.5) * self.width

    def edges(self) -> torch.Tensor:
        return self.lower + torch.arange(self.bins + 1, dtype=torch.float64) * self.width


class Grid:
    """Cartesian product of :class:`Axis` objects; row-major flat indexing."""

    def __init__(self, axes: Sequence[Axis] | Axis, *, device=None):
        self.axes = _checks.named_items("axes", axes, Axis, "Axis")
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.shape = tuple(a.bins for a in axes)
        self.ndim = len(axes)
        strides, s = [], 1
        for n in reversed(self.shape):
            strides.append(s)
            s *= n
        self.size = s
        f64 = dict(dtype=torch.float64, device=self.device)
        #: strides as Python ints too: reading them from the device tensor would be a host sync per step
        self.strides = tuple(reversed(strides))
        self._strides = torch.tensor(self.strides, dtype=torch.int64, device=self.device)
        self._n = torch.tensor(self.shape, dtype=torch.int64, device=self.device)
        self._lower = torch.tensor([a.lower for a in axes], **f64)
        self._upper = torch.tensor([a.upper for a in axes], **f64)
        self._width = torch.tensor([a.width for a in axes], **f64)
        self._corners = torch.tensor(list(itertools.product((0, 1), repeat=self.ndim)), dtype=torch.int64, device=self.device)

    # ------------------------------------------------------------------ layout
    @property
    def names(self) -> list[str]:
        return [a.name for a in self.axes]

    def to(self, device) -> "Grid":
        return Grid(self.axes, device=device)

    @property
    def lower_edges(self) -> torch.Tensor:
        """[K] lower grid edges (float64, on the grid's device)."""
        return self._lower

    @property
    def upper_edges(self) -> torch.Tensor:
        """[K] upper grid edges (float64, on the grid's device)."""
        return self._upper

    def same_layout(self, other: "Grid") -> bool:
        return [(a.name, a.lower, a.upper, a.bins) for a in self.axes] == [
            (a.name, a.lower, a.upper, a.bins) for a in other.axes
        ]

    def centres(self) -> list[torch.Tensor]:
        return [a.centres() for a in self.axes]

    def _check_xi(self, xi: torch.Tensor) -> torch.Tensor:
        if xi.ndim != 2 or xi.shape[1] != self.ndim:
            raise ValueError(f"xi: must have shape [W, {self.ndim}] (got {list(xi.shape)})")
        return xi.to(torch.float64)

    def fractional(self, xi: torch.Tensor) -> torch.Tensor:
        """Fractional bin-centre index u = (ξ − lower)/w − ½, shape [W, K]."""
        return (self._check_xi(xi) - self._lower) / self._width - 0.5

    def in_range(self, xi: torch.Tensor) -> torch.Tensor:
        """[W] bool: every component inside [lower, upper] (NaN counts as outside)."""
        xi = self._check_xi(xi)
        return ((xi >= self._lower) & (xi <= self._upper)).all(dim=1)

    def bin_index(self, xi: torch.Tensor) -> torch.Tensor:
        """Flat index of the bin holding ξ (clamped into the grid), shape [W]."""
        b = torch.floor((self._check_xi(xi) - self._lower) / self._width).to(torch.int64)
        b = torch.minimum(torch.clamp(b, min=0), self._n - 1)
        return (b * self._strides).sum(dim=1)

    # ----------------------------------------------------------- interpolation
    def _cell(self, xi):
        u = self.fractional(xi)
        u = torch.minimum(torch.clamp(u, min=0.0), (self._n - 1).to(u.dtype))
        i0 = torch.minimum(torch.floor(u).to(torch.int64), self._n - 2)
        t = u - i0
        idx = i0[:, None, :] + self._corners[None]  # [W, C, K]
        c = self._corners[None].bool()
        wts = torch.where(c, t[:, None, :], 1.0 - t[:, None, :]).prod(dim=2)  # [W, C]
        return idx, wts

    def interpolate(self, values: torch.Tensor, xi: torch.Tensor, offset: torch.Tensor | None = None) -> torch.Tensor:
        """Multilinear interpolation of ``values`` (shape = grid shape) between bin
        centres at ξ; constant extrapolation beyond the outermost centres. [W]
        ``offset`` [W]: walker w reads the block of ``values`` (flattened) starting there —
        a stack of grids, one per window (:mod:`physampler.windows`)."""
        idx, wts = self._cell(xi)
        at = (idx * self._strides).sum(dim=2)
        if offset is not None:
            at = at + offset[:, None]
        flat = values.reshape(-1)[at]
        return (wts * flat).sum(dim=1)

    def interpolate_gradient(self, values: torch.Tensor, xi: torch.Tensor,
                             offset: torch.Tensor | None = None) -> torch.Tensor:
        """∂values/∂ξ at ξ, shape [W, K] (``offset`` as in :meth:`interpolate`).

        At every bin centre j the derivative along axis k is the central difference
        (v[j+1] − v[j−1]) / (2w); at the first and last centre it is the one-sided
        second-order difference (∓3v[j] ± 4v[j±1] ∓ v[j±2]) / (2w), so that a
        quadratic S has its exact gradient everywhere, edges included (a first-order
        edge difference measures the slope half a bin inside and biases S at the
        edges where S is curved).  Between centres the derivatives are interpolated
        multilinearly; beyond the outermost centres the edge value is held.
        """
        idx, wts = self._cell(xi)
        v = values.reshape(-1)
        base = (idx * self._strides).sum(dim=2)  # [W, C]
        if offset is not None:
            base = base + offset[:, None]
        out = []
        for k in range(self.ndim):
            j = idx[..., k]
            s = torch.clamp(j, 1, self.shape[k] - 2)  # centre of the 3-point stencil
            shift = (j - s).to(v.dtype)  # -1 at the first centre, +1 at the last, else 0
            stride = self.strides[k]
            b = base + (s - j) * stride
            vm, v0, vp = v[b - stride], v[b], v[b + stride]
            # Stencil weights for (v[s-1], v[s], v[s+1]) are linear in shift:
            # shift=0 → (-1, 0, 1); shift=-1 → (-3, 4, -1); shift=+1 → (1, -4, 3).
            d = ((2.0 * shift - 1.0) * vm - 4.0 * shift * v0 + (2.0 * shift + 1.0) * vp) / (2.0 * self._width[k])
            out.append((wts * d).sum(dim=1))
        return torch.stack(out, dim=1)

    def potential(self, values: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        """Φ(ξ), the function of which :meth:`interpolate_gradient` is the gradient: per axis the
        piecewise-quadratic spline whose derivative is the linear interpolation of the centred
        (edge: second-order one-sided) differences, as a tensor product over the axes. [W]

        In a cell between centres c and c+1 (u ∈ [0, 1] from c) it weighs
        (v[c−1], v[c], v[c+1], v[c+2]) by ((1−u)²/4, ½ − u²/4, ¼ + u/2 − u²/4, u²/4) — so that
        Φ = (v[c−1] + 2v[c] + v[c+1])/4 at a centre, a [1, 2, 1]/4 smoothing of v — and in the
        first cell (v[0], v[1], v[2]) by (5/4 − 3u/2 + u²/2, −½ + 2u − u², ¼ − u/2 + u²/2) (the
        last cell mirrored); beyond the outermost centres it continues linearly with the edge
        slope, which the gradient holds there.  On one axis its derivative
        is :meth:`interpolate_gradient` exactly; on several axes the interpolated gradient is
        that of Φ up to a small curl (measured 1.4 % rms on a converged 2-D network landscape,
        docs/science.md §1).  Walkers driven by −∇Φ sample e^{−Φ}: a converged landscape is
        ln g = Φ + const, and :meth:`bin_log_volume` integrates it over the bins."""
        u = self.fractional(xi)
        starts, weights = zip(*(_spline_weights(u[:, k], self.shape[k]) for k in range(self.ndim)))
        v = values.reshape(self.shape)
        out = torch.zeros(xi.shape[0], dtype=values.dtype, device=values.device)
        for combo in itertools.product(range(4), repeat=self.ndim):
            w = weights[0][:, combo[0]]
            for k in range(1, self.ndim):
                w = w * weights[k][:, combo[k]]
            at = tuple((starts[k] + combo[k]).clamp(0, self.shape[k] - 1) for k in range(self.ndim))
            out = out + w * v[at]
        return out

    def bin_log_volume(self, values: torch.Tensor, points: int = 8) -> torch.Tensor:
        """ln of the mean of e^Φ over each bin (Φ = :meth:`potential` of ``values``), by the
        midpoint rule on ``points`` per axis: what a count of configurations per bin measures,
        up to a constant, when ``values`` is a converged S.  It differs from S at the centres
        where ln g is curved on the scale of a bin (measured up to 0.3 on a 12 × 10 network
        landscape, docs/science.md §13). Shape: the grid's."""
        points = _checks.positive_int("points", points)
        frac = (torch.arange(points, dtype=torch.float64, device=self.device) + 0.5) / points
        axes = [(torch.arange(n, dtype=torch.float64, device=self.device)[:, None] + frac[None]).reshape(-1)
                for n in self.shape]  # fractional positions from each bin's lower edge
        mesh = torch.stack([m.reshape(-1) for m in torch.meshgrid(*axes, indexing="ij")], dim=1)
        xi = self._lower + mesh * self._width
        phi = self.potential(values, xi).reshape(*[n * points for n in self.shape])
        shape = [d for n in self.shape for d in (n, points)]
        phi = phi.reshape(shape)
        dims = tuple(range(1, 2 * self.ndim, 2))
        return torch.logsumexp(phi, dim=dims) - self.ndim * math.log(points)

    # ------------------------------------------------------------------ kernel
    def gaussian_kernel(self, xi: torch.Tensor, sigma: torch.Tensor, cutoff: float, edge: str):
        """Separable Gaussian on bin centres around ξ, truncated at ``cutoff``·σ.

        Returns ``(flat_index [W, M], weight [W, M])`` with Σ weight = 1 per walker
        over the untruncated window; ``sigma`` is in bins, per axis (K floats).
        ``edge='reflect'`` folds the part of the window beyond an edge back into the
        grid (mirror at the edge, so a flat histogram is stationary up to the edge);
        ``edge='truncate'`` drops it (weight 0).
        """
        u = self.fractional(xi)
        flat = None
        weight = None
        for k in range(self.ndim):
            s = sigma[k]
            r = int(math.ceil(cutoff * s))
            offs = torch.arange(-r, r + 1, device=u.device, dtype=torch.int64)
            j = torch.round(u[:, k]).to(torch.int64)[:, None] + offs  # [W, L]
            d = j.to(u.dtype) - u[:, k, None]
            w = torch.exp(-0.5 * (d / s) ** 2) * (d.abs() <= cutoff * s)
            w = w / w.sum(dim=1, keepdim=True)
            n = self.shape[k]
            if edge == "reflect":
                m = torch.remainder(j, 2 * n)
                j = torch.where(m >= n, 2 * n - 1 - m, m)
            else:
                inside = (j >= 0) & (j < n)
                w = w * inside
                j = torch.clamp(j, 0, n - 1)
            jk = j * self.strides[k]
            if flat is None:
                flat, weight = jk, w
            else:
                flat = (flat[:, :, None] + jk[:, None, :]).reshape(flat.shape[0], -1)
                weight = (weight[:, :, None] * w[:, None, :]).reshape(weight.shape[0], -1)
        return flat, weight


def _spline_weights(u: torch.Tensor, n: int):
    """Start index and weights [W, 4] of :meth:`Grid.potential` on one axis of ``n`` centres
    at fractional centre indices ``u`` [W] (continued linearly beyond the outermost centres)."""
    c = torch.clamp(torch.floor(u).to(torch.int64), min=0, max=n - 2)
    t = u - c  # < 0 below the first centre, > 1 above the last
    zero = torch.zeros_like(t)
    inner = torch.stack([(1 - t) ** 2 / 4, 0.5 - t**2 / 4, 0.25 + t / 2 - t**2 / 4, t**2 / 4], dim=1)

    def edge(t):  # the first cell; beyond its centre (t < 0) continued with the held slope
        q = torch.where(t < 0, 0.0, t**2)
        return torch.stack([1.25 - 1.5 * t + q / 2, -0.5 + 2 * t - q, 0.25 - t / 2 + q / 2, zero], dim=1)

    first = edge(t)
    last = torch.flip(edge(1 - t), dims=(1,))  # the last cell is the first one mirrored
    is_first, is_last = c == 0, c == n - 2
    start = torch.where(is_first, 0, torch.where(is_last, n - 4, c - 1))
    if n == 3:  # both cells are edge cells; the last one's window starts at 0 as well
        last = torch.roll(last, -1, dims=1)
        start = torch.where(is_last, 0, start)
    w = torch.where(is_first[:, None], first, torch.where(is_last[:, None], last, inner))
    return start, w
