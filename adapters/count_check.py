"""``physampler validate nn-count``: a 2-D network landscape against a count with no dynamics.

Inside a reflective box |θ_i| ≤ c/√m (docs/science.md §5) the density of states of the CVs
ξ = (ln L_train, Ã_test) is the distribution of ξ(θ) for θ uniform in the box, so the number
of uniform draws falling in bin b, h_b, is proportional to the bin's volume ∫_b g dξ.  The
count is an independent Monte Carlo estimate (no forces, no integrator, no deposits).

What is compared.  The walkers feel −∇Φ, Φ the spline of S whose gradient the engine
interpolates (:meth:`physampler.Grid.potential`), so a converged landscape has g ∝ e^Φ, and
the landscape's own estimate of a bin's volume is V_b = ln mean_b e^Φ
(:meth:`physampler.Grid.bin_log_volume`).  V_b, not S at the bin centre, is what h_b
measures: where ln g is curved on the scale of a bin the two differ (measured on this system,
2026-12-03, over the compared bins: S rms 0.023, up to 0.077; V rms 0.012, up to 0.029; the
seed spread is 0.007, so S at the centres would fail the check).  Compared are the bins
with ≥ MIN_DRAWS draws at least EDGE_RINGS = 2 bins from every grid edge: in the two outer
rings the walls bias S (walkers beyond an edge deposit nothing; measured up to 0.1 there, and
z = 4.0 with one ring excluded), each seed after its best offset (the mean difference).

Tolerance (derived, not tuned).  For seed s and bin b the difference d_sb = V_sb − ln h_b − c_s
has two parts: the Wang–Landau error, different for every seed, and the count's error, shared
by all seeds, of variance ≈ 1/h_b (Poisson).  The seed spread measures the first:
σ²_WL = the pooled variance over seeds of d_sb (mean over bins of each bin's variance over
seeds; the shared count term cancels in it).  Under the hypothesis V = ln(bin volume) + const,
z_sb = d_sb / √(σ²_WL + 1/h_b) is of order one, and the check asks |z_sb| ≤ Z_MAX = 4 in every
compared bin of every seed (for ≈ 150 comparisons a Gaussian exceeds 4 with probability
≈ 1 %; a systematic error, which the seed spread cannot see, shows up as a large z).  It also
asks σ_WL ≤ SPREAD_MAX, so that a landscape too noisy to say anything cannot pass on its own
error bars.  Controls that must fail: S scaled by 1.2 (a 20 % error in the deposit height or
the temperature) and the count of another box (c = 2.5: another g).

System and run: the MLP of ``tests/test_nn_landscape.py`` (one-hot x, y → 4 tanh units → 5
logits, 69 parameters) on x + y mod 5 (12 training, 13 test pairs), smoothed accuracy with
sharpness k = 1 (with k = 2 the distribution of Ã has cusps inside a bin: kinks of 40 % between
neighbouring fine bins), on the central part of the draws' distribution (ln L 0.6–1.4, Ã
0.18–0.36, 12 × 10 bins: on coarser bins over the whole support V deviated by up to 0.3).
The schedule ends at f_WL = F/32: with t_WL = steps/10 the landscape froze with errors of 0.1–0.3
shared by all seeds (the walkers' decorrelation in θ is slow, and f_WL·τ sets the lag), and
three times the steps at the same ratio did not help.
"""
from __future__ import annotations

import math
import time
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

NAMES = ("log_train_loss", "smoothed_accuracy")
LOWER = (0.6, 0.18)
UPPER = (1.4, 0.36)
BINS = (12, 10)
BOX_C = 3.0
OTHER_BOX_C = 2.5  # the control's box
SHARPNESS = 1.0
MIN_DRAWS = 100
EDGE_RINGS = 2  # bins this close to a grid edge are not compared (the walls' region, module docstring)
Z_MAX = 4.0
SPREAD_MAX = 0.15  # the largest seed spread σ_WL accepted (a 15 % error in the volume of a bin)
DRAWS = 1_000_000
WALKERS = 512
STEPS = 32000
T_WL_FRACTION = 1 / 32  # t_WL = STEPS/32: final f_WL = F/32 ≈ 0.01, fill F·t_WL·(½ + ln 32) ≈ 1.2e3
SEEDS = (1, 2, 3)


