"""Canonical reweighting and equilibrium curves."""
import numpy as np
import pytest

from physampler.analysis import canonical, equilibrium_curves


@pytest.mark.parametrize("n", [2, 4, 10])
@pytest.mark.parametrize("T", [0.5, 1.0, 2.0])
def test_reweighting_exact_harmonic_entropy(n, T):
    # Midpoint sums on bins of w = 1e-3 over [0, 80 T]: relative error ~ w^2/(24 T^2) < 2e-7,
    # truncation ~ exp(-80) — both far below the 1e-6 asked for.
    w = 1e-3 * T
    u = (np.arange(int(80 * T / w)) + 0.5) * w
    s = (n / 2 - 1) * np.log(u)
    c = canonical(u, s, [T], kinetic_dof=0)
    assert c.mean_energy[0] == pytest.approx(n * T / 2, rel=1e-6)
    assert c.heat_capacity[0] == pytest.approx(n / 2, rel=1e-6)
    ck = canonical(u, s, [T], kinetic_dof=n)
    assert ck.heat_capacity[0] == pytest.approx(n, rel=1e-6)


def test_reweighting_ignores_unvisited_and_is_shift_invariant():
    u = np.linspace(0.05, 20, 400)
    s = np.log(u)
    a = canonical(u, s, [1.0, 2.0])
    b = canonical(u, s + 123.0, [1.0, 2.0])
    assert np.allclose(a.mean_energy, b.mean_energy) and np.allclose(a.log_z + 123.0, b.log_z)
    s2 = s.copy()
    s2[-50:] = np.nan  # tail U > 17.5 unvisited: mass 18.5 e^-17.5 = 4.6e-7 at T = 1
    c = canonical(u, s2, [1.0])
    # dropping it moves <U> ~ 2 by about 4.6e-7 * 17.5 = 8e-6 (relative 4e-6)
    assert c.mean_energy[0] == pytest.approx(a.mean_energy[0], rel=1e-5)
    assert c.mean_energy[0] != a.mean_energy[0]
    with pytest.raises(ValueError, match="temperatures: must be finite and > 0"):
        canonical(u, s, [0.0])


def test_equilibrium_curves():
    x = np.linspace(0, 1, 11)
    y = np.linspace(-2, 2, 401)
    X, Y = np.meshgrid(x, y, indexing="ij")
    ystar = 0.5 * x - 0.2
    s = -((Y - ystar[:, None]) ** 2) / (2 * 0.1**2)  # Gaussian in y around y*(x)
    s[3, :] = np.nan
    curves = equilibrium_curves(x, y, s)
    ok = ~np.isnan(curves.argmax)
    assert np.isnan(curves.argmax[3]) and ok.sum() == 10
    assert np.allclose(curves.argmax[ok], ystar[ok], atol=0.005)  # grid spacing 0.01
    assert np.allclose(curves.mean[ok], ystar[ok], atol=1e-6)  # symmetric Gaussian, far from edges
