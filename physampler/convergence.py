"""Has a landscape converged?  The verdict every run states at its end and ``physampler info`` prints.

Criterion (also in docs/config.md, "Outputs").  Let H_late(ξ) be the visits per bin made
in the second half of the run — from the first report at or after step N/2 to the
end — over the bins the run ever visited, and H̄ their mean.  Sampling with the
bias e^{−S} in equilibrium visits ξ with weight g(ξ)·e^{−S(ξ)}, so

    ln(H_late(ξ)/H̄) = ln g(ξ) − S(ξ) + const

estimates, bin by bin, the error S still had while the second half was sampled.  The
run has converged when

    rms_ξ ln(H_late/H̄) ≤ 0.15    and    H_late(ξ) ≥ 0.2·H̄ in every visited bin,

i.e. S is within about 0.15 (in units of k_B) of ln g in the rms and no visited bin was
left behind.  What it must catch (tests/test_user_facing.py): a run whose S is still far
from ln g (examples/double_well.toml with F = 0.2 over 20 000 steps: S off by rms 0.97,
rms ln(H/mean) 0.28), and a step that does not sample e^{−S} (the same example at
dt = 0.01, where even the exact ln g held fixed gives visits 7 : 1 across the barrier:
rms ln(H/mean) 0.75, although S happened to lie near ln g at step 20 000).  The flatness
of the cumulative H (``flatness_min_max``) is reported too but not used: it keeps the
memory of the filling transient.

Besides the verdict, every report (or, under torchrun, every report that falls on a
landscape sync) records the series the verdict's trend is read from (``SERIES``): the rms
change of S over the visited bins since the previous record after the best constant offset
(their mean difference), the smallest visits since the previous record relative to their
mean, the flatness min H/mean H of the cumulative histogram, and the mean number of round
trips per walker so far.

Round trips (:class:`RoundTrips`): a walker's round trip is a passage from one end of the
first CV's grid range to the other and back, the ends being the lowest and the highest
``END_FRACTION`` of the range.  They are counted at the trajectory records (every report
interval), so a passage faster than one interval is missed; a walker that never reaches an
end makes none — a grid wider than the walkers explore shows as zero round trips.

Error of S: a run's own estimate of how far its final S lies from ln g is the rms change of
S over its second half, δ = rms(S_end − S_half − offset) over the bins visited half-way.
Under the 1/t schedule the error falls like t^(−1/2), so an error at the end that is
independent of the one half-way gives δ ≈ √3·error, a common slow error less; measured on
the 6-D harmonic well (six seeds, 4 walkers × 20 000 steps) the actual rms error of S_end
was 0.54–1.07 δ.  The visits' rms ln(H/mean) underestimates it (0.6×): while S is still
deposited the walkers' visits are flattened by the very deposits they make.

Steps still needed (:func:`steps_to_target`): under the 1/t schedule the deposits of an
interval Δ at step t add up to about F·t_WL·Δ/t, so the rms change per record falls like a
power of t.  A least-squares line through ln(rms change) against ln t over the last records
(those from a quarter of the last record's step on) extrapolates to the step where it reaches a target.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

#: the criterion's thresholds (see the module docstring)
MAX_RMS_LOG_VISITS = 0.15
MIN_RELATIVE_VISITS = 0.2
#: the ends of the first CV's range between which round trips are counted: its lowest and highest tenth
END_FRACTION = 0.1
#: the trend of the rms change is fitted over the records from this fraction of the last step on
#: (a span of ln 4 in ln t: over a few neighbouring records the fit would follow their noise)
TREND_FROM = 0.25
#: columns of ConvergenceMonitor.series
SERIES = ("step", "rms_change", "min_visits", "flatness", "round_trips")
CRITERION = (f"second-half visits H of every visited bin: rms ln(H/mean) <= {MAX_RMS_LOG_VISITS} and "
             f"H >= {MIN_RELATIVE_VISITS}*mean")


@dataclass
class Verdict:
    """``converged`` is None when the run cannot be judged (no record in its second half)."""

    converged: bool | None
    first_step: int
    last_step: int
    rms_log_visits: float
    min_relative_visits: float
    message: str
    #: rms of S(end) − S(half-way) − offset over the bins visited half-way: the run's own error
    #: estimate (module docstring, "Error of S"); NaN without a snapshot of S
    second_half_change: float = math.nan

    def attrs(self) -> dict:
        """Global attributes of landscape.nc (read back by :func:`from_attrs`)."""
        return {"converged": -1 if self.converged is None else int(self.converged),
                "convergence_criterion": CRITERION,
                "convergence_steps": [self.first_step, self.last_step],
                "convergence_rms_log_visits": self.rms_log_visits,
                "convergence_min_visits": self.min_relative_visits,
                "convergence_second_half_change": self.second_half_change,
                "convergence_verdict": self.message}


def from_attrs(attrs: dict) -> str:
    """The verdict line of a landscape.nc's attributes (files written before the criterion: say so)."""
    v = attrs.get("convergence_verdict")
    return str(v) if v is not None else "not judged (written by a physampler without the convergence criterion)"


