"""Steps/s per rank of a WLMD job on 1 and 2 CPU ranks (torch.distributed, gloo), and the
time spent in the landscape syncs as a fraction of the run, for several sync intervals K.

Each rank runs W walkers of the torch WLMD on a 10-D harmonic well (S(U), 120 bins) —
the validation's set-up.  The reference row is 1 rank (no communication), measured in
the same run.  Ranks are launched as torchrun would (RANK/WORLD_SIZE/MASTER_*).

    python benchmarks/distributed.py [--steps 3000] [--walkers 64]
"""
from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

CFG = """
[system]
kind = "harmonic"
dims = 10
[landscape]
lower = [1.0]
upper = [31.0]
bins = [120]
out_of_range = "wall"
wall_strength = 2.0
[integrator]
dt = 0.05
c_f = 0.01
[schedule]
F = 0.5
t_wl = 2000
[run]
walkers = {walkers}
steps = {steps}
seed = 1
sync_interval = {k}
[output]
report_interval = {k}
checkpoint_interval = {steps}
plot = false
"""


def run(world, k, steps, walkers, tmp):
    cfg = Path(tmp) / f"c-{world}-{k}.toml"
    cfg.write_text(CFG.format(walkers=walkers, steps=steps, k=k))
    out = Path(tmp) / f"o-{world}-{k}"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for r in range(world):
        env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(r),
                   LOCAL_RANK=str(r), OMP_NUM_THREADS="1")
        if world == 1:
            env = dict(os.environ, OMP_NUM_THREADS="1")
        procs.append(subprocess.Popen([sys.executable, "-c", TIMED, str(cfg), str(out)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    res = [p.communicate() for p in procs]
    for p, (o, e) in zip(procs, res):
        if p.returncode:
            raise SystemExit(e)
    loop = float(re.search(r"loop ([0-9.]+)", res[0][0]).group(1))
    comm = re.search(r"([0-9.]+) s in communication", res[0][1])
    return steps / loop, (float(comm.group(1)) if comm else 0.0) / loop


# Times the stepping loop only (imports, start-up and the final file writes excluded).
TIMED = r"""
import sys, time, torch
torch.set_num_threads(1)
from pathlib import Path
from physampler import config as C, job as J
cfg, text = C.load(sys.argv[1])
orig = J.advance
spent = [0.0]
def timed(job, state, n, stop=None):
    t = time.perf_counter(); s = orig(job, state, n, stop); spent[0] += time.perf_counter() - t; return s
J.advance = timed
import physampler.distributed as D
o_sync = D.LandscapeSync.sync
def tsync(self, step, stop):
    t = time.perf_counter(); r = o_sync(self, step, stop); spent[0] += time.perf_counter() - t; return r
D.LandscapeSync.sync = tsync
J.run(cfg, text, Path(sys.argv[2]), progress=False, log=lambda m: print(m, file=sys.stderr))
print(f"loop {spent[0]:.6f}")
"""


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--walkers", type=int, default=64)
    a = p.parse_args()
    import platform

    import torch

    print(f"# {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, gloo, {a.walkers} walkers "
          f"per rank, {a.steps} steps, 1 thread per rank")
    print(f"{'ranks':>5} {'K':>5} {'steps/s per rank':>17} {'walker-steps/s total':>21} {'comm / loop':>12} "
          f"{'vs 1 rank':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        base, _ = run(1, 100, a.steps, a.walkers, tmp)
        print(f"{1:>5} {'-':>5} {base:>17.0f} {base * a.walkers:>21.0f} {0.0:>11.1%} {1.0:>10.2f}", flush=True)
        for k in (1, 10, 100):
            r, frac = run(2, k, a.steps, a.walkers, tmp)
            print(f"{2:>5} {k:>5} {r:>17.0f} {2 * r * a.walkers:>21.0f} {frac:>11.1%} {r / base:>10.2f}", flush=True)


if __name__ == "__main__":
    main()
