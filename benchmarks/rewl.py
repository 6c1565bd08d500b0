"""Wall time to a stated accuracy of S with and without replica-exchange windows, measured in the
same run (interleaved block by block, so both see the same machine load).

The 10-D harmonic well of `physampler validate harmonic` (U ∈ [1, 31], 120 bins, exact
S = 4 ln U + c) with W walkers and one window, and with K windows of the same walkers
(overlaps 0.75 and 0.5, swaps every 100 steps), all on the compiled engine.  After every block of
`--block` steps each run's S (joined, for the windows) is compared with the exact S over the
interior bins after the best offset; the table gives the steps and the wall time at which the
max deviation first falls to `--target` and stays there for the rest of the run, and the
final rms and max deviations.  With `--lj13` the same for LJ13 (the `validate lj13` set-up),
whose reference S is a single-window run of `--lj13-reference` steps made first, in the same run.

    python benchmarks/rewl.py [--windows 4] [--walkers 64] [--steps 120000] [--target 0.1] [--lj13]

Threads: one (torch.set_num_threads(1)); the compiled engine runs one core.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import time

import numpy as np
import torch


def deviation(landscape, exact, inner):
    """(rms, max) of S − exact − c over the interior bins, c fitted; inf while a bin is unvisited."""
    s = landscape.shifted().numpy()
    if not np.isfinite(s[inner]).all():
        return np.inf, np.inf
    d = s[inner] - exact[inner]
    d = d - d.mean()
    return float(np.sqrt(np.mean(d ** 2))), float(np.max(np.abs(d)))


class Contender:
    def __init__(self, name, integ, state, windows):
        self.name, self.integ, self.state, self.windows = name, integ, state, windows
        self.wall, self.history = 0.0, []  # (steps, wall, rms, max)

    def landscape(self):
        land = self.integ.landscape
        return land.joined()[0] if self.windows > 1 else land

    def advance(self, n, exact, inner):
        t0 = time.perf_counter()
        self.state = self.integ.run(self.state, n)[0]
        self.wall += time.perf_counter() - t0
        self.history.append((self.state.step, self.wall, *deviation(self.landscape(), exact, inner)))

    def reached(self, target):
        """(steps, wall) from which the max deviation stays <= target; None if it never settles."""
        ok = [h[3] <= target for h in self.history]
        if not ok[-1]:
            return None
        k = len(ok) - 1
        while k > 0 and ok[k - 1]:
            k -= 1
        return self.history[k][:2]


def harmonic(windows, walkers, steps, seed, overlap=0.75):
    from physampler.integrators.compiled import CompiledWLMD
    from physampler.validation import harmonic_setup
    from physampler.windows import WindowedWLMD

    integ, state = harmonic_setup(10, walkers=walkers, seed=seed, steps=steps, windows=windows, overlap=overlap)
    integ = WindowedWLMD(CompiledWLMD(integ.wlmd), integ.exchange) if windows > 1 else CompiledWLMD(integ)
    return integ, state


def lj13(windows, walkers, steps, seed, overlap=0.75):
    from physampler.validation_lj import LJ_CASES, build, start_configurations
    from physampler.rng import WalkerRNG

    case = LJ_CASES["lj13"]
    lj, integ = build(case, steps, walkers=walkers, windows=windows, seed=seed, overlap=overlap)
    return integ, integ.init(start_configurations(lj, walkers, seed), WalkerRNG(seed, walkers))


def race(label, make, args, exact, inner):
    runs = [Contender("1 window", *make(1, args.walkers, args.steps, args.seed), 1)]
    for o in args.overlap:
        runs.append(Contender(f"{args.windows} win {o:g}", *make(args.windows, args.walkers, args.steps, args.seed,
                                                                 overlap=o), args.windows))
    done = 0
    while done < args.steps:
        n = min(args.block, args.steps - done)
        for r in runs:  # interleaved: both runs share every stretch of machine load
            r.advance(n, exact, inner)
        done += n
    print(f"\n{label}: {args.walkers} walkers x {args.steps} steps, target max |dS| <= {args.target} "
          f"(interior bins, offset fitted), blocks of {args.block} steps")
    print(f"{'windows, overlap':<12} {'steps to target':>16} {'wall s to target':>17} {'walker-steps/s':>15} {'final rms':>10} "
          f"{'final max':>10}")
    rows = []
    for r in runs:
        hit = r.reached(args.target)
        rate = args.walkers * r.state.step / r.wall
        steps_txt, wall_txt = ("never", "never") if hit is None else (f"{hit[0]}", f"{hit[1]:.1f}")
        print(f"{r.name:<12} {steps_txt:>16} {wall_txt:>17} {rate:>15.3g} {r.history[-1][2]:>10.4f} "
              f"{r.history[-1][3]:>10.4f}")
        rows.append((r.name, hit))
    a = rows[0]
    for b in rows[1:]:
        if a[1] is not None and b[1] is not None:
            print(f"wall time to target, {b[0]} / one window: {b[1][1] / a[1][1]:.2f}")
    return runs


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--windows", type=int, default=4)
    p.add_argument("--overlap", type=float, nargs="+", default=[0.75, 0.5], help="window overlaps to race")
    p.add_argument("--walkers", type=int, default=64)
    p.add_argument("--steps", type=int, default=120_000)
    p.add_argument("--block", type=int, default=4000)
    p.add_argument("--target", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--lj13", action="store_true", help="also LJ13 (about 10 minutes on one core)")
    p.add_argument("--lj13-reference", type=int, default=3_000_000, help="steps of LJ13's reference run")
    p.add_argument("--lj13-target", type=float, default=0.3,
                   help="LJ13's target max |dS| against its reference (which has an error of its own)")
    args = p.parse_args()
    torch.set_num_threads(1)
    print(f"physampler benchmarks/rewl.py, {datetime.date.today()}, {platform.node()}, {os.cpu_count()} cores, "
          f"torch threads 1")
    from physampler.validation_cases import HARMONIC_CASES

    c = HARMONIC_CASES[10]
    u = c.lower + (np.arange(c.bins) + 0.5) * (c.upper - c.lower) / c.bins
    race("10-D harmonic well (exact S = 4 ln U)", harmonic, args, 4 * np.log(u), slice(1, c.bins - 1))
    if args.lj13:
        ref_args = argparse.Namespace(**{**vars(args), "steps": args.lj13_reference})
        integ, state = lj13(1, 16, ref_args.steps, args.seed + 1)
        t0 = time.perf_counter()
        integ.run(state, ref_args.steps)
        s = integ.landscape.shifted().numpy()
        print(f"\nLJ13 reference: 1 window, 16 walkers x {ref_args.steps} steps, seed {args.seed + 1}, "
              f"{time.perf_counter() - t0:.0f} s")
        lj_args = argparse.Namespace(**{**vars(args), "walkers": 16, "steps": 1_500_000, "block": 50_000,
                                        "target": args.lj13_target})
        race("LJ13 (against the reference S)", lj13, lj_args, s, slice(2, s.size - 2))


if __name__ == "__main__":
    main()