class ConvergenceMonitor:
    """Records the diagnostics of the module docstring at report steps and judges the run."""

    def __init__(self, total_steps: int):
        self.total = int(total_steps)
        self.snapshot_step = -1
        self.snapshot_H: torch.Tensor | None = None
        self.snapshot_S: torch.Tensor | None = None
        self.prev_S: torch.Tensor | None = None
        self.prev_H: torch.Tensor | None = None
        self.series: list[list[float]] = []  # one row per record, in SERIES order

    def record(self, step: int, landscape, round_trips: float = math.nan) -> None:
        """A record at ``step``; ``round_trips``: the mean per walker so far."""
        S = landscape.S.detach().to("cpu", torch.float64)
        H = landscape.H.detach().to("cpu", torch.float64)
        visited = H > 0
        if self.prev_S is not None and bool(visited.any()):
            g = _groups(landscape)
            dS = _centred(S - self.prev_S, visited, g)
            rel = _relative(H - self.prev_H, visited, g)
            flat = _relative(H, visited, g)
            self.series.append([float(step), float(dS.pow(2).mean().sqrt()), float(rel.min()), float(flat.min()),
                                float(round_trips)])
        self.prev_S, self.prev_H = S.clone(), H.clone()
        self._snapshot_if_half_way(step, H, S)

    def _snapshot_if_half_way(self, step: int, H: torch.Tensor, S: torch.Tensor) -> None:
        """Take the snapshot of H and S at the first record at or after N/2 (again if N has grown
        past twice the snapshot's step)."""
        if (self.snapshot_H is None or 2 * self.snapshot_step < self.total) and 2 * step >= self.total:
            self.snapshot_step, self.snapshot_H, self.snapshot_S = int(step), H.clone(), S.clone()

    def resumed(self, step: int, landscape) -> None:
        """After a resume at ``step`` with the landscape restored: a run extended past twice its
        snapshot step takes its snapshot now if the run's new half-way point has already passed
        (the records before the resume were taken under the old run.steps)."""
        self._snapshot_if_half_way(step, landscape.H.detach().to("cpu", torch.float64),
                                   landscape.S.detach().to("cpu", torch.float64))

    def verdict(self, step: int, landscape) -> Verdict:
        H = landscape.H.detach().to("cpu", torch.float64)
        visited = H > 0
        if self.snapshot_H is None or self.snapshot_step >= step or not bool(visited.any()):
            return Verdict(None, self.snapshot_step, step, math.nan, math.nan,
                           "convergence not judged: no report was recorded in the second half of the run before its "
                           "end (set output.report_interval to at most run.steps / 4)")
        rel = _relative(H - self.snapshot_H, visited, _groups(landscape))
        low = float(rel.min())
        rms = float(torch.log(rel.clamp_min(1e-300)).pow(2).mean().sqrt()) if low > 0 else math.inf
        worst_index = int(torch.argmin(rel))
        flat = int(torch.nonzero(visited.reshape(-1)).reshape(-1)[worst_index])
        where = ", ".join(f"{name} = {x:.4g}" for name, x in _centre(landscape, flat))
        ok = rms <= MAX_RMS_LOG_VISITS and low >= MIN_RELATIVE_VISITS
        n = int(visited.sum())
        empty = int((rel == 0).sum())
        spread = (f"rms ln(H/mean) {rms:.3g} (limit {MAX_RMS_LOG_VISITS})" if empty == 0 else
                  f"{empty} of them not visited at all in that half (so rms ln(H/mean) is infinite)")
        stats = (f"visits of steps {self.snapshot_step}-{step} over the {n} visited bins: {spread}, min H/mean "
                 f"{low:.3g} at {where} (limit {MIN_RELATIVE_VISITS})")
        message = (f"converged: {stats}" if ok else
                   f"NOT converged: {stats}; S may still be wrong by about the rms ln(H/mean) — run longer "
                   "(--resume with more run.steps), or check that the dynamics samples e^-S (a smaller dt)")
        return Verdict(ok, self.snapshot_step, step, rms, low, message, self._second_half_change(landscape))

    def _second_half_change(self, landscape) -> float:
        if self.snapshot_S is None:
            return math.nan
        seen = self.snapshot_H > 0
        if not bool(seen.any()):
            return math.nan
        d = _centred(landscape.S.detach().to("cpu", torch.float64) - self.snapshot_S, seen, _groups(landscape))
        return float(d.pow(2).mean().sqrt())

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict:
        none = torch.zeros(0, dtype=torch.float64)
        return {"total": self.total, "snapshot_step": self.snapshot_step,
                "snapshot_H": none if self.snapshot_H is None else self.snapshot_H.clone(),
                "snapshot_S": none if self.snapshot_S is None else self.snapshot_S.clone(),
                "prev_S": none if self.prev_S is None else self.prev_S.clone(),
                "prev_H": none if self.prev_H is None else self.prev_H.clone(),
                "series": torch.tensor(self.series, dtype=torch.float64).reshape(-1, len(SERIES))}

    def load_state_dict(self, sd: dict, shape) -> None:
        """Restore; ``ValueError`` when the tensors do not fit a landscape of ``shape``."""
        def grid(name):
            t = sd[name]
            if not isinstance(t, torch.Tensor):
                raise ValueError(f"{name} must be a tensor")
            if t.numel() == 0:
                return None
            if tuple(t.shape) != tuple(shape) or not bool(torch.isfinite(t).all()):
                raise ValueError(f"{name} must be a finite tensor of shape {list(shape)} (got {list(t.shape)})")
            return t.to(torch.float64).clone()

        series = sd["series"]
        if not isinstance(series, torch.Tensor) or series.ndim != 2 or series.shape[1] not in (3, len(SERIES)):
            raise ValueError(f"series must be a [n, {len(SERIES)}] tensor")
        if series.shape[1] == 3:  # written before the flatness and round-trip columns: unknown there
            series = torch.cat([series.to(torch.float64), torch.full((series.shape[0], 2), math.nan,
                                                                     dtype=torch.float64)], dim=1)
        step = sd["snapshot_step"]
        if isinstance(step, bool) or not isinstance(step, int):
            raise ValueError(f"snapshot_step must be an integer (got {step!r:.40})")
        self.snapshot_step, self.snapshot_H = step, grid("snapshot_H")
        # written before the second-half change existed: no snapshot of S, so no such estimate
        self.snapshot_S = grid("snapshot_S") if "snapshot_S" in sd else None
        self.prev_S, self.prev_H = grid("prev_S"), grid("prev_H")
        self.series = series.tolist()


