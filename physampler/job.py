"""Sampling jobs driven by a config (``physampler run``): build, step, report, checkpoint, resume.

The loop advances in chunks that end on multiples of ``output.report_interval``
(global step numbers), so an interrupted and resumed run cuts its work at the
same steps as an uninterrupted one.  At every ``checkpoint_interval``, on
SIGINT/SIGTERM (after the current chunk) and at the end it writes, each
atomically and in this order: ``trajectory.nc``, ``landscape.nc``,
``checkpoint.pt``.  The checkpoint holds the whole state — positions,
velocities, accelerations, CVs, step, every walker's RNG state and unused
random numbers, S and H, and the number of trajectory records — so a resumed
run continues bit for bit; trajectory records written after the last checkpoint
(a run killed between two files) are dropped on resume.
"""
from __future__ import annotations

import math
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import config as C
from .biases import LinearWall, QuadraticWall
from .cvs import CVSet, FunctionCV, PotentialEnergy
from .grid import Axis
from .integrators import WLMD, WLMDState
from .io import load_checkpoint, read_trajectory, save_checkpoint, write_landscape, write_trajectory
from .landscape import Landscape
from .rng import WalkerRNG
from .schedules import make_schedule

OUTPUTS = ("landscape.nc", "trajectory.nc", "checkpoint.pt", "landscape.png", "config.toml")

DEFAULT_CONFIG = """\
# physampler's built-in default job: the entropy S(U) of the 13-atom Lennard-Jones
# cluster in a confining sphere (R_c = 2 sigma), and its heat capacity C_V(T).
# 16 walkers share one landscape; the compiled engine runs about 0.7 M walker-steps/s
# on one core, so the job takes about a minute.  `physampler validate lj13`
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


class JobError(Exception):
    """A problem with the job's inputs or output directory; printed as one line, exit 2."""


@dataclass
class Job:
    cfg: dict
    text: str
    system: object
    cvs: CVSet
    landscape: Landscape
    wlmd: WLMD
    integrator: object  # WLMD or CompiledWLMD
    device: torch.device
    dtype: torch.dtype


