"""WLMD steps/s on LJ clusters on one CPU core: physampler's compiled block loop
(and its per-step torch path) against OpenMM running plain Langevin MD on the
same cluster (same pair term and confining sphere, `physampler.references`),
all measured in the same run.

A "step" is one step of one walker: for the compiled loop with W walkers the
table gives walker-steps/s.  OpenMM runs on its CPU platform (Threads = 1) and
its Reference platform (double precision), energies read every `--report` steps.

    python benchmarks/lj.py [--seconds 3] [--report 100]
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from physampler.validation_lj import LJ_CASES, build, start_configurations
from physampler.rng import WalkerRNG


def compiled_rate(name, walkers, seconds):
    case = LJ_CASES[name]
    lj, integ = build(case, 10**9, walkers=walkers)  # t_WL = 1.25e8: the rise phase, f > 0 throughout
    state = integ.init(start_configurations(lj, walkers, 1), WalkerRNG(1, walkers))
    state, _ = integ.run(state, 1000)  # compile + leave the minima
    n, t = 0, time.perf_counter()
    block = 20000 // walkers
    while time.perf_counter() - t < seconds:
        state, _ = integ.run(state, block)
        n += block
    return n * walkers / (time.perf_counter() - t)


def torch_rate(name, seconds):
    case = LJ_CASES[name]
    lj, integ = build(case, 10**9, walkers=1)
    w = integ.wlmd
    state = w.init(start_configurations(lj, 1, 1), WalkerRNG(1, 1))
    for _ in range(50):
        state, _ = w.step(state)
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        for _ in range(100):
            state, _ = w.step(state)
        n += 100
    return n / (time.perf_counter() - t)


def openmm_rate(name, platform_name, report, seconds):
    import openmm as mm

    from physampler.references import kelvin, openmm_system

    case = LJ_CASES[name]
    lj, _ = build(case, 10**9)
    x = start_configurations(lj, 1, 1)[0].numpy()
    integ = mm.LangevinMiddleIntegrator(kelvin(0.3 if case.n == 13 else 0.15), 1.0, 0.005)
    props = {"Threads": "1"} if platform_name == "CPU" else {}
    ctx = mm.Context(openmm_system(lj), integ, mm.Platform.getPlatformByName(platform_name), props)
    ctx.setPositions(x)
    integ.step(1000)
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        integ.step(report)
        ctx.getState(getEnergy=True)
        n += report
    return n / (time.perf_counter() - t)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=3.0, help="timing window per row")
    p.add_argument("--report", type=int, default=100, help="OpenMM steps between energy reads")
    a = p.parse_args()
    torch.set_num_threads(1)
    os.environ.setdefault("OPENMM_CPU_THREADS", "1")
    try:
        import openmm

        omm = openmm.__version__
    except ImportError:
        omm = None
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"OpenMM {omm}, one core per row")
    print(f"{'cluster':>7} {'code':<44} {'steps/s':>11} {'vs OpenMM CPU':>14}")
    for name in ("lj13", "lj38"):
        rows = []
        ref = openmm_rate(name, "CPU", a.report, a.seconds) if omm else float("nan")
        rows.append(("OpenMM 8 CPU platform, Langevin (reference)", ref))
        if omm:
            rows.append(("OpenMM 8 Reference platform, Langevin", openmm_rate(name, "Reference", a.report, a.seconds)))
        rows.append(("physampler compiled WLMD, 1 walker", compiled_rate(name, 1, a.seconds)))
        rows.append(("physampler compiled WLMD, 16 walkers", compiled_rate(name, 16, a.seconds)))
        rows.append(("physampler torch WLMD.step, 1 walker", torch_rate(name, a.seconds)))
        for label, r in rows:
            print(f"{name:>7} {label:<44} {r:>11.0f} {r / ref:>13.1f}x", flush=True)


if __name__ == "__main__":
    main()
