"""Replica-exchange Wang–Landau windows ([REWL]: Vogel, Li, Wüst, Landau, PRL 110, 210603
(2013), PRE 90, 023302 (2014); docs/science.md §4, "Windows").

The range of the first CV ξ₀ (the energy U, or ln L_train) is cut into K overlapping windows
of equal width, aligned on the grid's bins (:func:`layout`).  Every window k has its own
entropy S_k on its own range, sampled by its own walkers; walkers never leave their window
(walls at its edges, kernel reflected there).  Every ``swap_interval`` steps, neighbouring
windows (k, k+1), the even pairs and the odd pairs in turn, offer to exchange configurations:
the walkers of both windows are paired at random, and a pair (x in k, y in k+1) whose CVs both
lie in the overlap of the two ranges swaps with probability

    P = min(1, exp[S_k(ξ_x) + S_{k+1}(ξ_y) − S_k(ξ_y) − S_{k+1}(ξ_x)]).

Why this sign: WLMD samples a window's walker with the weight g(ξ)·e^(−S_k(ξ)) (flat in ξ once
S_k = ln g).  Two windows' walkers are independent, so the pair has the joint weight
g(ξ_x)e^(−S_k(ξ_x)) · g(ξ_y)e^(−S_{k+1}(ξ_y)); the swapped pair has g(ξ_y)e^(−S_k(ξ_y)) ·
g(ξ_x)e^(−S_{k+1}(ξ_x)).  Metropolis on their ratio gives P above (g cancels), and the swap
leaves the product of the windows' flat distributions stationary — the same expression as
Vogel et al.'s g_k(E_x)g_{k+1}(E_y)/(g_k(E_y)g_{k+1}(E_x)), since our bias is e^(−S) where
theirs is 1/g.  S is read by the same multilinear interpolation the force uses.  A swap moves
the walkers' positions and velocities together (both windows share kT, so the Maxwellian
is unchanged); here that is done by exchanging the two walkers' window labels, after which
the accelerations are recomputed under their new windows' S.

Joining (:func:`join`): each S_k is known up to a constant.  Between windows k−1 and k the
constant is matched over their overlap — S_k is shifted by the mean of S_{k−1} − S_k over every
bin both visited there, less ``margin`` bins (2σ) at each window's edge, where the reflected
kernel flattens S — and the join column c* is the one of the overlap where the slopes ∂S/∂ξ₀
agree best (least rms difference over the bins both visited in that column): the joined S
takes window k−1 below c*, window k from c* on.  Matching the constant at c* alone would carry
the noise of one column into every window above it.  The histogram and per-bin observables of the joined landscape come from the same
window as its S, so the joined H is as flat as each window's.

Symbols → code: K = ``count``, windows' first bins = ``WindowLayout.starts``, S_k =
``WindowedLandscape.S[k]``, window of walker w = ``WindowedLandscape.window[w]``, swap
interval = ``ReplicaExchange.interval``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from . import _checks
from .grid import Axis
from .landscape import Landscape

#: default largest slope of the walls at a window's edges (S per unit of the first CV): quadratic
#: near the edge, linear beyond — a walker that starts far outside its window (all start in one
#: place) is pulled in at this rate rather than by a force growing with the distance, which
#: blew LJ13 walkers apart within 20 steps
WALL_SLOPE = 10.0
#: fewest bins two neighbouring windows must share: the slopes compared at the join need three
MIN_OVERLAP_BINS = 3


@dataclass(frozen=True)
class WindowLayout:
    """K windows of ``bins`` bins each on ``axis`` (the full range of the first CV); window k covers
    the axis's bins ``starts[k]`` … ``starts[k] + bins − 1``."""

    axis: Axis
    bins: int
    starts: tuple[int, ...]

    @property
    def count(self) -> int:
        return len(self.starts)

    def local_axis(self) -> Axis:
        """The axis every window is sampled on, in its own coordinate ξ₀ − shift_k: window 0's range."""
        a = self.axis
        return Axis(a.name, a.lower, a.lower + self.bins * a.width, bins=self.bins, units=a.units,
                    long_name=a.long_name)

    @property
    def shifts(self) -> list[float]:
        """shift_k = starts[k]·width: window k's range is the local axis's plus shift_k."""
        return [s * self.axis.width for s in self.starts]

    def ranges(self) -> list[tuple[float, float]]:
        a = self.axis
        return [(a.lower + s * a.width, a.lower + (s + self.bins) * a.width) for s in self.starts]


