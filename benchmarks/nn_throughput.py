"""Walker-steps/s of one complete WLMD step on a neural network, batched walkers vs a naive loop.

One step = train forward + backward of ln L_train, test forward + backward of the
smoothed accuracy Ã (one vmapped forward/backward for all W walkers through
`physampler.adapters.torch_module`), landscape gradient and deposit on the 2-D
S(ln L_train, Ã), thermostat, drift and the reflective box.  Reference, measured in
the same run: W single-walker `nn.Module`s stepped one after another with the same
operations (module forward/backward, the same landscape and operators), in two
variants: the plain transformer forward over all positions (``forward_full``, what a
user's nn.Module computes: the "naive" reference of the ratio) and the model's own
fast path (last position only, attention projections per (position, token)), so the
table separates the gain of batching from the gain of the fast path.

    python benchmarks/nn_throughput.py [--p 67] [--d-model 32] [--walkers 1 4 16 64] [--seconds 3] [--device cpu]
        [--precision default tf32 bf16] [--compile] [--capture none|compile|cuda_graph]

On a GPU (``--device cuda --d-model 128 --compile``) it runs W = 1, 2, 4 … 1024 until a W
no longer fits, with float32 / TF32 / bf16 rows, eager and compiled; ``--capture`` times the whole
step captured (physampler.integrators.graph: counter-based noise, no host sync) compiled with
torch.compile or replayed as a CUDA graph.
"""
from __future__ import annotations

import argparse
import platform
import time

import torch

from physampler import WLMD, Axis, InverseTime, Landscape, ReflectiveBox, WalkerRNG, allocator
from physampler.adapters.torch_module import ModuleCVSet, ModuleSystem, smoothed_accuracy
from physampler.integrators import drift, kick, thermostat
from physampler.integrators.graph import CapturedSteps
from physampler.rng import CounterRNG
from physampler.models.tasks import ModularTask
from physampler.models.transformer import OneLayerTransformer


def make(p, d_model, device, dtype, precision="default", compile=False):
    task = ModularTask("x+y", p)
    net = OneLayerTransformer(p, d_model=d_model, n_heads=4, d_head=d_model // 4, d_mlp=4 * d_model,
                              generator=torch.Generator().manual_seed(0), dtype=dtype)
    system = ModuleSystem(net, *task.split(), dtype=dtype, device=device, precision=precision, compile=compile)
    return task, net, system


def memory_per_walker(system, walkers):
    """Bytes per walker of one step: tensors autograd saves for the backward of the CVs,
    plus positions, velocities and accelerations (device-independent, measured by a
    saved-tensors hook rather than an allocator, so CPU and GPU report alike)."""
    cvs = ModuleCVSet(system, ["log_train_loss", "smoothed_accuracy"])
    seen, total = set(), [0]

    def pack(t):
        key = (t.data_ptr(), t.numel(), t.dtype)
        if key not in seen:
            seen.add(key)
            total[0] += t.numel() * t.element_size()
        return t

    q = system.initial_positions(walkers)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        cvs.value_and_vjp(q)
    return total[0] / walkers + 3 * q[0].numel() * q.element_size()


def landscape(device):
    return Landscape([Axis("log_train_loss", -8.0, 2.0, bins=500), Axis("smoothed_accuracy", 0.0, 1.0, bins=50)],
                     sigma=1.0, out_of_range="wall", device=device)


def batched_rate(system, walkers, seconds, device, capture="none"):
    """physampler's WLMD step; ``capture``: none (BiasedMD.step), or the captured step
    (physampler.integrators.graph) compiled or replayed as a CUDA graph, with counter-based noise."""
    cvs = ModuleCVSet(system, ["log_train_loss", "smoothed_accuracy"])
    w = WLMD(system, cvs, landscape(device), InverseTime(0.5, 1e5), dt=0.01, c_f=0.01, kT=1.0,
             constraints=[ReflectiveBox(system.box_bounds())])
    rng = (WalkerRNG if capture == "none" else CounterRNG)(0, walkers, device=device)
    state = w.init(system.initial_positions(walkers), rng)
    if capture == "none":
        def advance():
            nonlocal state
            state, _ = w.step(state)
    else:
        advance = CapturedSteps(w, state, mode=capture, steps=1)._call
    for _ in range(3):
        advance()
    if device.type == "cuda":
        torch.cuda.synchronize()
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds or n < 3:
        advance()
        n += 1
        if n % 64 == 0 and device.type == "cuda":
            torch.cuda.synchronize()  # the clock must see the queued work
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n * walkers / (time.perf_counter() - t)


