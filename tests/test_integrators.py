"""Integrators: thermostat operator, BAOAB sampling, Verlet energy conservation,
WLMD batched == single, determinism, fault reporting."""
import math

import numpy as np
import pytest
import torch

import physampler as ps
from physampler.faults import NumericalFault
from physampler.integrators import friction_coefficient, thermostat
from physampler.systems import DoubleWell2D, HarmonicWell
from physampler.rng import make_rng

from _stats import mean_square_position


def test_thermostat_operator_formula():
    v = torch.tensor([[1.0, -2.0]], dtype=torch.float64)
    eta = torch.tensor([[0.5, 0.25]], dtype=torch.float64)
    c_f, kT, m = 0.1, 2.0, 4.0
    out = thermostat(v, c_f, kT, 1.0 / m, eta)
    expect = (1 - c_f) * v + math.sqrt(c_f * (2 - c_f) * kT / m) * eta
    assert torch.allclose(out, expect, rtol=1e-15)
    # c_f = 1 - exp(-gamma dt) makes it the exact OU step of BAOAB
    c = friction_coefficient(2.0, 0.1)
    assert 1 - c == pytest.approx(math.exp(-0.2)) and c * (2 - c) == pytest.approx(1 - math.exp(-0.4))


def test_baoab_samples_canonical_variance():
    # <x_i^2> = kT/k_i.  Standard error from the spread of the 64 independent walkers'
    # time averages (each over 20 000 steps, many correlation times 1/gamma = 1).
    k = torch.tensor([1.0, 4.0], dtype=torch.float64)
    sysm = HarmonicWell(k)
    kT = 0.7
    integ = ps.BAOAB(sysm, dt=0.1, kT=kT, friction=1.0)
    W = 64
    state = integ.init(torch.zeros(W, 2, dtype=torch.float64), ps.WalkerRNG(5, W))
    for _ in range(500):
        state, _ = integ.step(state)
    acc = torch.zeros(W, 2, dtype=torch.float64)
    n = 20000
    for _ in range(n):
        state, _ = integ.step(state)
        acc += state.positions**2
    per_walker = (acc / n).numpy()
    mean = per_walker.mean(axis=0)
    se = per_walker.std(axis=0, ddof=1) / math.sqrt(W)
    exact = kT / k.numpy()
    assert np.all(np.abs(mean - exact) <= 3 * se), (mean, exact, se)
    assert np.all(se / exact < 0.02)  # the test is sharp enough to see a 6 % error


def test_velocity_verlet_energy_drift():
    sysm = HarmonicWell([1.0, 2.0, 0.5])
    integ = ps.VelocityVerlet(sysm, dt=0.01)
    q = torch.tensor([[1.0, -0.5, 2.0], [0.1, 0.2, -0.3]], dtype=torch.float64)
    v = torch.tensor([[0.0, 1.0, -0.5], [1.0, 0.0, 0.5]], dtype=torch.float64)
    state = integ.init(q, v)
    e0 = state.energy + integ.kinetic(state)
    worst = 0.0
    for _ in range(10000):
        state, info = integ.step(state)
        e = info.potential + info.kinetic
        worst = max(worst, float(((e - e0).abs() / e0).max()))
    assert worst < 1e-4


def _wlmd(W=None, seed=3, walkers=None, frozen=True, noise="streams"):
    sysm = DoubleWell2D(a=1.0, k=2.0)
    cvs = [ps.FunctionCV(lambda q: q[:, 0], "x"), ps.PotentialEnergy(sysm)]
    land = ps.Landscape([ps.Axis("x", -2.0, 2.0, bins=40), ps.Axis("energy", 0.0, 6.0, bins=30)],
                        sigma=1.5, out_of_range="wall", wall_strength=5.0)
    x, u = [a.centres() for a in land.grid.axes]
    X, U = torch.meshgrid(x, u, indexing="ij")
    land.S.copy_(0.4 * torch.sin(2 * X) + 0.3 * U)  # a non-trivial fixed force field
    sched = ps.Constant(0.0) if frozen else ps.InverseTime(1.0, 50)
    integ = ps.WLMD(sysm, cvs, land, sched, dt=0.02, c_f=0.05, kT=1.0,
                    biases=[ps.QuadraticWall(1, 5.0, 3.0, "upper")])
    rng = make_rng(seed, walkers if walkers is not None else W, noise=noise)
    q0 = torch.stack([torch.tensor([-1.0 + 0.3 * w, 0.1 * w], dtype=torch.float64) for w in rng.walkers])
    return integ, integ.init(q0, rng)


