"""Analysis of converged landscapes (docs/science.md §10).

Canonical reweighting of a 1-D S(U) (k_B = 1), sums over bin centres U_b of width ΔU:

    Z(T)   = Σ_b exp(S_b − U_b/T) · ΔU
    ⟨Uⁿ⟩_T = Σ_b U_bⁿ exp(S_b − U_b/T) / Σ_b exp(S_b − U_b/T)
    C_V(T) = (⟨U²⟩ − ⟨U⟩²) / T²            (configurational part only)

Add the kinetic d/2 (d = degrees of freedom) for the full C_V of a classical
system; :func:`canonical` does so when given ``kinetic_dof``.  NaN bins
(unvisited) are excluded.  S is known up to a constant, so ln Z is too.

Containment: the sums run over the sampled range only, so a temperature whose
canonical distribution P_T(U) ∝ exp(S − U/T) still has weight at the ends of that
range is truncated by the grid, and its ⟨U⟩ and C_V are biased (a 10-D harmonic
well on U ∈ [1, 31] gives C_V = 3.94 instead of 5 at T = 3).  ``truncation`` τ(T)
estimates the fraction of the canonical variance beyond the range: past each end e
(outermost bin density P_e, outward decay rate k of ln P over the last two bins)
the tail is continued exponentially, with mass m = P_e/k and second moment about
⟨U⟩ of m·(d² + 2d/k + 2/k²), d = |e − ⟨U⟩|; τ = Σ_ends that / (Z·Var U), ∞ where
ln P does not fall outward.  On that harmonic well τ over-estimates the actual
relative C_V error by 1.3–5× (T = 0.4–3); ``contained`` is τ ≤ 0.02, the C_V
tolerance of the validations.

Equilibrium curves of a 2-D S(x, y): the max-entropy curve y*(x) = argmax_y S(x, y)
and the entropy-weighted mean ⟨y⟩(x) = Σ_y y·e^S / Σ_y e^S.

Paths on a 2-D landscape (docs/science.md §10, "Numbers from a path"): a trajectory
(x_k, y_k), k = 0…n, is projected onto the grid and read as S_k = S(bin of x_k, y_k)
(:func:`project_path`).  Its **entropy barrier** is

    B = min(S_start, S_end) − min_k S_k  ≥ 0,

the depth by which the path dips below the lower of its two ends (the ends are its first
and last points in visited bins), at k* = argmin_k S_k (:func:`path_barrier`).  A path
along which S falls monotonically — as it does from high to low training loss — has
B = 0.  The **straight path** at fixed x between two values of y is the column of bins
between them (:func:`straight_path_barrier`).  The **high-entropy advantage** at each
x the path visits is y*(x) − ȳ_path(x) and ⟨y⟩(x) − ȳ_path(x), ȳ_path(x) the path's mean
y in that column, averaged over the columns at x ≤ x_low (the low-loss part)
(:func:`entropy_advantage`).  The **largest jump** of y*(x) between neighbouring visited
columns (:func:`max_entropy_jump`) tests continuity: a first-order transition between
memorising and generalising networks would show as a jump of order one in y*, a
continuous crossover as jumps of a few bins.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _checks


def _as_np(a) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    m = np.max(a, axis=axis, keepdims=True)
    return (m + np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True))).squeeze(axis)


TRUNCATION_LIMIT = 0.02


@dataclass
class Canonical:
    temperature: np.ndarray  # [nT]
    log_z: np.ndarray  # [nT], up to the additive constant of S
    mean_energy: np.ndarray  # ⟨U⟩ [nT]
    energy_variance: np.ndarray  # ⟨U²⟩ − ⟨U⟩² [nT]
    heat_capacity: np.ndarray  # C_V [nT]: configurational, plus kinetic_dof/2 if given
    kinetic_dof: int = 0  # d added as d/2 to heat_capacity (0: configurational only)
    truncation: np.ndarray | None = None  # τ(T) [nT] (module docstring)

    @property
    def contained(self) -> np.ndarray:
        """[nT] True where the canonical weight lies inside the sampled range (τ ≤ 0.02)."""
        return self.truncation <= TRUNCATION_LIMIT


def canonical(energies, entropy, temperatures, *, kinetic_dof: int = 0) -> Canonical:
    """Reweight S(U) at each temperature; see the module docstring for the formulas."""
    u = _as_np(energies)
    s = _as_np(entropy)
    if u.ndim != 1 or s.shape != u.shape:
        raise ValueError(f"entropy: must be 1-D like energies {list(u.shape)} (got {list(s.shape)})")
    temps = np.atleast_1d(_as_np(temperatures))
    if temps.size == 0 or not np.all(np.isfinite(temps)) or np.any(temps <= 0):
        raise ValueError(f"temperatures: must be finite and > 0 (got {temps.tolist()})")
    kinetic_dof = _checks.non_negative_int("kinetic_dof", kinetic_dof)
    ok = np.isfinite(s)
    if ok.sum() < 2:
        raise ValueError("entropy: needs at least two finite (visited) bins")
    u, s = u[ok], s[ok]
    du = float(np.median(np.diff(np.sort(u)))) if u.size > 1 else 1.0
    logw = s[None, :] - u[None, :] / temps[:, None]  # [nT, nb]
    lse = _logsumexp(logw, axis=1)
    p = np.exp(logw - lse[:, None])
    mean = p @ u
    # Centred second moment avoids cancellation in <U²> − <U>².
    var = np.einsum("tb,tb->t", p, (u[None, :] - mean[:, None]) ** 2)
    cv = var / temps**2 + 0.5 * kinetic_dof
    return Canonical(temps, lse + np.log(du), mean, var, cv, kinetic_dof, _truncation(u, logw, p, mean, var, du))


def reweight_observables(energies, entropy, observables: dict, temperatures) -> dict[str, np.ndarray]:
    """Canonical averages of per-bin observables (docs/science.md §5):

        ⟨O⟩(T) = Σ_b g_b·⟨O⟩_b·e^(−U_b/T) / Σ_b g_b·e^(−U_b/T),

    with ln g_b = ``entropy`` (e.g. S + ln H of a static-bias production run) and ⟨O⟩_b the mean
    of O over the visits to energy bin b (``observables``: name → [bins], NaN where unrecorded).
    Bins where either is missing are left out of both sums.  Returns name → [nT]."""
    u = _as_np(energies)
    s = _as_np(entropy)
    temps = np.atleast_1d(_as_np(temperatures))
    if u.ndim != 1 or s.shape != u.shape:
        raise ValueError(f"entropy: must be 1-D like energies {list(u.shape)} (got {list(s.shape)})")
    if temps.size == 0 or not np.all(np.isfinite(temps)) or np.any(temps <= 0):
        raise ValueError(f"temperatures: must be finite and > 0 (got {temps.tolist()})")
    out = {}
    for name, values in observables.items():
        o = _as_np(values)
        if o.shape != u.shape:
            raise ValueError(f"observables[{name!r}]: must have one value per bin {list(u.shape)} (got {list(o.shape)})")
        ok = np.isfinite(s) & np.isfinite(o)
        if not ok.any():
            raise ValueError(f"observables[{name!r}]: no bin has both an entropy and a recorded value")
        logw = s[None, ok] - u[None, ok] / temps[:, None]
        p = np.exp(logw - _logsumexp(logw, axis=1)[:, None])
        out[name] = p @ o[ok]
    return out


def _truncation(u, logw, p, mean, var, du) -> np.ndarray:
    """τ(T) of the module docstring, [nT]."""
    order = np.argsort(u)
    if u.size < 3:
        return np.full(mean.shape, np.inf)
    tau = np.zeros_like(mean)
    for outer, inner, side in ((order[0], order[1], -1.0), (order[-1], order[-2], 1.0)):
        k = (logw[:, inner] - logw[:, outer]) / abs(u[inner] - u[outer])  # outward decay rate of ln P
        edge = u[outer] + side * du / 2
        d = np.abs(edge - mean)
        with np.errstate(divide="ignore", invalid="ignore"):
            m = p[:, outer] / (du * k)  # tail mass relative to Σ p (= 1)
            tail = np.where(k > 0, m * (d * d + 2 * d / k + 2 / k**2), np.inf)
        tau += tail
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(var > 0, tau / var, np.inf)


def canonical_replicas(landscapes, temperatures, *, kinetic_dof: int = 0) -> tuple[Canonical, Canonical | None]:
    """Canonical estimates of R independent landscapes ``[(energies, entropy), ...]`` of one
    system: (mean over replicas, standard error of that mean = sample std/√R, or None for R = 1).
    ``truncation`` of both is the largest over the replicas."""
    runs = [canonical(u, s, temperatures, kinetic_dof=kinetic_dof) for u, s in landscapes]
    if not runs:
        raise ValueError("landscapes: must name at least one landscape (got none)")
    fields = ("log_z", "mean_energy", "energy_variance", "heat_capacity")
    stack = {f: np.stack([getattr(r, f) for r in runs]) for f in fields}
    edge = np.max(np.stack([r.truncation for r in runs]), axis=0)
    mean = Canonical(runs[0].temperature, *(stack[f].mean(axis=0) for f in fields), kinetic_dof, edge)
    if len(runs) == 1:
        return mean, None
    se = Canonical(runs[0].temperature, *(stack[f].std(axis=0, ddof=1) / np.sqrt(len(runs)) for f in fields),
                   kinetic_dof, edge)
    return mean, se


@dataclass
class EquilibriumCurves:
    x: np.ndarray  # [nx] bin centres
    argmax: np.ndarray  # y*(x) [nx], NaN where the column is unvisited
    mean: np.ndarray  # <y>(x) [nx]


def equilibrium_curves(x, y, entropy) -> EquilibriumCurves:
    """Max-entropy and entropy-weighted mean curves of S(x, y) (shape [nx, ny], NaN = unvisited)."""
    x, y, s = _as_np(x), _as_np(y), _as_np(entropy)
    if s.shape != (x.size, y.size):
        raise ValueError(f"entropy: must have shape [len(x), len(y)] = [{x.size}, {y.size}] (got {list(s.shape)})")
    ok = np.isfinite(s)
    has = ok.any(axis=1)
    masked = np.where(ok, s, -np.inf)
    arg = np.full(x.size, np.nan)
    mean = np.full(x.size, np.nan)
    if has.any():
        arg[has] = y[np.argmax(masked[has], axis=1)]
        m = masked[has]
        w = np.exp(m - m.max(axis=1, keepdims=True))
        mean[has] = (w * y[None, :]).sum(axis=1) / w.sum(axis=1)
    return EquilibriumCurves(x, arg, mean)


def fit_offset(x, y) -> tuple[float, float]:
    """Least-squares constant c in y ≈ x + c and the max |y − x − c| (finite entries only)."""
    x, y = _as_np(x), _as_np(y)
    ok = np.isfinite(x) & np.isfinite(y)
    c = float(np.mean(y[ok] - x[ok]))
    return c, float(np.max(np.abs(y[ok] - x[ok] - c)))


def free_energy_profile(energies, y, entropy, temperature: float) -> np.ndarray:
    """F(y; T) = −T·ln Σ_U exp(S(U, y) − U/T) along the second axis of S(U, y) [nU, ny],
    shifted so that its minimum is 0 (k_B = 1); NaN where the column is unvisited."""
    u, yv, s = _as_np(energies), _as_np(y), _as_np(entropy)
    if s.shape != (u.size, yv.size):
        raise ValueError(f"entropy: must have shape [len(energies), len(y)] = [{u.size}, {yv.size}] (got {list(s.shape)})")
    t = _checks.positive("temperature", temperature)
    logw = np.where(np.isfinite(s), s - u[:, None] / t, -np.inf)
    out = np.full(yv.size, np.nan)
    has = np.isfinite(logw).any(axis=0)
    if has.any():
        col = logw[:, has]
        m = col.max(axis=0)
        out[has] = -t * (m + np.log(np.exp(col - m).sum(axis=0)))
        out[has] -= out[has].min()
    return out


def peak(temperatures, values) -> tuple[float, float]:
    """(T, value) at the maximum of a sampled curve, refined by a parabola through
    the largest sample and its two neighbours."""
    t, c = _as_np(temperatures), _as_np(values)
    i = int(np.nanargmax(c))
    if 0 < i < t.size - 1:
        y0, y1, y2 = c[i - 1], c[i], c[i + 1]
        den = y0 - 2 * y1 + y2
        if den < 0:
            d = 0.5 * (y0 - y2) / den
            h = 0.5 * (t[i + 1] - t[i - 1])
            return float(t[i] + d * h), float(y1 - 0.25 * (y0 - y2) * d)
    return float(t[i]), float(c[i])


# ---------------------------------------------------------------- numbers from a path
def bin_index(centres, values) -> np.ndarray:
    """Bin of each value on a uniform grid with these bin centres; −1 outside the grid."""
    c, v = _as_np(centres), _as_np(values)
    if c.size < 2:
        raise ValueError("centres: need at least 2 bins")
    w = (c[-1] - c[0]) / (c.size - 1)
    with np.errstate(invalid="ignore"):
        i = np.floor((v - (c[0] - 0.5 * w)) / w)
    ok = np.isfinite(i) & (i >= 0) & (i < c.size)
    return np.where(ok, i, -1).astype(np.int64)


@dataclass
class PathProfile:
    """A path (x_k, y_k) on the grid of S(x, y): bins ``ix``, ``iy`` (−1 outside the grid) and
    ``entropy`` S_k (NaN outside the grid or in an unvisited bin)."""

    x: np.ndarray
    y: np.ndarray
    ix: np.ndarray
    iy: np.ndarray
    entropy: np.ndarray

    @property
    def on_landscape(self) -> np.ndarray:
        return np.isfinite(self.entropy)


def project_path(x_centres, y_centres, entropy, x, y) -> PathProfile:
    """:class:`PathProfile` of the path (x, y) on S(x, y) [nx, ny] (NaN = unvisited)."""
    xc, yc, s = _as_np(x_centres), _as_np(y_centres), _as_np(entropy)
    if s.shape != (xc.size, yc.size):
        raise ValueError(f"entropy: must have shape [len(x), len(y)] = [{xc.size}, {yc.size}] (got {list(s.shape)})")
    px, py = _as_np(x).reshape(-1), _as_np(y).reshape(-1)
    if px.shape != py.shape:
        raise ValueError(f"path: x and y must have the same length (got {px.size} and {py.size})")
    ix, iy = bin_index(xc, px), bin_index(yc, py)
    inside = (ix >= 0) & (iy >= 0)
    sk = np.full(px.size, np.nan)
    sk[inside] = s[ix[inside], iy[inside]]
    return PathProfile(px, py, ix, iy, sk)


@dataclass
class Barrier:
    """B = min(S_start, S_end) − min_k S_k over the path's points on the landscape, at point
    ``index`` (of the profile given); NaN (index −1) with fewer than two such points."""

    depth: float
    index: int
    start: float
    end: float
    minimum: float
    skipped: int  # path points outside the grid or in unvisited bins, left out


def path_barrier(entropy_along) -> Barrier:
    """:class:`Barrier` of the values S_k along a path (NaN entries are skipped and counted)."""
    s = _as_np(entropy_along).reshape(-1)
    ok = np.nonzero(np.isfinite(s))[0]
    skipped = int(s.size - ok.size)
    if ok.size < 2:
        return Barrier(np.nan, -1, np.nan, np.nan, np.nan, skipped)
    start, end = float(s[ok[0]]), float(s[ok[-1]])
    k = int(ok[np.argmin(s[ok])])
    low = float(s[k])
    return Barrier(max(0.0, min(start, end) - low), k, start, end, low, skipped)


def straight_path_barrier(y_centres, column, y_from: float, y_to: float) -> Barrier:
    """:class:`Barrier` along one column S(x_fixed, y) [ny] from the bin of ``y_from`` to that
    of ``y_to`` (``index`` counts bins from the one of ``y_from``); NaN when either is off the grid."""
    yc, col = _as_np(y_centres), _as_np(column).reshape(-1)
    a, b = (int(i) for i in bin_index(yc, [y_from, y_to]))
    if a < 0 or b < 0:
        return Barrier(np.nan, -1, np.nan, np.nan, np.nan, 0)
    return path_barrier(col[np.arange(a, b + (1 if b >= a else -1), 1 if b >= a else -1)])


@dataclass
class Advantage:
    """Per visited column ``x`` (grid centres): the path's mean y there, y*(x) − it (``max_entropy``)
    and ⟨y⟩(x) − it (``mean``); ``*_low_loss``: their means over the columns with x ≤ ``x_low``."""

    x: np.ndarray
    path_y: np.ndarray
    max_entropy: np.ndarray
    mean: np.ndarray
    x_low: float
    max_entropy_low_loss: float
    mean_low_loss: float
    columns_low_loss: int


def entropy_advantage(curves: EquilibriumCurves, profile: PathProfile, x_low: float) -> Advantage:
    """:class:`Advantage` of the landscape's curves over the path (its points on the landscape)."""
    on = profile.on_landscape
    cols = np.unique(profile.ix[on])
    path_y = np.array([profile.y[on & (profile.ix == i)].mean() for i in cols])
    xs = curves.x[cols]
    adv_max = curves.argmax[cols] - path_y
    adv_mean = curves.mean[cols] - path_y
    low = xs <= x_low
    mean = (lambda a: float(np.mean(a[low])) if low.any() else np.nan)
    return Advantage(xs, path_y, adv_max, adv_mean, float(x_low), mean(adv_max), mean(adv_mean), int(low.sum()))


