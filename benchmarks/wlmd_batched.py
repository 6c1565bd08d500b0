"""Walker-steps/s of a full WLMD step on a 10-D harmonic well (CV = U), batched W
walkers sharing one landscape vs the reference: the same W walkers stepped as W
separate single-walker integrators in a loop, measured in the same run.

    python benchmarks/wlmd_batched.py [--steps 2000] [--device cpu] [--threads 1]
"""
from __future__ import annotations

import argparse
import platform
import time

import torch

from physampler.validation import harmonic_setup


def make(walkers, device):
    # the validation's N = 10 set-up: grid [1, 31], 120 bins, sigma 1 bin, dt 0.05, c_f 0.01
    return harmonic_setup(10, walkers=walkers, seed=1, steps=40000, device=device)


def rate(step_fns, states, steps):
    for _ in range(20):  # warm-up
        states = [f(s)[0] for f, s in zip(step_fns, states)]
    t = time.perf_counter()
    for _ in range(steps):
        states = [f(s)[0] for f, s in zip(step_fns, states)]
    return time.perf_counter() - t


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, {a.threads} thread(s), device {a.device}")
    print(f"{'W':>5} {'batched walker-steps/s':>23} {'loop walker-steps/s':>20} {'ratio':>7}")
    for w in (1, 4, 16, 64, 256, 1024):
        integ, st = make(w, a.device)
        tb = rate([integ.step], [st], a.steps)
        n_loop = min(w, 16)  # the loop's cost is linear in W: time 16 walkers and scale
        singles = [make(1, a.device) for _ in range(n_loop)]
        tl = rate([s[0].step for s in singles], [s[1] for s in singles], max(a.steps // 4, 50)) * (a.steps / max(a.steps // 4, 50)) * w / n_loop
        print(f"{w:>5} {w * a.steps / tb:>23.0f} {w * a.steps / tl:>20.0f} {tl / tb:>7.1f}", flush=True)


if __name__ == "__main__":
    main()
