"""Sampling jobs driven by a config (``physampler run``): build, step, report, checkpoint, resume.

The loop advances in chunks that end on multiples of ``output.report_interval``
(global step numbers), so an interrupted and resumed run cuts its work at the
same steps as an uninterrupted one.  At every ``checkpoint_interval``, on
SIGINT/SIGTERM (after the current step on the torch path, the current chunk on
the compiled one) and at the end it writes, each
atomically and in this order: ``trajectory.nc``, ``landscape.nc``,
``checkpoint.pt``.  The checkpoint holds the whole state — positions,
velocities, accelerations, CVs, step, every walker's RNG state and unused
random numbers, S and H, and the number of trajectory records — so a resumed
run continues bit for bit; trajectory records written after the last checkpoint
(a run killed between two files) are dropped on resume.
"""
from __future__ import annotations

import json
import math
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import config as C
from .biases import LinearWall, QuadraticWall
from .grid import Axis
from .integrators import BiasedMD, WLMDState
from .integrators.wlmd import walker_state
from .methods import Method, StaticBias, WangLandau, WellTemperedMetadynamics
from .convergence import ConvergenceMonitor, RoundTrips
from .windows import ReplicaExchange, WindowedLandscape, WindowedWLMD, layout
from .io import (FileError, load_checkpoint, read_entropy, read_landscape, read_trajectory, save_checkpoint,
                 write_landscape, write_text, write_trajectory)
from .landscape import Landscape
from .outdir import JobError, OutputDirectory
from .rng import make_rng
from .rules import NOISE
from .threads import apply as apply_threads, stored_threads
from .driver import drive
from .signals import catch_signals
from .schedules import InverseTime, make_schedule
from .systems.builtin import physical_cvs

OUTPUTS = ("landscape.nc", "trajectory.nc", "checkpoint.pt", "landscape.png", "config.toml", "manifest.json",
           "checkpoints")
#: entries every run checkpoint holds (:func:`_state_payload`)
CHECKPOINT_KEYS = ("config", "step", "positions", "velocities", "accel", "cv", "rng", "landscape",
                   "trajectory_records")

DEFAULT_CONFIG = """\
# physampler's built-in default job: the entropy S(U) of the 13-atom Lennard-Jones
# cluster in a confining sphere (R_c = 2 sigma), and its heat capacity C_V(T).
# 16 walkers share one landscape on the compiled engine (about 0.5 M walker-steps/s);
# run time 48 s measured on 2 idle cores (2026-12-01).  `physampler validate lj13`
# checks the same set-up against OpenMM + MBAR.

[system]
kind = "lj_cluster"
atoms = 13
radius = 2.0

[cvs]
names = ["energy"]

[landscape]
lower = [-43.0]
upper = [-20.0]
bins = [460]
sigma = 1.0
out_of_range = "wall"
wall_strength = 2.0
initial_temperature = 0.3

[bias]
# beyond the upper edge ln g keeps rising towards evaporated states: push back harder than dln g/dU
walls = [{cv = "energy", side = "upper", at = -20.0, strength = 10.0, shape = "linear"}]

[integrator]
kind = "wlmd"
engine = "auto"
dt = 0.005
c_f = 0.005
kT = 0.3

[schedule]
kind = "inverse_time"
F = 0.05
t_wl = 187500

[run]
walkers = 16
steps = 1500000
seed = 2026

[output]
directory = "physampler-run"
report_interval = 5000
checkpoint_interval = 250000
temperatures = [0.20, 0.22, 0.24, 0.26, 0.28, 0.30, 0.32, 0.34, 0.36, 0.38, 0.40, 0.42, 0.44]
"""


@dataclass
class Output:
    """Where and how often a :class:`Job` writes (the ``[output]`` table of a config)."""

    directory: str | Path = "physampler-run"
    report_interval: int = 1000
    checkpoint_interval: int = 100000
    plot: bool = True
    temperatures: tuple = ()

    def __post_init__(self):
        from . import _checks

        self.report_interval = _checks.positive_int("output.report_interval", self.report_interval)
        self.checkpoint_interval = _checks.positive_int("output.checkpoint_interval", self.checkpoint_interval)
        if self.checkpoint_interval % self.report_interval:
            raise ValueError(f"output.checkpoint_interval: must be a multiple of output.report_interval = "
                             f"{self.report_interval} (got {self.checkpoint_interval})")
        self.temperatures = tuple(_checks.positive("output.temperatures", float(x)) for x in self.temperatures)


