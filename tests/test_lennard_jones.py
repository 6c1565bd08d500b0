"""Lennard-Jones systems: torch path, compiled path and OpenMM agree; forces are −∇U.

Tolerances: both paths and OpenMM's Reference platform evaluate the same sums in
float64 in different orders, so they agree to a few ulp of the largest term
(measured ≤ 3e-15 relative); the tests demand 1e-12 (torch vs numba) and 1e-10
(vs OpenMM, as the issue states).  Trajectories of the two paths start
identical and separate only through round-off amplified by chaotic dynamics
(about ×10 per 10 steps here), so they are compared over 30 steps at 1e-10.
"""
import math

import numpy as np
import pytest
import torch

from physampler import (BAOAB, WLMD, Axis, InverseTime, Landscape, LinearWall, NumericalFault, OutOfGridError,
                        PeriodicBox, PotentialEnergy, QuadraticWall, WalkerRNG)
from physampler.integrators.compiled import CompiledBAOAB, CompiledWLMD
from physampler.systems import lj_kernels as K
from physampler.systems.lennard_jones import (CutoffConvention, LJBulk, LJCluster, fcc_lattice, icosahedron13,
                                              pair_energy, random_cluster)

CONVENTIONS = [("none", None), ("truncated", 2.0), ("shifted", 2.0)]


def clusters(n, count, seed, radius=2.3):
    rng = np.random.default_rng(seed)
    return np.stack([random_cluster(n, radius, rng) for _ in range(count)])


def bulk_configs(lj, cells, count, seed, noise=0.06):
    rng = np.random.default_rng(seed)
    return fcc_lattice(cells, lj.box)[None] + rng.normal(0, noise, (count, 4 * cells**3, 3))


def rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def numba_cluster(lj, x):
    es, fs = [], []
    for xi in x:
        f = np.empty_like(xi)
        es.append(K.cluster_energy_forces(xi, lj.convention.rc2, lj.convention.shift, lj.radius, lj.wall_stiffness, lj.sphere_centre == "com", f))
        fs.append(f)
    return np.array(es), np.array(fs)


def numba_bulk(lj, x, rlist):
    es, fs = [], []
    for xi in x:
        start = np.zeros(lj.n + 1, dtype=np.int64)
        nbrs = np.zeros(lj.n * 200, dtype=np.int64)
        assert K.build_neighbours(xi, lj.box, rlist, start, nbrs) > 0
        f = np.empty_like(xi)
        es.append(K.bulk_energy_forces(xi, lj.box, lj.convention.rc2, lj.convention.shift, start, nbrs, f))
        fs.append(f)
    return np.array(es) + lj.tail_energy(), np.array(fs)


def test_pair_conventions():
    r = torch.tensor([0.95, 1.0, 2 ** (1 / 6), 1.9, 2.0, 2.5])
    for mode, rc in CONVENTIONS:
        c = CutoffConvention(mode, rc)
        u, fr = c.pair_terms(r.double() ** 2)
        for k, x in enumerate(r.tolist()):
            inside = mode == "none" or x < rc
            expect = (pair_energy(x) - (pair_energy(rc) if mode == "shifted" else 0.0)) if inside else 0.0
            assert float(u[k]) == pytest.approx(expect, abs=1e-14)
    assert float(CutoffConvention("none", None).pair_terms(torch.tensor([2 ** (1 / 3)], dtype=torch.float64))[0]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="cutoff"):
        CutoffConvention("shifted", None)
    with pytest.raises(ValueError, match="cutoff_mode"):
        CutoffConvention("smooth", 2.5)