class RoundTrips:
    """Round trips of each walker between the ends of ``[lower, upper]`` (module docstring)."""

    def __init__(self, lower: float, upper: float, walkers: int):
        span = float(upper) - float(lower)
        self.ends = (float(lower) + END_FRACTION * span, float(upper) - END_FRACTION * span)
        self.last = np.zeros(walkers, dtype=np.int8)  # end last touched: −1 low, +1 high, 0 none yet
        self.half = np.zeros(walkers, dtype=np.int64)  # passages from one end to the other

    def update(self, x) -> None:
        """One record of the walkers' first CV, ``x`` [W]."""
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        end = np.where(x <= self.ends[0], -1, np.where(x >= self.ends[1], 1, 0)).astype(np.int8)
        self.half += (end != 0) & (self.last != 0) & (end != self.last)
        self.last = np.where(end != 0, end, self.last)

    @property
    def trips(self) -> np.ndarray:
        return self.half // 2


@dataclass
class Trend:
    """ln(rms change) ≈ a − p·ln t over ``records`` (from TREND_FROM of the last step on); ``remaining``: steps after ``step`` until
    it reaches ``target`` (None when the trend does not fall, or there are fewer than 3 records)."""

    step: float
    last: float
    exponent: float
    records: int
    target: float
    remaining: float | None


