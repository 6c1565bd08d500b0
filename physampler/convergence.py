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
landscape sync) records the series the verdict's trend is read from: the rms change
of S over the visited bins since the previous record after the best constant offset
(their mean difference), and the smallest visits since the previous record relative
to their mean.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

#: the criterion's thresholds (see the module docstring)
MAX_RMS_LOG_VISITS = 0.15
MIN_RELATIVE_VISITS = 0.2
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

    def attrs(self) -> dict:
        """Global attributes of landscape.nc (read back by :func:`from_attrs`)."""
        return {"converged": -1 if self.converged is None else int(self.converged),
                "convergence_criterion": CRITERION,
                "convergence_steps": [self.first_step, self.last_step],
                "convergence_rms_log_visits": self.rms_log_visits,
                "convergence_min_visits": self.min_relative_visits,
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
        self.prev_S: torch.Tensor | None = None
        self.prev_H: torch.Tensor | None = None
        self.series: list[list[float]] = []  # [step, rms ΔS since the previous record, min visits/mean since it]

    def record(self, step: int, landscape) -> None:
        S = landscape.S.detach().to("cpu", torch.float64)
        H = landscape.H.detach().to("cpu", torch.float64)
        visited = H > 0
        if self.prev_S is not None and bool(visited.any()):
            dS = (S - self.prev_S)[visited]
            dS = dS - dS.mean()
            dH = (H - self.prev_H)[visited]
            mean = float(dH.mean())
            low = float(dH.min()) / mean if mean > 0 else 0.0
            self.series.append([float(step), float(dS.pow(2).mean().sqrt()), low])
        self.prev_S, self.prev_H = S.clone(), H.clone()
        self._snapshot_if_half_way(step, H)

    def _snapshot_if_half_way(self, step: int, H: torch.Tensor) -> None:
        """Take the snapshot of H at the first record at or after N/2 (again if N has grown past
        twice the snapshot's step)."""
        if (self.snapshot_H is None or 2 * self.snapshot_step < self.total) and 2 * step >= self.total:
            self.snapshot_step, self.snapshot_H = int(step), H.clone()

    def resumed(self, step: int, landscape) -> None:
        """After a resume at ``step`` with the landscape restored: a run extended past twice its
        snapshot step takes its snapshot now if the run's new half-way point has already passed
        (the records before the resume were taken under the old run.steps)."""
        self._snapshot_if_half_way(step, landscape.H.detach().to("cpu", torch.float64))

    def verdict(self, step: int, landscape) -> Verdict:
        H = landscape.H.detach().to("cpu", torch.float64)
        visited = H > 0
        if self.snapshot_H is None or self.snapshot_step >= step or not bool(visited.any()):
            return Verdict(None, self.snapshot_step, step, math.nan, math.nan,
                           "convergence not judged: no report was recorded in the second half of the run before its "
                           "end (set output.report_interval to at most run.steps / 4)")
        late = (H - self.snapshot_H)[visited]
        mean = float(late.mean())
        if not mean > 0:
            rel = torch.zeros_like(late)
        else:
            rel = late / mean
        low = float(rel.min())
        rms = float(torch.log(rel.clamp_min(1e-300)).pow(2).mean().sqrt()) if low > 0 else math.inf
        centres = landscape.grid.centres()
        worst_index = int(torch.argmin(rel))
        flat = torch.nonzero(visited.reshape(-1)).reshape(-1)[worst_index]
        idx = torch.unravel_index(flat, tuple(H.shape))
        worst = tuple(float(c[int(i)]) for c, i in zip(centres, idx))
        where = ", ".join(f"{a.name} = {x:.4g}" for a, x in zip(landscape.grid.axes, worst))
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
        return Verdict(ok, self.snapshot_step, step, rms, low, message)

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict:
        none = torch.zeros(0, dtype=torch.float64)
        return {"total": self.total, "snapshot_step": self.snapshot_step,
                "snapshot_H": none if self.snapshot_H is None else self.snapshot_H.clone(),
                "prev_S": none if self.prev_S is None else self.prev_S.clone(),
                "prev_H": none if self.prev_H is None else self.prev_H.clone(),
                "series": torch.tensor(self.series, dtype=torch.float64).reshape(-1, 3)}

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
        if not isinstance(series, torch.Tensor) or series.ndim != 2 or series.shape[1] != 3:
            raise ValueError("series must be a [n, 3] tensor")
        step = sd["snapshot_step"]
        if isinstance(step, bool) or not isinstance(step, int):
            raise ValueError(f"snapshot_step must be an integer (got {step!r:.40})")
        self.snapshot_step, self.snapshot_H = step, grid("snapshot_H")
        self.prev_S, self.prev_H = grid("prev_S"), grid("prev_H")
        self.series = series.tolist()