@pytest.mark.parametrize("noise", ["streams", "counter"])
def test_wlmd_batched_equals_single_runs(noise):
    integ, state = _wlmd(W=4, noise=noise)
    for _ in range(300):
        state, _ = integ.step(state)
    for w in range(4):
        integ1, s1 = _wlmd(walkers=[w], noise=noise)
        for _ in range(300):
            s1, _ = integ1.step(s1)
        assert torch.equal(s1.positions[0], state.positions[w])
        assert torch.equal(s1.velocities[0], state.velocities[w])
        assert torch.equal(s1.cv[0], state.cv[w])


def test_wlmd_same_seed_bitwise_identical_and_seed_matters():
    runs = []
    for seed in (3, 3, 4):
        integ, state = _wlmd(W=3, seed=seed, frozen=False)
        for _ in range(200):
            state, _ = integ.step(state)
        runs.append((state.positions, integ.landscape.S.clone()))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
    assert not torch.equal(runs[0][0], runs[2][0])


def test_wlmd_deposits_f_over_walkers_each_step():
    integ, state = _wlmd(W=3, frozen=False)
    s0 = float(integ.landscape.S.sum())
    total, visits = 0.0, 0
    for _ in range(80):
        state, info = integ.step(state)
        total += info.f_wl * float(info.in_range.double().mean())
        visits += int(info.in_range.sum())
    # reflect edges keep the kernel's mass: S gains exactly f(t)/W per in-range walker
    assert total > 0 and visits > 200
    assert float(integ.landscape.S.sum()) - s0 == pytest.approx(total, rel=1e-12)
    assert float(integ.landscape.H.sum()) == visits


def test_wlmd_force_is_minus_kT_gradS_dxi_dq():
    # With S = c * U exactly (linear in one CV), a = -(T0/m) c dU/dq = (T0 c / m) F.
    sysm = HarmonicWell([1.0, 3.0], masses=2.0)
    land = ps.Landscape([ps.Axis("energy", 0.0, 10.0, bins=50)])
    land.S.copy_(0.8 * land.grid.axes[0].centres())
    integ = ps.WLMD(sysm, ps.PotentialEnergy(sysm), land, ps.Constant(0.0), dt=0.01, c_f=0.0, kT=1.5)
    q = torch.tensor([[0.5, -0.7]], dtype=torch.float64)
    st = integ.init(q, ps.WalkerRNG(0, 1))
    assert torch.allclose(st.accel, 1.5 * 0.8 * sysm.forces(q) / 2.0, rtol=1e-12)


def test_wlmd_reports_nan_with_step_and_walker():
    integ, state = _wlmd(W=4)
    state, _ = integ.step(state)
    state.velocities[2, 0] = float("nan")
    with pytest.raises(NumericalFault, match=r"step 2, walker 2: non-finite CV") as e:
        integ.step(state)
    assert (e.value.step, e.value.walker) == (2, 2)


def test_a_fault_raised_in_a_worker_process_reaches_the_parent():
    """A fault pickles with its step and walker, so a sweep over a process pool reports it
    (before: a BrokenProcessPool, since step and walker are keyword-only).  Control: the
    plain exception protocol, cls(*args), cannot rebuild it."""
    import pickle
    from concurrent.futures import ProcessPoolExecutor

    from physampler.faults import OutOfGridError

    for cls in (NumericalFault, OutOfGridError):
        back = pickle.loads(pickle.dumps(cls("step 5, walker 3: boom", step=5, walker=3)))
        assert type(back) is cls and (str(back), back.step, back.walker) == ("step 5, walker 3: boom", 5, 3)
    with pytest.raises(TypeError):
        NumericalFault(*NumericalFault("x", step=1, walker=0).args)
    with ProcessPoolExecutor(1) as pool:
        with pytest.raises(NumericalFault, match="walker 7") as e:
            pool.submit(_raise_fault).result()
    assert (e.value.step, e.value.walker) == (9, 7)


def _raise_fault():
    raise NumericalFault("step 9, walker 7: non-finite CV", step=9, walker=7)


def test_wlmd_raise_policy_reports_leaving_walker():
    sysm = HarmonicWell([1.0])
    land = ps.Landscape([ps.Axis("energy", 0.0, 0.5, bins=10)])
    integ = ps.WLMD(sysm, ps.PotentialEnergy(sysm), land, ps.Constant(0.0), dt=0.1, c_f=0.0)
    v = torch.tensor([[0.0], [5.0]], dtype=torch.float64)
    st = integ.init(torch.zeros(2, 1, dtype=torch.float64), ps.WalkerRNG(0, 2), velocities=v)
    # no force (S = 0), no friction: x = 0.5 t, U = x^2/2 = 0.125, 0.5 (on the edge, inside), 1.125
    with pytest.raises(ps.OutOfGridError, match=r"step 3, walker 1: CV outside the landscape grid: energy = 1.125"):
        for _ in range(5):
            st, _ = integ.step(st)


