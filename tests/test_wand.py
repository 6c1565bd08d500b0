"""WanD: the optimizer is the core's WLMD with one walker and the CV ln L (docs/science.md §9)."""
import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from physampler import WLMD, Constant, InverseTime, QuadraticWall, ReflectiveBox, WalkerRNG
from physampler.adapters import WanD
from physampler.adapters.torch_module import ModuleCVSet, ModuleSystem, cross_entropy
from physampler.adapters.wand import thermal_displacement_variance, wand_landscape
from physampler.models.tasks import ModularTask
from physampler.models.transformer import OneLayerTransformer


def model_and_data(dtype=torch.float64):
    net = OneLayerTransformer(11, d_model=16, n_heads=2, d_head=8, d_mlp=32,
                              generator=torch.Generator().manual_seed(0), dtype=dtype)
    return net, ModularTask("x+y", 11, split_seed=0).split()


def closure_for(net, x, y, backward=False):
    def closure():
        loss = cross_entropy(net(x)[None], y)[0]
        if backward:
            loss.backward()
        return loss
    return closure


KW = dict(lr=0.01, friction=0.05, kT=1.0, lower=-3.0, upper=3.0, bins=120, sigma=1.0, wall_at=2.0,
          wall_strength=50.0)


def test_wand_step_is_the_core_wlmd_step_bitwise():
    net, ((xtr, ytr), test) = model_and_data()
    ref_net = OneLayerTransformer(11, d_model=16, n_heads=2, d_head=8, d_mlp=32, dtype=torch.float64)
    ref_net.load_state_dict(net.state_dict())
    sched = InverseTime(F=0.5, t_wl=10)
    opt = WanD(net.parameters(), schedule=sched, seed=7, box=3.0, **KW)
    # The core: WLMD on the 1-D ln L_train landscape of the same network, one walker.
    system = ModuleSystem(ref_net, (xtr, ytr), test, dtype=torch.float64)
    land = wand_landscape(KW["lower"], KW["upper"], KW["bins"], sigma=1.0)
    core = WLMD(system, ModuleCVSet(system, ["log_train_loss"]), land, sched, dt=KW["lr"], c_f=KW["friction"],
                kT=1.0, biases=[QuadraticWall(0, 2.0, 50.0, "upper")],
                constraints=[ReflectiveBox(system.box_bounds(3.0))], walkers_total=1)
    state = core.init(system.initial_positions(1), WalkerRNG(7, 1))
    closure = closure_for(net, xtr, ytr)
    for t in range(40):
        opt.step(closure)
        state, _ = core.step(state)
        flat = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
        assert torch.equal(flat, state.positions[0]), t
        assert torch.equal(opt.velocities, state.velocities[0]), t
        assert torch.equal(opt.landscape.S, land.S) and torch.equal(opt.landscape.H, land.H), t
    assert float(land.S.sum()) > 0  # deposits happened


def test_closure_that_calls_backward_gives_the_same_dynamics():
    net, ((xtr, ytr), _) = model_and_data()
    net2 = OneLayerTransformer(11, d_model=16, n_heads=2, d_head=8, d_mlp=32, dtype=torch.float64)
    net2.load_state_dict(net.state_dict())
    a = WanD(net.parameters(), seed=3, **KW)
    b = WanD(net2.parameters(), seed=3, **KW)
    for _ in range(20):
        a.step(closure_for(net, xtr, ytr))
        b.step(closure_for(net2, xtr, ytr, backward=True))
    pa = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    pb = torch.cat([p.detach().reshape(-1) for p in net2.parameters()])
    # (∂L/∂θ)/L instead of the backward of c·ln L: the same numbers up to round-off
    assert torch.allclose(pa, pb, rtol=0, atol=1e-12)