@pytest.mark.parametrize("centre", ["origin", "com"])
@pytest.mark.parametrize("mode,rc", CONVENTIONS)
def test_cluster_torch_numba_autograd(mode, rc, centre):
    lj = LJCluster(13, 2.0, cutoff_mode=mode, cutoff=rc, sphere_centre=centre)
    x = clusters(13, 40, 1)  # radius 2.3 > R_c: some atoms feel the wall
    u, f = lj.energy_and_forces(torch.tensor(x))
    un, fn = numba_cluster(lj, x)
    assert rel(un, u) < 1e-12 and rel(fn, f) < 1e-12
    # Forces are −∂U/∂q of the energy (autograd through the torch energy).
    q = torch.tensor(x, requires_grad=True)
    (g,) = torch.autograd.grad(lj.energy(q).sum(), q)
    assert rel(-g, f) < 1e-12


def test_numba_forces_are_finite_difference_gradient():
    lj = LJCluster(13, 2.0)
    x = clusters(13, 1, 2)[0]
    _, f = numba_cluster(lj, x[None])
    h = 1e-6
    for i, k in [(0, 0), (5, 1), (12, 2)]:
        xp, xm = x.copy(), x.copy()
        xp[i, k] += h
        xm[i, k] -= h
        d = (numba_cluster(lj, xp[None])[0][0] - numba_cluster(lj, xm[None])[0][0]) / (2 * h)
        assert -d == pytest.approx(f[0, i, k], rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("mode,tail", [("shifted", False), ("truncated", True)])
def test_bulk_torch_numba_autograd(mode, tail):
    lj = LJBulk(108, density=0.8, cutoff=2.5, cutoff_mode=mode, tail_correction=tail)
    x = bulk_configs(lj, 3, 10, 3)
    u, f = lj.energy_and_forces(torch.tensor(x))
    un, fn = numba_bulk(lj, x, 2.8)  # 108 atoms: box 5.13 < 3 r_list, all-pairs list build
    assert rel(un, u) < 1e-12 and rel(fn, f) < 1e-12
    q = torch.tensor(x, requires_grad=True)
    (g,) = torch.autograd.grad(lj.energy(q).sum(), q)
    assert rel(-g, f) < 1e-12


def test_bulk_cell_list_matches_all_pairs():
    lj = LJBulk(864, density=0.8, cutoff=2.5)  # box 10.26 = 3.7 r_list: the cell-list build
    x = bulk_configs(lj, 6, 2, 4)
    assert int(lj.box / 2.8) >= 3
    u, f = lj.energy_and_forces(torch.tensor(x))
    un, fn = numba_bulk(lj, x, 2.8)
    assert rel(un, u) < 1e-12 and rel(fn, f) < 1e-12


def test_tail_correction_and_box_checks():
    lj = LJBulk(500, density=0.776, cutoff=3.0, cutoff_mode="truncated", tail_correction=True)
    # Allen & Tildesley: U_tail/N = (8/3) π ρ (rc^-9/3 − rc^-3)
    assert lj.tail_energy() / 500 == pytest.approx(8 / 3 * math.pi * 0.776 * (3.0**-9 / 3 - 3.0**-3), rel=1e-14)
    with pytest.raises(ValueError, match="half the box"):
        LJBulk(32, density=0.8, cutoff=2.5)
    with pytest.raises(ValueError, match="tail_correction"):
        LJBulk(256, density=0.8, cutoff=2.5, cutoff_mode="shifted", tail_correction=True)
    with pytest.raises(ValueError, match="box"):
        LJBulk(256, cutoff=2.5)


# ------------------------------------------------------------------- OpenMM
openmm_ref = pytest.importorskip("physampler.references")


@pytest.mark.parametrize("centre", ["origin", "com"])
@pytest.mark.parametrize("mode,rc", CONVENTIONS)
def test_cluster_matches_openmm_reference(mode, rc, centre):
    pytest.importorskip("openmm")
    lj = LJCluster(13, 2.0, cutoff_mode=mode, cutoff=rc, sphere_centre=centre)
    x = clusters(13, 100, 5)
    e, f = openmm_ref.openmm_energy_forces(lj, x)
    u, fo = lj.energy_and_forces(torch.tensor(x))
    assert rel(e, u) < 1e-10 and rel(f, fo) < 1e-10
    un, fn = numba_cluster(lj, x)
    assert rel(e, un) < 1e-10 and rel(f, fn) < 1e-10


def test_a_com_sphere_moves_with_the_cluster_and_an_origin_sphere_does_not():
    """The two conventions differ where they must: shifted by 3σ, a cluster that fits its sphere
    costs nothing around its centre of mass (and feels no net wall force there) and a lot
    around the origin (the control)."""
    x = clusters(13, 20, 6, radius=1.6)
    x = x - x.mean(axis=1, keepdims=True) + 3.0  # every atom within 2σ of the centre of mass
    com = LJCluster(13, 2.0, sphere_centre="com")
    origin = LJCluster(13, 2.0)
    u_pairs = LJCluster(13, 50.0).energy(torch.tensor(x))
    u, f = com.energy_and_forces(torch.tensor(x))
    assert float((u - u_pairs).abs().max()) < 1e-12
    uo, _ = origin.energy_and_forces(torch.tensor(x))
    assert float((uo - u_pairs).min()) > 100.0
    xo = clusters(13, 20, 7, radius=2.3) + 3.0  # some atoms outside: the wall's net force is zero
    _, f = com.energy_and_forces(torch.tensor(xo))
    _, f_pairs = LJCluster(13, 50.0).energy_and_forces(torch.tensor(xo))
    assert float((f - f_pairs).abs().max()) > 1.0
    assert float(f.sum(dim=1).abs().max()) < 1e-9


@pytest.mark.parametrize("mode,tail", [("shifted", False), ("truncated", True)])
def test_bulk_matches_openmm_reference(mode, tail):
    pytest.importorskip("openmm")
    lj = LJBulk(108, density=0.776, cutoff=2.5, cutoff_mode=mode, tail_correction=tail)
    x = bulk_configs(lj, 3, 100, 6)
    e, f = openmm_ref.openmm_energy_forces(lj, x)
    u, fo = lj.energy_and_forces(torch.tensor(x))
    assert rel(e, u) < 1e-10 and rel(f, fo) < 1e-10
    un, fn = numba_bulk(lj, x, 2.5)
    assert rel(e, un) < 1e-10 and rel(f, fn) < 1e-10


# ---------------------------------------------------------- compiled vs torch
def _wlmd(lj, walkers_total=None, out_of_range="wall", splitting="ktd"):
    ls = Landscape([Axis("energy", -45.0, -25.0, bins=100)], sigma=1.0, out_of_range=out_of_range)
    biases = [QuadraticWall(0, -26.0, 1.0, "upper"), LinearWall(0, -44.8, 0.5, "lower")]
    return WLMD(lj, PotentialEnergy(lj), ls, InverseTime(0.5, 50), dt=0.005, c_f=0.02, kT=0.3, biases=biases,
                walkers_total=walkers_total, splitting=splitting)


def _ico_walkers(w):
    return torch.tensor(np.stack([icosahedron13() + np.random.default_rng(i).normal(0, 0.02, (13, 3)) for i in range(w)]))


def test_rng_normal_steps_equals_sequential_draws():
    a, b = WalkerRNG(3, 2), WalkerRNG(3, 2)
    a.normal((13, 3))  # a partly used block carries over
    b.normal((13, 3))
    seq = torch.stack([a.normal((13, 3)) for _ in range(250)], dim=1)
    assert torch.equal(seq, b.normal_steps(250, (13, 3)))
    assert torch.equal(a.normal((13, 3)), b.normal((13, 3)))


@pytest.mark.parametrize("splitting,centre", [("ktd", "origin"), ("baoab", "origin"), ("ktd", "com")])
def test_compiled_wlmd_follows_torch_wlmd(splitting, centre):
    """The numba block loop runs Wang–Landau on both splittings it implements, in the torch
    engine's operations and order (one rule, physampler.rules, says when it applies), with
    either sphere centre."""
    lj = LJCluster(13, 2.0, sphere_centre=centre)
    x0 = _ico_walkers(3)
    w1 = _wlmd(lj, splitting=splitting)
    s1 = w1.init(x0, WalkerRNG(5, 3))
    w2 = _wlmd(lj, splitting=splitting)
    c2 = CompiledWLMD(w2)
    s2 = c2.init(x0, WalkerRNG(5, 3))
    for _ in range(30):
        s1, _ = w1.step(s1)
    s2, info = c2.run(s2, 30)
    assert s2.step == 30
    assert float((s1.positions - s2.positions).abs().max()) < 1e-10
    assert float((s1.velocities - s2.velocities).abs().max()) < 1e-10
    assert float((s1.cv - s2.cv).abs().max()) < 1e-10
    assert float((w1.landscape.S - w2.landscape.S).abs().max()) < 1e-12
    assert torch.equal(w1.landscape.H, w2.landscape.H)
    assert info.cv.shape == (30, 3, 1) and np.array_equal(info.f_wl, InverseTime(0.5, 50).values(1, 30))
    # Blocks compose: 10 + 20 steps equal 30 steps exactly.
    w3 = _wlmd(lj, splitting=splitting)
    c3 = CompiledWLMD(w3)
    s3 = c3.init(x0, WalkerRNG(5, 3))
    s3, _ = c3.run(s3, 10)
    s3, _ = c3.run(s3, 20)
    assert torch.equal(s3.positions, s2.positions) and torch.equal(w3.landscape.S, w2.landscape.S)


def test_compiled_static_bias_records_observables_as_the_torch_engine_does():
    """A static bias runs on the numba loop (f = 0: S bitwise frozen, H counted), and the
    observed CVs (R_g, Q6) are recorded at the same steps, on the same positions, as on the
    torch engine, whatever the block boundaries."""
    from physampler.biases import LinearWall, QuadraticWall
    from physampler.integrators import BiasedMD
    from physampler.methods import StaticBias
    from physampler.order_parameters import RadiusOfGyration, Steinhardt

    lj = LJCluster(13, 2.0, sphere_centre="com")
    x0 = _ico_walkers(3)

    def engine():
        ls = Landscape([Axis("energy", -45.0, -25.0, bins=100)], sigma=1.0, out_of_range="wall")
        ls.tilt(0, 0.3)
        biases = [QuadraticWall(0, -26.0, 1.0, "upper"), LinearWall(0, -44.8, 0.5, "lower")]
        return BiasedMD(lj, PotentialEnergy(lj), StaticBias(ls), dt=0.005, c_f=0.02, kT=0.3, biases=biases,
                        splitting="baoab", observe=[RadiusOfGyration(), Steinhardt(6)], observe_every=5)

    w1, w2 = engine(), engine()
    s0 = w1.landscape.S.clone()
    s1 = w1.init(x0, WalkerRNG(5, 3))
    for _ in range(30):
        s1, _ = w1.step(s1)
    c2 = CompiledWLMD(w2)
    s2 = c2.init(x0, WalkerRNG(5, 3))
    s2, _ = c2.run(s2, 7)
    s2, info = c2.run(s2, 23)
    assert info.cv.shape == (23, 3, 1) and not np.any(info.f_wl)
    assert float((s1.positions - s2.positions).abs().max()) < 1e-10
    assert torch.equal(w1.landscape.S, s0) and torch.equal(w2.landscape.S, s0)
    assert torch.equal(w1.landscape.H, w2.landscape.H) and float(w1.landscape.H.sum()) == 90
    for name in ("rg", "q6"):
        assert torch.equal(w1.landscape.observable_counts[name], w2.landscape.observable_counts[name])
        assert float(w1.landscape.observable_counts[name].sum()) == 18  # steps 5, 10, ..., 30 × 3 walkers
        assert float((w1.landscape.observable_sums[name] - w2.landscape.observable_sums[name]).abs().max()) < 1e-10
    assert 0.8 < float(w1.landscape.observable_mean("rg").nanmean()) < 1.2  # an icosahedron's R_g ≈ 0.94


def test_compiled_wlmd_batched_equals_single():
    """Walkers with their own landscapes: a batch of independent single runs equals the runs
    made one by one (walker streams depend only on seed and index)."""
    lj = LJCluster(13, 2.0)
    x0 = _ico_walkers(2)
    singles = []
    for i in range(2):
        c = CompiledWLMD(_wlmd(lj))
        s = c.init(x0[i : i + 1], WalkerRNG(9, [i]))
        s, _ = c.run(s, 200)
        singles.append((s, c.landscape))
    # The same two walkers on one landscape each, advanced in one process in lockstep
    cs = [CompiledWLMD(_wlmd(lj)) for _ in range(2)]
    ss = [c.init(x0[i : i + 1], WalkerRNG(9, [i])) for i, c in enumerate(cs)]
    for _ in range(4):
        ss = [c.run(s, 50)[0] for c, s in zip(cs, ss)]
    for (s, ls), s2, c in zip(singles, ss, cs):
        assert torch.equal(s.positions, s2.positions) and torch.equal(ls.S, c.landscape.S)


def test_compiled_wlmd_reports_faults():
    lj = LJCluster(13, 2.0)
    x0 = _ico_walkers(2)
    w = _wlmd(lj, out_of_range="raise")
    c = CompiledWLMD(w)
    s = c.init(x0, WalkerRNG(1, 2))
    s.velocities[1] *= 60.0  # walker 1 heats far above the grid within a few steps
    with pytest.raises(OutOfGridError, match=r"walker 1: CV outside the landscape grid") as e:
        c.run(s, 200)
    assert e.value.walker == 1 and 1 <= e.value.step <= 200
    c = CompiledWLMD(_wlmd(lj))
    s = c.init(x0, WalkerRNG(1, 2))
    s.positions[0, 3] = s.positions[0, 4]  # two atoms (nearly) on top of each other: U and F blow up
    with pytest.raises(NumericalFault, match=r"step \d, walker 0: non-finite") as e:
        c.run(s, 5)
    assert e.value.walker == 0
    with pytest.raises(ValueError, match="compiled WLMD"):
        CompiledWLMD(WLMD(lj, PotentialEnergy(lj), Landscape([Axis("energy", -45, -25, bins=100)]), InverseTime(1, 10),
                          dt=0.005, c_f=0.1, constraints=[PeriodicBox(10.0)]))
    for kw, needs in (({"splitting": "obabo"}, "integrator.splitting among 'ktd', 'baoab'"),
                      ({"potential": True}, "integrator.potential = false")):
        with pytest.raises(ValueError, match=f"compiled engine needs {needs}"):
            CompiledWLMD(WLMD(lj, PotentialEnergy(lj), Landscape([Axis("energy", -45, -25, bins=100)]),
                              InverseTime(1, 10), dt=0.005, c_f=0.1, **kw))


def test_compiled_baoab_follows_torch_baoab():
    lj = LJBulk(108, density=0.776, cutoff=2.5)
    x0 = torch.tensor(bulk_configs(lj, 3, 2, 7, noise=0.02))
    b1 = BAOAB(lj, dt=0.005, kT=0.85, friction=1.0, constraints=[PeriodicBox(lj.box)])
    s1 = b1.init(x0, WalkerRNG(2, 2))
    c2 = CompiledBAOAB(BAOAB(lj, dt=0.005, kT=0.85, friction=1.0, constraints=[PeriodicBox(lj.box)]), skin=0.3)
    s2 = c2.init(x0, WalkerRNG(2, 2))
    for _ in range(30):
        s1, _ = b1.step(s1)
    s2, info = c2.run(s2, 30)
    assert float((s1.positions - s2.positions).abs().max()) < 1e-10
    assert float((s1.energy - s2.energy).abs().max()) < 1e-10 * float(s1.energy.abs().max())
    assert info.cv.shape == (30, 2)