def test_runner_reporters():
    integ, state = _wlmd(W=2, frozen=False)
    ts = ps.CVTimeSeries(10)
    snaps = ps.LandscapeSnapshots(25, integ.landscape)
    seen = {}
    runner = ps.Runner(integ, state, [ts, snaps], callback=lambda s, i: seen.__setitem__(s.step, i.cv.clone()))
    final = runner.run(100)
    assert final.step == 100 and ts.steps.tolist() == list(range(10, 101, 10))
    assert np.array_equal(ts.values[-1], seen[100].numpy()) and ts.values.shape == (10, 2, 2)
    assert snaps.entropy.shape == (4, 40, 30)
    assert np.array_equal(snaps.entropy[-1], integ.landscape.S.numpy())


def test_integrator_bad_arguments():
    sysm = HarmonicWell([1.0])
    land = ps.Landscape([ps.Axis("energy", 0.0, 1.0, bins=10)])
    cv = ps.PotentialEnergy(sysm)
    with pytest.raises(ValueError, match="integrator: must be one of 'velocity_verlet', 'baoab', 'wlmd'"):
        ps.integrator_class("leapfrog")
    with pytest.raises(ValueError, match=r"c_f: must lie in \[0.0, 1.0\]"):
        ps.WLMD(sysm, cv, land, ps.Constant(0.0), dt=0.1, c_f=1.5)
    with pytest.raises(ValueError, match="dt: must be > 0"):
        ps.WLMD(sysm, cv, land, ps.Constant(0.0), dt=0.0, c_f=0.1)
    with pytest.raises(ValueError, match=r"cvs: must give one CV per landscape axis \(1\)"):
        ps.WLMD(sysm, [cv, ps.FunctionCV(lambda q: q[:, 0], "x")], land, ps.Constant(0.0), dt=0.1, c_f=0.1)
    with pytest.raises(ValueError, match="kT: must be > 0"):
        ps.BAOAB(sysm, dt=0.1, kT=-1.0)
    integ = ps.WLMD(sysm, cv, land, ps.Constant(0.0), dt=0.1, c_f=0.1)
    with pytest.raises(ValueError, match=r"positions: must have shape \[W, 1\]"):
        integ.init(torch.zeros(2, 3, dtype=torch.float64), ps.WalkerRNG(0, 2))
    with pytest.raises(ValueError, match=r"rng: must hold one stream per walker \(2\)"):
        integ.init(torch.zeros(2, 1, dtype=torch.float64), ps.WalkerRNG(0, 3))


def _frozen_linear_s_variance(splitting: str, c_f: float, steps: int = 6000, noise: str = "streams"):
    """WLMD with S(U) = U frozen (f_WL = 0) is Langevin dynamics at kT = 1 on U = ½ Σ x²
    (the force −kT·∂S/∂U·∇U = −∇U), so ⟨x²⟩ = 1 exactly.  Returns (⟨x²⟩, its standard error
    from 20 blocks) over 16 walkers × 20 coordinates after 500 steps of burn-in."""
    system = HarmonicWell.isotropic(20)
    land = ps.Landscape([ps.Axis("energy", 0.0, 60.0, bins=600)], sigma=1.0, out_of_range="wall")
    land.S.copy_(land.grid.axes[0].centres())  # S = U, linear: its interpolated gradient is exactly 1
    w = ps.WLMD(system, ps.PotentialEnergy(system), land, ps.Constant(0.0), dt=0.3, c_f=c_f, kT=1.0,
                splitting=splitting)
    rng = make_rng(21, 16, noise=noise)
    state = w.init(torch.randn(16, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(3)), rng)
    return mean_square_position(w, state, steps)


@pytest.mark.parametrize("c_f", [0.05, 0.2, 0.5])
def test_baoab_splitting_samples_the_exact_configurational_variance(c_f):
    """BAOAB of the shared operators is exact in ⟨x²⟩ on a harmonic well for any friction
    (Leimkuhler & Matthews 2013): within 3 standard errors at c_f 0.05, 0.2, 0.5 (measured
    0.9968 ± 0.0040, 0.9979 ± 0.0027, 0.9965 ± 0.0031).  Control that must fail: the default
    ktd step at the same dt = 0.3 and c_f, measured 1.046, 1.146 and 1.517 (the c_f/(2 − c_f)
    bias of docs/science.md §3 plus its dt² part)."""
    var, se = _frozen_linear_s_variance("baoab", c_f)
    assert abs(var - 1.0) <= 3 * se and se < 0.01, (var, se)
    if c_f == 0.2:  # the counter-based noise of CUDA runs samples the same exact variance
        var, se = _frozen_linear_s_variance("baoab", c_f, noise="counter")
        assert abs(var - 1.0) <= 3 * se and se < 0.01, (var, se)
    ktd, se_k = _frozen_linear_s_variance("ktd", c_f)
    assert abs(ktd - 1.0) > 3 * se_k, (ktd, se_k)


