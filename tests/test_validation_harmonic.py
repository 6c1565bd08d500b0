"""WLMD on N-dimensional harmonic wells against the exact S(U) = (N/2 − 1) ln U + c.

Same runs as ``physampler validate harmonic`` (256 walkers × 60 000 steps for N = 2, 4
and 120 000 for N = 10, seed 2026; 4–18 s per well on one core on the compiled engine, which
follows the torch engine to round-off: the first test below).  The N = 10 well needs
the longer run since its walls act only through the wall term outside the grid
(``Landscape.gradient``): its low-U end, the smallest volume, fills last.  Tolerances: the issue's 0.1 on S and ±20 % on the
histogram; measured here the deviations are 0.03–0.08 (statistical error of S after
f_WL has decayed to ≈ 1.7e-2, estimated from the seed-to-seed spread), so a wrong
deposit height, kernel, force sign or thermostat (each an O(1) error in the slope)
fails.  Canonical ⟨U⟩ and C_V from the sampled S must be within 2 %; the grid's own
truncation/binning bias, measured below on the exact S, is < 0.6 %.
"""
import numpy as np
import pytest
import torch

from physampler import WLMD, Axis, InverseTime, Landscape, QuadraticWall, WalkerRNG
from physampler.analysis import canonical
from physampler.cvs import PotentialEnergy
from physampler.integrators.compiled import CompiledWLMD
from physampler.systems import HarmonicWell
from physampler.validation import HARMONIC_CASES, run_harmonic


@pytest.mark.parametrize("splitting", ["ktd", "baoab"])
def test_compiled_harmonic_wlmd_follows_the_torch_engine(splitting):
    """The numba block loop on an anisotropic 6-D well (a wall bias, walls at the grid edges)
    equals the torch engine after 40 steps to 1e-12 (measured 1e-15: round-off grows
    chaotically, ≈ 1e-10 by step 300), H exactly; blocks of 15 + 25 steps equal one of 40.
    Control: stiffness changed by 1e-6 in one coordinate moves the positions by > 1e-9."""
    def make(k):
        s = HarmonicWell([1.0, 1.5, 2.0, 0.5, 1.0, 3.0 + k])
        land = Landscape([Axis("energy", 0.1, 20.0, bins=80)], sigma=1.0, out_of_range="wall", wall_strength=2.0)
        return WLMD(s, PotentialEnergy(s), land, InverseTime(0.5, 50), dt=0.02, c_f=0.02, kT=1.0, splitting=splitting,
                    biases=[QuadraticWall(0, 6.0, 0.5, side="upper")])

    x0 = torch.randn(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ref = make(0.0)
    s = ref.init(x0, WalkerRNG(5, 3))
    for _ in range(40):
        s, _ = ref.step(s)
    results = []
    for k, blocks in ((0.0, (40,)), (0.0, (15, 25)), (1e-6, (40,))):
        c = CompiledWLMD(make(k))
        t = c.init(x0, WalkerRNG(5, 3))
        for b in blocks:
            t, _ = c.run(t, b)
        results.append((t, c.landscape))
    (t, land), (t2, land2), (tk, _) = results
    assert float((t.positions - s.positions).abs().max()) <= 1e-12
    assert float((t.velocities - s.velocities).abs().max()) <= 1e-12
    assert float((land.S - ref.landscape.S).abs().max()) <= 1e-12 and torch.equal(land.H, ref.landscape.H)
    assert torch.equal(t2.positions, t.positions) and torch.equal(land2.S, land.S)
    assert float((tk.positions - s.positions).abs().max()) > 1e-9


@pytest.mark.parametrize("n", [2, 4, 10])
def test_grid_bias_of_validation_cases_is_small(n):
    c = HARMONIC_CASES[n]
    w = (c.upper - c.lower) / c.bins
    u = c.lower + (np.arange(c.bins) + 0.5) * w
    can = canonical(u, (n / 2 - 1) * np.log(u), [c.temperature])
    assert abs(can.mean_energy[0] / (n * c.temperature / 2) - 1) < 0.006
    assert abs(can.heat_capacity[0] / (n / 2) - 1) < 0.006


@pytest.mark.slow
@pytest.mark.parametrize("n", [2, 4, 10])
def test_wlmd_harmonic_well_entropy(n):
    r = run_harmonic(n, walkers=256, seed=2026)
    assert r.max_deviation <= 0.1, r.max_deviation
    assert 0.8 <= r.flat_min and r.flat_max <= 1.2, (r.flat_min, r.flat_max)
    assert abs(r.slope - r.exact_slope) <= max(0.05, 0.02 * r.exact_slope), r.slope
    assert r.mean_energy == pytest.approx(r.exact_mean_energy, rel=0.02)
    assert r.heat_capacity == pytest.approx(r.exact_heat_capacity, rel=0.02)
    assert r.passed
