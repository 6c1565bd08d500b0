"""The entropy landscape S(ξ, t) and visit histogram H(ξ) on a float64 grid.

Wang–Landau deposit (docs/science.md §1): after every step each walker adds

    S ← S + h · K(ξ),   K = Gaussian of width σ bins on bin centres around ξ,
                          truncated at ±``cutoff``·σ and normalised so ΣK = 1,

with h = f_WL(t)/W under the averaging semantics of [P1] (§6).  The cost is
O(kernel support) per walker.  The driving force uses ∂S/∂ξ by central
differences, interpolated linearly between bin centres (:mod:`physampler.grid`).

Out-of-range policy (never wrap or index silently):
  ``raise``: :meth:`check_range` raises :class:`OutOfGridError` with the step and walker;
  ``wall``:  a walker outside the grid deposits nothing, feels the edge gradient of S
             plus a quadratic wall β·(ξ − edge)² (β = ``wall_strength``, per axis,
             default 1/w² so that kT = 1 penetrates about one bin).

When converged, S = ln g(ξ) + const; exports shift S so that its minimum over
visited bins is 0, with unvisited bins NaN.
"""
from __future__ import annotations

from typing import Sequence

import torch

from . import _checks
from .biases import QuadraticWall
from .faults import out_of_grid
from .grid import Axis, Grid

EDGES = ("reflect", "truncate")
POLICIES = ("raise", "wall")
MERGES = ("mean", "sum")


def shift_visited(values: torch.Tensor, visited: torch.Tensor) -> torch.Tensor:
    """``values`` − their minimum over visited (and finite) bins; NaN elsewhere."""
    ok = visited & torch.isfinite(values)
    out = torch.full_like(values, float("nan"))
    if bool(ok.any()):
        out[ok] = values[ok] - values[ok].min()
    return out