def test_splitting_is_checked_and_the_compiled_engine_runs_ktd_and_baoab():
    system = HarmonicWell.isotropic(2)
    land = ps.Landscape([ps.Axis("energy", 0.0, 6.0, bins=60)], sigma=1.0, out_of_range="wall")
    with pytest.raises(ValueError, match="splitting"):
        ps.WLMD(system, ps.PotentialEnergy(system), land, ps.Constant(0.0), dt=0.1, c_f=0.1, splitting="abo")
    from physampler import config as C

    text = "[system]\nkind = 'lj_cluster'\natoms = 13\n[landscape]\nlower = [-43.0]\nupper = [-20.0]\nbins = [46]\n" \
           "[integrator]\ndt = 0.005\nsplitting = 'baoab'\n[run]\nsteps = 100\n"
    assert C.compiled_obstacle(C.parse(text)) is None
    assert C.compiled_obstacle(C.parse(text.replace("'baoab'", "'obabo'"))) == \
        "integrator.splitting among 'ktd', 'baoab'"
    assert C.compiled_obstacle(C.parse(text + "[method]\nkind = 'well_tempered_metadynamics'\ndelta_T = 2.0\n")) == \
        "method.kind among 'wang_landau', 'static'"


class _TrippedWell(HarmonicWell):
    """A 2-D harmonic well whose force turns NaN where x0 > ``trip`` (energy stays finite)."""

    def __init__(self, trip):
        super().__init__([1.0, 2.0])
        self.trip = trip

    def forces(self, q):
        return torch.where(q[:, :1] > self.trip, float("nan"), super().forces(q))


def _tripwire(kind, fault_check, trip=0.8):
    sysm = _TrippedWell(trip if kind == "force" else 1e9)
    if kind == "cv":
        cv = ps.FunctionCV(lambda q: torch.where(q[:, 0] > trip, float("nan"), 0.5 * (q * q * sysm.stiffness).sum(1)),
                           "energy")
    else:
        cv = ps.PotentialEnergy(sysm)
    upper = 0.5 * trip**2 if kind == "range" else 8.0
    land = ps.Landscape([ps.Axis("energy", 0.0, upper, bins=30)], sigma=1.0,
                        out_of_range="raise" if kind == "range" else "wall")
    integ = ps.BiasedMD(sysm, [cv], ps.WangLandau(land, ps.InverseTime(0.2, 50)), dt=0.05, c_f=0.05,
                        potential=kind == "force", fault_check=fault_check)
    q0 = torch.tensor([[-0.5, 0.1], [0.1, -0.2], [0.3, 0.2], [-0.2, 0.0]], dtype=torch.float64) * (
        0.3 if kind == "range" else 1.0)
    return integ, integ.init(q0, ps.WalkerRNG(7, 4))


@pytest.mark.parametrize("kind", ["cv", "range", "force"])
def test_deferred_fault_checks_report_the_step_and_walker_of_the_step_checks(kind):
    """fault_check = "block" (the default on CUDA: no host sync per step) records faults on the
    device and raises at the end of ``run`` the exception the step-by-step checks raise — same
    class, step, walker and message — for a NaN CV, a CV off a ``raise`` grid and a NaN force.
    Meanwhile a faulted walker deposits nothing while its CV is bad: S stays finite and H misses
    those steps.  Without a fault both modes give the same trajectory bit for bit.
    Control: a later trip point names a later step."""
    integ, state = _tripwire(kind, "step")
    with pytest.raises(NumericalFault) as ref:
        for _ in range(400):
            state, _ = integ.step(state)
    assert 1 < ref.value.step < 400
    deferred, state = _tripwire(kind, "block")
    h0 = float(deferred.landscape.H.sum())
    with pytest.raises(type(ref.value)) as got:
        deferred.run(state, 400)
    assert str(got.value) == str(ref.value) and (got.value.step, got.value.walker) == (ref.value.step, ref.value.walker)
    assert bool(torch.isfinite(deferred.landscape.S).all())
    assert float(deferred.landscape.H.sum()) - h0 < 4 * 400  # the faulted walker's steps are not counted
    if kind != "range":
        later, st = _tripwire(kind, "block", trip=0.95)
        with pytest.raises(NumericalFault) as e:
            later.run(st, 2000)
        assert e.value.step > ref.value.step