def layout(axis: Axis, count: int, overlap: float) -> WindowLayout:
    """``count`` windows of equal width over ``axis``, neighbours sharing the fraction ``overlap``
    of a window (Vogel et al. use 0.75): width m bins with m·(1 + (K−1)(1 − overlap)) ≥ n, the
    first window at the lower edge, the last at the upper one, starts evenly between.
    ``ValueError`` naming ``windows.count`` or ``windows.overlap`` when they do not fit the axis."""
    count = _checks.positive_int("windows.count", count)
    if not (isinstance(overlap, (int, float)) and 0.0 < overlap < 1.0):
        raise ValueError(f"windows.overlap: must be a fraction of a window, 0 < overlap < 1 (got {overlap!r})")
    n = axis.bins
    if count == 1:
        return WindowLayout(axis, n, (0,))
    m = min(n, math.ceil(n / (1.0 + (count - 1) * (1.0 - overlap))))
    starts = tuple(int(round(k * (n - m) / (count - 1))) for k in range(count))
    shared = m - max(b - a for a, b in zip(starts, starts[1:]))
    if shared < MIN_OVERLAP_BINS or len(set(starts)) < count:
        raise ValueError(f"windows.count: {count} windows with overlap {overlap:g} on {n} bins of {axis.name} share "
                         f"only {shared} bins between neighbours (need >= {MIN_OVERLAP_BINS}): fewer windows, a larger "
                         "overlap or more bins")
    return WindowLayout(axis, m, starts)


