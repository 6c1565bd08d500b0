"""Validation on Lennard-Jones clusters (``physampler validate lj13`` / ``lj38``).

WLMD with ξ = U samples S(U) of an LJ cluster in a soft confining sphere
(:class:`~physampler.systems.LJCluster`) around the origin or, with
``sphere_centre = "com"``, around the cluster's centre of mass (the convention of
the heat-capacity literature), with the compiled block loop.  From S
it derives, by canonical reweighting (:func:`physampler.analysis.canonical`),
the configurational heat capacity C_V,conf(T) = (⟨U²⟩ − ⟨U⟩²)/T² — add 3n/2
for the total C_V of the n free atoms in the sphere (the kinetic term; no
centre-of-mass or rotation is removed) — and compares

* the lowest inherent structure, found by FIRE-minimising the lowest-U
  configurations of every walker, with the Cambridge Cluster Database global
  minimum (to 1e-5 ε);
* the C_V peak temperature with the literature range (docs/science.md §12);
* C_V(T) with an independent canonical estimate, OpenMM Langevin runs at
  several temperatures combined with MBAR (:mod:`physampler.references`, needs
  the ``validation`` extra), at every comparison temperature:
  |C_WL − C_MBAR| ≤ z·√(se_WL² + se_MBAR²) with z = 3.  ⟨U⟩(T) is compared the
  same way; it is checked on the ``baoab`` splitting (``--integrator baoab``) and only
  reported on the default ``ktd``, whose kick–thermostat–drift step samples configurations
  with an offset of its own (docs/science.md §3), measured as ⟨U⟩ too high by 0.05–0.15 ε
  at dt = 0.005 (|z| up to 3.1), which shifts ⟨U⟩ but leaves the fluctuations, hence C_V,
  within the error bars.

Walkers start from FIRE-quenched minima below the grid with S = (U − lower)/T_start
(``LJCase.start_temperature``): canonical forces at T_start rather than free flight under
S = 0, in which atoms pass through each other's cores and meet the upper-edge wall with
forces of order 10⁶ (a BAOAB walker blew up that way at seed 2026).

Error bars of the WLMD estimate come from R independent replicas (own seeds,
own landscapes; se = std/√R); the reported curve is that of the replicas'
mean S.  Replicas run in parallel threads (the compiled kernels release the GIL).
"""
from __future__ import annotations

import functools
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from .analysis import canonical, peak, reweight_observables
from .biases import LinearWall
from .cvs import PotentialEnergy
from .grid import Axis
from .integrators import BiasedMD
from .integrators.compiled import CompiledWLMD
from .landscape import Landscape
from .methods import StaticBias, WangLandau
from .minimize import fire, inherent_structures
from .order_parameters import RadiusOfGyration, Steinhardt
from .rng import WalkerRNG
from .schedules import InverseTime
from .systems.lennard_jones import GLOBAL_MINIMA, LJCluster, icosahedron13, random_cluster


from .validation_cases import LJ_CASES, LJCase  # noqa: F401  (re-exported)


@dataclass
class ReplicaRun:
    landscape: Landscape
    low_positions: torch.Tensor  # lowest-U configurations seen at block ends [k, n, 3]
    low_energies: torch.Tensor


def start_configurations(lj: LJCluster, walkers: int, seed: int) -> torch.Tensor:
    """Random clusters quenched with FIRE: every walker starts in some local minimum."""
    rng = np.random.default_rng(seed)
    x = torch.tensor(np.stack([random_cluster(lj.n, min(lj.radius, 0.62 * lj.n ** (1 / 3)), rng)
                               for _ in range(walkers)]))
    return fire(lj, x, fmax=1e-3, max_steps=5000).positions


def schedule_for(case: LJCase, steps: int) -> InverseTime:
    """f_WL = F·min(t/t_WL, t_WL/t) with t_WL = fraction·steps and F such that the run deposits
    ``fill`` in all: ∫ f dt = F·t_WL·(½ + ln(steps/t_WL)).  The fill must exceed what raising S
    to ln g over the grid takes (≈ bins × mean S above its minimum: ≈ 1.7e4 for LJ13); a fixed
    fill keeps shortened runs converging, while F per walker stays small (F/W ≤ 0.01), which
    keeps each walker's push from its own recent deposits — the lag bias of WLMD — small."""
    t_wl = max(1, int(case.t_wl_fraction * steps))
    return InverseTime(case.fill / (t_wl * (0.5 + np.log(max(steps / t_wl, 1.0)))), t_wl)