@dataclass
class Jump:
    """The largest |y*(x_{i+1}) − y*(x_i)| over neighbouring visited columns, between ``x_from`` and
    ``x_to``, also in bins of y (``bins``); NaN when no two neighbouring columns are visited."""

    size: float
    x_from: float
    x_to: float
    bins: float


def max_entropy_jump(curves: EquilibriumCurves, y_width: float) -> Jump:
    d = np.abs(np.diff(curves.argmax))
    if not np.isfinite(d).any():
        return Jump(np.nan, np.nan, np.nan, np.nan)
    i = int(np.nanargmax(d))
    return Jump(float(d[i]), float(curves.x[i]), float(curves.x[i + 1]), float(d[i] / y_width))


#: the numbers of :func:`path_numbers`: name → (units, definition), in the order they are reported
PATH_NUMBERS = {
    "barrier": ("k_B", "min(S_start, S_end) - min S along the path (0: no entropy barrier)"),
    "barrier_x": ("x", "x of the path's lowest S"),
    "barrier_y": ("y", "y of the path's lowest S"),
    "barrier_step": ("step", "step of the path's lowest S"),
    "straight_barrier": ("k_B", "the same along the column at x_memorised from y_memorised to y_generalised"),
    "advantage_max_entropy": ("y", "mean over the low-loss columns of y*(x) - the path's y"),
    "advantage_mean": ("y", "mean over the low-loss columns of <y>(x) - the path's y"),
    "low_loss_columns": ("1", "visited columns at x <= x_low the path passes through"),
    "max_entropy_jump": ("y", "largest |y*(x_i+1) - y*(x_i)| between neighbouring visited columns"),
    "max_entropy_jump_bins": ("bins", "that jump in bins of y"),
    "max_entropy_jump_x": ("x", "x midway between the two columns of the largest jump"),
    "path_points_off_landscape": ("1", "path points outside the grid or in unvisited bins (left out)"),
}


