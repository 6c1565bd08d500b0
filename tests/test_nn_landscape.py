"""WLMD landscapes of a small network: two seeds agree, and both equal an independent count.

System: the MLP (hidden 4, 69 parameters) on x + y mod 5 (12 training pairs), CV
ξ = ln L_train on [0.2, 1.8] in 32 bins, reflective box |θ| ≤ 3/√m (docs/science.md §5).
Inside a box, the density of states of ξ is the distribution of ξ(θ) for θ drawn
uniformly in the box, so S(ξ) = ln g(ξ) + c can be checked against a histogram of
10⁶ uniform draws (an independent Monte Carlo count, no dynamics involved); bins
with ≥ 1 000 draws are compared, where the count's own error in ln h is ≤ 0.03.

Tolerances, from four seeds (1–4) of this exact run (256 walkers × 8 000 steps,
F = 0.3, t_WL = 800, final f_WL ≈ 0.03), after removing each landscape's best
offset: the rms of S − ln h over the 26 compared bins was 0.040–0.077 (largest single
bin 0.19), and two seeds differed by at most 0.31 in any bin (6 pairs; rms of a
difference 0.06–0.13).  The test asks rms ≤ 0.12 against the count and max |ΔS| ≤ 0.45
between the seeds.  Controls that it can fail: S scaled by 1.2 (a 20 % error in the
deposit height or temperature; rms ≥ 0.23 in the four seeds) and the count for a
box of c = 2.5 instead of 3 (another g; rms ≈ 1.0).
"""
import functools

import numpy as np
import pytest
import torch

from physampler import WLMD, Axis, InverseTime, Landscape, ReflectiveBox, WalkerRNG
from physampler.adapters.torch_module import ModuleCVSet, ModuleSystem
from physampler.models.mlp import ModularMLP
from physampler.models.tasks import ModularTask

LOWER, UPPER, BINS = 0.2, 1.8, 32


