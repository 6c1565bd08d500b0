"""Walker-steps/s of the PyTorch adapter on five models, against a plain single-walker PyTorch
WLMD loop written here, and the fraction of the machine's GEMM rate each reaches (issue 16).

Models (train / test sets of the same size; float32 parameters, float64 landscape):

    transformer p=11 d16     x+y mod 11, 60 / 61 pairs        (models/transformer.py)
    transformer p=67 d32     x+y mod 67, 2 244 / 2 245 pairs
    MLP 91.5k                10→297→297→1 regression, 200 / 200 points (MSE)
    MLP 1M                   10→1000→1000→1 regression, 500 / 500 points (MSE)
    CNN 1k                   SmallCNN 28×28, channels (2, 2), 10 classes, 500 / 500 images

Data are generated (Gaussian inputs; regression targets from a fixed random teacher MLP; image
labels from a fixed random linear map) — the FLOPs, not the data, set the speed.  One step,
both sides: kick, thermostat, drift, reflective box (c = 3), a forward on the training and the
test set, the two CVs (ln L_train and Ã_test, or ln L_train and ln L_test), the landscape's
deposit and gradient, and one backward of Σ_k ∂S/∂ξ_k·ξ_k.

    reference  "plain": W nn.Modules stepped one after another, each with module forward /
               loss.backward and the operators inline per parameter tensor, as the published
               [P2] scripts do (W = 1 is such a script; more walkers repeat it, so its rate per
               walker does not depend on W: it is measured with min(W, 4) walkers)
    physampler "auto": physampler.WLMD on ModuleSystem(strategy="auto") with W walkers; the
               strategy the start-up probe chose is printed in the row

``GEMM share`` is the part of auto's step (same strategy, profiled over 3 steps) spent in the GEMM and
convolution kernels, and ``bound/plain`` the auto/plain ratio a step made of those kernels alone would
reach: what fusing everything else away could give at most, with the kernels as fast as they run there.

FLOPs per walker-step are counted with ``torch.utils.flop_counter.FlopCounterMode`` on one
plain step (matmuls and convolutions, forward and backward); the GEMM rate is the best
float32 ``torch.mm`` rate of n = 256…2048 measured at the start and the end of the run with
the same threads.  ``% GEMM`` = walker-steps/s × FLOPs per walker-step / GEMM rate.  Plain
and auto are measured interleaved, twice each, and the better of each pair is kept.

    python benchmarks/adapter_models.py [--threads 2] [--seconds 2] [--models cnn1k mlp91k ...]
"""
from __future__ import annotations

import argparse
import math
import platform
import time

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from physampler import WLMD, Axis, InverseTime, Landscape, ReflectiveBox, WalkerRNG, allocator
from physampler.integrators.graph import CapturedSteps
from physampler.rng import CounterRNG
from physampler.adapters.torch_module import ModuleCVSet, ModuleSystem, smoothed_accuracy
from physampler.models.cnn import SmallCNN
from physampler.models.mlp import MLP
from physampler.models.tasks import ModularTask
from physampler.models.transformer import OneLayerTransformer

DT, C_F, KT, BOX_C = 0.01, 0.01, 1.0, 3.0


def _regression(sizes, n, seed):
    g = torch.Generator().manual_seed(seed)
    teacher = MLP((sizes[0], 16, 1), generator=g)
    x = torch.randn(2 * n, sizes[0], generator=g)
    with torch.no_grad():
        y = teacher(x).squeeze(-1)
    return MLP(sizes, generator=g), (x[:n], y[:n]), (x[n:], y[n:]), "mse"


def _images(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2 * n, 784, generator=g)
    y = (x @ torch.randn(784, 10, generator=g)).argmax(-1)
    return SmallCNN(28, 10, (2, 2), generator=g), (x[:n], y[:n]), (x[n:], y[n:]), "cross_entropy"


def _transformer(p, d):
    net = OneLayerTransformer(p, d_model=d, n_heads=4, d_head=d // 4, d_mlp=4 * d,
                              generator=torch.Generator().manual_seed(0))
    return (net, *ModularTask("x+y", p).split(), "cross_entropy")


MODELS = {
    "transformer_p11_d16": lambda: _transformer(11, 16),
    "transformer_p67_d32": lambda: _transformer(67, 32),
    "mlp91k": lambda: _regression((10, 297, 297, 1), 200, 1),
    "mlp1m": lambda: _regression((10, 1000, 1000, 1), 500, 2),
    "cnn1k": lambda: _images(500, 3),
}