def test_frozen_exponential_landscape_is_langevin_dynamics_on_the_loss():
    """S(x) = eˣ on the ln L grid makes the force −kT·L·∂ln L/∂θ = −∂L/∂θ (kT = 1): WanD is
    then Langevin dynamics on L(θ) = ½k|θ|² + 1 and samples θ_i ~ N(0, kT/k).

    200 components × 20 000 steps, dt = 0.05, λ = 0.01 (γ = λ/dt = 0.2, position
    correlation time ≈ 2/γ = 200 steps).  The variance comes from 19 block means of
    1 000 steps each and must be within 3 standard errors (≈ 1 %) of kT/k.  Known
    biases far below that: the S grid's (central differences of eˣ on bins of 0.01:
    2e-5) and the step's own, which for kick–thermostat–drift on a harmonic well is
    ≈ λ/(2 − λ) = 0.5 % of the variance at this λ (exact stationary covariance of the
    linear map; it is 2.6 % at λ = 0.05, which is why λ is small here).
    """
    k, n = 2.0, 200
    theta = torch.nn.Parameter(torch.zeros(n, dtype=torch.float64))
    opt = WanD([theta], lr=0.05, friction=0.01, kT=1.0, schedule=Constant(0.0), lower=0.0, upper=6.0, bins=600, wall_at=None,
               seed=11)
    x = opt.landscape.grid.axes[0].centres()
    opt.landscape.S.copy_(torch.exp(x))

    def closure():
        return 0.5 * k * (theta**2).sum() + 1.0

    samples = []
    for t in range(20000):
        opt.step(closure)
        if t >= 1000:
            samples.append(theta.detach().clone())
    q = torch.stack(samples).numpy()
    block_var = np.array([np.mean(b**2) for b in np.array_split(q, 19)])
    var, se = block_var.mean(), block_var.std(ddof=1) / math.sqrt(len(block_var))
    assert abs(var - 1.0 / k) <= 3 * se, (var, se)
    assert se < 0.01  # the check has teeth: a 6 % error in the force or the noise would fail it


def test_state_dict_round_trip_continues_bitwise(tmp_path):
    net, ((xtr, ytr), _) = model_and_data()
    opt = WanD(net.parameters(), seed=5, box=3.0, **KW)
    for _ in range(15):
        opt.step(closure_for(net, xtr, ytr))
    buf = io.BytesIO()
    torch.save({"model": net.state_dict(), "opt": opt.state_dict()}, buf)
    for _ in range(15):
        opt.step(closure_for(net, xtr, ytr))
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    net2 = OneLayerTransformer(11, d_model=16, n_heads=2, d_head=8, d_mlp=32, dtype=torch.float64)
    net2.load_state_dict(saved["model"])
    opt2 = WanD(net2.parameters(), seed=999, box=3.0, **KW)  # seed and state come from the state dict
    opt2.load_state_dict(saved["opt"])
    for _ in range(15):
        opt2.step(closure_for(net2, xtr, ytr))
    for p, p2 in zip(net.parameters(), net2.parameters()):
        assert torch.equal(p, p2)
    assert torch.equal(opt.velocities, opt2.velocities)
    assert torch.equal(opt.landscape.S, opt2.landscape.S) and opt.steps == opt2.steps == 30


def test_constraints_box_per_group_and_fixed_norm():
    net, ((xtr, ytr), _) = model_and_data()
    params = dict(net.named_parameters())
    boxed = [params["W_in"], params["W_out"]]
    free = [p for n, p in params.items() if n not in ("W_in", "W_out")]
    opt = WanD([{"params": boxed, "box": 0.2}, {"params": free}], seed=1, **KW)
    for _ in range(300):
        opt.step(closure_for(net, xtr, ytr))
        assert all(bool((p.abs() <= 0.2 / math.sqrt(p.shape[0])).all()) for p in boxed)
    assert max(float(p.detach().abs().max() * math.sqrt(p.shape[0])) for p in free) > 0.2  # the other group is unboxed

    net, ((xtr, ytr), _) = model_and_data()
    opt = WanD(net.parameters(), seed=1, norm=30.0, **KW)
    for _ in range(300):
        opt.step(closure_for(net, xtr, ytr))
        norm = float(torch.cat([p.detach().reshape(-1) for p in net.parameters()]).norm())
        assert abs(norm - 30.0) <= 1e-6