def system(dtype=torch.float64):
    task = ModularTask("x+y", 5, train_fraction=0.5, split_seed=0)
    net = ModularMLP(5, hidden=4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return ModuleSystem(net, *task.split(), dtype=dtype)


@functools.lru_cache(maxsize=None)
def cached(kind: str, *args):
    """The count (``"count"``, c) or a landscape (``"wlmd"``, seed, dtype name), computed once per
    worker: both tests below run in one (xdist_group)."""
    if kind == "count":
        return uniform_count(system(), *args)
    seed, dtype = args
    return wlmd_landscape(system(getattr(torch, dtype)), seed)


def uniform_count(sys_, c=3.0, draws=1_000_000):
    """Histogram of ln L_train over θ uniform in the box |θ| ≤ c/√m (independent of WLMD)."""
    bounds = sys_.box_bounds(c)
    cv = ModuleCVSet(sys_, ["log_train_loss"])
    g = torch.Generator().manual_seed(1)
    xs = [cv.values((torch.rand(50_000, sys_.shape[0], generator=g, dtype=torch.float64) * 2 - 1) * bounds)[:, 0]
          for _ in range(draws // 50_000)]
    return np.histogram(torch.cat(xs).numpy(), bins=BINS, range=(LOWER, UPPER))[0]


def wlmd_landscape(sys_, seed, walkers=256, steps=8000):
    land = Landscape([Axis("log_train_loss", LOWER, UPPER, bins=BINS)], sigma=1.0, out_of_range="wall")
    bounds = sys_.box_bounds()
    w = WLMD(sys_, ModuleCVSet(sys_, ["log_train_loss"]), land, InverseTime(F=0.3, t_wl=steps // 10),
             dt=0.02, c_f=0.02, kT=1.0, constraints=[ReflectiveBox(bounds)])
    st = w.init(sys_.initial_positions(walkers), WalkerRNG(seed, walkers))
    for _ in range(steps):
        st, _ = w.step(st)
    assert bool((st.positions.abs() <= bounds).all())
    return land.S.numpy().copy()


def rms_dev(a, b, mask):
    d = (a - b)[mask]
    return float(np.sqrt(((d - d.mean()) ** 2).mean()))


def max_dev(a, b, mask):
    d = (a - b)[mask]
    return float(np.abs(d - d.mean()).max())


@pytest.mark.slow
@pytest.mark.xdist_group("nn_landscape")
def test_two_seeds_agree_and_match_the_uniform_count():
    h = cached("count", 3.0)
    ok = h >= 1000
    assert ok.sum() >= 25  # the comparison spans most of the grid
    ln_h = np.log(np.maximum(h, 1))
    s1, s2 = cached("wlmd", 1, "float64"), cached("wlmd", 2, "float64")
    assert max_dev(s1, s2, np.ones(BINS, dtype=bool)) <= 0.45
    assert rms_dev(s1, ln_h, ok) <= 0.12
    assert rms_dev(s2, ln_h, ok) <= 0.12
    # Controls: a 20 % error in S, or another box's g, would be caught.
    assert rms_dev(1.2 * s1, ln_h, ok) > 0.12
    h25 = cached("count", 2.5)
    ok25 = ok & (h25 >= 1000)
    assert rms_dev(s1, np.log(np.maximum(h25, 1)), ok25) > 0.5


@pytest.mark.slow
@pytest.mark.xdist_group("nn_landscape")
def test_float32_parameters_leave_the_landscape_unchanged_within_its_statistics():
    """The same run with float32 parameters and data (the landscape stays float64), which the
    CPU- and GPU-sized network examples use: against the float64 count it meets the same
    rms ≤ 0.12, and against the float64 run of the same seed (seed 1, shared with the test above)
    the seed-pair bound 0.45 (both tolerances from the module docstring: float32 round-off,
    ≈ 1e-7 relative per step, is far below the statistical error of S).  Control: as above, S
    scaled by 1.2 fails."""
    h = cached("count", 3.0)
    ok = h >= 1000
    ln_h = np.log(np.maximum(h, 1))
    s32 = cached("wlmd", 1, "float32")
    s64 = cached("wlmd", 1, "float64")
    assert rms_dev(s32, ln_h, ok) <= 0.12
    assert max_dev(s32, s64, np.ones(BINS, dtype=bool)) <= 0.45
    assert rms_dev(1.2 * s32, ln_h, ok) > 0.12


def test_the_2d_count_check_passes_an_exact_landscape_and_fails_a_biased_one(capsys):
    """The statistics of ``physampler validate nn-count`` (adapters/count_check.py) on synthetic
    landscapes with known answers, and its command line.  Three seeds of S = ln g + noise of
    0.03 (independent per seed and bin) against a count of h ~ Poisson(g): the z statistic
    (|d| / √(σ_WL² + 1/h)) stays ≤ 4 and the seed spread recovers the noise (3/8 of 0.03 after
    the bin volumes' smoothing); a landscape with a
    smooth systematic error of 0.2 (which the seeds share, so the spread cannot absorb it),
    S scaled by 1.2 (the built-in control) and a count of another g must each fail.  The
    validation itself (WLMD against 10⁶ uniform draws) runs for minutes and is recorded in
    benchmarks/RESULTS.md, not here."""
    from physampler import cli
    from physampler.adapters import count_check as cc

    rng = np.random.default_rng(0)
    x, y = np.meshgrid(np.linspace(-1, 1, cc.BINS[0]), np.linspace(-1, 1, cc.BINS[1]), indexing="ij")
    ln_g = 10.0 - 2.0 * x**2 - 3.0 * y**2 + 0.5 * x * y
    # the count of the g whose landscape is ln_g: Poisson in the bin volumes e^V (V: bin_log_volumes)
    h = rng.poisson(np.exp(cc.bin_log_volumes(ln_g[None])[0])).astype(float)
    other = rng.poisson(np.exp(cc.bin_log_volumes((10.0 - 3.0 * x**2 - 2.0 * y**2)[None])[0])).astype(float)
    s = ln_g[None] + 0.03 * rng.standard_normal((3, *cc.BINS))
    r = cc.compare_counts(s, h, other)
    assert r.compared == int(cc.compared_bins(h).sum()) > 40
    # the bin volumes smooth S by [1, 2, 1]/4 on each axis: Σw² = (6/16)² in 2-D, so the noise std shrinks by 3/8
    assert abs(r.spread - 0.03 * 3 / 8) < 0.003 and r.z_max <= cc.Z_MAX and r.passed, r
    assert all(z > cc.Z_MAX for z in r.controls.values()), r.controls
    biased = s + 0.2 * np.sin(3 * x)[None]
    assert not cc.compare_counts(biased, h, other).passed
    noisy = ln_g[None] + 0.3 * rng.standard_normal((3, *cc.BINS))  # spread above SPREAD_MAX: says nothing
    assert not cc.compare_counts(noisy, h, other).passed

    assert cli.main(["validate", "nn-count", "--seeds", "1", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--seeds" in err