class Job:
    """A sampling job — an engine (system → CVs → method → splitting, in a :class:`BiasedMD` or
    its compiled form), its walkers and where it writes — run with all of ``physampler run``'s
    machinery: the locked output directory, CF NetCDF ``landscape.nc``/``trajectory.nc``,
    checkpoints every ``output.checkpoint_interval`` steps and on SIGINT/SIGTERM, a bit-for-bit
    ``resume``, progress and the convergence verdict (docs/architecture.md).

    ``integrator`` : a :class:`~physampler.integrators.BiasedMD` (or a ``CompiledWLMD`` of one).
    ``steps``, ``walkers``, ``seed`` : as ``run.steps``, ``run.walkers``, ``run.seed``; walker w
        draws from the stream (seed, 0, w).
    ``output`` : an :class:`Output` (or a directory).
    ``starts(walkers, generator)`` : the walkers' initial positions; default the system's
        ``initial_positions(walkers, generator)``, with ``torch.Generator().manual_seed(seed)``.
    ``threads`` : torch intra-op threads while it runs, 0: auto (:mod:`physampler.threads`).
    ``noise`` : as ``run.noise`` (:func:`physampler.rng.make_rng`): ``streams``, ``counter`` or
        ``auto`` (counter on CUDA).

    Built from a config (:func:`build`) it also carries ``cfg`` and ``text``; built from objects,
    its checkpoint holds the job's description (:meth:`description`) in place of the config,
    and a resume is refused when the objects differ from it.
    """

    def __init__(self, integrator, *, steps: int, walkers: int, seed: int = 0, output: Output | str | Path = None,
                 starts=None, threads: int = 0, noise: str = "auto", cfg: dict | None = None, text: str | None = None):
        from . import _checks

        self.integrator = integrator
        self.wlmd: BiasedMD = getattr(integrator, "wlmd", integrator)
        if not isinstance(self.wlmd, BiasedMD):
            raise ValueError(f"integrator: must be a BiasedMD or a compiled engine of one (got {type(integrator).__name__})")
        self.steps = _checks.positive_int("steps", steps)
        self.walkers = _checks.positive_int("walkers", walkers)
        self.seed = _checks.non_negative_int("seed", seed)
        self.output = output if isinstance(output, Output) else Output(output or "physampler-run")
        self.starts = starts
        self.threads_setting = _checks.non_negative_int("threads", threads)  # 0: auto
        self.noise = _checks.choice("noise", noise, NOISE)  # a resume with other noise is refused by the streams' state
        self.threads = (torch.get_num_threads(), "torch default")  # (count, how chosen) once it runs
        self.cfg = cfg
        self.text = text if text is not None else json.dumps(self.description(), sort_keys=True)
        self.system, self.cvs, self.landscape = self.wlmd.system, self.wlmd.cvs, self.wlmd.landscape
        self.windowed = isinstance(self.landscape, WindowedLandscape)
        #: the run's grid (the windows' local grid is the landscape's)
        self.grid = self.landscape.full_grid if self.windowed else self.landscape.grid
        self.device = self.landscape.device
        m = self.wlmd.system.masses
        self.dtype = m.dtype if isinstance(m, torch.Tensor) else torch.float64

    def result(self) -> tuple[Landscape, dict]:
        """The landscape of the run's grid and what its outputs say of the windows: the landscape
        itself, or the windows joined (:meth:`~physampler.windows.WindowedLandscape.joined`) with
        the join's record and the swap statistics."""
        if not self.windowed:
            return self.landscape, {}
        joined, record = self.landscape.joined()
        ex = self.integrator.exchange
        w = self.landscape.windows
        return joined, record | {"windows_count": w.count, "windows_bins": w.bins, "windows_starts": list(w.starts),
                                 "windows_swap_interval": ex.interval, "windows_swap_attempts": ex.attempts,
                                 "windows_swap_acceptance": np.nan_to_num(ex.acceptance(), nan=-1.0)}

    def log_density(self, result: Landscape) -> torch.Tensor:
        """ln g + const on the run's grid (:meth:`BiasedMD.log_density_of_states`); windowed runs are
        Wang–Landau without the potential, whose ln g is the joined S."""
        return result.S.clone() if self.windowed else self.wlmd.log_density_of_states()

    def description(self) -> dict:
        """What defines the job's trajectory, as JSON values: the engine's parts and settings, the
        walkers and the seed (a resume must match it; the step count may grow)."""
        w = self.wlmd

        def parts(objs):
            return [_describe(o) for o in objs]

        return {"job": "physampler.Job", "engine": type(self.integrator).__name__, "system": _describe(w.system),
                "shape": list(w.system.shape), "cvs": w.cvs.names, "observe": [c.name for c in w.observe],
                "method": w.method.params() | {"schedule": _describe(w.schedule)}, "splitting": w.splitting,
                "dt": w.dt, "c_f": w.c_f, "kT": w.kT, "potential": w.potential, "biases": parts(w.biases),
                "constraints": parts(w.constraints),
                "grid": [[a.name, a.lower, a.upper, a.bins] for a in getattr(w.landscape, "full_grid",
                                                                              w.landscape.grid).axes],
                "walkers": self.walkers, "seed": self.seed}

    def run(self, *, resume: bool = False, overwrite: bool = False, progress: bool = False, log=print) -> int:
        """Run (or ``resume``) the job in ``output.directory``; the exit status as :func:`run_job`'s."""
        from .distributed import world_from_env

        if self.cfg is not None:
            return run(self.cfg, self.text, Path(self.output.directory), resume=resume, overwrite=overwrite,
                       progress=progress, log=log)
        if world_from_env() is not None:
            raise JobError("a Job built from objects runs in one process; under torchrun give the job as a config "
                           "(physampler run or run_job)")
        out = Path(self.output.directory)
        outdir, ck = _open_output(out, resume=resume, overwrite=overwrite,
                                  check=lambda ck: _check_description(self, ck["config"], out / "checkpoint.pt"))
        try:
            self.threads = apply_threads(self.threads_setting, stored=stored_threads(ck))
            return _run_local(self, out, outdir, ck, progress=progress, log=log)
        finally:
            outdir.abandon()


def _describe(obj) -> dict | None:
    """An object as its class and its public scalar attributes (JSON values)."""
    if obj is None:
        return None
    out = {"class": f"{type(obj).__module__}.{type(obj).__qualname__}"}
    for k, v in sorted(vars(obj).items()):
        if not k.startswith("_") and (isinstance(v, (bool, int, float, str)) or v is None):
            out[k] = v
    return out


def _check_description(job: Job, text, path) -> None:
    """Refuse to resume a Job built from objects under objects that differ from the checkpoint's."""
    try:
        old = json.loads(text)
        if not isinstance(old, dict) or old.get("job") != "physampler.Job":
            raise ValueError
    except (ValueError, TypeError):
        raise FileError(path, "its config is not the description of a physampler.Job built from objects; resume "
                              "it with the config it ran (physampler run --resume)") from None
    new = job.description()
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if keys:
        raise JobError(f"--resume: the job differs from the checkpoint's in {', '.join(keys)}; run it in a new "
                       f"directory or rebuild the original objects (got {len(keys)} differing entries)")