def path_numbers(x_centres, y_centres, entropy, steps, x, y, *, x_low: float, memorised: int | None = None,
                 generalised: int | None = None) -> dict[str, float]:
    """The :data:`PATH_NUMBERS` of one landscape S(x, y) [nx, ny] (NaN = unvisited) and a path
    (x, y) recorded at ``steps``; ``memorised``/``generalised``: indices of the path's points where
    it memorised (fitted the training set) and generalised — the straight path runs at the x of
    the first between their y values (NaN when either is None)."""
    xc, yc = _as_np(x_centres), _as_np(y_centres)
    steps = _as_np(steps).reshape(-1)
    prof = project_path(xc, yc, entropy, x, y)
    curves = equilibrium_curves(xc, yc, entropy)
    b = path_barrier(prof.entropy)
    nan = float("nan")
    out = {"barrier": b.depth, "barrier_x": nan, "barrier_y": nan, "barrier_step": nan}
    if b.index >= 0:
        out |= {"barrier_x": float(prof.x[b.index]), "barrier_y": float(prof.y[b.index]),
                "barrier_step": float(steps[b.index])}
    straight = nan
    if memorised is not None and generalised is not None and prof.ix[memorised] >= 0:
        straight = straight_path_barrier(yc, _as_np(entropy)[prof.ix[memorised]], prof.y[memorised],
                                         prof.y[generalised]).depth
    adv = entropy_advantage(curves, prof, x_low)
    j = max_entropy_jump(curves, float(yc[1] - yc[0]))
    return out | {"straight_barrier": straight, "advantage_max_entropy": adv.max_entropy_low_loss,
                  "advantage_mean": adv.mean_low_loss, "low_loss_columns": float(adv.columns_low_loss),
                  "max_entropy_jump": j.size, "max_entropy_jump_bins": j.bins,
                  "max_entropy_jump_x": 0.5 * (j.x_from + j.x_to),
                  "path_points_off_landscape": float(b.skipped)}