def _engine(case: LJCase, method, *, walkers: int | None, splitting: str, sphere_centre: str,
            **observing) -> tuple[LJCluster, CompiledWLMD]:
    """The compiled engine of ``case`` carrying ``method`` (its landscape from :func:`case_landscape`)."""
    lj = LJCluster(case.n, case.radius, sphere_centre=sphere_centre)
    # Beyond the upper edge ln g keeps rising (towards evaporated states) and a quadratic wall alone lets
    # walkers settle outside, where they deposit nothing: add a linear wall of slope ``edge_push`` > dln g/dU.
    # No such push at the lower edge: a strong push towards higher U drives atoms into each other's cores
    # (a negative effective temperature), while ln g itself already draws walkers upwards.
    walls = [LinearWall(0, case.upper, case.edge_push, "upper")]
    w = BiasedMD(lj, PotentialEnergy(lj), method, dt=case.dt, c_f=case.c_f, kT=case.kT, biases=walls,
                 walkers_total=walkers, splitting=splitting, **observing)
    return lj, CompiledWLMD(w)


def case_landscape(case: LJCase) -> Landscape:
    return Landscape([Axis("energy", case.lower, case.upper, bins=case.bins, units="epsilon", long_name="potential energy")],
                     sigma=case.sigma_bins, out_of_range="wall", wall_strength=case.wall_strength)


def build(case: LJCase, steps: int, *, walkers: int | None = None, splitting: str = "ktd",
          sphere_centre: str = "origin", windows: int = 1, seed: int = 0, overlap: float | None = None):
    """(cluster, engine) of a validation replica; ``windows`` > 1: replica-exchange windows along U
    (:mod:`physampler.windows`, ``overlap`` default 0.75, swaps every 100 steps, swap stream ``seed``)."""
    from .validation import SWAP_INTERVAL, WINDOW_OVERLAP
    from .windows import ReplicaExchange, WindowedLandscape, WindowedWLMD, layout

    if windows > 1:
        ls = WindowedLandscape(layout(case_landscape(case).grid.axes[0], windows, overlap or WINDOW_OVERLAP),
                               walkers=walkers,
                               sigma=case.sigma_bins, out_of_range="wall", wall_strength=case.wall_strength)
    else:
        ls = case_landscape(case)
    # Under S = 0 the walkers fly freely, atoms pass through each other's cores and the upper-edge
    # wall then meets forces of order 10⁶; whether a walker survives that is luck (ktd at seed 2026
    # did, BAOAB did not).  A canonical start at T = start_temperature keeps the cores apart.
    ls.tilt(0, case.start_temperature)
    lj, engine = _engine(case, WangLandau(ls, schedule_for(case, steps)), walkers=walkers, splitting=splitting,
                         sphere_centre=sphere_centre)
    if windows > 1:
        engine = WindowedWLMD(engine, ReplicaExchange(ls, SWAP_INTERVAL, seed))
    return lj, engine


def _run_blocks(integ, state, steps: int, block: int = 2000, after=None):
    """``steps`` steps in blocks of at most ``block`` (bounding the pre-drawn noise); ``after(state)``
    after each block."""
    done = 0
    while done < steps:
        n = min(block, steps - done)
        state, _ = integ.run(state, n)
        done += n
        if after is not None:
            after(state)
    return state


def run_replica(case: LJCase, steps: int, walkers: int, seed: int, replica: int, *, block: int = 2000,
                keep: int = 4, splitting: str = "ktd", sphere_centre: str = "origin", windows: int = 1) -> ReplicaRun:
    """One replica: ``walkers`` walkers on their own landscape for ``steps`` steps (``windows``: the
    joined S of that many replica-exchange windows)."""
    lj, integ = build(case, steps, walkers=walkers, splitting=splitting, sphere_centre=sphere_centre, windows=windows,
                      seed=seed * 1000 + replica)
    x0 = start_configurations(lj, walkers, seed * 1000 + replica)
    rng = WalkerRNG(seed, range(replica * walkers, (replica + 1) * walkers))
    low_x, low_u = [], []

    def keep_lowest(state):  # the ``keep`` lowest per walker
        nonlocal low_x, low_u
        low_x.append(state.positions.clone())
        low_u.append(state.cv[:, 0].clone())
        if len(low_u) > 4 * keep:
            u = torch.stack(low_u)
            xs = torch.stack(low_x)
            order = torch.argsort(u, dim=0)[:keep]
            low_u = [u[order[k], torch.arange(walkers)] for k in range(keep)]
            low_x = [xs[order[k], torch.arange(walkers)] for k in range(keep)]

    _run_blocks(integ, integ.init(x0, rng), steps, block, keep_lowest)
    u = torch.stack(low_u).reshape(-1)
    xs = torch.stack(low_x).reshape(-1, lj.n, 3)
    land = integ.landscape.joined()[0] if windows > 1 else integ.landscape
    return ReplicaRun(land, xs, u)