def build(cfg: dict, text: str, *, walkers_total: int | None = None, system=None, rank: int = 0) -> Job:
    """Objects of a checked config; ``walkers_total``: walkers sharing the landscape over all ranks
    (``rank``: this process's);
    ``system``: the System of ``[system] kind = "python"`` given as an object (:func:`run_job`)
    instead of built by ``system.factory``."""
    from .registry import system_kind

    dev = torch.device(cfg["run"]["device"])
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise C.ConfigError(f"run.device: CUDA is not available on this machine (got {cfg['run']['device']!r})")
    dtype = torch.float64 if cfg["run"]["dtype"] == "float64" else torch.float32
    built = system_kind(cfg["system"]["kind"]).build(cfg, dtype, dev, system)
    system = built.system
    cvs = built.cvs if built.cvs is not None else physical_cvs(cfg, system)
    ls_cfg = cfg["landscape"]

    axes = [Axis(c.name, lo, hi, bins=b, units=c.units, long_name=c.long_name)
            for c, lo, hi, b in zip(cvs, ls_cfg["lower"], ls_cfg["upper"], ls_cfg["bins"])]
    kernel = dict(sigma=ls_cfg["sigma"], cutoff=ls_cfg["cutoff"], edge=ls_cfg["edge"],
                  out_of_range=ls_cfg["out_of_range"], wall_strength=ls_cfg["wall_strength"], device=dev)
    win = cfg["windows"]
    if win["count"] > 1:
        land = WindowedLandscape(layout(axes[0], win["count"], win["overlap"]), axes[1:],
                                 walkers=cfg["run"]["walkers"], wall_slope=win["wall_slope"], **kernel)
    else:
        land = Landscape(axes, **kernel)
    names = cvs.names
    if ls_cfg["initial_temperature"] is not None:
        land.tilt(names.index("energy"), ls_cfg["initial_temperature"])
    biases = []
    for w in cfg["bias"]["walls"]:
        cls = QuadraticWall if w["shape"] == "quadratic" else LinearWall
        biases.append(cls(names.index(w["cv"]), w["at"], w["strength"], w["side"]))
    it = cfg["integrator"]
    observed = list(physical_cvs(cfg, system, cfg["cvs"]["observe"])) if cfg["cvs"]["observe"] else []
    wlmd = BiasedMD(system, cvs, _method(cfg, land, _schedule(cfg)), dt=it["dt"], c_f=it["c_f"], kT=it["kT"],
                    biases=biases, constraints=built.constraints, walkers_total=walkers_total,
                    splitting=it["splitting"], potential=it["potential"], observe=observed,
                    observe_every=cfg["cvs"]["observe_every"], capture=it["capture"])
    integrator = wlmd
    if it["engine"] == "compiled" or (it["engine"] == "auto" and it["capture"] == "none"
                                      and C.compiled_obstacle(cfg) is None):
        from .integrators.compiled import CompiledWLMD

        integrator = CompiledWLMD(wlmd)
    if win["count"] > 1:
        # swaps drawn per rank, from the run seed and the rank
        integrator = WindowedWLMD(integrator, ReplicaExchange(land, win["swap_interval"],
                                                              cfg["run"]["seed"] * 65537 + rank))
    kind, out = system_kind(cfg["system"]["kind"]), cfg["output"]
    starts = built.starts or (lambda w, gen: kind.initial_positions(cfg, system, w, gen))
    job = Job(integrator, steps=cfg["run"]["steps"], walkers=cfg["run"]["walkers"], seed=cfg["run"]["seed"],
              output=Output(out["directory"], out["report_interval"], out["checkpoint_interval"], out["plot"],
                            tuple(out["temperatures"])), starts=starts, threads=cfg["run"]["threads"],
              noise=cfg["run"]["noise"], cfg=cfg,
              text=text)
    job.device, job.dtype = dev, dtype
    return job


def _method(cfg: dict, land: Landscape, schedule) -> Method:
    """The [method] of ``cfg`` on landscape ``land``; a static bias reads its landscape.nc, whose
    grid must be the config's (FileError otherwise)."""
    m = cfg["method"]
    if m["kind"] == "wang_landau":
        return WangLandau(land, schedule)
    if m["kind"] == "well_tempered_metadynamics":
        return WellTemperedMetadynamics(land, schedule, delta_T=m["delta_T"], kT=cfg["integrator"]["kT"])
    path = Path(m["landscape"])
    frozen, _ = read_landscape(path)
    if not frozen.grid.same_layout(land.grid):
        got = [(a.name, a.lower, a.upper, a.bins) for a in frozen.grid.axes]
        raise FileError(path, f"its grid {got} differs from [landscape] and [cvs] of this config")
    return StaticBias.from_entropy(land, torch.from_numpy(read_entropy(path)))


def resolved_t_wl(cfg: dict) -> float:
    """t_WL of an ``inverse_time`` schedule: ``schedule.t_wl``, or run.steps/8.  The checkpoint
    stores the value a run started with and a resume keeps it (:func:`_with_t_wl`), so "resume
    with more steps" equals the longer run started with that t_WL set explicitly."""
    t = cfg["schedule"]["t_wl"]
    return float(t) if t is not None else max(1.0, cfg["run"]["steps"] / 8)


def preflight(cfg: dict, kind: str = "run") -> float:
    """Checks that need the machine but allocate nothing: the device exists and the job's
    estimated memory fits (:mod:`physampler.resources`); returns the estimate in bytes."""
    from .resources import guard

    C.check_device(f"{kind}.device", cfg[kind]["device"])
    return guard(cfg, kind)


def _schedule(cfg: dict):
    """The deposit schedule of ``[schedule]``."""
    sc = dict(cfg["schedule"])
    kind = sc.pop("kind")
    if kind == "inverse_time":
        return make_schedule(kind, F=sc["F"], t_wl=resolved_t_wl(cfg))
    if kind == "three_stage":
        return make_schedule(kind, F=sc["F"], t_rise=sc["t_rise"], t_drop=sc["t_drop"], t_off=sc["t_off"])
    return make_schedule(kind, f=sc["f"])