def build(cfg: dict, text: str) -> Job:
    """Objects of a checked config."""
    from .systems import DoubleWell1D, HarmonicWell
    from .systems.lennard_jones import LJCluster

    dev = torch.device(cfg["run"]["device"])
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise C.ConfigError(f"run.device: CUDA is not available on this machine (got {cfg['run']['device']!r})")
    dtype = torch.float64 if cfg["run"]["dtype"] == "float64" else torch.float32
    s = cfg["system"]
    if s["kind"] == "harmonic":
        system = HarmonicWell.isotropic(s["dims"], s["stiffness"], dtype=dtype, device=dev)
    elif s["kind"] == "double_well":
        system = DoubleWell1D(s["barrier"], dtype=dtype, device=dev)
    else:
        system = LJCluster(s["atoms"], s["radius"], wall_stiffness=s["wall_stiffness"], dtype=dtype, device=dev)
    cvs = []
    for name in cfg["cvs"]["names"]:
        if name == "energy":
            cvs.append(PotentialEnergy(system))
        elif name == "rg":
            from .order_parameters import RadiusOfGyration

            cvs.append(RadiusOfGyration())
        elif name == "q6":
            from .order_parameters import Steinhardt

            cvs.append(Steinhardt(6, r_on=cfg["cvs"]["q6_r_on"], r_off=cfg["cvs"]["q6_r_off"]))
        else:
            cvs.append(FunctionCV(lambda q: q[:, 0], "x0", units="1", long_name="first coordinate"))
    cvs = CVSet(cvs)
    ls_cfg = cfg["landscape"]
    axes = [Axis(c.name, lo, hi, bins=b, units=c.units, long_name=c.long_name)
            for c, lo, hi, b in zip(cvs, ls_cfg["lower"], ls_cfg["upper"], ls_cfg["bins"])]
    land = Landscape(axes, sigma=ls_cfg["sigma"], cutoff=ls_cfg["cutoff"], edge=ls_cfg["edge"],
                     out_of_range=ls_cfg["out_of_range"], wall_strength=ls_cfg["wall_strength"], device=dev)
    names = cvs.names
    if ls_cfg["initial_temperature"] is not None:
        # S = (U − lower)/T: the WL force starts as the canonical force at T (k_B = 1) rather than zero,
        # which would let atoms fly through each other until the first deposits build up.
        k = names.index("energy")
        u = axes[k].centres().to(dev) - axes[k].lower
        shape = [1] * len(axes)
        shape[k] = -1
        land.S += (u / ls_cfg["initial_temperature"]).reshape(shape)
    biases = []
    for w in cfg["bias"]["walls"]:
        cls = QuadraticWall if w["shape"] == "quadratic" else LinearWall
        biases.append(cls(names.index(w["cv"]), w["at"], w["strength"], w["side"]))
    sc = dict(cfg["schedule"])
    kind = sc.pop("kind")
    if kind == "inverse_time":
        schedule = make_schedule(kind, F=sc["F"], t_wl=sc["t_wl"] or max(1.0, cfg["run"]["steps"] / 8))
    elif kind == "three_stage":
        schedule = make_schedule(kind, F=sc["F"], t_rise=sc["t_rise"], t_drop=sc["t_drop"], t_off=sc["t_off"])
    else:
        schedule = make_schedule(kind, f=sc["f"])
    it = cfg["integrator"]
    wlmd = WLMD(system, cvs, land, schedule, dt=it["dt"], c_f=it["c_f"], kT=it["kT"], biases=biases)
    integrator = wlmd
    if it["engine"] == "compiled" or (it["engine"] == "auto" and C.compiled_obstacle(cfg) is None):
        from .integrators.compiled import CompiledWLMD

        integrator = CompiledWLMD(wlmd)
    return Job(cfg, text, system, cvs, land, wlmd, integrator, dev, dtype)


def initial_positions(job: Job) -> torch.Tensor:
    """Deterministic starts from the run seed: N(0, 1/k) for a harmonic well, x = −1 + N(0, 0.01)
    in a double well, FIRE-quenched random clusters for LJ."""
    cfg = job.cfg
    w, seed = cfg["run"]["walkers"], cfg["run"]["seed"]
    gen = torch.Generator().manual_seed(seed)
    kind = cfg["system"]["kind"]
    if kind == "harmonic":
        q = torch.randn((w, cfg["system"]["dims"]), generator=gen, dtype=torch.float64) / math.sqrt(cfg["system"]["stiffness"])
    elif kind == "double_well":
        q = -1.0 + 0.1 * torch.randn((w, 1), generator=gen, dtype=torch.float64)
    else:
        from .systems.lennard_jones import LJCluster
        from .validation_lj import start_configurations

        q = start_configurations(LJCluster(cfg["system"]["atoms"], cfg["system"]["radius"]), w, seed)
    return q.to(job.device, job.dtype)


# ---------------------------------------------------------------- the run
class _Stop:
    def __init__(self):
        self.signal = None

    def __call__(self, signum, frame):
        self.signal = signum


def prepare_directory(out: Path, *, resume: bool, overwrite: bool) -> bool:
    """Check/create the output directory; returns True when a checkpoint is there to resume."""
    if out.exists() and not out.is_dir():
        raise JobError(f"output.directory: exists and is not a directory (got {str(out)!r})")
    has_ckpt = (out / "checkpoint.pt").exists()
    ours = [p for p in OUTPUTS if (out / p).exists()]
    if out.exists() and any(out.iterdir()) and not resume:
        if not overwrite:
            raise JobError(f"output.directory: exists and is not empty; pass --overwrite to replace it or --resume to "
                           f"continue it (got {str(out)!r})")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".physampler-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise JobError(f"output.directory: cannot be written: {e.strerror} (got {str(out)!r})") from None
    for p in out.iterdir():  # temporary files of writes cut short by SIGKILL
        if p.name.startswith(tuple(f".{o}." for o in OUTPUTS)) and p.name.endswith(".tmp"):
            p.unlink()
    if overwrite and not resume:
        for p in ours:
            (out / p).unlink()
        return False
    return resume and has_ckpt