# ------------------------------------------------- static-bias production: observables
def observed_cvs() -> list:
    """The structural observables of the production run: R_g and Q6 (docs/science.md §12)."""
    return [RadiusOfGyration(), Steinhardt(6)]


def frame_observables(frames: np.ndarray) -> dict[str, np.ndarray]:
    """R_g and Q6 of configurations ``frames`` [k, n, 3] (e.g. OpenMM frames), by name."""
    q = torch.as_tensor(np.asarray(frames, dtype=np.float64))
    with torch.no_grad():
        return {c.name: c.value(q).numpy() for c in observed_cvs()}


def run_static_replica(case: LJCase, entropy: torch.Tensor, steps: int, walkers: int, seed: int, replica: int, *,
                       every: int, equilibrate: int, splitting: str = "baoab", sphere_centre: str = "origin") -> StaticBias:
    """A multicanonical production run: ``entropy`` (e.g. a Wang–Landau ln g) frozen as a
    :class:`StaticBias`, R_g and Q6 recorded per energy bin every ``every`` steps after
    ``equilibrate`` steps (whose visits are forgotten).  Returns the method: its ``log_density`` is
    ln g = S + ln H, its landscape holds the per-bin observables."""
    method = StaticBias.from_entropy(case_landscape(case), entropy)
    lj, integ = _engine(case, method, walkers=walkers, splitting=splitting, sphere_centre=sphere_centre,
                        observe=observed_cvs(), observe_every=every)
    x0 = start_configurations(lj, walkers, seed * 1000 + replica)
    rng = WalkerRNG(seed, range(replica * walkers, (replica + 1) * walkers))
    state = _run_blocks(integ, integ.init(x0, rng), equilibrate)
    method.landscape.clear_counts()
    _run_blocks(integ, state, steps)
    return method


@dataclass
class Observables:
    """Per-bin R_g and Q6 of static-bias production replicas and their canonical averages at
    ``temperatures`` (mean over replicas, se = std/√R)."""
    steps: int
    replicas: int
    every: int
    energies: np.ndarray  # bin centres [bins]
    log_g: np.ndarray  # [R, bins] each replica's ln g = S + ln H (NaN where unvisited)
    per_bin: dict  # name → [R, bins] per-bin means
    temperatures: np.ndarray
    wall_time: float = 0.0

    def reweighted(self, temps) -> tuple[dict, dict]:
        """(mean, se) of each observable at ``temps``: name → [nT]."""
        each = [reweight_observables(self.energies, self.log_g[r], {n: v[r] for n, v in self.per_bin.items()}, temps)
                for r in range(self.replicas)]
        mean = {n: np.mean([e[n] for e in each], axis=0) for n in self.per_bin}
        error = {n: np.std([e[n] for e in each], axis=0, ddof=1) / np.sqrt(self.replicas) for n in self.per_bin}
        return mean, error

    @functools.cached_property
    def _at_temperatures(self) -> tuple[dict, dict]:
        return self.reweighted(self.temperatures)

    @property
    def mean(self) -> dict:
        return self._at_temperatures[0]

    @property
    def error(self) -> dict:
        return self._at_temperatures[1]


