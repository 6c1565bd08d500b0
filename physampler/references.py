"""Independent references made with other code: OpenMM and pymbar (docs/science.md §12).

Optional: ``pip install "physampler[validation]"`` (OpenMM, pymbar).  Nothing in
the sampler imports this module; validation commands and tests do.

Units.  physampler's reduced LJ units map onto OpenMM's with σ = 1 nm,
ε = 1 kJ/mol, m = 1 amu, so that τ = σ√(m/ε) = 1 ps and T* = k_B·T/ε, i.e.
T[K] = T* / (k_B in kJ/mol/K).

The pair term is a ``CustomNonbondedForce`` with the same cutoff convention
(``NoCutoff`` for ``none``; ``CutoffNonPeriodic``/``CutoffPeriodic`` at r_c,
no switching, no long-range correction, minus u(r_c) inside r_c for
``shifted``), the confining sphere a ``CustomExternalForce``
``k·step(r² − R²)·(√max(r², R²) − R)²`` (= k·(r − R)² outside); the tail correction of
:class:`~physampler.systems.LJBulk` is added as the same constant.

Canonical estimates combine OpenMM Langevin runs (``LangevinMiddleIntegrator``,
a BAOAB splitting) at several temperatures with MBAR (Shirts & Chodera,
J. Chem. Phys. 129, 124105 (2008); pymbar 4, ``solver_protocol="robust"``).
Samples are thinned to uncorrelated ones with pymbar's statistical
inefficiency; ⟨U⟩ and C_V,conf = (⟨U²⟩ − ⟨U⟩²)/T² get their error bars from
a bootstrap over independent runs at each temperature.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

KB_KJ_PER_MOL_K = 0.00831446261815324  # k_B·N_A in kJ/mol/K (CODATA 2018)


def _openmm():
    try:
        import openmm
        import openmm.unit  # noqa: F401
    except ImportError as e:
        raise ImportError("OpenMM is needed for this reference: pip install 'physampler[validation]'") from e
    return openmm


def _quiet_pymbar() -> None:
    # pymbar logs a JAX banner and a timeseries caveat at import; the caveat is
    # handled here by thinning with the statistical inefficiency.
    logging.getLogger("pymbar").setLevel(logging.ERROR)


def available() -> str | None:
    """None when OpenMM and pymbar import, else what is missing."""
    _quiet_pymbar()
    missing = []
    for mod in ("openmm", "pymbar"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    return " and ".join(missing) or None


def kelvin(t_star: float) -> float:
    """OpenMM temperature (K) of reduced temperature T* under σ = 1 nm, ε = 1 kJ/mol."""
    return t_star / KB_KJ_PER_MOL_K


def _sphere_wall(mm, lj):
    """The confining sphere of an LJCluster as an OpenMM force, written independently of ours:
    around the origin a ``CustomExternalForce`` per atom; around the centre of mass a
    ``CustomCentroidBondForce`` between each atom and the group of all atoms (equal weights),
    which OpenMM differentiates through the centroid itself."""
    k, R = lj.wall_stiffness, lj.radius
    # sqrt(max(r², R²)) keeps the derivative finite for an atom at the centre.
    energy = f"{k!r}*step(r2-{R * R!r})*(sqrt(max(r2, {R * R!r}))-{R!r})^2"
    if lj.sphere_centre == "origin":
        wall = mm.CustomExternalForce(energy + "; r2=x^2+y^2+z^2")
        for i in range(lj.n):
            wall.addParticle(i, [])
        return wall
    wall = mm.CustomCentroidBondForce(2, energy + "; r2=(x1-x2)^2+(y1-y2)^2+(z1-z2)^2")
    everyone = wall.addGroup(list(range(lj.n)), [1.0] * lj.n)
    for i in range(lj.n):
        wall.addBond([wall.addGroup([i], [1.0]), everyone], [])
    return wall


def openmm_system(lj):
    """An ``openmm.System`` with the physics of ``lj`` (an LJCluster or LJBulk)."""
    from .systems.lennard_jones import LJBulk, LJCluster

    mm = _openmm()
    conv = lj.convention
    sysm = mm.System()
    for _ in range(lj.n):
        sysm.addParticle(1.0)
    expr = "4*(r^-12 - r^-6)" + (f" - {conv.shift!r}" if conv.mode == "shifted" else "")
    nb = mm.CustomNonbondedForce(expr)
    for _ in range(lj.n):
        nb.addParticle([])
    nb.setUseSwitchingFunction(False)
    nb.setUseLongRangeCorrection(False)
    if isinstance(lj, LJBulk):
        nb.setNonbondedMethod(mm.CustomNonbondedForce.CutoffPeriodic)
        nb.setCutoffDistance(conv.cutoff)
        b = lj.box
        sysm.setDefaultPeriodicBoxVectors(mm.Vec3(b, 0, 0), mm.Vec3(0, b, 0), mm.Vec3(0, 0, b))
        if lj.tail_correction:
            tail = mm.CustomExternalForce(f"{lj.tail_energy() / lj.n!r}")
            for i in range(lj.n):
                tail.addParticle(i, [])
            sysm.addForce(tail)
    elif isinstance(lj, LJCluster):
        if conv.mode == "none":
            nb.setNonbondedMethod(mm.CustomNonbondedForce.NoCutoff)
        else:
            nb.setNonbondedMethod(mm.CustomNonbondedForce.CutoffNonPeriodic)
            nb.setCutoffDistance(conv.cutoff)
        sysm.addForce(_sphere_wall(mm, lj))
    else:
        raise ValueError(f"lj: must be an LJCluster or LJBulk (got {type(lj).__name__})")
    sysm.addForce(nb)
    return sysm


def openmm_energy_forces(lj, positions: np.ndarray, platform: str = "Reference") -> tuple[np.ndarray, np.ndarray]:
    """Potential energies [W] and forces [W, n, 3] of configurations [W, n, 3] from OpenMM
    (``Reference`` platform: double precision)."""
    mm = _openmm()
    u = mm.unit
    sysm = openmm_system(lj)
    ctx = mm.Context(sysm, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName(platform))
    es, fs = [], []
    for x in np.asarray(positions, dtype=np.float64):
        ctx.setPositions(x)
        st = ctx.getState(getEnergy=True, getForces=True)
        es.append(st.getPotentialEnergy().value_in_unit(u.kilojoule_per_mole))
        fs.append(st.getForces(asNumpy=True).value_in_unit(u.kilojoule_per_mole / u.nanometer))
    return np.array(es), np.array(fs)


def openmm_langevin(lj, positions: np.ndarray, temperature: float, *, steps: int, report: int, dt: float = 0.005,
                    friction: float = 1.0, seed: int = 1, platform: str = "Reference", threads: int = 1,
                    equilibrate: int = 0, frames: bool = False):
    """Potential energies every ``report`` steps of an OpenMM Langevin run at reduced T; with
    ``frames`` also the positions of those steps, ``(energies [k], positions [k, n, 3])``."""
    mm = _openmm()
    u = mm.unit
    sysm = openmm_system(lj)
    integ = mm.LangevinMiddleIntegrator(kelvin(temperature), friction, dt)
    integ.setRandomNumberSeed(int(seed))
    plat = mm.Platform.getPlatformByName(platform)
    props = {"Threads": str(threads)} if platform == "CPU" else {}
    ctx = mm.Context(sysm, integ, plat, props)
    ctx.setPositions(np.asarray(positions, dtype=np.float64))
    ctx.setVelocitiesToTemperature(kelvin(temperature), int(seed))
    if equilibrate:
        integ.step(int(equilibrate))
    out = np.empty(steps // report)
    xs = np.empty((out.size, lj.n, 3)) if frames else None
    for k in range(out.size):
        integ.step(report)
        st = ctx.getState(getEnergy=True, getPositions=frames)
        out[k] = st.getPotentialEnergy().value_in_unit(u.kilojoule_per_mole)
        if frames:
            xs[k] = st.getPositions(asNumpy=True).value_in_unit(u.nanometer)
    return (out, xs) if frames else out


def decorrelated_indices(series: np.ndarray) -> np.ndarray:
    """Indices of an uncorrelated subsample of a time series (pymbar's statistical inefficiency)."""
    _quiet_pymbar()
    from pymbar import timeseries

    return np.asarray(timeseries.subsample_correlated_data(np.asarray(series)), dtype=np.int64)


def decorrelate(series: np.ndarray) -> np.ndarray:
    """Uncorrelated subsample of a time series."""
    return np.asarray(series)[decorrelated_indices(series)]


@dataclass
class MBARCanonical:
    temperature: np.ndarray
    mean_energy: np.ndarray
    mean_energy_error: np.ndarray
    heat_capacity: np.ndarray  # configurational C_V
    heat_capacity_error: np.ndarray
    samples: np.ndarray  # uncorrelated samples used per simulated temperature
    #: name → (⟨O⟩(T), its bootstrap error) of each per-frame observable given to mbar_canonical
    observables: dict = field(default_factory=dict)
    #: how it was made (system, start, OpenMM run settings, seed, versions): stored with it by
    #: :func:`write_reference`, so that a stored reference says what it is a reference for
    provenance: dict = field(default_factory=dict)


def _mbar_weights(energies, counts, sim_temps, temps) -> np.ndarray:
    """[nT, N] normalised MBAR weights of the pooled samples at each target temperature."""
    _quiet_pymbar()
    from pymbar import MBAR

    beta_sim = 1.0 / np.asarray(sim_temps)
    u_kn = beta_sim[:, None] * energies[None, :]
    mbar = MBAR(u_kn, counts, solver_protocol="robust")
    f_k = mbar.f_k
    # Reweight to each target temperature: log w_n(T) = −U_n/T − ln Σ_k N_k exp(f_k − β_k U_n).
    log_den = np.logaddexp.reduce(np.log(counts)[:, None] + f_k[:, None] - u_kn, axis=0)
    lw = -energies[None, :] / np.asarray(temps)[:, None] - log_den[None, :]
    w = np.exp(lw - lw.max(axis=1, keepdims=True))
    return w / w.sum(axis=1, keepdims=True)


def _mbar_moments(energies, counts, sim_temps, temps, observables=None):
    """(⟨U⟩, Var U, {name: ⟨O⟩}) at ``temps`` from pooled samples (``observables``: name → [N])."""
    w = _mbar_weights(energies, counts, sim_temps, temps)
    mean = w @ energies
    var = np.einsum("tn,tn->t", w, (energies[None, :] - mean[:, None]) ** 2)
    return mean, var, {k: w @ v for k, v in (observables or {}).items()}


def mbar_canonical(series: list[list[np.ndarray]], sim_temps, temps, *, bootstrap: int = 100,
                   seed: int = 0, observables: list[list[dict]] | None = None) -> MBARCanonical:
    """⟨U⟩(T) and C_V,conf(T) with bootstrap error bars from runs at ``sim_temps``; with
    ``observables`` (``observables[k][j]``: name → per-frame values of run j at ``sim_temps[k]``,
    frame for frame with its energies) also ⟨O⟩(T) = Σ_n w_n(T)·O_n of each.

    ``series[k]`` holds the potential-energy time series of the independent runs at
    ``sim_temps[k]``; each is thinned to uncorrelated samples first (the observables at the same
    frames).  The bootstrap resamples whole runs per temperature (scaled by √(n/(n−1)) for n
    runs): near the melting peak, solid–liquid switching and evaporation into the sphere are
    slower than the statistical inefficiency of one run can see, and the spread between
    independent runs is what measures them.
    """
    temps = np.atleast_1d(np.asarray(temps, dtype=np.float64))
    idx = [[decorrelated_indices(r) for r in per_t] for per_t in series]
    runs = [[np.asarray(r)[i] for r, i in zip(per_t, ix)] for per_t, ix in zip(series, idx)]
    names = sorted(observables[0][0]) if observables else []
    obs = [[{n: np.asarray(o[n])[i] for n in names} for o, i in zip(per_t, ix)]
           for per_t, ix in zip(observables or [[{}] * len(p) for p in series], idx)]
    if min(len(r) for r in runs) < 2:
        raise ValueError("series: need at least two independent runs per temperature for the error bars")

    def moments(pick):
        e = [np.concatenate([runs[k][j] for j in js]) for k, js in enumerate(pick)]
        o = {n: np.concatenate([obs[k][j][n] for k, js in enumerate(pick) for j in js]) for n in names}
        return _mbar_moments(np.concatenate(e), np.array([len(x) for x in e]), sim_temps, temps, o)

    mean, var, omean = moments([range(len(r)) for r in runs])
    rng = np.random.default_rng(seed)
    boot = [moments([rng.integers(0, len(r), len(r)) for r in runs]) for _ in range(bootstrap)]
    n = min(len(r) for r in runs)
    scale = math.sqrt(n / (n - 1))

    def err(values):
        return scale * np.std(values, axis=0, ddof=1)

    return MBARCanonical(temps, mean, err([b[0] for b in boot]), var / temps**2, err([b[1] / temps**2 for b in boot]),
                         np.array([sum(len(x) for x in r) for r in runs]),
                         {k: (omean[k], err([b[2][k] for b in boot])) for k in names})


def lj_cluster_reference(lj, positions: np.ndarray, sim_temps, temps, *, steps: int, runs: int = 5, report: int = 50,
                         equilibrate: int = 20000, dt: float = 0.005, friction: float = 1.0, seed: int = 1,
                         bootstrap: int = 100, observe=None) -> MBARCanonical:
    """Canonical ⟨U⟩(T), C_V,conf(T) of an LJ cluster: ``runs`` independent OpenMM Langevin runs of
    ``steps // runs`` steps (after ``equilibrate``) at each of ``sim_temps``, combined with MBAR.
    ``observe(frames [k, n, 3]) -> {name: [k]}`` adds ⟨O⟩(T) of per-frame observables.  The runs are
    sequential: OpenMM's Reference platform draws its Langevin noise from one process-wide stream
    (the static SFMT generator of ``SimTKOpenMMUtilities``), so contexts run in threads would share
    and race on it — measured: the C_V of the same seeds moved by up to 3.3 error bars."""
    series, observed = [], []
    for k, t in enumerate(sim_temps):
        per_t = [openmm_langevin(lj, positions, t, steps=steps // runs, report=report, dt=dt, friction=friction,
                                 seed=seed + 1000 * k + j, equilibrate=equilibrate, frames=observe is not None)
                 for j in range(runs)]
        series.append([r[0] for r in per_t] if observe is not None else per_t)
        if observe is not None:
            observed.append([observe(r[1]) for r in per_t])
    ref = mbar_canonical(series, sim_temps, temps, bootstrap=bootstrap, seed=seed, observables=observed or None)
    import openmm
    import pymbar

    ref.provenance = {"n": int(lj.n), "radius": float(lj.radius), "simulated_temperatures": list(map(float, sim_temps)),
                      "steps_per_temperature": int(steps), "runs": int(runs), "report": int(report),
                      "equilibrate": int(equilibrate), "dt": float(dt), "friction": float(friction), "seed": int(seed),
                      "bootstrap": int(bootstrap), "integrator": "openmm.LangevinMiddleIntegrator, Reference platform",
                      "openmm_version": openmm.__version__, "pymbar_version": pymbar.__version__}
    return ref


def mean_with_error(series: np.ndarray) -> tuple[float, float]:
    """Mean of a correlated series and its standard error (statistical inefficiency g)."""
    _quiet_pymbar()
    from pymbar import timeseries

    s = np.asarray(series, dtype=np.float64)
    g = timeseries.statistical_inefficiency(s)
    return float(s.mean()), float(s.std(ddof=1) * math.sqrt(g / s.size))


# ------------------------------------------------------------------ stored references
#: references shipped inside the package (``physampler/data``), by validation case; each file's
#: ``command`` attribute is the command that regenerates it
PACKAGED = {"lj13": "lj13_openmm_mbar.nc"}
_FIELDS = ("mean_energy", "mean_energy_error", "heat_capacity", "heat_capacity_error")


def write_reference(path, ref: MBARCanonical, **provenance) -> None:
    """Store ``ref`` as NetCDF: ⟨U⟩, C_V and each observable with its error over ``temperature``,
    ``samples`` over ``simulated_temperature``, and ``ref.provenance`` plus ``provenance`` as
    global attributes (lists as arrays, the rest as numbers and strings)."""
    import datetime as dt

    import xarray as xr

    from . import __version__
    from .io import write_netcdf

    data = {k: ("temperature", np.asarray(getattr(ref, k), dtype=np.float64)) for k in _FIELDS}
    for name, (mean, err) in ref.observables.items():
        data[f"observable_{name}"] = ("temperature", np.asarray(mean, dtype=np.float64))
        data[f"observable_{name}_error"] = ("temperature", np.asarray(err, dtype=np.float64))
    data["samples"] = ("simulated_temperature", np.asarray(ref.samples, dtype=np.int64))
    attrs = {"title": "canonical <U>(T), C_V,conf(T) from OpenMM Langevin runs combined with MBAR",
             "physampler_version": __version__, "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
             **ref.provenance, **provenance}
    write_netcdf(path, xr.Dataset(data, coords={"temperature": np.asarray(ref.temperature, dtype=np.float64)},
                                  attrs=attrs))


def read_reference(path) -> MBARCanonical:
    """A reference written by :func:`write_reference`, or :class:`~physampler.io.FileError`."""
    from .io import FileError, open_netcdf

    ds = open_netcdf(path, "stored OpenMM+MBAR reference")
    missing = [k for k in (*_FIELDS, "samples") if k not in ds]
    if missing or "temperature" not in ds.coords:
        raise FileError(path, f"has no variable {(missing or ['temperature'])[0]!r}, so not a reference written by "
                              "physampler validate --save-reference")
    names = sorted(k[len("observable_"):] for k in ds if k.startswith("observable_") and not k.endswith("_error"))
    prov = {k: (v.tolist() if isinstance(v, np.ndarray) else v.item() if isinstance(v, np.generic) else v)
            for k, v in ds.attrs.items()}
    return MBARCanonical(ds["temperature"].values, *(ds[k].values for k in _FIELDS), ds["samples"].values,
                         {n: (ds[f"observable_{n}"].values, ds[f"observable_{n}_error"].values) for n in names}, prov)


def packaged_reference(case: str) -> MBARCanonical:
    """The reference shipped for validation case ``case`` (see :data:`PACKAGED`)."""
    from importlib.resources import files

    return read_reference(files("physampler").joinpath("data", PACKAGED[case]))