def test_deferred_checks_change_no_trajectory():
    a, sa = _tripwire("cv", "step", trip=1e9)
    b, sb = _tripwire("cv", "block", trip=1e9)
    for _ in range(100):
        sa, _ = a.step(sa)
    sb, _ = b.run(sb, 100)
    assert torch.equal(sa.positions, sb.positions) and torch.equal(a.landscape.S, b.landscape.S)
    assert sb.faults is not None and sa.faults is None and int((sb.faults.step >= 0).sum()) == 0
    with pytest.raises(ValueError, match="fault_check"):
        ps.BiasedMD(a.system, a.cvs, a.method, dt=0.05, c_f=0.05, fault_check="never")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("row", [5, 1367])
def test_the_one_pass_finiteness_test_agrees_with_isfinite_on_every_row(dtype, row):
    """finite_rows (min and max of each row) against isfinite().all(): NaN, ±inf anywhere, and
    rows of huge finite values whose sum overflows (what a sum-based test would flag); short rows
    and long ones (3 × 1 367 numbers: the vectorised body of the reductions and their tail).
    Control: the sum-based test flags the overflowing rows."""
    from physampler.faults import finite_rows

    g = torch.Generator().manual_seed(3)
    big = torch.finfo(dtype).max
    t = torch.randn(64, 3, row, generator=g).to(dtype)
    t[8:16] = big  # finite, but every row sum is inf
    specials = [float("nan"), float("inf"), -float("inf")]
    for w in range(16, 64, 2):
        i, j = torch.randint(0, 3, (1,), generator=g).item(), torch.randint(0, row, (1,), generator=g).item()
        t[w, i, j] = specials[w % 3]
    exact = torch.isfinite(t.reshape(64, -1)).all(dim=1)
    assert torch.equal(finite_rows(t), exact) and int(exact.sum()) == 40
    assert not torch.equal(torch.isfinite(t.reshape(64, -1).sum(dim=1)), exact)  # the control
    assert finite_rows(torch.zeros(3, 0)).all() and finite_rows(torch.ones(2, 4, dtype=torch.int64)).all()


@pytest.mark.parametrize("splitting", ["ktd", "baoab", "obabo", "verlet"])
@pytest.mark.parametrize("noise", ["streams", "counter"])
def test_the_operators_over_walker_blocks_give_the_all_walkers_step_bit_for_bit(splitting, noise):
    """On the CPU the operators between force evaluations run over blocks of walkers
    (``row_block_bytes``): 7 walkers of 30 float64 numbers in blocks of 2, 2, 2, 1 against all 7
    at once, through walls of a reflective box that the walkers hit, with deposits.  Positions,
    velocities and S agree bitwise.  Controls: the box did see the blocks, and reflected walkers."""
    seen = []

    class Box(ps.ReflectiveBox):
        def apply(self, q, v):
            seen.append(q.shape[0])
            out = super().apply(q, v)
            seen.append(int((out[1] != v).sum()))  # velocities flipped in this call
            return out

    def run(block):
        sysm = HarmonicWell.isotropic(30)
        land = ps.Landscape([ps.Axis("U", 0.0, 60.0, bins=60)], sigma=1.0, out_of_range="wall")
        w = ps.WLMD(sysm, [ps.PotentialEnergy(sysm)], land, ps.InverseTime(0.5, 50), dt=0.05,
                    c_f=0.0 if splitting == "verlet" else 0.1, splitting=splitting,
                    constraints=[Box(torch.full((30,), 1.2, dtype=torch.float64))])
        w.row_block_bytes = block
        g = torch.Generator().manual_seed(1)
        st = w.init(0.5 * torch.randn(7, 30, generator=g, dtype=torch.float64), make_rng(3, 7, noise=noise))
        seen.clear()
        for _ in range(40):
            st, _ = w.step(st)
        return st, land.S.clone(), list(seen)

    (a, sa, seen_all), (b, sb, seen_blocks) = run(1 << 30), run(2 * 30 * 8)
    assert torch.equal(a.positions, b.positions) and torch.equal(a.velocities, b.velocities)
    assert torch.equal(sa, sb) and torch.equal(a.cv, b.cv)
    assert seen_all[::2] == [7] * 40 and seen_blocks[::2] == [2, 2, 2, 1] * 40
    assert sum(seen_all[1::2]) > 0  # walkers did reach the walls