def run_observables(case: LJCase, entropy: torch.Tensor, temps, *, steps: int, walkers: int, replicas: int, seed: int,
                    every: int = 50, equilibrate: int = 50_000, threads: int = 2, splitting: str = "baoab",
                    sphere_centre: str = "origin") -> Observables:
    """Independent static-bias replicas on one frozen ``entropy``; each reweighted with its own
    ln g = S + ln H (:func:`physampler.analysis.reweight_observables`)."""
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as ex:
        runs = list(ex.map(lambda r: run_static_replica(case, entropy, steps, walkers, seed, r, every=every,
                                                        equilibrate=equilibrate, splitting=splitting,
                                                        sphere_centre=sphere_centre), range(replicas)))
    names = [c.name for c in observed_cvs()]
    return Observables(steps, replicas, every, runs[0].landscape.grid.axes[0].centres().numpy(),
                       np.stack([m.log_density(case.kT).numpy() for m in runs]),
                       {n: np.stack([m.landscape.observable_mean(n).numpy() for m in runs]) for n in names},
                       np.asarray(temps, dtype=np.float64), time.perf_counter() - t0)


@dataclass
class LJResult:
    case: str
    n: int
    radius: float
    steps: int
    walkers: int
    replicas: int
    wall_time: float
    minimum_found: float
    global_minimum: float
    structures: list
    temperatures: np.ndarray
    heat_capacity: np.ndarray  # C_V,conf from the mean S
    heat_capacity_error: np.ndarray  # se over replicas
    mean_energy: np.ndarray  # ⟨U⟩(T) from the mean S
    mean_energy_error: np.ndarray
    peak_temperature: float
    peak_height: float
    peak_range: tuple
    reference: object | None = None  # MBARCanonical
    z: float = 3.0
    landscape: Landscape | None = None
    flatness: tuple = field(default=(0.0, 0.0))
    splitting: str = "ktd"
    sphere_centre: str = "origin"
    observables: Observables | None = None  # ⟨R_g⟩(T), ⟨Q6⟩(T) of the static-bias production run

    def _z(self, ours, ours_se, name):
        if self.reference is None:
            return None
        ref = self.reference
        return (ours - getattr(ref, name)) / np.sqrt(ours_se**2 + getattr(ref, name + "_error") ** 2)

    @property
    def deviations(self) -> np.ndarray | None:
        """(C_WL − C_MBAR)/√(se_WL² + se_MBAR²) per temperature (None without a reference)."""
        return self._z(self.heat_capacity, self.heat_capacity_error, "heat_capacity")

    @property
    def energy_deviations(self) -> np.ndarray | None:
        """(⟨U⟩_WL − ⟨U⟩_MBAR)/√(se_WL² + se_MBAR²) per temperature."""
        return self._z(self.mean_energy, self.mean_energy_error, "mean_energy")

    def observable_deviations(self, name: str) -> np.ndarray | None:
        """(⟨O⟩_static − ⟨O⟩_MBAR)/√(se² + se_MBAR²) per temperature, for O = ``name`` (rg, q6)."""
        if self.reference is None or self.observables is None or name not in self.reference.observables:
            return None
        ref, ref_se = self.reference.observables[name]
        return (self.observables.mean[name] - ref) / np.hypot(self.observables.error[name], ref_se)

    @property
    def checks(self) -> dict[str, bool]:
        out = {
            "global minimum": abs(self.minimum_found - self.global_minimum) <= 1e-5,
            "C_V peak in literature range": self.peak_range[0] <= self.peak_temperature <= self.peak_range[1],
        }
        d = self.deviations
        if d is not None:
            out["C_V vs OpenMM+MBAR"] = bool(np.all(np.abs(d) <= self.z))
            if self.splitting != "ktd":  # ktd's configurational bias shifts <U> (docs/science.md §3): reported only
                out["<U> vs OpenMM+MBAR"] = bool(np.all(np.abs(self.energy_deviations) <= self.z))
        if d is not None and self.observables is not None:
            for name in self.observables.mean:
                z = self.observable_deviations(name)
                if z is not None:
                    out[f"<{name}> vs OpenMM+MBAR"] = bool(np.all(np.abs(z) <= self.z))
        return out


def reference_steps_for(case: LJCase, sphere_centre: str) -> int:
    """OpenMM steps per reference temperature.  Around the centre of mass four times the default:
    there the Langevin runs at T ≤ 0.26 were measured too short — at 4e5 steps MBAR's C_V(0.22)
    was 30.4 ± 1.1 (|z| 3.5 against WLMD), at 1.6e6 it is 32.9 ± 0.65 and agrees (|z| 2.0;
    benchmarks/RESULTS.md, 2026-12-02).  Presumably the defect states, which an origin-centred
    sphere penalises by the translational volume they lose, weigh more and are visited slowly."""
    return case.reference_steps * (4 if sphere_centre == "com" else 1)


