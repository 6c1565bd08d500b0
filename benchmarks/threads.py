"""Torch threads beside a competing load: a job's steps/s with torch's default (one thread per
core), with ``threads = auto`` (physampler.threads) and with 1 thread, on an idle machine and
with one competing CPU-bound process — interleaved, each configuration ``--repeats`` times.

    python benchmarks/threads.py [--config examples/nn_add_p11_d16_box.toml] [--steps 200] [--repeats 2]

Each row runs ``physampler run CONFIG --steps N --threads T`` in a fresh process and reads the
steps/s of its own progress log (the time from its start line to its done line, so process
start-up and imports are not counted).  The ratio is to the default's figure under the same
load, measured in the same run.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time

import torch


def run_once(config: str, steps: int, threads: int | None, out: str) -> tuple[float, str]:
    """(seconds from the run's start line to its end, the threads it recorded) for ``threads``
    (None: torch's default)."""
    args = [sys.executable, "-m", "physampler", "run", config, "--out", out, "--steps", str(steps), "--overwrite"]
    env = dict(os.environ)
    env.pop("PHYSAMPLER_THREADS", None)
    if threads is None:
        args += ["--threads", str(os.cpu_count() or 1)]  # what torch picks by itself
    else:
        args += ["--threads", str(threads)]
    p = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env=env)
    start, chosen = None, "?"
    for line in p.stderr:
        if line.startswith("starting "):
            start = time.perf_counter()
            chosen = line.rsplit("(", 1)[-1].rstrip(")\n").replace("torch threads: ", "").replace("torch thread: ", "")
    p.wait()
    if p.returncode != 0 or start is None:
        raise SystemExit(f"run failed ({p.returncode})")
    return time.perf_counter() - start, chosen


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="examples/nn_add_p11_d16_box.toml")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    cores = os.cpu_count()
    print(f"# {platform.machine()}, {cores} cores, torch {torch.__version__}; {a.config}, {a.steps} steps per run")
    print("| load | threads | chosen | steps/s | vs default |")
    print("| --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as d:
        for load in ("idle", "1 competing process"):
            hog = None
            if load != "idle":
                hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
                time.sleep(0.5)  # let the competitor reach the run queue before auto counts it
            try:
                rates, chosen = {}, {}
                for _ in range(a.repeats):
                    for name, t in (("default", None), ("auto", 0), ("1", 1)):
                        sec, chosen[name] = run_once(a.config, a.steps, t, os.path.join(d, "o"))
                        rates.setdefault(name, []).append(a.steps / sec)
            finally:
                if hog is not None:
                    hog.kill()
                    hog.wait()
            base = max(rates["default"])
            for name in ("default", "auto", "1"):
                r = max(rates[name])
                print(f"| {load} | {name} | {chosen[name]} | {r:.1f} | {r / base:.2f}× |")


if __name__ == "__main__":
    main()