def gemm_rate() -> float:
    """Best float32 torch.mm FLOP/s over square sizes 256…2048."""
    best = 0.0
    for n in (256, 512, 1024, 2048):
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)
        reps, t = 0, time.perf_counter()
        while time.perf_counter() - t < 0.5 or reps < 2:
            torch.mm(a, b)
            reps += 1
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - t))
    return best


def names_of(loss):
    return ["log_train_loss", "smoothed_accuracy"] if loss == "cross_entropy" else ["log_train_loss", "log_test_loss"]


def landscape(names):
    second = Axis(names[1], 0.0, 1.0, bins=50) if names[1] == "smoothed_accuracy" else Axis(names[1], -8.0, 4.0, bins=120)
    return Landscape([Axis("log_train_loss", -8.0, 4.0, bins=120), second], sigma=1.0, out_of_range="wall")


class Plain:
    """W single-walker nn.Modules, each stepped as a published script steps its one network."""

    def __init__(self, system: ModuleSystem, loss: str, walkers: int):
        self.system, self.loss, self.names = system, loss, names_of(loss)
        gen = torch.Generator().manual_seed(0)
        self.nets = [system.load_into(system.flatten_module() * (1 + 0.01 * torch.randn(system.shape, generator=gen)))
                     for _ in range(walkers)]
        self.vel = [[torch.zeros_like(p) for p in m.parameters()] for m in self.nets]
        self.acc = [[torch.zeros_like(p) for p in m.parameters()] for m in self.nets]
        self.bounds = [b.view(s).float() for b, s in zip(torch.split(system.box_bounds(BOX_C), system.sizes),
                                                          system.shapes)]
        self.land = landscape(self.names)
        self.gen = torch.Generator().manual_seed(1)
        self.noise = math.sqrt(C_F * (2 - C_F) * KT)

    def cvs(self, m):
        (xtr, ytr), (xte, yte) = self.system.train, self.system.test
        F = torch.nn.functional
        if self.loss == "cross_entropy":
            return torch.log(F.cross_entropy(m(xtr), ytr)), smoothed_accuracy(m(xte)[None], yte, 6.0)[0]
        return torch.log(F.mse_loss(m(xtr).squeeze(-1), ytr)), torch.log(F.mse_loss(m(xte).squeeze(-1), yte))

    def step(self):
        for m, v, a in zip(self.nets, self.vel, self.acc):
            with torch.no_grad():
                for p, vi, ai, b in zip(m.parameters(), v, a, self.bounds):
                    vi.add_(ai, alpha=DT)
                    vi.mul_(1 - C_F).add_(torch.randn(p.shape, generator=self.gen), alpha=self.noise)
                    p.add_(vi, alpha=DT)
                    out = p.abs() > b
                    p.copy_(torch.where(out, torch.sign(p) * (2 * b - p.abs()), p))
                    vi.copy_(torch.where(out, -vi, vi))
            m.zero_grad()
            c1, c2 = self.cvs(m)
            xi = torch.stack([c1, c2]).detach().double()[None]
            self.land.deposit(xi, 0.5 / len(self.nets))
            c = self.land.gradient(xi)[0].float()
            (c[0] * c1 + c[1] * c2).backward()
            with torch.no_grad():
                for ai, p in zip(a, m.parameters()):
                    ai.copy_(p.grad).mul_(-KT)


class Auto:
    """physampler's step under strategy auto; ``capture = "compile"``: the whole step captured and
    compiled (physampler.integrators.graph, counter-based noise; compiled before the clock starts)."""

    def __init__(self, system: ModuleSystem, loss: str, walkers: int, capture: str = "none"):
        names = names_of(loss)
        self.w = WLMD(system, ModuleCVSet(system, names), landscape(names), InverseTime(0.5, 1e5), dt=DT, c_f=C_F,
                      kT=KT, constraints=[ReflectiveBox(system.box_bounds(BOX_C))])
        gen = torch.Generator().manual_seed(0)
        q = system.initial_positions(walkers) * (1 + 0.01 * torch.randn(walkers, *system.shape, generator=gen))
        self.state = self.w.init(q, (WalkerRNG if capture == "none" else CounterRNG)(0, walkers))
        self.captured = None if capture == "none" else CapturedSteps(self.w, self.state, mode=capture)

    def step(self):
        if self.captured is not None:
            self.captured.run(1)
        else:
            self.state, _ = self.w.step(self.state)


def rate(engine, walkers, seconds):
    engine.step()
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds or n < 2:
        engine.step()
        n += 1
    return n * walkers / (time.perf_counter() - t)


#: the kernels that do a step's counted FLOPs (self time: nested calls are not counted twice)
GEMM_OPS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::mkldnn_convolution",
            "aten::convolution_backward", "aten::_slow_conv2d_forward", "aten::_slow_conv2d_backward"}