def mean_and_error(rows: list[dict[str, float]]) -> dict[str, tuple[float, float]]:
    """Per key: the mean over replicas (NaN entries left out) and its standard error (NaN for
    fewer than two finite values)."""
    out = {}
    for k in rows[0]:
        v = np.array([r[k] for r in rows], dtype=float)
        v = v[np.isfinite(v)]
        out[k] = (float(v.mean()) if v.size else np.nan,
                  float(v.std(ddof=1) / np.sqrt(v.size)) if v.size >= 2 else np.nan)
    return out


# ---------------------------------------------------------------- two landscapes of one system
@dataclass
class Difference:
    """S_B − S_A − c over the bins both visited (``common``), c their mean difference (the best
    constant offset in the least-squares sense): its rms, its largest magnitude and the flat
    index of the bin where that lies; ``difference`` on the whole grid (NaN elsewhere)."""

    offset: float
    rms: float
    max_abs: float
    where: int
    common: int
    difference: np.ndarray


def compare(entropy_a, entropy_b) -> Difference:
    """:class:`Difference` of two landscapes on one grid (NaN = unvisited)."""
    a, b = _as_np(entropy_a), _as_np(entropy_b)
    if a.shape != b.shape:
        raise ValueError(f"landscapes: grids of different shapes {list(a.shape)} and {list(b.shape)}")
    both = np.isfinite(a) & np.isfinite(b)
    d = np.full(a.shape, np.nan)
    if not both.any():
        return Difference(np.nan, np.nan, np.nan, -1, 0, d)
    c = float(np.mean(b[both] - a[both]))
    d[both] = b[both] - a[both] - c
    where = int(np.nanargmax(np.abs(d)))
    return Difference(c, float(np.sqrt(np.mean(d[both] ** 2))), float(np.abs(d.reshape(-1)[where])), where,
                      int(both.sum()), d)


def agreement_tolerance(delta_a: float, delta_b: float) -> float:
    """Largest rms S_B − S_A (after the offset) consistent with each run's own error estimate δ,
    the rms change of its S over its second half (docs/science.md §14): independent runs' errors
    add in quadrature, and their actual errors were measured at 0.54–1.07 δ, hence
    1.5·√(δ_A² + δ_B²)."""
    return AGREEMENT_FACTOR * float(np.hypot(delta_a, delta_b))


#: the margin of :func:`agreement_tolerance` over the quadrature sum of the runs' error estimates
AGREEMENT_FACTOR = 1.5