class WindowedLandscape(Landscape):
    """K landscapes, one per window, stacked: ``S`` and ``H`` are [K, *shape] on the local grid
    (:meth:`WindowLayout.local_axis` for the first CV, the full axes for the others).  Walker w
    uses window ``window[w]``: its CVs are moved into the local coordinate, ξ₀ − shift, and it
    deposits into and is driven by that window's S only.  Everything else is the
    :class:`Landscape` of one window: kernel, reflection at the window's edges, walls there.

    ``wall_slope``: the largest slope of the walls at the windows' edges along the first CV
    (:class:`~physampler.biases.QuadraticWall` ``max_slope``; None: not capped).

    ``grid`` is the local grid; ``full_grid`` the run's.  Deposits: every walker adds f_WL/W (W
    all walkers) to its window's S, the same increment per visit as without windows — as in
    Vogel et al., where every window's walkers raise ln g by the same ln f per visit."""

    def __init__(self, windows: WindowLayout, other_axes=(), walkers: int = 1, wall_slope: float | None = WALL_SLOPE,
                 **kwargs):
        from .grid import Grid

        axes = [windows.local_axis(), *other_axes]
        super().__init__(axes, **kwargs)
        from .biases import QuadraticWall

        self.wall_slope = None if wall_slope is None else _checks.positive("windows.wall_slope", wall_slope)
        if self.walls:  # the first CV's edges are the window's: pull walkers in at a bounded rate
            b = self.wall_strength[0]
            self.walls[:2] = [QuadraticWall(0, self.grid.axes[0].lower, b, "lower", max_slope=self.wall_slope),
                              QuadraticWall(0, self.grid.axes[0].upper, b, "upper", max_slope=self.wall_slope)]
        self.windows = windows
        self.full_grid = Grid([windows.axis, *other_axes], device=self.device)
        K = windows.count
        self.S = torch.zeros((K, *self.grid.shape), dtype=torch.float64, device=self.device)
        self.H = torch.zeros_like(self.S)
        self._shift = torch.tensor(windows.shifts, dtype=torch.float64, device=self.device)
        self.assign(default_labels(walkers, K))

    @property
    def n_windows(self) -> int:
        return self.windows.count

    def assign(self, labels) -> None:
        """Set every walker's window ([W] ints in 0…K−1)."""
        t = torch.as_tensor(labels, dtype=torch.int64)
        if t.ndim != 1 or (t.numel() and (int(t.min()) < 0 or int(t.max()) >= self.n_windows)):
            raise ValueError(f"window labels: must be [W] integers in 0..{self.n_windows - 1}")
        self.window = t.to(self.device)
        self._offset = self.window * self.grid.size
        self._local_shift = self._shift[self.window]

    def local(self, xi: torch.Tensor, window: torch.Tensor | None = None) -> torch.Tensor:
        """ξ in the window coordinate of each walker's window (or of ``window`` [W])."""
        shift = self._local_shift if window is None else self._shift[window]
        out = xi.to(torch.float64).clone()
        out[:, 0] = out[:, 0] - shift
        return out

    # the Landscape operations, each walker on its window
    def in_range(self, xi):
        return self.grid.in_range(self.local(xi))

    def deposit(self, xi, height, inside=None):
        loc = self.local(xi)
        if inside is None:
            inside = self.grid.in_range(loc)
        h = torch.as_tensor(height, dtype=torch.float64, device=self.device)
        h = h.expand(xi.shape[0]) * inside
        idx, w = self.grid.gaussian_kernel(loc, self._sigma, self.cutoff, self.edge)
        self.S.view(-1).index_add_(0, (idx + self._offset[:, None]).reshape(-1), (w * h[:, None]).reshape(-1))
        self.count(xi, inside)

    def count(self, xi, inside=None):
        loc = self.local(xi)
        if inside is None:
            inside = self.grid.in_range(loc)
        self.H.view(-1).index_add_(0, self.grid.bin_index(loc) + self._offset, inside.to(torch.float64))

    def observe(self, name, xi, values, inside=None):
        loc = self.local(xi)
        if inside is None:
            inside = self.grid.in_range(loc)
        if name not in self.observable_sums:
            self.observable_sums[name] = torch.zeros_like(self.S)
            self.observable_counts[name] = torch.zeros_like(self.S)
        b = self.grid.bin_index(loc) + self._offset
        self.observable_sums[name].view(-1).index_add_(0, b, torch.where(inside, values.to(torch.float64), 0.0))
        self.observable_counts[name].view(-1).index_add_(0, b, inside.to(torch.float64))

    def gradient(self, xi):
        return self._gradient(self.local(xi), self._offset)

    def value(self, xi, window: torch.Tensor | None = None):
        """S of each walker's window (or of ``window`` [W]) at ξ, interpolated as the force is."""
        if window is None:
            return self.grid.interpolate(self.S, self.local(xi), self._offset)
        return self.grid.interpolate(self.S, self.local(xi, window), window.to(self.device) * self.grid.size)

    def tilt(self, axis, temperature):
        """S_k += (ξ_axis − lower of the full range)/T: one tilt across the windows."""
        super().tilt(axis, temperature)
        if _checks.non_negative_int("axis", axis) == 0:
            self.S += (self._shift / _checks.positive("temperature", temperature)).reshape(-1, *[1] * self.grid.ndim)

    # ---------------------------------------------------------------- results
    def joined(self) -> tuple[Landscape, dict]:
        """The :class:`Landscape` of the full grid (:func:`join`) and the join's record, with
        ``join_owner``: the window each column of the full grid comes from."""
        out = Landscape(self.full_grid.axes, sigma=list(self._sigma), cutoff=self.cutoff, edge=self.edge,
                        out_of_range=self.out_of_range, wall_strength=self.wall_strength, device=self.device)
        S, H = self.S.detach().cpu().numpy(), self.H.detach().cpu().numpy()
        js, owner, record = join(self.windows, S, H, margin=max(1, math.ceil(2 * max(self._sigma[:1]))))
        out.S.copy_(torch.from_numpy(np.nan_to_num(js, nan=0.0)))
        out.H.copy_(torch.from_numpy(_gather(self.windows, H, owner)))
        for k in self.observable_sums:
            out.observable_sums[k] = torch.from_numpy(
                _gather(self.windows, self.observable_sums[k].cpu().numpy(), owner)).to(self.device)
            out.observable_counts[k] = torch.from_numpy(
                _gather(self.windows, self.observable_counts[k].cpu().numpy(), owner)).to(self.device)
        return out, record | {"join_owner": owner}

    def _like(self):
        new = super()._like()
        new.window = self.window.clone()
        return new

    @staticmethod
    def merge(landscapes, how="mean"):
        raise ValueError("landscapes: windowed landscapes are joined (WindowedLandscape.joined), not merged")

    # ------------------------------------------------------------ persistence
    def state_dict(self) -> dict:
        sd = super().state_dict()
        full = self.full_grid.axes
        return sd | {"names": [a.name for a in full],
                     "lower": torch.tensor([a.lower for a in full], dtype=torch.float64),
                     "upper": torch.tensor([a.upper for a in full], dtype=torch.float64),
                     "bins": torch.tensor([a.bins for a in full], dtype=torch.int64),
                     "window_starts": torch.tensor(self.windows.starts, dtype=torch.int64),
                     "window_bins": self.windows.bins}

    def load_state_dict(self, state: dict) -> None:
        starts = state.get("window_starts")
        if not isinstance(starts, torch.Tensor) or [int(x) for x in starts] != list(self.windows.starts) \
                or state.get("window_bins") != self.windows.bins:
            raise ValueError(f"landscape state: windows differ from this job's ({self.n_windows} windows of "
                             f"{self.windows.bins} bins starting at bins {list(self.windows.starts)})")
        full = self.full_grid.axes
        mine = ([a.name for a in full], [a.lower for a in full], [a.upper for a in full], [a.bins for a in full])
        got = (list(state["names"]), [float(x) for x in state["lower"]], [float(x) for x in state["upper"]],
               [int(x) for x in state["bins"]])
        if got != mine:
            raise ValueError(f"landscape state: grid differs (got names={got[0]}, lower={got[1]}, upper={got[2]}, "
                             f"bins={got[3]})")
        local = self.grid.axes
        super().load_state_dict(state | {"names": [a.name for a in local], "lower": [a.lower for a in local],
                                         "upper": [a.upper for a in local], "bins": list(self.grid.shape)})


