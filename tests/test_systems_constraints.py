"""Analytic systems (forces vs autograd, exact densities of states), schedules, constraints."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate

import physampler as ps
from physampler.system import autograd_forces
from physampler.systems import DoubleWell1D, DoubleWell2D, HarmonicWell


@pytest.mark.parametrize("system", [HarmonicWell([1.0, 2.5, 0.3]), DoubleWell1D(1.7), DoubleWell2D(0.8, 3.0)])
def test_analytic_forces_equal_autograd(system):
    q = torch.randn(7, *system.shape, dtype=torch.float64)
    assert torch.allclose(system.forces(q), autograd_forces(system.energy, q), rtol=1e-13, atol=1e-14)


def test_harmonic_density_of_states_normalisation():
    # int g(U) exp(-U/T) dU = int exp(-U(x)/T) d^N x = prod sqrt(2 pi T / k_i)
    k = [1.0, 2.0, 0.5, 4.0]
    h = HarmonicWell(k)
    T = 1.3
    val, _ = integrate.quad(lambda u: math.exp(float(h.exact_entropy(torch.tensor(u, dtype=torch.float64))) - u / T), 0, 80, epsabs=0, epsrel=1e-12, limit=200)
    assert val == pytest.approx(np.prod([math.sqrt(2 * math.pi * T / ki) for ki in k]), rel=1e-9)  # quadrature to 1e-12, tail e^-61


@pytest.mark.parametrize("T", [0.3, 1.0, 2.0])
def test_double_well_density_of_states_matches_quadrature(T):
    # Z(T) = int g(U) e^{-U/T} dU must equal int e^{-a(x^2-1)^2/T} dx (docs/science.md §13 formula).
    a = 1.0
    dw = DoubleWell1D(a)
    fx = lambda x: math.exp(-a * (x * x - 1) ** 2 / T)
    # both wells explicitly, so the narrow peaks at x = ±1 are resolved (even integrand)
    zx = 2 * (integrate.quad(fx, 0, 1, epsabs=0, epsrel=1e-12)[0] + integrate.quad(fx, 1, 3, epsabs=0, epsrel=1e-12)[0]
              + integrate.quad(fx, 3, np.inf, epsabs=0, epsrel=1e-12)[0])
    # Integrate over s = sqrt(U/a) (dU = 2 a s ds); g has 1/sqrt(1 - s) at the barrier top,
    # handled exactly by QUADPACK's algebraic weight (1 - s)^(-1/2).
    def f(s):
        u = a * s * s
        return float(dw.density_of_states(torch.tensor(u, dtype=torch.float64))) * math.exp(-u / T) * 2 * a * s

    below = integrate.quad(lambda s: f(s) * math.sqrt(1 - s), 0, 1, weight="alg", wvar=(0, -0.5),
                           epsabs=0, epsrel=1e-12)[0]
    above = integrate.quad(f, 1, np.inf, epsabs=0, epsrel=1e-12, limit=400)[0]
    zu = below + above
    assert zu == pytest.approx(zx, rel=1e-8)  # QUADPACK reaches ~1e-9 here; a wrong branch is O(1)


def test_schedules():
    s = ps.InverseTime(F=2.0, t_wl=100)
    assert [s(0), s(50), s(100), s(400)] == [0.0, 1.0, 2.0, 0.5]
    t = ps.ThreeStage(F=3.0, t_rise=10, t_drop=100, t_off=80)
    assert [t(5), t(50), t(100), t(180)] == [1.5, 3.0, 3.0, pytest.approx(3.0 * 20 / 100)]
    assert ps.Constant(0.25)(10**9) == 0.25
    assert ps.make_schedule("inverse_time", F=1, t_wl=5) == ps.InverseTime(1, 5)
    with pytest.raises(ValueError, match="schedule: must be one of 'inverse_time', 'three_stage', 'constant'"):
        ps.make_schedule("halving")
    with pytest.raises(ValueError, match="t_wl: must be > 0"):
        ps.InverseTime(1.0, 0)
    with pytest.raises(ValueError, match="t_off: must be < t_drop"):
        ps.ThreeStage(1.0, 10, 100, 200)
    with pytest.raises(ValueError, match=r"schedule\.constant: "):
        ps.make_schedule("constant", F=2)


def test_harmonic_bad_arguments():
    with pytest.raises(ValueError, match="stiffness: every entry must be finite and > 0"):
        HarmonicWell([1.0, -1.0])
    with pytest.raises(ValueError, match="stiffness: must be a vector"):
        HarmonicWell(2.0)
    with pytest.raises(ValueError, match=r"positions: must have shape \[W, 3\]"):
        HarmonicWell([1.0, 1.0, 1.0]).check_positions(torch.zeros(2, 2))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-50, 50, allow_nan=False), min_size=1, max_size=8), st.floats(0.1, 5.0))
def test_reflective_box_folds_into_bounds(xs, bound):
    box = ps.ReflectiveBox(bound)
    q = torch.tensor([xs], dtype=torch.float64)
    v = torch.ones_like(q)
    q2, v2 = box.apply(q, v)
    assert bool((q2.abs() <= bound + 1e-12).all())
    assert torch.equal(v2.abs(), v.abs())
    inside = q.abs() <= bound
    assert torch.equal(q2[inside], q[inside]) and bool((v2[inside] == 1).all())
    # single crossing: mirror image and reversed velocity
    once = (q.abs() > bound) & (q.abs() < 3 * bound)
    assert torch.allclose(q2[once], (torch.sign(q) * 2 * bound - q)[once], atol=1e-12)
    assert bool((v2[once] == -1).all())


def test_fixed_norm_shell_and_sphere_and_periodic():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(5, 4, 3, generator=g, dtype=torch.float64) * 3
    v = torch.randn(5, 4, 3, generator=g, dtype=torch.float64)
    qs, vs = ps.FixedNormShell(30.0).apply(q, v)
    assert torch.allclose(qs.reshape(5, -1).norm(dim=1), torch.full((5,), 30.0, dtype=torch.float64), rtol=1e-14)
    assert float((qs.reshape(5, -1) * vs.reshape(5, -1)).sum(dim=1).abs().max()) < 1e-10
    qc, vc = ps.ConfiningSphere(2.0).apply(q, v)
    r, rc = q.norm(dim=-1), qc.norm(dim=-1)
    assert bool((rc <= 2.0 + 1e-12).all())
    out = (r > 2.0) & (r < 4.0)
    assert torch.allclose(rc[out], 4.0 - r[out])
    assert torch.allclose(vc.norm(dim=-1), v.norm(dim=-1))  # elastic
    box = ps.PeriodicBox([2.0, 3.0, 4.0])
    qp, _ = box.apply(q, v)
    assert bool((qp >= 0).all()) and bool((qp < torch.tensor([2.0, 3.0, 4.0], dtype=torch.float64)).all())
    d = box.minimum_image(torch.tensor([[1.9, -1.6, 2.1]], dtype=torch.float64))
    assert torch.allclose(d, torch.tensor([[-0.1, 1.4, -1.9]], dtype=torch.float64))
