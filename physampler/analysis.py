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