@pytest.mark.parametrize("kwargs, message", [
    (dict(lr=0.0), "lr: must be"),
    (dict(lr=float("nan")), "lr: must be"),
    (dict(friction=1.5), r"friction: must lie in \[0.0, 1.0\]"),
    (dict(kT=-1.0), "kT: must be"),
    (dict(schedule="1/t"), "schedule: must be a physampler Schedule"),
    (dict(box=0.0), "box: must be"),
    (dict(norm=-3.0), "norm: must be"),
    (dict(wall_at=float("inf")), "wall_at: must be a finite number"),
    (dict(seed=-1), "seed: must be"),
])
def test_eager_argument_checks(kwargs, message):
    net, _ = model_and_data()
    with pytest.raises(ValueError, match=message):
        WanD(net.parameters(), **kwargs)


def test_step_needs_a_closure_and_groups_share_the_time_step():
    net, ((xtr, ytr), _) = model_and_data()
    opt = WanD(net.parameters(), seed=0)
    with pytest.raises(ValueError, match="closure: WanD needs the loss"):
        opt.step()
    p = list(net.parameters())
    with pytest.raises(ValueError, match=r"param_groups\[1\]\.lr: WanD integrates all groups with one lr"):
        WanD([{"params": p[:3]}, {"params": p[3:], "lr": 0.5}], lr=0.01)
    with pytest.raises(ValueError, match="closure: WanD samples ln L, so the loss must be > 0"):
        WanD(net.parameters(), seed=0).step(lambda: torch.tensor(-1.0, dtype=torch.float64, requires_grad=True))


def test_a_loss_that_underflows_to_zero_is_a_numerical_fault():
    from physampler import NumericalFault

    theta = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    opt = WanD([theta], seed=0)
    calls = []

    def closure():
        calls.append(1)
        return (theta**2).sum() * (0.0 if len(calls) > 2 else 1.0)

    opt.step(closure)
    with pytest.raises(NumericalFault, match=r"step 2, walker 0: loss 0\.0, so ln L is not finite") as e:
        opt.step(closure)
    assert "use float64" not in str(e.value) and "a box" in str(e.value)  # the loss was float64 already
    theta32 = torch.nn.Parameter(torch.ones(3, dtype=torch.float32))
    opt, calls[:] = WanD([theta32], seed=0), []
    opt.step(lambda: (calls.append(1), (theta32**2).sum() * (0.0 if len(calls) > 2 else 1.0))[1])
    with pytest.raises(NumericalFault, match="use float64"):
        opt.step(lambda: (calls.append(1), (theta32**2).sum() * (0.0 if len(calls) > 2 else 1.0))[1])


# ------------------------------------------- one set of defaults (issue 14, item 5)
def _spiral(n, gen):
    """Two interleaved spiral arms in the plane (labels 0/1), a classic generic-MLP task."""
    t = torch.rand(n, generator=gen, dtype=torch.float64) * 3 * math.pi + 0.5
    c = torch.randint(0, 2, (n,), generator=gen)
    ang = t + c * math.pi
    r = 2 * t / (3 * math.pi + 0.5)
    x = torch.stack([r * torch.cos(ang), r * torch.sin(ang)], 1) + 0.02 * torch.randn(n, 2, generator=gen,
                                                                                      dtype=torch.float64)
    return x, c


def _spiral_accuracy(make_optimizer, seed, steps=500):
    """Test accuracy of a 2-64-64-2 tanh MLP (4 482 parameters) after ``steps`` full-batch steps."""
    gen = torch.Generator().manual_seed(1234)
    (xtr, ytr), (xte, yte) = _spiral(400, gen), _spiral(400, gen)
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(2, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64), torch.nn.Tanh(),
                              torch.nn.Linear(64, 2)).double()
    opt = make_optimizer(net.parameters(), seed)

    def closure():
        return torch.nn.functional.cross_entropy(net(xtr), ytr)

    for _ in range(steps):
        if isinstance(opt, WanD):
            opt.step(closure)
        else:
            opt.zero_grad()
            closure().backward()
            opt.step()
    with torch.no_grad():
        return float((net(xte).argmax(1) == yte).double().mean())