def initial_positions(job: Job, walkers: int | None = None) -> torch.Tensor:
    """Deterministic starts from the run seed, as the job's ``starts`` draws them (for a config:
    its system kind, or the built system): N(0, 1/k) in a harmonic well, x = −1 + N(0, 0.01) in
    a double well, FIRE-quenched random clusters for LJ, one initialisation per walker for a
    network; default the system's ``initial_positions``.  ``walkers`` (default the job's): a run
    over R ranks draws R·W starts and gives rank r its slice."""
    w = walkers or job.walkers
    gen = torch.Generator().manual_seed(job.seed)
    if job.starts is not None:
        q = job.starts(w, gen)
    else:
        from .systems.builtin import checked_user_system

        q = torch.as_tensor(checked_user_system(job.system, "the job's system").initial_positions(w, gen))
    q = torch.as_tensor(q)
    if tuple(q.shape) != (w, *job.system.shape):
        where = "system.factory" if job.cfg is not None else "starts"
        raise C.ConfigError(f"{where}: the starts of {w} walkers must have shape {[w, *job.system.shape]} "
                            f"(got {list(q.shape)})")
    return q.to(job.device, job.dtype)


# ---------------------------------------------------------------- the run
def _state_payload(job: Job, state: WLMDState, records: int) -> dict:
    """A checkpoint: the engine's state format (walkers, method, landscape) plus the job's own entries."""
    return job.integrator.state_dict(state) | {
        "config": job.text,
        "trajectory_records": records,
        "t_wl": float(job.wlmd.schedule.t_wl) if isinstance(job.wlmd.schedule, InverseTime) else 0.0,
        "threads": job.threads[0],
        "system": job.system.state_dict(),
    }


def _restore(job: Job, ck: dict, rng, path, *, landscape: bool = True) -> tuple[WLMDState, int]:
    """The state of a checkpoint ``ck`` read from ``path``, checked against this job first:
    :class:`FileError` for anything that does not fit (shapes, counts, RNG, landscape)."""
    records = ck["trajectory_records"]
    if isinstance(records, bool) or not isinstance(records, int) or records < 0:
        raise FileError(path, f"checkpoint entry 'trajectory_records' must be an integer >= 0 (got {records!r:.40})")
    try:
        state = walker_state(ck, rng, shape=(len(rng), *job.system.shape), cvs=len(job.cvs.names),
                             device=job.device, dtype=job.dtype)
    except ValueError as e:
        raise FileError(path, f"checkpoint {e}") from None
    if isinstance(job.integrator, WindowedWLMD):
        try:
            job.integrator.exchange.load_state_dict(ck.get("windows", {}))
        except ValueError as e:
            raise FileError(path, f"checkpoint {e}") from None
    try:
        # a checkpoint written before systems kept a state: {} (the system's own default)
        job.system.load_state_dict(ck.get("system", {}))
    except (ValueError, TypeError, AttributeError) as e:
        raise FileError(path, f"checkpoint entry 'system' does not fit this job ({e})") from None
    if landscape:
        try:
            job.integrator.load_state_dict(ck)
        except (KeyError, ValueError, TypeError, RuntimeError, IndexError, AttributeError) as e:
            raise FileError(path, f"checkpoint's landscape do not fit this job ({type(e).__name__}: {e})") from None
    return state, records


def advance(job: Job, state: WLMDState, n: int, stop=None) -> WLMDState:
    """``n`` steps of the job's engine (the torch engine stops early once ``stop()`` is true)."""
    return job.integrator.run(state, n, stop=stop)[0]