def reference_mismatch(name: str, ref, sphere_centre: str = "origin", observables: bool = False, *,
                       raise_: bool = False) -> str | None:
    """Why the stored reference ``ref`` (an MBARCanonical) cannot serve validation case ``name``
    with this sphere centre (and observables), or None when it can."""
    case = LJ_CASES[name]
    prov = ref.provenance
    why = None
    if prov.get("case", name) != name:
        why = f"is a reference for {prov['case']}, not {name}"
    elif prov.get("sphere_centre", "origin") != sphere_centre:
        why = f"was made with the sphere around the {prov['sphere_centre']}, not the {sphere_centre}"
    elif np.asarray(ref.temperature).shape != np.shape(case.temperatures) or not np.allclose(
            ref.temperature, case.temperatures):
        why = f"holds temperatures {np.round(ref.temperature, 4).tolist()}, not {name}'s {list(case.temperatures)}"
    elif observables and not {"rg", "q6"} <= set(ref.observables):
        why = "holds no <rg>, <q6> (made without --observables)"
    if why and raise_:
        raise ValueError(f"reference: {why}")
    return why


def run_lj_cluster(name: str, *, steps: int | None = None, walkers: int | None = None, replicas: int | None = None,
                   seed: int = 2026, reference=True, reference_steps: int | None = None,
                   threads: int = 2, splitting: str = "ktd", sphere_centre: str = "origin",
                   observables: bool = False, observable_steps: int | None = None, windows: int = 1) -> LJResult:
    """The full validation of ``LJ_CASES[name]`` (see the module docstring); with ``observables``
    also the static-bias production run of ⟨R_g⟩(T), ⟨Q6⟩(T) (``observable_steps`` per walker,
    default a third of ``steps``) on the replicas' mean S, checked against OpenMM + MBAR."""
    case = LJ_CASES[name]
    steps = steps or case.steps
    walkers = walkers or case.walkers
    replicas = replicas or case.replicas
    if replicas < 2:
        raise ValueError(f"replicas: must be >= 2 for an error bar (got {replicas})")
    if not isinstance(reference, bool) and reference is not None:
        reference_mismatch(name, reference, sphere_centre, observables, raise_=True)
    t0 = time.perf_counter()
    torch.set_num_threads(1)
    with ThreadPoolExecutor(max_workers=threads) as ex:
        runs = list(ex.map(lambda r: run_replica(case, steps, walkers, seed, r, splitting=splitting,
                                                 sphere_centre=sphere_centre, windows=windows), range(replicas)))
    lj = LJCluster(case.n, case.radius, sphere_centre=sphere_centre)
    xs = torch.cat([r.low_positions for r in runs])
    mins = fire(lj, xs, fmax=1e-7, max_steps=50000)
    structures = inherent_structures(mins.energy[mins.converged], tol=1e-5)
    u = runs[0].landscape.grid.axes[0].centres().numpy()
    temps = np.array(case.temperatures)
    each = [canonical(u, r.landscape.shifted(), temps) for r in runs]
    merged = Landscape.merge([r.landscape for r in runs], how="mean")
    mean = canonical(u, merged.shifted(), temps)

    def se(values):
        return np.std(values, axis=0, ddof=1) / np.sqrt(replicas)

    fine = np.linspace(temps[0], temps[-1], 401)
    pt, ph = peak(fine, canonical(u, merged.shifted(), fine).heat_capacity)
    wall = time.perf_counter() - t0
    ref = reference if not isinstance(reference, bool) else None  # an MBARCanonical of an earlier run is reused
    if reference is True:
        from .references import lj_cluster_reference

        x0 = torch.tensor(icosahedron13() if case.n == 13 else mins.positions[int(torch.argmin(mins.energy))].numpy())
        ref = lj_cluster_reference(lj, x0.numpy(), case.reference_temperatures, temps,
                                   steps=reference_steps or reference_steps_for(case, sphere_centre), seed=seed,
                                   observe=frame_observables if observables else None)
        ref.provenance.update(case=name, sphere_centre=sphere_centre,
                              start="icosahedron13" if case.n == 13 else "lowest FIRE minimum of the WLMD run")
    obs = None
    if observables:
        obs = run_observables(case, merged.shifted(), temps, steps=observable_steps or steps // 3, walkers=walkers,
                              replicas=replicas, seed=seed + 1, threads=threads, splitting=splitting,
                              sphere_centre=sphere_centre)
    return LJResult(name, case.n, case.radius, steps, walkers, replicas, wall,
                    structures[0].energy if structures else float("nan"), GLOBAL_MINIMA[case.n], structures, temps,
                    mean.heat_capacity, se([c.heat_capacity for c in each]), mean.mean_energy,
                    se([c.mean_energy for c in each]), pt, ph, case.peak_range, ref, landscape=merged,
                    flatness=merged.flatness(), splitting=splitting, sphere_centre=sphere_centre, observables=obs)