def test_wand_defaults_train_a_model_they_were_not_tuned_on():
    """WanD with nothing but its defaults trains a spiral MLP as AdamW does (measured: test
    accuracy 0.99–1.00 for seeds 0–2 at step 500; 400 test points, so a binomial sd ≈ 0.01 at
    0.95).  Controls that must fail: the class defaults before issue 14 (F = 1, σ = 1 bin,
    λ = 0.01, β = 100, no wall) heat the loss (accuracy ≈ 0.5), and the reflective box c = 1.5
    of the transformer example confines the MLP (accuracy ≈ 0.6)."""
    from physampler.adapters.schema import WAND_DEFAULTS

    opt = WanD([torch.nn.Parameter(torch.ones(2))])
    assert {k: opt.param_groups[0][k] for k in ("lr", "friction", "kT")} == \
        {k: WAND_DEFAULTS[k] for k in ("lr", "friction", "kT")}
    assert (opt.schedule.F, opt.schedule.t_wl, opt.wall_at, opt.wall_strength) == \
        (WAND_DEFAULTS["F"], WAND_DEFAULTS["t_wl"], WAND_DEFAULTS["wall_at"], WAND_DEFAULTS["wall_strength"])
    adamw = _spiral_accuracy(lambda p, s: torch.optim.AdamW(p, lr=1e-2), 0)
    assert adamw >= 0.95
    for seed in (0, 1, 2):
        assert _spiral_accuracy(lambda p, s: WanD(p, seed=s), seed) >= 0.95, seed
    old = dict(friction=0.01, schedule=InverseTime(F=1.0, t_wl=1000), sigma=1.0, lower=-12.0, bins=700,
               wall_at=None, wall_strength=100.0)
    assert _spiral_accuracy(lambda p, s: WanD(p, seed=s, **old), 0) < 0.8
    assert _spiral_accuracy(lambda p, s: WanD(p, seed=s, box=1.5), 0) < 0.8


def test_train_config_and_docs_take_the_wand_defaults_from_one_place():
    from physampler import config as C
    from physampler.adapters.schema import WAND_DEFAULTS

    keys = C.schema("train")["optimizer"]
    for k, v in WAND_DEFAULTS.items():
        if k != "lr":  # the config asks for lr explicitly, as torch.optim does
            assert keys[k].default == v, k
    text = (Path(__file__).parents[1] / "docs" / "config.md").read_text()
    assert C.markdown("train") in text


def test_per_parameter_state_lives_in_self_state_and_any_splitting_is_the_core_step():
    """As in torch.optim, ``opt.state[p]`` holds each parameter's ``velocity`` and
    ``acceleration`` (p's shape) and ``step``, and torch.optim's state_dict carries them by
    parameter index.  WanD on the BAOAB splitting is the core's BiasedMD(WangLandau, baoab) step
    bit for bit; control: it differs from the default ktd step.  Verlet needs friction 0."""
    from physampler.integrators import BiasedMD
    from physampler.methods import WangLandau

    net, ((xtr, ytr), test) = model_and_data()
    ref_net = OneLayerTransformer(11, d_model=16, n_heads=2, d_head=8, d_mlp=32, dtype=torch.float64)
    ref_net.load_state_dict(net.state_dict())
    sched = InverseTime(F=0.5, t_wl=10)
    opt = WanD(net.parameters(), schedule=sched, seed=7, splitting="baoab", **KW)
    system = ModuleSystem(ref_net, (xtr, ytr), test, dtype=torch.float64)
    land = wand_landscape(KW["lower"], KW["upper"], KW["bins"], sigma=1.0)
    core = BiasedMD(system, ModuleCVSet(system, ["log_train_loss"]), WangLandau(land, sched), dt=KW["lr"],
                    c_f=KW["friction"], kT=1.0, biases=[QuadraticWall(0, 2.0, 50.0, "upper")], walkers_total=1,
                    splitting="baoab")
    state = core.init(system.initial_positions(1), WalkerRNG(7, 1))
    for t in range(25):
        opt.step(closure_for(net, xtr, ytr))
        state, _ = core.step(state)
    flat = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    assert torch.equal(flat, state.positions[0]) and torch.equal(opt.velocities, state.velocities[0])
    params = list(net.parameters())
    for p in params:
        st = opt.state[p]
        assert st["velocity"].shape == p.shape and st["acceleration"].shape == p.shape and st["step"] == 25
    sd = opt.state_dict()
    assert set(sd["state"]) == set(range(len(params))) and sd["wand"]["splitting"] == "baoab"
    assert torch.equal(sd["state"][0]["velocity"], opt.state[params[0]]["velocity"])
    ktd_net = OneLayerTransformer(11, d_model=16, n_heads=2, d_head=8, d_mlp=32, dtype=torch.float64)
    ktd_net.load_state_dict(model_and_data()[0].state_dict())  # the same initial network
    ktd = WanD(ktd_net.parameters(), schedule=sched, seed=7, **KW)
    for _ in range(25):
        ktd.step(closure_for(ktd_net, xtr, ytr))
    assert not torch.equal(ktd.velocities, opt.velocities)
    with pytest.raises(ValueError, match="friction: splitting 'verlet' has no thermostat"):
        WanD(net.parameters(), splitting="verlet", **KW)
    with pytest.raises(ValueError, match="splitting: must be one of"):
        WanD(net.parameters(), splitting="abo", **KW)