class _Results:
    """Trajectory records and the two NetCDF files (written by one process only)."""

    def __init__(self, job: Job, text: str, out: Path, walkers: list[int]):
        self.job, self.text, self.out, self.walkers = job, text, out, walkers
        self.steps: list[int] = []
        self.values: list[np.ndarray] = []
        self.convergence = ConvergenceMonitor(job.steps)
        axis = job.grid.axes[0]
        self.trips = RoundTrips(axis.lower, axis.upper, len(walkers))
        self.verdict = None

    def restore(self, records: int, ck: dict, path) -> None:
        """Keep the first ``records`` records of the trajectory.nc (those the checkpoint saw); a
        missing, damaged or shorter file is a :class:`FileError`, never a silent loss of records.
        The convergence records come from the checkpoint ``ck`` read from ``path`` (one written
        before they existed starts them afresh)."""
        if "convergence" in ck:
            try:
                self.convergence.load_state_dict(ck["convergence"], self.job.landscape.S.shape)
            except (KeyError, ValueError, TypeError, AttributeError) as e:
                raise FileError(path, f"checkpoint's convergence records do not fit this job ({e})") from None
        if isinstance(ck.get("step"), int):
            self.convergence.resumed(ck["step"], self.job.landscape)
        if not records:
            return
        path = self.out / "trajectory.nc"
        if not path.exists():
            raise FileError(path, f"missing: the checkpoint expects its first {records} records; restore the file or "
                                  "start a new run")
        tr = read_trajectory(path, self.job.cvs.names)
        if tr.sizes["step"] < records or tr.sizes.get("walker") != len(self.walkers):
            raise FileError(path, f"holds {tr.sizes['step']} records of {tr.sizes.get('walker')} walkers; the "
                                  f"checkpoint expects at least {records} of {len(self.walkers)}")
        self.steps = [int(x) for x in tr["step"].values[:records]]
        self.values = [np.stack([tr[n].values[i] for n in self.job.cvs.names], axis=-1) for i in range(records)]
        for v in self.values:
            self.trips.update(v[:, 0])

    def record(self, step: int, cv: torch.Tensor, *, merged: bool = True) -> None:
        """A trajectory record; also a convergence record when the landscape holds every
        walker's deposits (``merged``: always in one process, at syncs under torchrun)."""
        self.steps.append(step)
        self.values.append(cv.detach().to("cpu", torch.float64).numpy().copy())
        self.trips.update(self.values[-1][:, 0])
        if merged:
            self.convergence.record(step, self.job.landscape, float(self.trips.trips.mean()))

    def status(self) -> str:
        """The progress line's convergence part: the last rms change of S and the round trips."""
        text = f"round trips/walker {self.trips.trips.mean():.3g}"
        if self.convergence.series:
            text = f"rms dS {self.convergence.series[-1][1]:.3g}, " + text
        return text

    def write(self, step: int, final: bool, extra: dict | None = None) -> None:
        job = self.job
        names = job.cvs.names
        vals = np.stack(self.values) if self.values else np.zeros((0, len(self.walkers), len(names)))
        write_trajectory(self.out / "trajectory.nc", np.array(self.steps, dtype=np.int64), vals, names,
                         [c.units for c in job.cvs], self.walkers, attrs={"seed": job.seed})
        result, windows = job.result()
        attrs = {"config": self.text, "seed": job.seed, "walkers": len(self.walkers), "steps_done": step,
                 "f_wl_final": job.wlmd.method.factor(step), "flatness_min_max": list(result.flatness()),
                 "complete": int(final)} | windows | dict(extra or {})
        self.verdict = self.convergence.verdict(step, job.landscape)
        attrs |= self.verdict.attrs()
        if self.convergence.series:
            series = np.asarray(self.convergence.series, dtype=np.float64)
            attrs |= {"convergence_record_steps": series[:, 0], "convergence_rms_change": series[:, 1],
                      "convergence_record_min_visits": series[:, 2], "convergence_record_flatness": series[:, 3],
                      "convergence_record_round_trips": series[:, 4]}
        attrs |= {"round_trips": self.trips.trips, "round_trip_ends": list(self.trips.ends),
                  "round_trip_axis": job.grid.names[0]}
        if isinstance(job.wlmd.schedule, InverseTime):
            attrs["schedule_t_wl"] = float(job.wlmd.schedule.t_wl)
        if job.output.temperatures:
            attrs["temperatures"] = list(job.output.temperatures)
        attrs |= job.wlmd.method.params() | {"integrator_splitting": job.wlmd.splitting,
                                             "integrator_potential": int(job.wlmd.potential),
                                             "torch_threads": job.threads[0]} | job.system.run_attrs()
        write_landscape(self.out / "landscape.nc", result, attrs=attrs, entropy=job.log_density(result))

    def finish(self, step: int, log) -> None:
        if self.job.output.plot:
            from .plotting import plot_landscape

            plot_landscape(self.out / "landscape.nc", self.out / "landscape.png", trajectory=self.out / "trajectory.nc")
        if self.verdict is not None:
            log(self.verdict.message)
        log(f"done: {step} steps x {len(self.walkers)} walkers; wrote "
            f"{', '.join(p for p in OUTPUTS if (self.out / p).exists())} in {self.out}")


def _open_output(out: Path, *, resume: bool, overwrite: bool, check) -> tuple[OutputDirectory, dict | None]:
    """The locked output directory of a single-process run and, with ``resume``, its checkpoint
    after ``check(checkpoint)`` has accepted it; the directory is left as found on any error."""
    outdir = OutputDirectory(out, resume=resume, overwrite=overwrite, outputs=OUTPUTS, checkpoint="checkpoint.pt")
    outdir.open()
    try:
        ck = None
        if resume:
            ck = load_checkpoint(out / "checkpoint.pt", keys=CHECKPOINT_KEYS)
            check(ck)
    except BaseException:
        outdir.abandon()
        raise
    return outdir, ck


def open_job(cfg: dict, text: str, out: Path, *, resume: bool, overwrite: bool, system=None):
    """Everything a single-process run checks before it writes: the machine (:func:`preflight`),
    the output directory (locked), the checkpoint's readability and config, then the objects.
    Returns ``(job, outdir, checkpoint dict or None)``; nothing has been written yet."""
    preflight(cfg)
    outdir, ck = _open_output(out, resume=resume, overwrite=overwrite,
                              check=lambda ck: check_resume_config(cfg, ck["config"], out / "checkpoint.pt"))
    try:
        if ck is not None:
            cfg = _with_t_wl(cfg, ck)
        chosen = apply_threads(cfg["run"]["threads"], stored=stored_threads(ck))
        job = build(cfg, text, system=system)
        job.threads = chosen
    except BaseException:
        outdir.abandon()
        raise
    return job, outdir, ck


def _with_t_wl(cfg: dict, ck: dict) -> dict:
    """``cfg`` with the t_WL the checkpoint ran with (see :func:`resolved_t_wl`)."""
    if cfg["schedule"]["kind"] != "inverse_time" or cfg["schedule"]["t_wl"] is not None:
        return cfg
    if "t_wl" not in ck:  # written before t_wl was stored: it ran with its own config's run.steps / 8
        return cfg | {"schedule": cfg["schedule"] | {"t_wl": resolved_t_wl(C.parse(ck["config"]))}}
    t = ck["t_wl"]
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not (math.isfinite(t) and t > 0):
        raise JobError(f"--resume: the checkpoint's t_wl must be a number > 0 (got {t!r:.40})")
    return cfg | {"schedule": cfg["schedule"] | {"t_wl": float(t)}}


def run(cfg: dict, text: str, out: Path, *, resume: bool = False, overwrite: bool = False,
        progress: bool = True, log=print, system=None) -> int:
    """Run (or resume) the job; returns the process exit status (0, or 130/143 when interrupted).
    Under torchrun (WORLD_SIZE > 1) the walkers of all ranks share the landscape: :func:`run_distributed`."""
    from .distributed import world_from_env

    if world_from_env() is not None:
        return run_distributed(cfg, text, out, resume=resume, overwrite=overwrite, progress=progress, log=log,
                               system=system)
    job, outdir, ck = open_job(cfg, text, out, resume=resume, overwrite=overwrite, system=system)
    try:
        return _run_local(job, out, outdir, ck, progress=progress, log=log)
    finally:
        outdir.abandon()  # leaves a refused directory as it was found; after the first write, only unlocks