def steps_to_target(series, target: float) -> Trend:
    """:class:`Trend` of the rms change of S per record (column 1 of ``series``) towards ``target``."""
    a = np.asarray(series, dtype=np.float64)
    if a.size == 0:
        return Trend(math.nan, math.nan, math.nan, 0, target, None)
    a = a.reshape(len(a), -1)
    ok = a[np.isfinite(a[:, 1]) & (a[:, 1] > 0) & (a[:, 0] >= TREND_FROM * a[-1, 0]) & (a[:, 0] > 0)]
    step, last = float(a[-1, 0]), float(a[-1, 1])
    if len(ok) < 3:
        return Trend(step, last, math.nan, len(ok), target, None)
    slope, icpt = np.polyfit(np.log(ok[:, 0]), np.log(ok[:, 1]), 1)
    p = -float(slope)
    if last <= target:
        return Trend(step, last, p, len(ok), target, 0.0)
    log_t = (icpt - math.log(target)) / p if p > 1e-6 else math.inf
    if not log_t < 700:  # a trend that does not fall, or one that reaches the target beyond any run
        return Trend(step, last, p, len(ok), target, None)
    t_star = math.exp(log_t)
    return Trend(step, last, p, len(ok), target, max(0.0, t_star - step))


# ------------------------------------------------ windows: each window's S has its own constant
def _groups(landscape) -> int:
    """Windows whose S are judged apart (each known up to its own constant): the leading axis of a
    windowed landscape's S, else 1."""
    return getattr(landscape, "n_windows", 1)


def _centred(values: torch.Tensor, mask: torch.Tensor, groups: int) -> torch.Tensor:
    """``values`` at ``mask``, less the mean of their group (the best constant offset per window)."""
    v, m = values.reshape(groups, -1), mask.reshape(groups, -1)
    return torch.cat([v[g][m[g]] - v[g][m[g]].mean() for g in range(groups) if bool(m[g].any())])


def _relative(values: torch.Tensor, mask: torch.Tensor, groups: int) -> torch.Tensor:
    """``values`` at ``mask`` relative to the mean of their group (0 where that mean is not > 0)."""
    v, m = values.reshape(groups, -1), mask.reshape(groups, -1)
    out = []
    for g in range(groups):
        if bool(m[g].any()):
            x = v[g][m[g]]
            mean = float(x.mean())
            out.append(x / mean if mean > 0 else torch.zeros_like(x))
    return torch.cat(out)


def _centre(landscape, flat: int) -> list[tuple[str, float]]:
    """(axis name, bin centre) of the bin at ``flat`` in ``landscape.S`` (a window's bins mapped to the
    run's grid)."""
    grid = landscape.grid
    g, i = divmod(flat, grid.size) if _groups(landscape) > 1 else (0, flat)
    idx = torch.unravel_index(torch.tensor(i), tuple(grid.shape))
    out = [(a.name, float(a.centres()[int(j)])) for a, j in zip(grid.axes, idx)]
    if g:
        out[0] = (out[0][0], out[0][1] + landscape.windows.shifts[g])
    return out
