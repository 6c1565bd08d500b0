"""WLMD on N-dimensional harmonic wells against the exact S(U) = (N/2 − 1) ln U + c.

Same runs as ``physampler validate harmonic`` (256 walkers × 60 000 steps for N = 2, 4
and 120 000 for N = 10, seed 2026; 30–60 s per well on one core).  The N = 10 well needs
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

from physampler.analysis import canonical
from physampler.validation import HARMONIC_CASES, run_harmonic


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