def run_job(config, out, *, system=None, resume: bool = False, overwrite: bool = False, progress: bool = False,
            log=print) -> int:
    """``physampler run`` from Python, with all of its machinery: config checks, the locked output
    directory, CF NetCDF outputs, checkpoints and bit-for-bit ``resume``, signals, progress, torchrun.

    ``config`` : TOML text or the path of a TOML file (docs/config.md).
    ``system`` : your own :class:`~physampler.System` object (with ``initial_positions(walkers,
        generator)``) for ``[system] kind = "python"``, in place of ``system.factory``.  A resume
        must be given an equal system: the checkpoint holds the walkers and the landscape, not it.
    Returns the exit status (0; 128 + signal when stopped by SIGINT/SIGTERM after a checkpoint).
    :class:`~physampler.config.ConfigError`, :class:`~physampler.io.FileError` or
    :class:`~physampler.outdir.JobError` for input that cannot be used, before anything is written.
    """
    text = str(config)
    if "\n" not in text and Path(text).is_file():
        cfg, text = C.load(text)
    else:
        cfg = C.parse(text)
    if system is not None and cfg["system"]["kind"] != "python":
        raise C.ConfigError(f"system.kind: a system object needs kind = 'python' (got {cfg['system']['kind']!r})")
    return run(cfg, text, Path(out), resume=resume, overwrite=overwrite, progress=progress, log=log, system=system)


class _RunTask:
    """``physampler run`` as a driver :class:`~physampler.driver.Task`: the job's engine, its
    walkers' state and the outputs, in one process (``sync`` None) or on one torchrun rank."""

    def __init__(self, job: Job, state: WLMDState, res, write, *, sync=None, world=None, out: Path):
        self.job, self.state, self.res, self.write, self.sync_, self.world, self.out = \
            job, state, res, write, sync, world, out
        self.sync_interval = job.cfg["run"]["sync_interval"] if sync is not None else None

    @property
    def step(self) -> int:
        return self.state.step

    def advance(self, n: int, stop) -> None:
        # ranks run whole chunks: they must all reach the same sync step
        self.state = self.job.integrator.run(self.state, n, stop=stop if self.sync_ is None else None)[0]

    def sync(self, step: int, stop: bool) -> bool:
        stop_all = self.sync_.sync(step, stop)
        # The acceleration must come from the merged S, as if all walkers shared one process.
        self.state = self.job.wlmd.refresh(self.state)
        return stop_all

    def report(self, bar, merged: bool) -> bool:
        cv = self.state.cv if self.world is None else _gather_cv(self.sync_, self.state, self.world.size)
        if self.res is not None:
            self.res.record(self.state.step, cv, merged=merged)
            bar.update(self.state.step, self.job.wlmd.method.factor(self.state.step), cv.detach().cpu(),
                       note=self.res.status())
        return False

    def checkpoint(self, final: bool) -> None:
        self.write(self.state, final)

    def stopped(self, sig: int) -> str:
        name = signal.Signals(sig).name
        if self.world is None:
            return f"{name} at step {self.step}: checkpoint written to {self.out / 'checkpoint.pt'}; continue with --resume"
        return (f"rank {self.world.rank}: stopped at step {self.step} ({name} on some rank); checkpoint written; "
                "continue with --resume")


def _run_local(job: Job, out: Path, outdir: OutputDirectory, ck: dict | None, *, progress: bool, log) -> int:
    text, total = job.text, job.steps
    walkers = list(range(job.walkers))
    res = _Results(job, text, out, walkers)
    rng = make_rng(job.seed, walkers, device=job.device, noise=job.noise)
    if ck is not None:
        state, records = _restore(job, ck, rng, out / "checkpoint.pt")
        if state.step > total:
            raise JobError(f"run.steps: the checkpoint is already at step {state.step} (got {total})")
        res.restore(records, ck, out / "checkpoint.pt")
    else:
        state = job.integrator.init(initial_positions(job), rng)
    outdir.commit()  # every input checked: only now are old outputs replaced
    write_text(out / "config.toml", text)

    def write_all(state: WLMDState, final: bool):
        res.write(state.step, final)
        save_checkpoint(out / "checkpoint.pt", _state_payload(job, state, len(res.steps))
                        | {"convergence": res.convergence.state_dict()})
        _checkpoint_marker(state.step)

    flag, handlers = catch_signals()  # before the start line: a signal after it always ends with a checkpoint
    log((f"resuming at step {state.step} of {total} in {out}" if ck is not None
         else f"starting {total} steps x {len(walkers)} walkers in {out}") + threads_note(job.threads)
        + "".join(f"; {k} {v}" for k, v in job.system.run_attrs().items()))
    task = _RunTask(job, state, res, write_all, out=out)
    code = drive(task, total=total, report=job.output.report_interval,
                 checkpoint=job.output.checkpoint_interval, progress=progress, log=log, flag=flag, handlers=handlers)
    if code == 0:
        res.finish(task.step, log)
    return code


def threads_note(chosen: tuple[int, str]) -> str:
    """The start line's account of the torch threads (the outputs record the count alone, which a
    resumed run shares with an uninterrupted one)."""
    return f" ({chosen[0]} torch thread{'s' if chosen[0] > 1 else ''}: {chosen[1]})"


def _checkpoint_marker(step: int) -> None:
    if os.environ.get("PHYSAMPLER_CHECKPOINT_MARKER"):  # for tests that kill a run once it can be resumed
        print(f"physampler: checkpoint written at step {step}", file=sys.stderr, flush=True)