def gemm_share(engine, steps: int = 3) -> tuple[float, float]:
    """(share of the step's time in GEMM and convolution kernels, their seconds per step), from the
    profiler's self times over ``steps`` steps: the step would run at 1/share of its speed if
    everything but those kernels cost nothing — the bound on what fusing the rest could give."""
    engine.step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            engine.step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    gemm = sum(e.self_cpu_time_total for e in events if e.key in GEMM_OPS)
    return gemm / total, gemm / steps / 1e6


def flops_per_walker_step(system, loss):
    plain = Plain(system, loss, 1)
    plain.step()
    with FlopCounterMode(display=False) as fc:
        plain.step()
    return fc.get_total_flops()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--walkers", type=int, nargs="+", default=[1, 4, 16, 64])
    ap.add_argument("--max-step-seconds", type=float, default=2.0,
                    help="skip a W whose one step would take longer than this at the GEMM rate")
    ap.add_argument("--capture", type=int, nargs="*", default=[],
                    help="at these W, also time the whole step captured and compiled (inductor; its compile "
                         "time, about a minute per model and W on 2 cores, is not counted)")
    a = ap.parse_args()
    # as physampler run/train do; PHYSAMPLER_KEEP_MEMORY=0 runs both engines on glibc's defaults instead
    allocator.keep_freed_memory()
    torch.set_num_threads(a.threads)
    g0 = gemm_rate()
    print(f"# {platform.machine()}, torch {torch.__version__}, CPU, {a.threads} threads, float32 parameters, "
          f"float64 landscape; GEMM rate at start {g0 / 1e9:.1f} GFLOP/s; allocator: {allocator.status()}")
    print(f"{'model':>20} {'params':>8} {'MFLOP/ws':>9} {'W':>4} {'plain':>9} {'auto':>9} {'auto/plain':>10} "
          f"{'% GEMM plain':>12} {'% GEMM auto':>11} {'GEMM share':>10} {'bound/plain':>11}  strategy   "
          f"(walker-steps/s)", flush=True)
    rows = []
    for name in a.models:
        net, train, test, loss = MODELS[name]()
        system = ModuleSystem(net, train, test, loss=loss, dtype=torch.float32)
        flops = flops_per_walker_step(system, loss)
        for w in a.walkers:
            if w > 1 and w * flops / g0 > a.max_step_seconds:
                break
            plain_best = auto_best = 0.0
            chosen = ""
            for _ in range(2):
                plain_best = max(plain_best, rate(Plain(system, loss, min(w, 4)), min(w, 4), a.seconds))
                s = ModuleSystem(net, train, test, loss=loss, dtype=torch.float32)
                auto_best = max(auto_best, rate(Auto(s, loss, w), w, a.seconds))
                chosen = s.run_attrs()["nn_strategy"]
            share, gemm_s = gemm_share(Auto(ModuleSystem(net, train, test, loss=loss, dtype=torch.float32,
                                                         strategy=s.chosen[0], chunk=s.chosen[1]), loss, w))
            rows.append((name, w, plain_best, auto_best, flops))
            print(f"{name:>20} {system.shape[0]:>8} {flops / 1e6:>9.3f} {w:>4} {plain_best:>9.1f} {auto_best:>9.1f} "
                  f"{auto_best / plain_best:>10.2f} {100 * plain_best * flops / g0:>11.2f}% "
                  f"{100 * auto_best * flops / g0:>10.2f}% {100 * share:>9.0f}% {w / gemm_s / plain_best:>11.2f}  "
                  f"{chosen}", flush=True)
            if w in a.capture:
                s = ModuleSystem(net, train, test, loss=loss, dtype=torch.float32)
                eng = Auto(s, loss, w, capture="compile")
                eng.step()  # compiles
                cap = max(rate(eng, w, a.seconds) for _ in range(2))
                plain = rate(Plain(system, loss, min(w, 4)), min(w, 4), a.seconds)  # interleaved reference
                print(f"{name + ' captured':>20} {system.shape[0]:>8} {flops / 1e6:>9.3f} {w:>4} {plain:>9.1f} "
                      f"{cap:>9.1f} {cap / plain:>10.2f} {100 * plain * flops / g0:>11.2f}% "
                      f"{100 * cap * flops / g0:>10.2f}%  {s.run_attrs()['nn_strategy']}+compile", flush=True)
    g1 = gemm_rate()
    print(f"# GEMM rate at end {g1 / 1e9:.1f} GFLOP/s (the % columns use the start's)")


if __name__ == "__main__":
    main()