def naive_rate(system, net, walkers, seconds, device, full: bool):
    """W separate nn.Modules, each stepped with plain autograd; one shared landscape."""
    (xtr, ytr), (xte, yte) = system.train, system.test
    nets = [system.load_into(system.flatten_module()) for _ in range(walkers)]
    vel = [[torch.zeros_like(p) for p in m.parameters()] for m in nets]
    acc = [[torch.zeros_like(p) for p in m.parameters()] for m in nets]
    bounds = [b.to(device, system.dtype) for b in torch.split(system.box_bounds(), system.sizes)]
    land = landscape(device)
    box = ReflectiveBox(1.0)
    steps, t = 0, time.perf_counter()
    gen = torch.Generator(device=device).manual_seed(0)
    while time.perf_counter() - t < seconds or steps < 3:
        for m, v, a in zip(nets, vel, acc):
            with torch.no_grad():
                for p, vi, ai, b in zip(m.parameters(), v, a, bounds):
                    vi.copy_(thermostat(kick(vi, ai, 0.01), 0.01, 1.0, 1.0,
                                        torch.randn(p.shape, generator=gen, device=device, dtype=p.dtype)))
                    q, vn = box.apply(drift(p, vi, 0.01) / b.view(p.shape), vi)
                    p.copy_(q * b.view(p.shape))
                    vi.copy_(vn)
            m.zero_grad()
            fwd = m.forward_full if full else m
            lt = torch.log(torch.nn.functional.cross_entropy(fwd(xtr), ytr))
            at = smoothed_accuracy(fwd(xte)[None], yte, 6.0)[0]
            xi = torch.stack([lt, at]).detach()[None]
            land.deposit(xi, 0.5 / walkers)
            c = land.gradient(xi)[0]
            (c[0] * lt + c[1] * at).backward()
            with torch.no_grad():
                for ai, p in zip(a, m.parameters()):
                    ai.copy_(-p.grad)
        steps += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * walkers / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--p", type=int, default=67)
    ap.add_argument("--d-model", type=int, default=32)
    ap.add_argument("--walkers", type=int, nargs="+", default=None,
                    help="walker counts (default: 1 4 16 64 on CPU; 1, 2, 4 … 1024 on CUDA, stopping at the "
                         "first that does not fit in memory)")
    ap.add_argument("--compile", action="store_true",
                    help="add rows with torch.compile of the batched forward/backward (compiles once per W)")
    ap.add_argument("--capture", default="none", choices=["none", "compile", "cuda_graph"],
                    help="time the captured step (counter-based noise): compiled, or replayed as a CUDA graph")
    ap.add_argument("--precision", nargs="+", default=None, choices=["default", "tf32", "bf16"],
                    help="rows per precision (default: default on CPU; default tf32 bf16 on CUDA)")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    # as physampler run/train do; PHYSAMPLER_KEEP_MEMORY=0 runs both engines on glibc's defaults instead
    allocator.keep_freed_memory()
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    dtype = torch.float32
    cuda = device.type == "cuda"
    walkers = a.walkers or ([2**k for k in range(11)] if cuda else [1, 4, 16, 64])
    precisions = a.precision or (["default", "tf32", "bf16"] if cuda else ["default"])
    task, net, system = make(a.p, a.d_model, device, dtype)
    print(f"# {platform.machine()}, torch {torch.__version__}, device {device}, {a.threads} threads, float32 "
          f"parameters, float64 landscape; transformer p={a.p}, d_model={a.d_model}, {system.shape[0]} parameters, "
          f"train/test {len(system.train[1])}/{len(system.test[1])}; allocator: {allocator.status()}")
    print(f"{'precision':>16} {'W':>5} {'batched':>9} {'naive':>9} {'naive fast-path':>16} {'batched/naive':>14} "
          f"{'batched/naive fast-path':>24} {'MiB/walker':>11}   (walker-steps/s)")
    for prec, comp in [(p, c) for c in ([False, True] if a.compile else [False]) for p in precisions]:
        system = make(a.p, a.d_model, device, dtype, prec, comp)[2]
        prec = prec + ("+compile" if comp else "") + ("" if a.capture == "none" else f"+{a.capture}")
        naive_cache = {}
        for w in walkers:
            try:
                mem = memory_per_walker(system, w) / 2**20
                b = batched_rate(system, w, a.seconds, device, a.capture)
            except torch.OutOfMemoryError:
                print(f"{prec:>16} {w:>5}  does not fit: the largest W that fits is the row above", flush=True)
                torch.cuda.empty_cache()
                break
            # The naive loop's rate does not depend on W beyond a few walkers: measure it up to 16.
            key = min(w, 16)
            if key not in naive_cache:
                naive_cache[key] = (naive_rate(system, net, key, a.seconds, device, full=True),
                                    naive_rate(system, net, key, a.seconds, device, full=False))
            n, nf = naive_cache[key]
            print(f"{prec:>16} {w:>5} {b:>9.1f} {n:>9.1f} {nf:>16.1f} {b / n:>14.2f} {b / nf:>24.2f} {mem:>11.2f}",
                  flush=True)

if __name__ == "__main__":
    main()