# ------------------------------------------------------------- distributed
def run_distributed(cfg: dict, text: str, out: Path, *, resume: bool = False, overwrite: bool = False,
                    progress: bool = True, log=print, system=None) -> int:
    """The job over R ranks (torchrun): rank r owns walkers (seed, r, 0..W−1) of R·W sharing one landscape.

    Checkpoints: every rank writes ``checkpoints/step-N/rank-r.pt`` (its walkers and streams), rank 0
    also ``checkpoints/step-N/landscape.pt``, then — after a barrier, last — ``manifest.json`` naming
    the complete set with each file's SHA-256; older sets are removed after that.  ``--resume``
    continues the manifest's set after rank 0 has checked every file against it (present, same
    checksum, same step, one landscape).  Outputs are written by rank 0 only, which holds the
    output directory's lock.
    """
    from . import distributed as D

    rank, size = D.world_from_env()
    W = cfg["run"]["walkers"]
    if cfg["output"]["checkpoint_interval"] % cfg["run"]["sync_interval"]:
        raise C.ConfigError(f"output.checkpoint_interval: must be a multiple of run.sync_interval = "
                            f"{cfg['run']['sync_interval']} under torchrun (got {cfg['output']['checkpoint_interval']})")
    if cfg["run"]["device"].startswith("cuda") and torch.cuda.is_available():
        # one GPU per local rank; "cuda" then means this rank's GPU
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
    preflight(cfg)
    world = None
    outdir = OutputDirectory(out, resume=resume, overwrite=overwrite, outputs=OUTPUTS, checkpoint="manifest.json")
    try:
        # Rank 0 checks and locks the directory and the manifest's files; every rank learns the outcome.
        msg = [None, None, None]  # (error kind, error args) or (None, manifest, resume extras)
        if rank == 0:
            try:
                if resume and not (out / "manifest.json").exists() and (out / "checkpoint.pt").exists():
                    raise JobError(f"--resume: {out} holds a single-process checkpoint; resume it without torchrun")
                outdir.open()
                manifest = verify_manifest(out, size) if resume else None
                lck = None
                if manifest is not None:
                    lck = load_checkpoint(out / manifest["directory"] / "landscape.pt",
                                          keys=("config", "step", "landscape", "trajectory_records"))
                    check_resume_config(cfg, lck["config"], out / manifest["directory"] / "landscape.pt")
                    lck = {k: lck[k] for k in ("config", "t_wl", "threads") if k in lck}
                msg = [None, manifest, lck]
            except FileError as e:
                msg = ["FileError", (e.path, e.what), None]
            except (JobError, C.ConfigError) as e:
                msg = [type(e).__name__, (str(e),), None]
            except OSError as e:
                msg = ["JobError", (f"output.directory: {e.strerror} (got {str(out)!r})",), None]
        world = _init_world(cfg)
        box = [msg]
        torch.distributed.broadcast_object_list(box, src=0)
        kind, manifest, extra = box[0]
        if kind is not None:
            raise {"FileError": FileError, "ConfigError": C.ConfigError, "JobError": JobError}[kind](*manifest)
        chosen = apply_threads(cfg["run"]["threads"], stored=stored_threads(extra))
        job = build(cfg if manifest is None else _with_t_wl(cfg, extra), text, walkers_total=W * size, system=system,
                    rank=rank)
        job.threads = chosen
        return _run_ranks(job, world, out, outdir, manifest, progress=progress, log=log)
    finally:
        outdir.abandon()
        if world is not None and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _init_world(cfg: dict):
    from . import distributed as D

    return D.init(torch.device(cfg["run"]["device"]), cfg["run"]["sync_timeout"])


def verify_manifest(out: Path, size: int) -> dict:
    """The manifest of a distributed checkpoint after checking every file it names: present, a
    readable checkpoint with the recorded SHA-256 and the manifest's step, one rank file per rank,
    and one landscape (the ranks' fingerprints equal the landscape file's).  :class:`FileError`
    (or :class:`JobError` for a different number of ranks) otherwise."""
    import hashlib
    import json

    from .distributed import landscape_hash
    from .io import regular_file

    path = out / "manifest.json"
    try:
        man = json.loads(regular_file(path, "manifest").read_text(encoding="utf-8"))
        step, world, directory, files = (man["step"], man["world_size"], man["directory"], man["files"])
        if not (isinstance(step, int) and step >= 0 and isinstance(world, int) and world >= 1
                and isinstance(directory, str) and isinstance(files, dict)):
            raise ValueError
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise FileError(path, "not a physampler manifest: JSON with step, world_size, directory and files "
                              "{name: sha256}") from None
    if world != size:
        raise JobError(f"--resume: the checkpoint was written by {world} ranks; resume with the same number "
                       f"(got {size})")
    base = (out / directory).resolve()
    if base.parent != (out / "checkpoints").resolve():
        raise FileError(path, f"directory must name a set under checkpoints/ (got {directory!r})")
    want = {"landscape.pt"} | {f"rank-{r}.pt" for r in range(size)}
    if set(files) != want:
        raise FileError(path, f"files must be {sorted(want)} (got {sorted(files)})")
    land = None
    hashes = set()
    for name, digest in sorted(files.items()):
        f = regular_file(base / name, "checkpoint named by the manifest")
        if hashlib.sha256(f.read_bytes()).hexdigest() != digest:
            raise FileError(f, "its SHA-256 differs from the one manifest.json records: the checkpoint set is damaged")
        ck = load_checkpoint(f, keys=("step", "config"))
        if ck["step"] != step:
            raise FileError(f, f"holds step {ck['step']!r:.20}, the manifest step {step}")
        if name == "landscape.pt":
            land = ck
        else:
            hashes.add(ck.get("landscape_hash"))
    from .windows import landscape_from_state

    try:
        ls = landscape_from_state(land["landscape"])
        ls.load_state_dict(land["landscape"])
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        raise FileError(base / "landscape.pt", f"landscape state cannot be read ({type(e).__name__}: {e})") from None
    if hashes != {landscape_hash(ls)}:
        raise FileError(base / "landscape.pt", "the rank files' landscape fingerprints differ from this landscape")
    return man