def test_a_free_walker_diffuses_as_the_thermal_prediction_says():
    """The norm growth of WanD without a box is measured against this prediction
    (docs/results.md, WanD).  A loss that does not depend on θ leaves only the thermostat:
    P = 40 000 free coordinates, 100 steps, dt 1e-3, λ 0.03, kT 0.7.  |Δθ|²/(P·Var) is χ²_P/P,
    sd √(2/P) = 0.007; asked within 4 sd.  Control that must fail: the long-time form
    dt² kT t (2 − λ)/λ, which at t = 3/λ overstates the variance by 45 %."""
    P, t, dt, lam, kT = 40_000, 100, 1e-3, 0.03, 0.7
    theta = torch.nn.Parameter(torch.zeros(P, dtype=torch.float64))
    opt = WanD([theta], lr=dt, friction=lam, kT=kT, seed=5)

    def closure():
        return 1.0 + 0.0 * theta.sum()  # L = 1 everywhere: ∂ ln L/∂θ = 0, no force

    for _ in range(t):
        opt.step(closure)
    ratio = float((theta.detach() ** 2).sum()) / (P * thermal_displacement_variance(t, dt, kT, lam))
    assert abs(ratio - 1.0) <= 4 * math.sqrt(2.0 / P), ratio
    long_time = dt * dt * kT * t * (2 - lam) / lam
    assert abs(float((theta.detach() ** 2).sum()) / (P * long_time) - 1.0) > 0.2


def test_a_lower_temperature_is_a_shorter_time_step():
    """q̈ = −kT·∂S/∂ξ·∇ξ with noise of variance λ(2 − λ)·kT: with v = √kT·u the ``ktd`` step at
    (dt, kT) is the step at (dt·√kT, 1) for u, so the positions agree draw for draw and the
    velocities by the factor √kT (docs/science.md §9).  A kT below 1 is not a new setting of
    WanD; it is a shorter time step.  Float64, 60 steps with deposits and the wall; agreement
    to 1e-9 (round-off, amplified by a chaotic trajectory).  Control: the same kT at the
    unscaled dt moves elsewhere."""
    kT = 0.09

    def run(lr, kT):
        net, ((xtr, ytr), _) = model_and_data()
        opt = WanD(net.parameters(), lr=lr, friction=0.05, kT=kT, schedule=InverseTime(F=2.0, t_wl=20), lower=-3.0,
                   upper=3.0, bins=120, sigma=1.0, wall_at=0.5, wall_strength=50.0, seed=13)
        for _ in range(60):
            opt.step(closure_for(net, xtr, ytr))
        return torch.cat([p.detach().reshape(-1) for p in net.parameters()]), opt.velocities, opt.landscape.S.clone()

    q1, v1, s1 = run(0.02 * math.sqrt(kT), 1.0)
    q2, v2, s2 = run(0.02, kT)
    assert float(s1.sum()) > 0 and torch.allclose(s1, s2, rtol=0, atol=1e-9)
    assert torch.allclose(q1, q2, rtol=0, atol=1e-9), float((q1 - q2).abs().max())
    assert torch.allclose(v1 * math.sqrt(kT), v2, rtol=0, atol=1e-9)
    q3, _, _ = run(0.02, 1.0)
    assert float((q3 - q2).abs().max()) > 1e-3
