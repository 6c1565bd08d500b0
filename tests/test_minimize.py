"""FIRE minimisation and inherent structures; free-energy profiles and peak finding."""
import numpy as np
import pytest
import torch

from physampler.analysis import free_energy_profile, peak
from physampler.minimize import fire, inherent_structures
from physampler.systems import HarmonicWell
from physampler.systems.lennard_jones import GLOBAL_MINIMA, LJCluster, icosahedron13, random_cluster


def test_fire_finds_lj13_icosahedron_and_lj7_minimum():
    lj = LJCluster(13, 3.0)
    rng = np.random.default_rng(0)
    x = torch.tensor(icosahedron13(1.2)[None] + rng.normal(0, 0.05, (3, 13, 3)))
    m = fire(lj, x, fmax=1e-8)
    assert bool(m.converged.all())
    # Cambridge Cluster Database: −44.326801 (6 decimals given)
    assert np.allclose(m.energy.numpy(), GLOBAL_MINIMA[13], atol=1e-6)
    # LJ7 pentagonal bipyramid −16.505384 from random starts; other minima (−15.935) are legitimate outcomes.
    lj7 = LJCluster(7, 3.0)
    x7 = torch.tensor(np.stack([random_cluster(7, 1.2, rng) for _ in range(8)]))
    e7 = fire(lj7, x7, fmax=1e-8).energy
    found = inherent_structures(e7, tol=1e-6)
    assert found[0].energy == pytest.approx(-16.505384, abs=1e-6)
    assert sum(s.count for s in found) == 8


def test_fire_batched_walkers_are_independent():
    lj = LJCluster(13, 3.0)
    rng = np.random.default_rng(1)
    x = torch.tensor(np.stack([random_cluster(13, 1.5, rng) for _ in range(3)]))
    both = fire(lj, x, fmax=1e-6)
    for w in range(3):
        one = fire(lj, x[w : w + 1], fmax=1e-6)
        assert float(one.energy[0]) == pytest.approx(float(both.energy[w]), abs=1e-9)


def test_fire_on_harmonic_well_reaches_origin():
    m = fire(HarmonicWell([1.0, 4.0, 9.0]), torch.tensor([[1.0, -2.0, 0.5]], dtype=torch.float64), fmax=1e-10)
    assert bool(m.converged[0]) and float(m.positions.abs().max()) < 1e-9
    with pytest.raises(ValueError, match="fmax"):
        fire(HarmonicWell([1.0]), torch.zeros(1, 1, dtype=torch.float64), fmax=0.0)


def test_inherent_structures_groups_within_tolerance():
    out = inherent_structures([-1.0, -2.0, -1.0 + 1e-8, -2.0 - 2e-7, -0.5], tol=1e-6)
    assert [(round(s.energy, 5), s.count) for s in out] == [(-2.0, 2), (-1.0, 2), (-0.5, 1)]


def test_free_energy_profile_of_separable_entropy():
    """S(U, y) = a(U) + b(y) gives F(y) = −T·b(y) + const at any T."""
    u = np.linspace(-5, 5, 41)
    y = np.linspace(0, 1, 11)
    b = 3.0 * np.sin(3 * y)
    s = (0.5 * u**2 / 10)[:, None] + b[None, :]
    s[:, 3] = np.nan  # unvisited column
    f = free_energy_profile(u, y, s, 0.7)
    expect = -0.7 * b
    ok = np.isfinite(f)
    assert np.isnan(f[3]) and ok.sum() == 10
    assert np.allclose(f[ok] - f[ok].min(), expect[ok] - expect[ok].min(), atol=1e-12)


def test_peak_refines_a_parabola():
    t = np.linspace(0.1, 0.5, 9)
    c = 10 - 50 * (t - 0.2873) ** 2
    pt, ph = peak(t, c)
    assert pt == pytest.approx(0.2873, abs=1e-12) and ph == pytest.approx(10.0, abs=1e-12)