# ------------------------------------------------------------------ bulk fluid
@dataclass(frozen=True)
class BulkPoint:
    temperature: float
    density: float
    energy: float  # NIST U/N (cutoff 3σ, truncated, analytic tail correction; N = 500, NVT MC)


#: NIST Standard Reference Simulation Website, "Lennard-Jones Fluid Properties" (docs/science.md §12).
NIST_POINTS = (BulkPoint(0.85, 0.776, -5.5121), BulkPoint(0.85, 0.86, -6.0305), BulkPoint(0.90, 0.776, -5.4689))


@dataclass
class BulkResult:
    temperature: float
    density: float
    n: int
    cutoff: float
    cutoff_mode: str
    tail_correction: bool
    energy_per_atom: float
    error: float  # standard error from the statistical inefficiency
    steps: int
    wall_time: float


def fcc_start(lj, seed: int) -> torch.Tensor:
    """An fcc lattice filling the box, displaced by N(0, 0.05²) so it melts promptly."""
    from .systems.lennard_jones import fcc_lattice

    cells = round((lj.n / 4) ** (1 / 3))
    if 4 * cells**3 != lj.n:
        raise ValueError(f"n: must be 4·k³ for an fcc start (got {lj.n})")
    rng = np.random.default_rng(seed)
    return torch.tensor(fcc_lattice(cells, lj.box) + rng.normal(0, 0.05, (lj.n, 3)))[None]


def statistical_error(series: np.ndarray) -> float:
    """Standard error of the mean of a correlated series: blocking (Flyvbjerg & Petersen,
    J. Chem. Phys. 91, 461 (1989)), the largest estimate over block sizes with ≥ 16 blocks."""
    x = np.asarray(series, dtype=np.float64)
    best = x.std(ddof=1) / np.sqrt(x.size)
    while x.size >= 32:
        x = 0.5 * (x[: x.size // 2 * 2 : 2] + x[1 : x.size // 2 * 2 : 2])
        best = max(best, x.std(ddof=1) / np.sqrt(x.size))
    return float(best)


def run_bulk(temperature: float, density: float, *, n: int = 256, cutoff: float = 2.5, cutoff_mode: str = "shifted",
             tail_correction: bool = False, steps: int = 50000, equilibrate: int = 10000, dt: float = 0.005,
             friction: float = 1.0, seed: int = 2026, report: int = 10) -> BulkResult:
    """⟨U⟩/N of bulk LJ from compiled BAOAB Langevin MD (one walker)."""
    from .constraints import PeriodicBox
    from .integrators import BAOAB
    from .integrators.compiled import CompiledBAOAB
    from .systems.lennard_jones import LJBulk

    t0 = time.perf_counter()
    lj = LJBulk(n, density=density, cutoff=cutoff, cutoff_mode=cutoff_mode, tail_correction=tail_correction)
    integ = CompiledBAOAB(BAOAB(lj, dt=dt, kT=temperature, friction=friction, constraints=[PeriodicBox(lj.box)]))
    state = integ.init(fcc_start(lj, seed), WalkerRNG(seed, 1))
    if equilibrate:
        state, _ = integ.run(state, equilibrate)
    energies = []
    done = 0
    while done < steps:  # blocks of ≤ 2000 steps bound the memory of the pre-drawn noise
        k = min(2000, steps - done)
        state, info = integ.run(state, k)
        energies.append(info.cv[report - 1 :: report, 0].numpy().copy() if k >= report else info.cv[-1:, 0].numpy())
        done += k
    energies = np.concatenate(energies)
    u = np.array(energies) / n
    return BulkResult(temperature, density, n, cutoff, cutoff_mode, tail_correction, float(u.mean()),
                      statistical_error(u), steps, time.perf_counter() - t0)