def count_system(dtype=torch.float64):
    """The network, its data and its CVs' settings (module docstring)."""
    from .torch_module import ModuleSystem
    from ..models.mlp import ModularMLP
    from ..models.tasks import ModularTask

    task = ModularTask("x+y", 5, train_fraction=0.5, split_seed=0)
    net = ModularMLP(5, hidden=4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return ModuleSystem(net, *task.split(), dtype=dtype, sharpness=SHARPNESS)


def uniform_count(system, *, c: float = BOX_C, draws: int = DRAWS, seed: int = 1, chunk: int = 50_000) -> np.ndarray:
    """h_b: the histogram on the check's grid of ξ(θ) for ``draws`` θ uniform in the box of ``c``."""
    from .torch_module import ModuleCVSet

    bounds = system.box_bounds(c)
    cv = ModuleCVSet(system, list(NAMES))
    g = torch.Generator().manual_seed(seed)
    xs = [cv.values((torch.rand(min(chunk, draws - k), system.shape[0], generator=g, dtype=bounds.dtype) * 2 - 1)
                    * bounds) for k in range(0, draws, chunk)]
    x = torch.cat(xs).to(torch.float64).numpy()
    return np.histogramdd(x, bins=BINS, range=list(zip(LOWER, UPPER)))[0]


def wlmd_entropy(system, seed: int, *, walkers: int = WALKERS, steps: int = STEPS) -> np.ndarray:
    """S on the check's grid from one WLMD run in the box: F = 0.3, t_WL = steps/32, σ = one bin,
    dt = c_f = 0.02, kT = 1 (the 1-D check's settings, tests/test_nn_landscape.py, but a later
    t_WL: module docstring)."""
    from .. import WLMD, Axis, InverseTime, Landscape, ReflectiveBox, WalkerRNG
    from .torch_module import ModuleCVSet

    land = Landscape([Axis(n, lo, hi, bins=b) for n, lo, hi, b in zip(NAMES, LOWER, UPPER, BINS)], sigma=1.0,
                     out_of_range="wall")
    bounds = system.box_bounds(BOX_C)
    w = WLMD(system, ModuleCVSet(system, list(NAMES)), land, InverseTime(F=0.3, t_wl=max(round(steps * T_WL_FRACTION), 1)),
             dt=0.02, c_f=0.02, kT=1.0, constraints=[ReflectiveBox(bounds)])
    st = w.init(system.initial_positions(walkers), WalkerRNG(seed, walkers))
    for _ in range(steps):
        st, _ = w.step(st)
    if not bool((st.positions.abs() <= bounds).all()):
        raise AssertionError("a walker left the box")  # the constraint's contract, not a statistical check
    return land.S.numpy().copy()


def bin_log_volumes(entropies: np.ndarray) -> np.ndarray:
    """ln of the mean of e^Φ over each bin, Φ the potential the walkers feel (Grid.potential), of
    each seed's S: [seeds, *BINS] → the same (module docstring)."""
    from .. import Axis, Grid

    grid = Grid([Axis(n, lo, hi, bins=b) for n, lo, hi, b in zip(NAMES, LOWER, UPPER, BINS)])
    return np.stack([grid.bin_log_volume(torch.as_tensor(s, dtype=torch.float64)).numpy() for s in entropies])


def compared_bins(counts: np.ndarray) -> np.ndarray:
    """Bins with ≥ MIN_DRAWS draws, at least EDGE_RINGS bins from every grid edge."""
    inner = np.zeros(counts.shape, dtype=bool)
    inner[(slice(EDGE_RINGS, -EDGE_RINGS),) * counts.ndim] = True
    return inner & (counts >= MIN_DRAWS)


def deviations(volumes: np.ndarray, counts: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """d_sb = V_sb − ln h_b − c_s over the compared bins, c_s each seed's mean difference: [seeds, n]."""
    d = np.asarray(volumes)[:, mask] - np.log(counts[mask])[None, :]
    return d - d.mean(axis=1, keepdims=True)


@dataclass
class CountCheck:
    """The comparison of S (one row per seed) with ln h (module docstring)."""

    seeds: tuple
    compared: int  # bins compared (compared_bins)
    spread: float  # σ_WL: pooled seed spread of S
    rms: np.ndarray  # per seed, of d_sb
    max_abs: np.ndarray  # per seed, of d_sb
    z_max: float  # max over seeds and bins of |d_sb| / √(σ²_WL + 1/h_b)
    where: tuple  # (seed, ξ) of that maximum
    controls: dict  # name → z_max of the control, each must exceed Z_MAX
    wall_time: float = 0.0

    @property
    def passed(self) -> bool:
        return self.z_max <= Z_MAX and self.spread <= SPREAD_MAX and all(z > Z_MAX for z in self.controls.values())


def _z(entropies, counts, mask, spread=None):
    d = deviations(entropies, counts, mask)
    if spread is None:
        spread = math.sqrt(float(np.mean(np.var(d, axis=0, ddof=1))))
    z = np.abs(d) / np.sqrt(spread**2 + 1.0 / counts[mask])[None, :]
    return d, z, spread


def compare_counts(entropies, counts: np.ndarray, other_counts: np.ndarray, seeds=SEEDS) -> CountCheck:
    """The check of ``entropies`` [seeds, *BINS] against ``counts`` (and the controls: 1.2·S, and
    the count ``other_counts`` of another box), with the tolerance of the module docstring."""
    entropies = np.asarray(entropies, dtype=np.float64)
    if entropies.shape[0] < 2:
        raise ValueError("entropies: need at least two seeds for the seed spread")
    mask = compared_bins(counts)
    volumes = bin_log_volumes(entropies)
    d, z, spread = _z(volumes, counts, mask)
    k = np.unravel_index(int(np.argmax(z)), z.shape)
    centres = [lo + (np.arange(b) + 0.5) * (hi - lo) / b for lo, hi, b in zip(LOWER, UPPER, BINS)]
    idx = np.argwhere(mask)[k[1]]
    where = (seeds[k[0]], tuple(float(c[i]) for c, i in zip(centres, idx)))
    other = mask & (other_counts >= MIN_DRAWS)
    controls = {"S x 1.2": float(_z(bin_log_volumes(1.2 * entropies), counts, mask, spread)[1].max()),
                f"count of the box c = {OTHER_BOX_C}": float(_z(volumes, other_counts, other, spread)[1].max())}
    return CountCheck(tuple(seeds), int(mask.sum()), spread, np.sqrt((d**2).mean(axis=1)), np.abs(d).max(axis=1),
                      float(z.max()), where, controls)


def _seed_run(seed: int, walkers: int, steps: int) -> np.ndarray:
    torch.set_num_threads(1)
    return wlmd_entropy(count_system(), seed, walkers=walkers, steps=steps)


def run_count_check(*, seeds=SEEDS, walkers: int = WALKERS, steps: int = STEPS, draws: int = DRAWS,
                    threads: int = 2) -> CountCheck:
    """The counts and one WLMD run per seed, ``threads`` processes at a time with one torch thread
    each (the step is many small operations: threads of one process would queue on the GIL)."""
    t0 = time.perf_counter()
    system = count_system()
    with ProcessPoolExecutor(max_workers=threads, mp_context=multiprocessing.get_context("spawn")) as ex:
        jobs = [ex.submit(_seed_run, s, walkers, steps) for s in seeds]
        counts = uniform_count(system, draws=draws)
        other = uniform_count(system, c=OTHER_BOX_C, draws=draws)
        entropies = np.stack([j.result() for j in jobs])
    r = compare_counts(entropies, counts, other, seeds)
    r.wall_time = time.perf_counter() - t0
    return r


def _arguments(p) -> None:
    from ..cli import non_negative_int, positive_int

    p.add_argument("--seeds", type=non_negative_int, nargs="+", default=list(SEEDS), metavar="SEED",
                   help="WLMD seeds, >= 2 for the seed spread (default %(default)s)")
    p.add_argument("--walkers", type=positive_int, default=WALKERS, help="walkers per run (default %(default)s)")
    p.add_argument("--steps", type=positive_int, default=STEPS, help="WLMD steps per run (default %(default)s)")
    p.add_argument("--draws", type=positive_int, default=DRAWS, help="uniform draws of the count (default %(default)s)")
    p.add_argument("--threads", type=positive_int, default=2, help="runs in parallel (default %(default)s)")


def _run(args) -> int:
    import sys

    if len(set(args.seeds)) < 2:
        print(f"physampler: error: --seeds: need at least two different seeds (got {args.seeds})", file=sys.stderr)
        return 2
    print(f"WLMD S({', '.join(NAMES)}) of a 69-parameter MLP on x+y mod 5 in the box c = {BOX_C} against the "
          f"log-count of {args.draws} uniform draws; {len(args.seeds)} seeds x {args.walkers} walkers x "
          f"{args.steps} steps", flush=True)
    r = run_count_check(seeds=tuple(args.seeds), walkers=args.walkers, steps=args.steps, draws=args.draws,
                        threads=args.threads)
    print(f"{r.compared} bins compared (>= {MIN_DRAWS} draws, >= {EDGE_RINGS} bins from the edges); bin log-volumes "
          f"V of S against ln h; seed spread sigma_WL = {r.spread:.3f} "
          f"(limit {SPREAD_MAX}); {r.wall_time:.0f} s")
    for s, rms, mx in zip(r.seeds, r.rms, r.max_abs):
        print(f"  seed {s}: rms |V - ln h| {rms:.3f}, max {mx:.3f}")
    print(f"  max |z| {r.z_max:.2f} at seed {r.where[0]}, xi = {tuple(round(x, 3) for x in r.where[1])}   "
          f"limit {Z_MAX}   {'PASS' if r.z_max <= Z_MAX else 'FAIL'}")
    for name, z in r.controls.items():
        print(f"  control {name}: max |z| {z:.1f}   must exceed {Z_MAX}   {'PASS' if z > Z_MAX else 'FAIL'}")
    return 0 if r.passed else 1


def register() -> None:
    from ..registry import ValidationKind, register_validation

    register_validation(ValidationKind(
        "nn-count", "a 2-D network landscape S(ln L_train, A_test) in a box vs the log-count of uniform draws",
        _arguments, _run))