def _state_payload(job: Job, state: WLMDState, records: int) -> dict:
    rng = state.rng.state_dict()
    return {
        "config": job.text,
        "step": state.step,
        "positions": state.positions.detach().cpu().clone(),
        "velocities": state.velocities.detach().cpu().clone(),
        "accel": state.accel.detach().cpu().clone(),
        "cv": state.cv.detach().cpu().clone(),
        "rng": rng,
        "landscape": job.landscape.state_dict(),
        "trajectory_records": records,
    }


def _restore(job: Job, ck: dict) -> tuple[WLMDState, int]:
    cfg = job.cfg
    rng = WalkerRNG(cfg["run"]["seed"], cfg["run"]["walkers"], device=job.device)
    rng.load_state_dict(ck["rng"])
    job.landscape.load_state_dict(ck["landscape"])
    d = dict(device=job.device)
    state = WLMDState(ck["positions"].to(**d), ck["velocities"].to(**d), ck["accel"].to(**d), ck["cv"].to(**d),
                      int(ck["step"]), rng)
    return state, int(ck["trajectory_records"])


def _advance(job: Job, state: WLMDState, n: int) -> WLMDState:
    if hasattr(job.integrator, "run"):
        return job.integrator.run(state, n)[0]
    step = job.integrator.step
    for _ in range(n):
        state, _ = step(state)
    return state


class Progress:
    """tqdm bar on a terminal; plain log lines (every 5 % or 30 s) otherwise."""

    def __init__(self, total: int, start: int, enabled: bool = True, stream=None):
        self.stream = stream or sys.stderr
        self.total, self.last_step, self.t0 = total, start, time.perf_counter()
        self.start = start
        self.last_log = self.t0
        self.bar = None
        self.enabled = enabled
        if enabled and self.stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, unit="step", file=self.stream, dynamic_ncols=True,
                            smoothing=0.1)

    def update(self, step: int, f_wl: float, cv: torch.Tensor) -> None:
        if not self.enabled:
            return
        lo = cv.min(dim=0).values.tolist()
        hi = cv.max(dim=0).values.tolist()
        rng = ", ".join(f"{a:.4g}..{b:.4g}" for a, b in zip(lo, hi))
        if self.bar is not None:
            self.bar.update(step - self.last_step)
            self.bar.set_postfix_str(f"f_WL={f_wl:.3g} CV {rng}", refresh=False)
        else:
            now = time.perf_counter()
            if step >= self.total or now - self.last_log >= 30 or (step - self.last_step) * 20 >= self.total:
                rate = (step - self.start) / max(now - self.t0, 1e-9)
                eta = (self.total - step) / rate if rate > 0 else float("inf")
                print(f"step {step}/{self.total} ({100 * step / self.total:.0f} %), {rate:.0f} steps/s, "
                      f"ETA {eta:.0f} s, f_WL {f_wl:.3g}, CV range {rng}", file=self.stream, flush=True)
                self.last_log = now
            else:
                return
        self.last_step = step

    def close(self):
        if self.bar is not None:
            self.bar.close()