def _rank_start(job: Job, world, out: Path, outdir: OutputDirectory, manifest: dict | None, sync, res, rng,
                log) -> WLMDState:
    """This rank's walkers: restored from the manifest's checkpoint set, or started afresh from its
    slice of the R·W starts; rank 0 commits the output directory and says how the run begins."""
    W, total = job.cfg["run"]["walkers"], job.cfg["run"]["steps"]
    if manifest is not None:
        base = out / manifest["directory"]
        lck = load_checkpoint(base / "landscape.pt")
        job.integrator.load_state_dict(lck)
        state, _ = _restore(job, load_checkpoint(base / f"rank-{world.rank}.pt"), rng,
                            base / f"rank-{world.rank}.pt", landscape=False)
        sync.reset()
        if res is not None:
            res.restore(int(lck["trajectory_records"]), lck, base / "landscape.pt")
    else:
        q0 = initial_positions(job, W * world.size)[world.rank * W : (world.rank + 1) * W]
        state = job.integrator.init(q0, rng)
    if world.is_root:
        outdir.commit()
        write_text(out / "config.toml", job.text)
        log((f"resuming at step {state.step} of {total} in {out} on {world.size} ranks" if manifest is not None
             else f"starting {total} steps x {W * world.size} walkers in {out} on {world.size} ranks")
            + threads_note(job.threads))
    return state


def _gather_cv(sync, state: WLMDState, size: int) -> torch.Tensor:
    """The CVs of every rank's walkers, in rank order (one all-gather)."""
    cv = state.cv.detach().contiguous()
    parts = [torch.empty_like(cv) for _ in range(size)]
    sync.collective(lambda: torch.distributed.all_gather(parts, cv), state.step)
    return torch.cat(parts).cpu()


def _rank_checkpoint(job: Job, world, sync, res, out: Path, state: WLMDState, final: bool) -> None:
    """``checkpoints/step-N/rank-r.pt`` on every rank, then on rank 0 ``landscape.pt``, the outputs and
    — after all rank files are on disk — ``manifest.json`` with their SHA-256; older sets are removed."""
    import hashlib
    import json

    from . import distributed as D

    rank, size = world.rank, world.size
    d = out / "checkpoints" / f"step-{state.step}"
    d.mkdir(parents=True, exist_ok=True)
    payload = _state_payload(job, state, 0)
    payload.pop("landscape")
    payload["landscape_hash"] = D.landscape_hash(job.landscape)
    save_checkpoint(d / f"rank-{rank}.pt", payload)
    digests = [None] * size
    mine = hashlib.sha256((d / f"rank-{rank}.pt").read_bytes()).hexdigest()
    sync.collective(lambda: torch.distributed.all_gather_object(digests, mine), state.step)
    if world.is_root:
        # the engine format's method part (landscape shared by all ranks) with the job's entries
        save_checkpoint(d / "landscape.pt", job.integrator.state_dict() | {
            "config": job.text, "step": state.step, "trajectory_records": len(res.steps), "t_wl": payload["t_wl"],
            "threads": payload["threads"],
            "convergence": res.convergence.state_dict()})
        res.write(state.step, final, extra={"ranks": size, "walkers_per_rank": job.cfg["run"]["walkers"]})
        files = {f"rank-{r}.pt": digests[r] for r in range(size)}
        files["landscape.pt"] = hashlib.sha256((d / "landscape.pt").read_bytes()).hexdigest()
        man = {"step": state.step, "world_size": size, "directory": f"checkpoints/step-{state.step}", "files": files}
        write_text(out / "manifest.json", json.dumps(man, indent=1))
        for old in (out / "checkpoints").iterdir():
            if old.name != d.name:
                for f in old.iterdir():
                    f.unlink()
                old.rmdir()
    sync.collective(torch.distributed.barrier, state.step)


def _run_ranks(job: Job, world, out: Path, outdir: OutputDirectory, manifest: dict | None, *, progress: bool,
               log) -> int:
    from . import distributed as D

    cfg = job.cfg
    W = cfg["run"]["walkers"]
    sync = D.LandscapeSync(job.landscape, world)
    rng = make_rng(cfg["run"]["seed"], range(W), rank=world.rank, device=job.device, noise=job.noise)
    res = _Results(job, job.text, out, list(range(W * world.size))) if world.is_root else None
    state = _rank_start(job, world, out, outdir, manifest, sync, res, rng, log)

    def write(state: WLMDState, final: bool):
        _rank_checkpoint(job, world, sync, res, out, state, final)

    task = _RunTask(job, state, res, write, sync=sync, world=world, out=out)
    code = drive(task, total=cfg["run"]["steps"], report=cfg["output"]["report_interval"],
                 checkpoint=cfg["output"]["checkpoint_interval"], progress=progress and world.is_root, log=log)
    if code == 0 and world.is_root:
        log(f"landscape syncs: {sync.syncs}, {sync.comm_seconds:.3f} s in communication on rank 0")
        res.finish(task.step, log)
    return code


def check_resume_config(cfg: dict, checkpoint_text, path, *, kind: str = "run") -> None:
    """Refuse to resume under a config that differs from the checkpoint's in a key that changes
    the trajectory (see :func:`physampler.config.diff` for the keys that may change)."""
    if not isinstance(checkpoint_text, str):
        raise FileError(path, "checkpoint entry 'config' must be the config text")
    try:
        old = C.parse(checkpoint_text, kind=kind)
    except C.ConfigError as e:
        raise FileError(path, f"the checkpoint's own config no longer parses: {e}") from None
    keys = C.diff(cfg, old, kind=kind)
    if keys:
        raise JobError(f"--resume: the config differs from the checkpoint's in {', '.join(keys)}; run it in a new "
                       f"directory or restore the original config (got {len(keys)} differing keys)")