def landscape_from_state(sd: dict) -> Landscape:
    """A landscape to load a landscape state ``sd`` into (for checks: its kernel is the default):
    a :class:`WindowedLandscape` when the state is one's, a :class:`Landscape` otherwise."""
    axes = [Axis(n, float(lo), float(hi), bins=int(b))
            for n, lo, hi, b in zip(list(sd["names"]), sd["lower"], sd["upper"], sd["bins"])]
    if "window_starts" not in sd:
        return Landscape(axes)
    starts = tuple(int(x) for x in sd["window_starts"])
    return WindowedLandscape(WindowLayout(axes[0], int(sd["window_bins"]), starts), axes[1:], walkers=len(starts))


def default_labels(walkers: int, count: int) -> torch.Tensor:
    """Walker w starts in window ⌊w·K/W⌋: consecutive blocks of W/K walkers."""
    if walkers % count:
        raise ValueError(f"run.walkers: {walkers} walkers cannot be spread evenly over {count} windows "
                         "(use a multiple of windows.count)")
    return torch.arange(walkers, dtype=torch.int64) * count // walkers


def _slopes(s: np.ndarray, visited: np.ndarray) -> np.ndarray:
    """∂S/∂ξ₀ in bins (central differences; NaN where a neighbour is unvisited)."""
    v = np.where(visited, s, np.nan)
    out = np.full(v.shape, np.nan)
    out[1:-1] = 0.5 * (v[2:] - v[:-2])
    return out


def join(windows: WindowLayout, S: np.ndarray, H: np.ndarray, margin: int = 1) -> tuple[np.ndarray, np.ndarray, dict]:
    """Join the windows' S [K, m, ...] (module docstring) into S on the full grid [n, ...]: returns
    it (NaN where the window it comes from never visited), the window each full-grid column comes
    from [n] and the record {``join_columns``, ``join_offsets``, ``join_slope_mismatch``} (per
    junction; the joined S starts at the lowest window with visits, the junctions below it have
    column −1, and a junction whose windows share no visited bins has column −1 and the windows
    above it are left out, NaN).  ``margin``: bins at each window's edges left out of the offset and
    the choice of the join column (there the reflected kernel flattens S)."""
    K, m = windows.count, windows.bins
    n = windows.axis.bins
    rest = S.shape[2:]
    out = np.full((n, *rest), np.nan)
    owner = np.full(n, -1, dtype=np.int64)
    vis = H > 0
    seen = [k for k in range(K) if vis[k].any()]
    first = seen[0] if seen else 0  # windows below the first with visits are left out (NaN)
    a0 = windows.starts[first]
    out[a0:a0 + m] = np.where(vis[first], S[first], np.nan)
    owner[a0:a0 + m] = first
    offset = 0.0
    columns, offsets, mismatch = [-1] * first, [np.nan] * first, [np.nan] * first
    for k in range(first + 1, K):
        # the overlap, less the margins: full-grid columns lo … hi−1
        lo, hi = windows.starts[k] + margin, windows.starts[k - 1] + m - margin
        p0 = windows.starts[k - 1]
        prev_s, cur_s = S[k - 1], S[k]
        dp, dc = _slopes(prev_s, vis[k - 1]), _slopes(cur_s, vis[k])
        best, best_c, diffs = np.inf, -1, []
        for c in range(lo, hi):
            i, j = c - p0, c - windows.starts[k]
            both = vis[k - 1][i] & vis[k][j]
            diffs.append((prev_s[i] - cur_s[j])[both])
            d = (dp[i] - dc[j])[both & np.isfinite(dp[i]) & np.isfinite(dc[j])]
            if d.size and np.sqrt(np.mean(d ** 2)) < best:
                best, best_c = float(np.sqrt(np.mean(d ** 2))), c
        diffs = np.concatenate([d.reshape(-1) for d in diffs]) if diffs else np.zeros(0)
        if best_c < 0 or not diffs.size:
            columns.append(-1), offsets.append(np.nan), mismatch.append(np.nan)
            break
        # the constant from every bin both visited in the overlap; the switch at the best slopes
        offset = offset + float(np.mean(diffs))
        j0 = best_c - windows.starts[k]
        out[best_c:windows.starts[k] + m] = np.where(vis[k][j0:], cur_s[j0:] + offset, np.nan)
        owner[best_c:windows.starts[k] + m] = k
        columns.append(best_c), offsets.append(offset), mismatch.append(best)
    return out, owner, {"join_columns": columns, "join_offsets": offsets, "join_slope_mismatch": mismatch}