def run(cfg: dict, text: str, out: Path, *, resume: bool = False, overwrite: bool = False,
        progress: bool = True, log=print) -> int:
    """Run (or resume) the job; returns the process exit status (0, or 130/143 when interrupted)."""
    from .io import atomic_write

    job = build(cfg, text)  # before touching the disk: a bad config writes nothing
    resuming = prepare_directory(out, resume=resume, overwrite=overwrite)
    ck = None
    if resuming:
        ck = load_checkpoint(out / "checkpoint.pt")
        check_resume_config(cfg, ck["config"])

    atomic_write(out / "config.toml", lambda tmp: Path(tmp).write_text(text))
    total = cfg["run"]["steps"]
    rep = cfg["output"]["report_interval"]
    ckpt = cfg["output"]["checkpoint_interval"]
    walkers = list(range(cfg["run"]["walkers"]))
    steps_rec: list[int] = []
    vals_rec: list[np.ndarray] = []
    if ck is not None:
        state, records = _restore(job, ck)
        if (out / "trajectory.nc").exists():
            tr = read_trajectory(out / "trajectory.nc")
            steps_rec = [int(s) for s in tr["step"].values[:records]]
            vals_rec = [np.stack([tr[n].values[i] for n in job.cvs.names], axis=-1) for i in range(min(records, tr.sizes["time"]))]
        log(f"resuming {out} at step {state.step} of {total}")
    else:
        state = job.integrator.init(initial_positions(job), WalkerRNG(cfg["run"]["seed"], walkers, device=job.device))
    if state.step > total:
        raise JobError(f"run.steps: the checkpoint is already at step {state.step} (got {total})")

    def write_all(final: bool):
        names = job.cvs.names
        write_trajectory(out / "trajectory.nc", np.array(steps_rec, dtype=np.int64),
                         np.stack(vals_rec) if vals_rec else np.zeros((0, len(walkers), len(names))), names,
                         [c.units for c in job.cvs], walkers, attrs={"seed": cfg["run"]["seed"]})
        attrs = {"config": text, "seed": cfg["run"]["seed"], "walkers": len(walkers), "steps_done": state.step,
                 "f_wl_final": float(job.wlmd.schedule(state.step)), "flatness_min_max": list(job.landscape.flatness()),
                 "complete": int(final)}
        if cfg["output"]["temperatures"]:
            attrs["temperatures"] = cfg["output"]["temperatures"]
        write_landscape(out / "landscape.nc", job.landscape, attrs=attrs)
        save_checkpoint(out / "checkpoint.pt", _state_payload(job, state, len(steps_rec)))

    stop = _Stop()
    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    bar = Progress(total, state.step, progress)
    try:
        while state.step < total:
            n = min(rep - state.step % rep, total - state.step)
            state = _advance(job, state, n)
            if state.step % rep == 0 or state.step == total:
                steps_rec.append(state.step)
                vals_rec.append(state.cv.detach().to("cpu", torch.float64).numpy().copy())
            bar.update(state.step, float(job.wlmd.schedule(state.step)), state.cv.detach().cpu())
            if stop.signal is not None:
                write_all(False)
                name = signal.Signals(stop.signal).name
                log(f"{name} at step {state.step}: checkpoint written to {out / 'checkpoint.pt'}; continue with --resume")
                return 128 + stop.signal
            if state.step % ckpt == 0 and state.step < total:
                write_all(False)
    finally:
        bar.close()
        for s, h in old.items():
            signal.signal(s, h)
    write_all(True)
    if cfg["output"]["plot"]:
        from .plotting import plot_landscape

        plot_landscape(out / "landscape.nc", out / "landscape.png", trajectory=out / "trajectory.nc")
    log(f"done: {state.step} steps x {len(walkers)} walkers; wrote {', '.join(p for p in OUTPUTS if (out / p).exists())} "
        f"in {out}")
    return 0


def check_resume_config(cfg: dict, checkpoint_text: str) -> None:
    """Refuse to resume under a config that differs from the checkpoint's (run.steps may grow;
    output.directory and run.device may change)."""
    try:
        old = C.parse(checkpoint_text)
    except C.ConfigError as e:
        raise JobError(f"--resume: the checkpoint's own config no longer parses: {e}") from None
    keys = C.diff(cfg, old)
    if keys:
        raise JobError(f"--resume: the config differs from the checkpoint's in {', '.join(keys)}; run it in a new "
                       f"directory or restore the original config (got {len(keys)} differing keys)")
