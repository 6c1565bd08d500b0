"""The PyTorch adapter: batched walkers equal per-walker nn.Module evaluation; constraints hold.

Tolerance 1e-10 (relative, float64): the batched and per-walker paths run the same
operations with different reduction layouts, so they agree to round-off.
"""
import numpy as np
import pytest
import torch

from physampler import WLMD, Axis, FixedNormShell, InverseTime, Landscape, ReflectiveBox, WalkerRNG
from physampler.adapters.torch_module import (CV_NAMES, ModuleCVSet, ModuleSystem, cross_entropy,
                                              smoothed_accuracy)
from physampler.models.mlp import ModularMLP
from physampler.models.tasks import ModularTask
from physampler.models.transformer import OneLayerTransformer


def transformer(p=7, seed=0):
    return OneLayerTransformer(p, d_model=16, n_heads=2, d_head=8, d_mlp=32,
                               generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def mlp(p=7, seed=0):
    return ModularMLP(p, hidden=24, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_tasks():
    t = ModularTask("x3+xy2+y", 5, train_fraction=0.6, split_seed=2)
    x, y = t.inputs[:, 0], t.inputs[:, 1]
    assert torch.equal(t.labels, (x**3 + x * y * y + y) % 5) and torch.all(t.inputs[:, 2] == 5)
    assert len(t.train_index) == 15 and len(t.test_index) == 10
    assert set(t.train_index.tolist()).isdisjoint(t.test_index.tolist())
    assert torch.equal(ModularTask("x+y", 5, split_seed=2).train_index, ModularTask("x+y", 5, split_seed=2).train_index)
    for bad in (dict(op="x*y", p=5), dict(op="x+y", p=6), dict(op="x+y", p=5, train_fraction=1.0)):
        with pytest.raises(ValueError):
            ModularTask(**bad)


def test_transformer_fast_path_and_size():
    m = OneLayerTransformer(67, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    n = sum(p.numel() for p in m.parameters())
    norm = torch.cat([p.detach().reshape(-1) for p in m.parameters()]).norm()
    assert 2.1e5 < n < 2.3e5 and 40 < float(norm) < 44  # docs/science.md §8: about 2.2e5 parameters, norm ≈ 42
    x = ModularTask("x+y", 67).inputs[:300]
    # 300 examples > 3·68 (position, token) pairs: the table path; 100: the direct path.
    assert torch.allclose(m(x), m.forward_full(x), rtol=1e-12, atol=1e-12)
    assert torch.allclose(m(x[:100]), m.forward_full(x[:100]), rtol=1e-12, atol=1e-12)
    c = torch.randn(300, 67, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    grads = []
    for f in (m.forward, m.forward_full):
        m.zero_grad()
        (f(x) * c).sum().backward()
        grads.append(torch.cat([p.grad.reshape(-1) for p in m.parameters()]))
    assert float((grads[0] - grads[1]).abs().max()) <= 1e-12 * float(grads[1].abs().max())


def _four_walkers(system, names, device):
    """Four perturbed walkers, their CVs ``names`` and the VJP of random coefficients:
    (q, cvs, ξ, coefficients, gradient)."""
    gen = torch.Generator().manual_seed(3)
    q = system.initial_positions(4) + 0.2 * torch.randn(4, system.shape[0], generator=gen, dtype=torch.float64).to(device)
    cvs = ModuleCVSet(system, names)
    xi, vjp = cvs.value_and_vjp(q)
    coeff = torch.randn(4, len(names), generator=gen, dtype=torch.float64).to(device)
    return q, cvs, xi, coeff, vjp(coeff)


@pytest.mark.parametrize("make", [transformer, mlp], ids=["transformer", "mlp"])
def test_batched_walkers_equal_per_walker_modules(make, device):
    """On the CPU and, marked cuda, on a GPU (tests/conftest.py DEVICES)."""
    task = ModularTask("x2+y", 11, split_seed=1)  # 60 train pairs > 3·12: the transformer's table path
    (xtr, ytr), (xte, yte) = task.split()
    system = ModuleSystem(make(11), (xtr, ytr), (xte, yte), sharpness=5.5, dtype=torch.float64, device=device)
    q, cvs, xi, coeff, grad = _four_walkers(system, CV_NAMES, device)
    xtr, ytr, xte, yte = (t.to(device) for t in (xtr, ytr, xte, yte))
    for w in range(4):
        net = system.load_into(q[w])
        net.zero_grad()
        fwd = getattr(net, "forward_full", net)  # the transformer's plain all-positions forward
        zt = fwd(xte)
        ref = [torch.log(torch.nn.functional.cross_entropy(fwd(xtr), ytr)), smoothed_accuracy(zt[None], yte, 5.5)[0],
               torch.log(torch.nn.functional.cross_entropy(zt, yte)),
               torch.cat([p.reshape(-1) for p in net.parameters()]).norm()]
        for k, r in enumerate(ref):
            assert float(xi[w, k]) == pytest.approx(float(r.detach()), rel=1e-10)
        sum(c * r for c, r in zip(coeff[w], ref)).backward()
        g = torch.cat([dict(net.named_parameters())[n].grad.reshape(-1) for n in system.names])
        assert float((g - grad[w]).abs().max()) <= 1e-10 * float(g.abs().max())
        acc = (zt.argmax(-1) == yte).double().mean()
        assert float(cvs.last_accuracy[w]) == float(acc)
    assert torch.equal(cvs.values(q), xi)
    # One walker alone gives the same numbers as in the batch.
    xi1, _ = cvs.value_and_vjp(q[2:3])
    assert torch.allclose(xi1[0], xi[2], rtol=1e-12, atol=0)


def test_surrogate_accuracy_gradient_matches_finite_differences():
    task = ModularTask("x+y", 5)
    system = ModuleSystem(mlp(5), *task.split(), sharpness=6.0, dtype=torch.float64)
    q = system.initial_positions(1) + 0.3 * torch.randn(1, system.shape[0], generator=torch.Generator().manual_seed(1),
                                                        dtype=torch.float64)
    cvs = ModuleCVSet(system, ["smoothed_accuracy"])
    _, vjp = cvs.value_and_vjp(q)
    g = vjp(torch.ones(1, 1, dtype=torch.float64))[0]
    h = 1e-6
    for i in (0, 7, 30, system.shape[0] - 1):
        qp, qm = q.clone(), q.clone()
        qp[0, i] += h
        qm[0, i] -= h
        fd = (float(cvs.values(qp)[0, 0]) - float(cvs.values(qm)[0, 0])) / (2 * h)
        assert float(g[i]) == pytest.approx(fd, rel=1e-5, abs=1e-9)
    # k → large: Ã approaches the true accuracy
    sharp = ModuleSystem(mlp(5), *task.split(), sharpness=1e4, dtype=torch.float64)
    vals, acc = sharp.evaluate(q, ["smoothed_accuracy"])
    assert float(vals["smoothed_accuracy"][0]) == pytest.approx(float(acc[0]), abs=0.02)


def _wlmd(system, constraints, walkers):
    cvs = ModuleCVSet(system, ["log_train_loss", "smoothed_accuracy"])
    land = Landscape([Axis("log_train_loss", -6.0, 2.0, bins=40), Axis("smoothed_accuracy", 0.0, 1.0, bins=20)],
                     sigma=1.0, out_of_range="wall")
    return WLMD(system, cvs, land, InverseTime(0.5, 200), dt=0.02, c_f=0.05, kT=1.0, constraints=constraints)


def test_box_constraint_holds_over_1e4_steps():
    task = ModularTask("x+y", 5)
    system = ModuleSystem(ModularMLP(5, hidden=8, generator=torch.Generator().manual_seed(0), dtype=torch.float64),
                          *task.split(), dtype=torch.float64)
    bound = system.box_bounds(c=3.0)
    assert torch.allclose(bound[: 8 * 10], torch.full((80,), 3.0 / np.sqrt(8), dtype=torch.float64))  # W1: m = 8
    wlmd = _wlmd(system, [ReflectiveBox(bound)], 4)
    state = wlmd.init(system.initial_positions(4), WalkerRNG(0, 4))
    worst = 0.0
    for _ in range(10_000):
        state, _ = wlmd.step(state)
        worst = max(worst, float((state.positions.abs() / bound).max()))
    assert worst <= 1.0
    assert int(wlmd.landscape.visited().sum()) > 5  # it did move through the landscape


def test_fixed_norm_shell_keeps_the_norm():
    task = ModularTask("x+y", 5)
    system = ModuleSystem(mlp(5), *task.split(), dtype=torch.float64)
    q0 = system.initial_positions(3)
    q0 = q0 / q0.norm(dim=1, keepdim=True) * 30.0
    wlmd = _wlmd(system, [FixedNormShell(30.0)], 3)
    state = wlmd.init(q0, WalkerRNG(1, 3))
    for _ in range(500):
        state, _ = wlmd.step(state)
        assert float((state.positions.norm(dim=1) - 30.0).abs().max()) < 1e-6


def test_cross_entropy_matches_torch():
    z = torch.randn(2, 9, 5, dtype=torch.float64)
    y = torch.randint(0, 5, (9,))
    for w in range(2):
        assert float(cross_entropy(z, y)[w]) == pytest.approx(float(torch.nn.functional.cross_entropy(z[w], y)),
                                                              rel=1e-14)


def test_per_bin_observable_mean_roundtrip(tmp_path):
    from physampler.io import read_landscape, write_landscape

    land = Landscape([Axis("a", 0.0, 1.0, bins=4), Axis("b", 0.0, 1.5, bins=3)])
    xi = torch.tensor([[0.1, 0.2], [0.1, 0.3], [0.9, 0.9], [2.0, 0.5]], dtype=torch.float64)
    land.observe("test_accuracy", xi, torch.tensor([0.2, 0.4, 1.0, 0.7], dtype=torch.float64))
    m = land.observable_mean("test_accuracy")
    assert float(m[0, 0]) == pytest.approx(0.3) and float(m[3, 1]) == 1.0  # b bins of width 0.5
    assert int(torch.isfinite(m).sum()) == 2  # the out-of-range walker is not recorded
    write_landscape(tmp_path / "l.nc", land)
    back, _ = read_landscape(tmp_path / "l.nc")
    assert torch.equal(back.observable_sums["test_accuracy"], land.observable_sums["test_accuracy"])
    import xarray as xr

    with xr.open_dataset(tmp_path / "l.nc") as ds:
        assert np.allclose(ds["mean_test_accuracy"].values, m.numpy(), equal_nan=True)


def test_wlmd_records_true_accuracy_per_bin():
    task = ModularTask("x+y", 5)
    system = ModuleSystem(mlp(5), *task.split(), dtype=torch.float64)
    wlmd = _wlmd(system, [], 3)
    state = wlmd.init(system.initial_positions(3), WalkerRNG(2, 3))
    for _ in range(50):
        state, _ = wlmd.step(state)
    counts = wlmd.landscape.observable_counts["test_accuracy"]
    assert float(counts.sum()) == float(wlmd.landscape.H.sum()) == 150  # one record per in-range walker-step
    m = wlmd.landscape.observable_mean("test_accuracy")
    ok = torch.isfinite(m)
    assert bool(((m[ok] >= 0) & (m[ok] <= 1)).all())
    # the mean over all records equals the mean of the walkers' true accuracies (each a multiple of 1/|test|)
    assert float(wlmd.landscape.observable_sums["test_accuracy"].sum() / counts.sum()) <= 1.0


def test_reduced_precision_cvs_stay_close_to_float32(device):
    """bf16 autocast (the flag the GPU benchmark uses) changes the CVs by at most 5e-3 in ln L and
    3e-3 in Ã against float32 on this task (measured 7e-4 and 3e-4): bfloat16 keeps 8 mantissa bits
    (relative 4e-3 per rounding) and the logits' errors largely average out over the 60 examples of
    a mean.  tf32 is a no-op on CPU, so there it must change nothing; on CUDA (10 mantissa bits) it
    keeps bf16's bounds."""
    task = ModularTask("x+y", 11)
    net = OneLayerTransformer(11, d_model=32, n_heads=4, d_head=8, d_mlp=128, generator=torch.Generator().manual_seed(0))
    ref = ModuleSystem(net, *task.split(), dtype=torch.float32, device=device)
    q = ref.initial_positions(4) * (1 + 0.3 * torch.randn(4, ref.shape[0], generator=torch.Generator().manual_seed(1))
                                    .to(device))
    names = ["log_train_loss", "smoothed_accuracy"]
    base, _ = ref.evaluate(q, names)
    tf32 = (0.0, 0.0) if device.type == "cpu" else (5e-3, 3e-3)
    for prec, tol in (("tf32", tf32), ("bf16", (5e-3, 3e-3))):
        sys_p = ModuleSystem(net, *task.split(), dtype=torch.float32, precision=prec, device=device)
        vals, _ = sys_p.evaluate(q, names)
        assert vals["log_train_loss"].dtype == torch.float32
        assert float((vals["log_train_loss"] - base["log_train_loss"]).abs().max()) <= tol[0]
        assert float((vals["smoothed_accuracy"] - base["smoothed_accuracy"]).abs().max()) <= tol[1]
    with pytest.raises(ValueError, match="precision"):
        ModuleSystem(net, *task.split(), dtype=torch.float64, precision="bf16")


def test_compiled_forward_gives_the_eager_cvs_and_gradients(device):
    """``compile=True`` (TorchInductor) on the float32 transformer: CVs within 1e-5 and VJPs
    within 1e-3 relative of eager (measured 1e-7 and 8e-5 at d_model 32, p = 67: fused
    kernels reorder float32 sums; the batched-equals-per-walker test bounds eager in
    float64).  Compilation takes ≈ 20 s on the CI machine."""
    task = ModularTask("x+y", 11)
    net = OneLayerTransformer(11, d_model=16, n_heads=2, d_head=8, d_mlp=32, generator=torch.Generator().manual_seed(0))
    eager = ModuleSystem(net, *task.split(), device=device)
    compiled = ModuleSystem(net, *task.split(), compile=True, device=device)
    q = eager.initial_positions(4) * (1 + 0.3 * torch.randn(4, eager.shape[0], generator=torch.Generator().manual_seed(1))
                                      .to(device))
    names = ["log_train_loss", "smoothed_accuracy"]
    coeff = torch.randn(4, 2, generator=torch.Generator().manual_seed(2)).to(device)
    xi_e, vjp_e = ModuleCVSet(eager, names).value_and_vjp(q)
    xi_c, vjp_c = ModuleCVSet(compiled, names).value_and_vjp(q)
    assert float((xi_e - xi_c).abs().max()) <= 1e-5
    g_e, g_c = vjp_e(coeff), vjp_c(coeff)
    assert float((g_e - g_c).abs().max()) <= 1e-3 * float(g_e.abs().max())
    with pytest.raises(ValueError, match="compile: must be true or false"):
        ModuleSystem(net, *task.split(), compile="yes")


# ---------------------------------------------------------------- strategies, losses, models (issue 16)
def _huber(z, y):
    return torch.nn.functional.huber_loss(z.squeeze(-1), y)


def _cases():
    """(id, module, train, test, loss, reference loss of one walker's plain outputs, CV names)."""
    from physampler.models.cnn import SmallCNN
    from physampler.models.mlp import MLP
    from physampler.models.tasks import DataTask

    F = torch.nn.functional
    g = torch.Generator().manual_seed
    ce = lambda z, y: F.cross_entropy(z, y)  # noqa: E731
    cls = ["log_train_loss", "smoothed_accuracy", "logit_smoothed_accuracy", "log_validation_loss",
           "smoothed_validation_accuracy", "log_test_loss", "weight_norm"]
    reg = ["log_train_loss", "log_validation_loss", "log_test_loss", "weight_norm"]
    mod = ModularTask("x2+y", 11, split_seed=1).split()  # 60 train pairs > 3·12: the transformer's table path
    digits = DataTask("digits", examples=80).split(dtype=torch.float64)
    diabetes = DataTask("diabetes", examples=60).split(dtype=torch.float64)
    plain = torch.nn.Sequential(torch.nn.Linear(10, 6), torch.nn.Tanh(), torch.nn.Linear(6, 1)).double()
    return [("transformer", transformer(11), *mod, "cross_entropy", ce, cls),
            ("modular_mlp", mlp(11), *mod, "cross_entropy", ce, cls),
            ("cnn", SmallCNN(8, 10, (2, 3), generator=g(4), dtype=torch.float64), *digits, "cross_entropy", ce, cls),
            ("mlp_mse", MLP((10, 8, 1), generator=g(5), dtype=torch.float64), *diabetes, "mse",
             lambda z, y: F.mse_loss(z.squeeze(-1), y), reg),
            ("sequential_callable", plain, *diabetes, _huber, _huber, reg)]


CASES = _cases()


@pytest.mark.parametrize("strategy", ["batched", "vmap", "chunked", "loop"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_every_strategy_gives_each_walkers_plain_module_cvs_and_gradients(case, strategy, device):
    """Every evaluation strategy, on every model and loss of the adapter, equals one plain module
    forward + backward per walker (``load_into``, torch.nn.functional losses) to 1e-10 relative
    in float64 (same operations, other reduction layouts), on the CPU and (marked cuda) a GPU.  Chunks of 3 over 4 walkers leave an
    uneven last chunk.  Control: walker w's numbers are not walker w+1's."""
    name, module, train, test, loss, ref_loss, names = case
    if strategy == "batched" and not callable(getattr(module, "forward_batched", None)):
        with pytest.raises(ValueError, match="strategy: 'batched' needs"):
            ModuleSystem(module, train, test, loss=loss, dtype=torch.float64, strategy=strategy)
        return
    system = ModuleSystem(module, train, test, loss=loss, validation=0.25, validation_seed=2, sharpness=5.5,
                          dtype=torch.float64, strategy=strategy, chunk=3 if strategy == "chunked" else None,
                          device=device)
    q, cvs, xi, coeff, grad = _four_walkers(system, names, device)
    refs = []
    for w in range(4):
        net = system.load_into(q[w])
        net.zero_grad()
        fwd = getattr(net, "forward_full", net)  # the transformer's plain all-positions forward
        z = {s: fwd(system.data[s][0]) for s in ("train", "validation", "test")}
        y = {s: system.data[s][1] for s in z}
        r = {"log_train_loss": torch.log(ref_loss(z["train"], y["train"])),
             "log_validation_loss": torch.log(ref_loss(z["validation"], y["validation"])),
             "log_test_loss": torch.log(ref_loss(z["test"], y["test"])),
             "weight_norm": torch.cat([p.reshape(-1) for p in net.parameters()]).norm()}
        if system.classification:
            a = smoothed_accuracy(z["test"][None], y["test"], 5.5)[0]
            r |= {"smoothed_accuracy": a, "logit_smoothed_accuracy": torch.log(a / (1 - a)),
                  "smoothed_validation_accuracy": smoothed_accuracy(z["validation"][None], y["validation"], 5.5)[0]}
            assert float(cvs.last_accuracy[w]) == float((z["test"].argmax(-1) == y["test"]).double().mean())
        else:
            assert float(cvs.last_accuracy[w]) == pytest.approx(float(ref_loss(z["test"], y["test"]).detach()), rel=1e-10)
        ref = [r[n] for n in names]
        refs.append(torch.stack([t.detach() for t in ref]))
        assert torch.allclose(xi[w], refs[-1], rtol=1e-10, atol=0), (name, strategy, w)
        sum(c * t for c, t in zip(coeff[w], ref)).backward()
        gw = torch.cat([dict(net.named_parameters())[n].grad.reshape(-1) for n in system.names])
        assert float((gw - grad[w]).abs().max()) <= 1e-10 * float(gw.abs().max())
    for w in range(3):  # control
        assert not torch.allclose(xi[w], refs[w + 1], rtol=1e-6, atol=0)
    assert torch.equal(cvs.values(q), xi)
    xi1, _ = cvs.value_and_vjp(q[2:3])  # one walker alone
    assert torch.allclose(xi1[0], xi[2], rtol=1e-12, atol=0)


def test_auto_probes_every_strategy_records_it_and_a_resume_repeats_it():
    """auto times every candidate at the first evaluation and keeps the fastest; the choice and
    the probe's times are in the run attributes and the state; a new system loading that state
    uses the same strategy, without a probe; one asking for another strategy is refused; a state
    written before strategies existed means batched (the old path) when the module has it.  A
    module vmap cannot batch (a data-dependent Python branch) drops that candidate.
    Control: a state naming an unknown strategy is refused."""
    task = ModularTask("x+y", 5)
    system = ModuleSystem(mlp(5), *task.split(), dtype=torch.float64)
    q = system.initial_positions(6)
    assert system.state_dict() == {} and system.run_attrs() == {}
    xi, _ = ModuleCVSet(system, ["log_train_loss"]).value_and_vjp(q)
    assert set(system.probe_ms) == {"batched", "vmap", "chunked:4", "loop"}
    fastest = min(system.probe_ms, key=system.probe_ms.get)
    sd = system.state_dict()
    assert fastest == (sd["strategy"] if not sd["chunk"] else f"{sd['strategy']}:{sd['chunk']}")
    assert system.run_attrs()["nn_strategy"] == fastest and "loop" in system.run_attrs()["nn_strategy_probe_ms"]
    again = ModuleSystem(mlp(5), *task.split(), dtype=torch.float64)
    again.load_state_dict(sd)
    assert again.chosen == system.chosen and again.run_attrs() == system.run_attrs()
    assert torch.equal(ModuleCVSet(again, ["log_train_loss"]).values(q), xi) and again.probe_ms == {}
    other = "loop" if sd["strategy"] != "loop" else "vmap"
    with pytest.raises(ValueError, match=f"strategy: the checkpoint ran '{sd['strategy']}'"):
        ModuleSystem(mlp(5), *task.split(), dtype=torch.float64, strategy=other).load_state_dict(sd)
    old = ModuleSystem(mlp(5), *task.split(), dtype=torch.float64)
    old.load_state_dict({})
    assert old.chosen == ("batched", None)
    with pytest.raises(ValueError, match="system state"):
        old.load_state_dict({"strategy": "fast"})

    class Branchy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 2).double()

        def forward(self, x):
            z = self.lin(x)
            return z if float(z.sum()) > -1e9 else -z  # a host read: vmap cannot batch it

    x = torch.randn(10, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    data = (x, (x[:, 0] > 0).long())
    branchy = ModuleSystem(Branchy(), data, data, dtype=torch.float64)
    ModuleCVSet(branchy, ["log_train_loss"]).values(branchy.initial_positions(2))
    assert str(branchy.probe_ms["vmap"]).startswith("failed") and branchy.chosen == ("loop", None)


def test_regression_and_validation_inputs_are_checked():
    """ln MSE needs float targets, the accuracy CVs a classification loss, validation CVs a split;
    the carved validation set and the rest partition the training set.  Control: a valid
    classification set-up is accepted."""
    from physampler.models.mlp import MLP
    from physampler.models.tasks import DataTask

    train, test = DataTask("diabetes", examples=40).split(dtype=torch.float64)
    net = MLP((10, 4, 1), dtype=torch.float64)
    with pytest.raises(ValueError, match="loss 'mse' needs float targets"):
        ModuleSystem(net, (train[0], train[1].long()), test, loss="mse")
    with pytest.raises(ValueError, match="loss: must be one of cross_entropy, mse or a callable"):
        ModuleSystem(net, train, test, loss="l1")
    reg = ModuleSystem(net, train, test, loss="mse", dtype=torch.float64, validation=0.25)
    with pytest.raises(ValueError, match="'smoothed_accuracy' needs a classification loss"):
        ModuleCVSet(reg, ["log_train_loss", "smoothed_accuracy"])
    with pytest.raises(ValueError, match="needs a validation split"):
        ModuleCVSet(ModuleSystem(net, train, test, loss="mse"), ["log_validation_loss"])
    with pytest.raises(ValueError, match="leaves an empty"):
        ModuleSystem(net, train, test, loss="mse", validation=0.01)
    tr, va = reg.data["train"][0], reg.data["validation"][0]
    assert len(tr) + len(va) == len(train[0]) == 20 and len(va) == 5
    rows = {tuple(r.tolist()) for r in torch.cat([tr, va])}
    assert rows == {tuple(r.tolist()) for r in train[0]}
    task = ModularTask("x+y", 5)
    ModuleCVSet(ModuleSystem(mlp(5), *task.split(), dtype=torch.float64), ["smoothed_accuracy"])  # control


def test_the_cnns_fused_batched_layer_equals_the_plain_model_on_ties_and_with_an_input_gradient():
    """SmallCNN.forward_batched pools before the bias and ReLU and fuses layer 1's GEMM with the
    pool over blocks of images; on images with constant regions (every window a four-way tie of
    identical patches) and with images small enough for several blocks, its logits and parameter
    gradients equal W plain forwards to 1e-10 relative (float64), and the path taken when the
    input needs a gradient gives the same numbers.  Control: summing the gradient over all tied
    positions (no first-wins) is far off on the constant images."""
    from physampler.models import cnn
    from physampler.models.cnn import SmallCNN
    g = torch.Generator().manual_seed(7)
    net = SmallCNN(8, 10, (2, 3), generator=g, dtype=torch.float64)
    x = torch.rand(40, 64, generator=g, dtype=torch.float64)
    x[:20] = 0.75  # constant images: all patches of a window identical, away from the border
    w = 3
    params = {k: (v.detach()[None] * (1 + 0.3 * torch.randn(w, *v.shape, generator=g, dtype=torch.float64)))
              .requires_grad_() for k, v in net.named_parameters()}
    old = cnn._BLOCK_BYTES
    cnn._BLOCK_BYTES = 8 * 64 * 6 * 5  # 5 images per block: 8 blocks
    try:
        out = net.forward_batched(params, x)
    finally:
        cnn._BLOCK_BYTES = old
    coeff = torch.randn(out.shape, generator=g, dtype=torch.float64)
    grads = torch.autograd.grad((out * coeff).sum(), list(params.values()))
    xg = x.clone().requires_grad_()
    out2 = net.forward_batched(params, xg)
    grads2 = torch.autograd.grad((out2 * coeff).sum(), list(params.values()))
    for k in range(w):
        one = SmallCNN(8, 10, (2, 3), dtype=torch.float64)
        with torch.no_grad():
            for (name, p) in one.named_parameters():
                p.copy_(params[name][k])
        ref = one(x)
        assert torch.allclose(out[k], ref, rtol=1e-10, atol=1e-12)
        rg = torch.autograd.grad((ref * coeff[k]).sum(), list(one.parameters()))
        for a, b, b2 in zip(rg, grads, grads2):
            assert float((a - b[k]).abs().max()) <= 1e-10 * float(a.abs().max())
            assert float((a - b2[k]).abs().max()) <= 1e-10 * float(a.abs().max())
    # control: the constant images' layer-1 kernel gradient if every tied position took the gradient
    img = x[:20].reshape(20, 1, 8, 8)
    kern = params["K1"].detach().reshape(w * 2, 9).T.clone().requires_grad_()
    z = cnn._SharedConvPool.apply(img, kern)
    gz = torch.ones_like(z)
    (first,) = torch.autograd.grad(z, kern, gz)
    p = cnn._patches(img).reshape(-1, 9)
    every = p.T @ torch.ones(p.shape[0], w * 2, dtype=torch.float64)  # all four positions of each window
    assert not torch.allclose(first, every, rtol=0.5)  # first wins matched the plain model above


def test_the_loop_writes_each_walkers_gradient_once_with_zeros_for_an_unused_parameter():
    """``loop`` unpacks the walkers with WalkerViews, whose backward writes every gradient into its
    slice of one [W, P] tensor: equal to vmap's gradient to round-off, and exactly 0 for a
    parameter the forward never uses (its gradient is None); the same under torch.func.vjp, as the
    captured step differentiates.  Control: that parameter's values
    are NaN, so a slice left unwritten or copied from them would not read 0; and the used
    parameters' gradient is not zero."""
    class WithUnused(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 3).double()
            self.unused = torch.nn.Parameter(torch.zeros(5, dtype=torch.float64))

        def forward(self, x):
            return self.lin(x)

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (40,), generator=g)
    module = WithUnused()
    q = None
    grads = {}
    for strategy in ("loop", "vmap"):
        system = ModuleSystem(module, (x[:20], y[:20]), (x[20:], y[20:]), dtype=torch.float64, strategy=strategy)
        if q is None:
            q = system.initial_positions(3) + 0.1 * torch.randn(3, *system.shape, generator=g, dtype=torch.float64)
            k = system.names.index("unused")
            unused = slice(sum(system.sizes[:k]), sum(system.sizes[:k + 1]))
            used = torch.ones(system.shape[0], dtype=torch.bool)
            used[unused] = False
            q[:, unused] = float("nan")
        _, vjp = ModuleCVSet(system, ["log_train_loss", "smoothed_accuracy"]).value_and_vjp(q)
        grads[strategy] = vjp(torch.tensor([[1.0, -2.0]] * 3, dtype=torch.float64))
    # the captured step differentiates with torch.func.vjp (cvs.value_and_pullback while compiling):
    # WalkerViews must run under it too, with the same gradient
    system = ModuleSystem(module, (x[:20], y[:20]), (x[20:], y[20:]), dtype=torch.float64, strategy="loop")
    names = ["log_train_loss", "smoothed_accuracy"]
    _, pullback = torch.func.vjp(lambda z: torch.stack([system.evaluate(z, names)[0][n] for n in names], dim=1), q)
    assert torch.equal(pullback(torch.tensor([[1.0, -2.0]] * 3, dtype=torch.float64))[0][:, used], grads["loop"][:, used])
    assert torch.equal(grads["loop"][:, unused], torch.zeros(3, 5, dtype=torch.float64))
    assert torch.allclose(grads["loop"][:, used], grads["vmap"][:, used], rtol=1e-12, atol=1e-15)
    assert grads["loop"][:, used].abs().max() > 0