def _gather(windows: WindowLayout, values: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """Per-window arrays [K, m, ...] → the full grid [n, ...], each column from ``owner`` (0 where −1)."""
    out = np.zeros((windows.axis.bins, *values.shape[2:]))
    for c, k in enumerate(owner):
        if k >= 0:
            out[c] = values[k, c - windows.starts[k]]
    return out


class ReplicaExchange:
    """The swap move between neighbouring windows (module docstring), on the host once every
    ``interval`` steps: ``attempt(xi, step)`` reads the walkers' CVs, relabels the accepted pairs
    in the landscape and returns how many it accepted.  Its random numbers come from its own
    generator (seeded from the run seed); :meth:`state_dict` holds it, the labels and the
    counts, so a resume continues the same swaps."""

    def __init__(self, landscape: WindowedLandscape, interval: int, seed: int):
        self.landscape = landscape
        self.interval = _checks.positive_int("windows.swap_interval", interval)
        self.generator = torch.Generator().manual_seed(int(seed) * 2654435761 % (2**63) + 7)
        self.parity = 0
        K = landscape.n_windows
        self.attempts = np.zeros(max(K - 1, 0), dtype=np.int64)
        self.accepted = np.zeros(max(K - 1, 0), dtype=np.int64)

    def attempt(self, xi: torch.Tensor, step: int) -> int:
        ls = self.landscape
        labels = ls.window.cpu().clone()
        ranges = ls.windows.ranges()
        x0 = xi[:, 0].detach().to("cpu", torch.float64)
        xs, ys = [], []
        for k in range(self.parity, ls.n_windows - 1, 2):
            a = torch.nonzero(labels == k).reshape(-1)
            b = torch.nonzero(labels == k + 1).reshape(-1)
            a = a[torch.randperm(a.numel(), generator=self.generator)]
            b = b[torch.randperm(b.numel(), generator=self.generator)]
            p = min(a.numel(), b.numel())
            xs.append(a[:p]), ys.append(b[:p])
        self.parity = 1 - self.parity if ls.n_windows > 2 else 0  # two windows: one junction, every time
        if not xs:
            return 0
        x, y = torch.cat(xs), torch.cat(ys)
        if x.numel() == 0:
            return 0
        u = torch.rand(x.numel(), generator=self.generator, dtype=torch.float64)
        k = labels[x]
        lo = torch.tensor([ranges[i + 1][0] for i in range(ls.n_windows - 1)], dtype=torch.float64)[k]
        hi = torch.tensor([ranges[i][1] for i in range(ls.n_windows - 1)], dtype=torch.float64)[k]
        both = (x0[x] >= lo) & (x0[x] <= hi) & (x0[y] >= lo) & (x0[y] <= hi)
        dev = ls.device
        pts = torch.cat([xi[x], xi[y], xi[y], xi[x]]).to(dev)
        wins = torch.cat([k, k + 1, k, k + 1]).to(dev)
        s = ls.value(pts, wins).cpu().reshape(4, -1)
        log_p = s[0] + s[1] - s[2] - s[3]  # S_k(ξ_x) + S_k+1(ξ_y) − S_k(ξ_y) − S_k+1(ξ_x)
        accept = both & (torch.log(u) < log_p)
        np.add.at(self.attempts, k.numpy(), 1)
        np.add.at(self.accepted, k[accept].numpy(), 1)
        if bool(accept.any()):
            labels[x[accept]], labels[y[accept]] = k[accept] + 1, k[accept]
            ls.assign(labels)
        return int(accept.sum())

    def acceptance(self) -> np.ndarray:
        """Accepted / attempted swaps per junction (NaN before the first attempt)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.accepted / np.where(self.attempts > 0, self.attempts, np.nan)

    def state_dict(self) -> dict:
        return {"labels": self.landscape.window.cpu().clone(), "generator": self.generator.get_state(),
                "parity": self.parity, "attempts": torch.from_numpy(self.attempts.copy()),
                "accepted": torch.from_numpy(self.accepted.copy())}

    def load_state_dict(self, sd: dict) -> None:
        for key in ("labels", "generator", "parity", "attempts", "accepted"):
            if key not in sd:
                raise ValueError(f"windows state: no {key!r} entry")
        labels = sd["labels"]
        if not isinstance(labels, torch.Tensor) or labels.shape != self.landscape.window.shape:
            raise ValueError(f"windows state: labels must be a tensor of {self.landscape.window.numel()} walkers")
        counts = [sd["attempts"], sd["accepted"]]
        if any(not isinstance(c, torch.Tensor) or c.shape != (max(self.landscape.n_windows - 1, 0),) for c in counts):
            raise ValueError(f"windows state: attempts and accepted must have one entry per junction "
                             f"({self.landscape.n_windows - 1})")
        if sd["parity"] not in (0, 1):
            raise ValueError("windows state: parity must be 0 or 1")
        self.landscape.assign(labels)
        try:
            self.generator.set_state(sd["generator"])
        except (RuntimeError, TypeError) as e:
            raise ValueError(f"windows state: generator state does not load ({e})") from None
        self.parity = int(sd["parity"])
        self.attempts, self.accepted = counts[0].numpy().astype(np.int64), counts[1].numpy().astype(np.int64)


class WindowedWLMD:
    """The engine of a windowed run: an engine (a :class:`~physampler.integrators.BiasedMD`, or its
    compiled form) on a :class:`WindowedLandscape`, with a :class:`ReplicaExchange` every
    ``interval`` steps (the steps t with t mod interval = 0).  Same interface as the engine it
    wraps (``init``, ``run``, ``refresh``, ``state_dict``, ``load_state_dict``); its checkpoint
    adds the entry ``windows``."""

    def __init__(self, engine, exchange: ReplicaExchange):
        self.engine = engine
        self.wlmd = getattr(engine, "wlmd", engine)
        if not isinstance(self.wlmd.landscape, WindowedLandscape):
            raise ValueError("engine: its method's landscape must be a WindowedLandscape")
        if exchange.landscape is not self.wlmd.landscape:
            raise ValueError("exchange: must relabel the engine's own landscape")
        self.exchange = exchange

    @property
    def landscape(self) -> WindowedLandscape:
        return self.wlmd.landscape

    def init(self, positions, rng, velocities=None):
        if positions.shape[0] != self.landscape.window.numel():
            raise ValueError(f"positions: {positions.shape[0]} walkers for {self.landscape.window.numel()} window labels")
        return self.engine.init(positions, rng, velocities)

    def refresh(self, state):
        return self.wlmd.refresh(state)

    def run(self, state, steps: int, *, stop=None):
        steps = _checks.non_negative_int("steps", steps)
        end, info, every = state.step + steps, None, self.exchange.interval
        while state.step < end:
            n = min(end - state.step, every - state.step % every)
            before = state.step
            state, info = self.engine.run(state, n, stop=stop)
            if state.step % every == 0 and state.step > before:
                if self.exchange.attempt(state.cv, state.step):
                    state = self.wlmd.refresh(state)
            if state.step - before < n or (stop is not None and stop()):
                break
        return state, info

    def state_dict(self, state=None) -> dict:
        sd = self.engine.state_dict(state)
        return sd | {"windows": self.exchange.state_dict()} if state is not None else sd

    def load_state_dict(self, sd: dict, rng=None):
        out = self.engine.load_state_dict(sd, rng)
        if "windows" in sd:
            self.exchange.load_state_dict(sd["windows"])
        return out