class Landscape:
    """Shared S and H for all walkers (float64, on ``device``).

    Parameters
    ----------
    grid : :class:`Grid` or list of :class:`Axis`.
    sigma : kernel width in bins, scalar or one per axis ([P2]: 10–25 bins of 0.02).
    cutoff : kernel truncation in units of σ (docs/science.md §1: 4).
    edge : ``reflect`` (default) or ``truncate`` — what happens to kernel mass beyond an edge.
    out_of_range : ``raise`` (default) or ``wall``.
    wall_strength : β of the edge walls for ``wall``; scalar or per axis; default 1/width².
    """

    def __init__(
        self,
        grid: Grid | Sequence[Axis] | Axis,
        sigma: float | Sequence[float] = 2.0,
        *,
        cutoff: float = 4.0,
        edge: str = "reflect",
        out_of_range: str = "raise",
        wall_strength: float | Sequence[float] | None = None,
        device=None,
    ):
        if not isinstance(grid, Grid):
            grid = Grid(grid, device=device)
        elif device is not None and torch.device(device) != grid.device:
            grid = grid.to(device)
        self.grid = grid
        k = grid.ndim
        sig = [sigma] * k if not isinstance(sigma, (list, tuple)) else list(sigma)
        if len(sig) != k:
            raise ValueError(f"sigma: must be a scalar or one value per axis ({k}) (got {sigma!r})")
        self.sigma = torch.tensor([_checks.positive("sigma", s) for s in sig], dtype=torch.float64)
        self._sigma = tuple(float(s) for s in self.sigma)  # Python floats: no tensor read per deposit
        self.cutoff = _checks.positive("cutoff", cutoff)
        self.edge = _checks.choice("edge", edge, EDGES)
        self.out_of_range = _checks.choice("out_of_range", out_of_range, POLICIES)
        if wall_strength is None:
            betas = [1.0 / a.width**2 for a in grid.axes]
        else:
            betas = [wall_strength] * k if not isinstance(wall_strength, (list, tuple)) else list(wall_strength)
            if len(betas) != k:
                raise ValueError(f"wall_strength: must be a scalar or one value per axis ({k}) (got {wall_strength!r})")
            betas = [_checks.positive("wall_strength", b) for b in betas]
        self.wall_strength = betas
        self.walls = []
        if self.out_of_range == "wall":
            for i, (a, b) in enumerate(zip(grid.axes, betas)):
                self.walls += [QuadraticWall(i, a.lower, b, "lower"), QuadraticWall(i, a.upper, b, "upper")]
        self.S = torch.zeros(grid.shape, dtype=torch.float64, device=grid.device)
        self.H = torch.zeros(grid.shape, dtype=torch.float64, device=grid.device)
        #: per-bin sums and visit counts of observables recorded along the walk (e.g. true test accuracy)
        self.observable_sums: dict[str, torch.Tensor] = {}
        self.observable_counts: dict[str, torch.Tensor] = {}

    # --------------------------------------------------------------- dynamics
    @property
    def device(self):
        return self.grid.device

    def in_range(self, xi: torch.Tensor) -> torch.Tensor:
        """[W] bool: ξ inside the grid the walker samples."""
        return self.grid.in_range(xi)

    def check_range(self, xi: torch.Tensor, step: int, walkers=None) -> torch.Tensor:
        """[W] in-range mask; under ``raise`` any walker outside raises with step and walker."""
        inside = self.in_range(xi)
        if self.out_of_range == "raise" and not bool(inside.all()):
            w = int(torch.nonzero(~inside)[0, 0])
            raise out_of_grid(self.grid, xi[w], step, walkers[w] if walkers is not None else w)
        return inside

    def deposit(self, xi: torch.Tensor, height, inside: torch.Tensor | None = None) -> None:
        """S += height·K(ξ) and H[bin(ξ)] += 1 for every in-range walker.

        ``height`` is a scalar or a [W] tensor.  Walkers are added in walker order,
        so on CPU a batch deposit equals the same deposits made one after another.
        """
        if inside is None:
            inside = self.grid.in_range(xi)
        h = torch.as_tensor(height, dtype=torch.float64, device=self.device)
        h = h.expand(xi.shape[0]) * inside
        idx, w = self.grid.gaussian_kernel(xi, self._sigma, self.cutoff, self.edge)
        self.S.view(-1).index_add_(0, idx.reshape(-1), (w * h[:, None]).reshape(-1))
        self.count(xi, inside)

    def count(self, xi: torch.Tensor, inside: torch.Tensor | None = None) -> None:
        """H[bin(ξ)] += 1 for every in-range walker (the histogram part of a deposit)."""
        if inside is None:
            inside = self.grid.in_range(xi)
        self.H.view(-1).index_add_(0, self.grid.bin_index(xi), inside.to(torch.float64))

    def clear_counts(self) -> None:
        """Forget H and the per-bin observables, keeping S (the end of an equilibration period)."""
        self.H.zero_()
        self.observable_sums.clear()
        self.observable_counts.clear()

    def observe(self, name: str, xi: torch.Tensor, values: torch.Tensor, inside: torch.Tensor | None = None) -> None:
        """Add ``values`` [W] of observable ``name`` to the bins of ξ (in-range walkers only);
        :meth:`observable_mean` is their per-bin average (float64)."""
        if inside is None:
            inside = self.grid.in_range(xi)
        if name not in self.observable_sums:
            self.observable_sums[name] = torch.zeros_like(self.S)
            self.observable_counts[name] = torch.zeros_like(self.S)
        b = self.grid.bin_index(xi)
        m = inside.to(torch.float64)
        # where, not a product: a walker outside (or faulted, under deferred checks) adds exactly 0
        self.observable_sums[name].view(-1).index_add_(0, b, torch.where(inside, values.to(torch.float64), 0.0))
        self.observable_counts[name].view(-1).index_add_(0, b, m)

    def observable_mean(self, name: str) -> torch.Tensor:
        """Per-bin mean of observable ``name``; NaN in bins where it was never recorded."""
        c = self.observable_counts[name]
        return torch.where(c > 0, self.observable_sums[name] / c.clamp(min=1.0), torch.full_like(c, float("nan")))

    def gradient(self, xi: torch.Tensor) -> torch.Tensor:
        """∂S/∂ξ at ξ (plus the edge walls under ``wall``), [W, K].

        Along an axis on which ξ lies outside the grid, the edge slope of S is
        kept only where its force −kT·∂S/∂ξ points back into the grid (∂S/∂ξ ≤ 0
        below the lower edge, ≥ 0 above the upper one) and dropped otherwise.
        Extrapolated outwards, a slope where S rises towards the interior would push
        walkers away from the grid until it balanced the wall, and they would sit
        there depositing nothing; an inward slope is a restoring force worth keeping.
        """
        return self._gradient(xi)

    def _gradient(self, xi: torch.Tensor, offset: torch.Tensor | None = None) -> torch.Tensor:
        g = self.grid.interpolate_gradient(self.S, xi, offset)
        if self.walls:
            lo, hi = self.grid.lower_edges, self.grid.upper_edges
            g = torch.where(xi < lo, g.clamp(max=0.0), torch.where(xi > hi, g.clamp(min=0.0), g))
        for wall in self.walls:
            g = g + wall.gradient(xi)
        return g

    def value(self, xi: torch.Tensor) -> torch.Tensor:
        """S interpolated at ξ (without walls), [W]."""
        return self.grid.interpolate(self.S, xi)

    # ---------------------------------------------------------------- results
    def visited(self) -> torch.Tensor:
        return self.H > 0

    def shifted(self) -> torch.Tensor:
        """S − min over visited bins, NaN at unvisited bins."""
        return shift_visited(self.S, self.visited())

    def shift_to_zero(self) -> None:
        """Subtract the minimum over visited bins from S in place (forces are unchanged)."""
        vis = self.visited()
        if bool(vis.any()):
            self.S -= self.S[vis].min()

    def tilt(self, axis: int, temperature: float) -> None:
        """S += (ξ_axis − lower)/T at every bin: along an energy axis the force starts as the canonical
        force at temperature T (k_B = 1) rather than zero, which would let atoms fly through each other
        until the first deposits build up."""
        a = self.grid.axes[_checks.non_negative_int("axis", axis)]
        shape = [1] * self.grid.ndim
        shape[axis] = -1
        self.S += ((a.centres().to(self.device) - a.lower) / _checks.positive("temperature", temperature)).reshape(shape)

    def reset_histogram(self) -> None:
        self.H.zero_()

    def flatness(self, mask: torch.Tensor | None = None) -> tuple[float, float]:
        """(min H / mean H, max H / mean H) over ``mask`` (default: visited bins)."""
        mask = self.visited() if mask is None else mask
        h = self.H[mask]
        if h.numel() == 0 or float(h.mean()) == 0.0:
            return 0.0, 0.0
        m = h.mean()
        return float(h.min() / m), float(h.max() / m)

    # ---------------------------------------------------------------- copies
    def _like(self) -> "Landscape":
        new = Landscape.__new__(Landscape)
        new.__dict__.update(self.__dict__)
        new.S = self.S.clone()
        new.H = self.H.clone()
        new.observable_sums = {k: v.clone() for k, v in self.observable_sums.items()}
        new.observable_counts = {k: v.clone() for k, v in self.observable_counts.items()}
        return new

    def copy(self) -> "Landscape":
        return self._like()

    @staticmethod
    def merge(landscapes: Sequence["Landscape"], how: str = "mean") -> "Landscape":
        """Combine landscapes of independent walkers on the same grid.

        ``mean``: S = average of the S (the [P1] scheme of averaging walkers' files);
        ``sum``: S = sum of the S.  Histograms always add.
        """
        how = _checks.choice("how", how, MERGES)
        landscapes = list(landscapes)
        if not landscapes:
            raise ValueError("landscapes: must name at least one landscape (got none)")
        first = landscapes[0]
        for other in landscapes[1:]:
            if not first.grid.same_layout(other.grid):
                raise ValueError("landscapes: all must share one grid (names, bounds and bins differ)")
        out = first._like()
        for other in landscapes[1:]:
            out.S += other.S.to(out.device)
            out.H += other.H.to(out.device)
            for k, v in other.observable_sums.items():
                if k in out.observable_sums:
                    out.observable_sums[k] += v.to(out.device)
                    out.observable_counts[k] += other.observable_counts[k].to(out.device)
        if how == "mean":
            out.S /= len(landscapes)
        return out

    # ------------------------------------------------------------ persistence
    def state_dict(self) -> dict:
        return {
            "names": [a.name for a in self.grid.axes],
            "lower": torch.tensor([a.lower for a in self.grid.axes], dtype=torch.float64),
            "upper": torch.tensor([a.upper for a in self.grid.axes], dtype=torch.float64),
            "bins": torch.tensor(list(self.grid.shape), dtype=torch.int64),
            "entropy": self.S.detach().cpu().clone(),
            "histogram": self.H.detach().cpu().clone(),
            "observable_sums": {k: v.detach().cpu().clone() for k, v in self.observable_sums.items()},
            "observable_counts": {k: v.detach().cpu().clone() for k, v in self.observable_counts.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        names = list(state["names"])
        lower = [float(x) for x in state["lower"]]
        upper = [float(x) for x in state["upper"]]
        bins = [int(x) for x in state["bins"]]
        mine = ([a.name for a in self.grid.axes], [a.lower for a in self.grid.axes], [a.upper for a in self.grid.axes], list(self.grid.shape))
        if (names, lower, upper, bins) != mine:
            raise ValueError(f"landscape state: grid differs (got names={names}, lower={lower}, upper={upper}, bins={bins})")
        for key in ("entropy", "histogram"):
            t = state[key]
            if not isinstance(t, torch.Tensor) or tuple(t.shape) != tuple(self.S.shape):
                got = list(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise ValueError(f"landscape state: {key} must be a tensor of shape {list(self.S.shape)} (got {got})")
        for group in ("observable_sums", "observable_counts"):
            for k, t in state.get(group, {}).items():
                if not isinstance(t, torch.Tensor) or tuple(t.shape) != tuple(self.S.shape):
                    raise ValueError(f"landscape state: {group}[{k!r}] must be a tensor of shape {list(self.S.shape)}")
        self.S.copy_(state["entropy"].to(self.device, torch.float64))
        self.H.copy_(state["histogram"].to(self.device, torch.float64))
        self.observable_sums = {k: v.to(self.device, torch.float64).clone() for k, v in state.get("observable_sums", {}).items()}
        self.observable_counts = {k: v.to(self.device, torch.float64).clone()
                                  for k, v in state.get("observable_counts", {}).items()}
