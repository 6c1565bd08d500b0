"""Walkers on several processes (torch.distributed, gloo on CPU), launched as torchrun would:
RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT in the environment.

Tolerance of the K = 1 comparison: the ranks sum their landscape increments in a
different order than one process adds the same deposits (≈ 1e-19 per step), and
the walkers' feedback through the shared S is chaotic, which amplifies such
differences about ×10 every 20 steps (measured: 6e-17 after 100 steps, 1e-12
after 300); 150 steps keep the comparison at 1e-12.
"""
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr

from physampler import config as C
from physampler.io import load_checkpoint
from physampler.job import build, initial_positions
from physampler.rng import WalkerRNG

from _configs import harmonic_config



def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_ranks(cfg, out, world=2, extra=()):
    port = free_port()
    procs = []
    for r in range(world):
        env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(r),
                   LOCAL_RANK=str(r), LOCAL_WORLD_SIZE=str(world), OMP_NUM_THREADS="1")
        procs.append(subprocess.Popen([sys.executable, "-m", "physampler", "run", str(cfg), "--out", str(out),
                                       "--quiet", *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    return procs


def finish(procs, timeout=300):
    outs = [p.communicate(timeout=timeout) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err
    return outs


def single_process_reference(text, ranks):
    """One process holding the R·W walkers of R ranks, with their exact streams and starts."""
    cfg = C.parse(text)
    w = cfg["run"]["walkers"]
    job = build(cfg, text, walkers_total=ranks * w)
    rng = WalkerRNG(cfg["run"]["seed"], list(range(w)) * ranks, rank=[r for r in range(ranks) for _ in range(w)])
    state = job.wlmd.init(initial_positions(job, ranks * w), rng)
    for _ in range(cfg["run"]["steps"]):
        state, _ = job.wlmd.step(state)
    return job.landscape


def test_two_ranks_k1_equal_one_process_with_all_walkers(tmp_path):
    text = harmonic_config(steps=150, walkers=4, report=50, checkpoint=50, sync_interval=1, sync_timeout=20.0)
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    finish(launch_ranks(cfg, tmp_path / "out"))
    ref = single_process_reference(text, 2)
    with xr.open_dataset(tmp_path / "out" / "landscape.nc") as ds:
        S, H = ds["sampling_entropy"].values, ds["histogram"].values
        assert ds.attrs["ranks"] == 2 and ds.attrs["walkers"] == 8
    assert np.max(np.abs(S - ref.S.numpy())) <= 1e-12 * np.max(np.abs(S))
    assert np.array_equal(H, ref.H.numpy())
    with xr.open_dataset(tmp_path / "out" / "trajectory.nc") as tr:
        assert tr.sizes["walker"] == 8 and list(tr["step"].values) == [50, 100, 150]


def test_k_gt_1_every_rank_holds_the_same_landscape(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(harmonic_config(steps=1200, walkers=4, report=14, checkpoint=28 * 7, sync_interval=7, sync_timeout=20.0))
    out = tmp_path / "out"
    finish(launch_ranks(cfg, out))  # every sync also all-gathers a hash of S and H and fails on a mismatch
    man = json.loads((out / "manifest.json").read_text())
    assert man["step"] == 1200 and man["world_size"] == 2
    base = out / man["directory"]
    h = [load_checkpoint(base / f"rank-{r}.pt")["landscape_hash"] for r in range(2)]
    assert h[0] == h[1]
    from physampler.distributed import landscape_hash
    from physampler.landscape import Landscape
    from physampler.grid import Axis

    ls = Landscape([Axis("energy", 0.5, 12.5, bins=60)])
    ls.load_state_dict(load_checkpoint(base / "landscape.pt")["landscape"])
    assert landscape_hash(ls) == h[0]


@pytest.mark.slow
def test_killed_rank_stops_the_other_and_resume_matches(tmp_path):
    text = harmonic_config(steps=8000, walkers=4, report=100, checkpoint=500, sync_interval=10, sync_timeout=20.0)
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    ref = tmp_path / "ref"
    finish(launch_ranks(cfg, ref))
    out = tmp_path / "out"
    procs = launch_ranks(cfg, out)
    t_end = time.time() + 120
    while not (out / "manifest.json").exists() and time.time() < t_end and procs[0].poll() is None:
        time.sleep(0.05)
    assert procs[0].poll() is None, "the run ended before a rank could be killed"
    procs[1].kill()
    t_kill = time.time()
    _, err = procs[0].communicate(timeout=60)
    waited = time.time() - t_kill
    procs[1].communicate()
    assert procs[0].returncode != 0
    assert waited < 20 + 5  # within sync_timeout (plus start-up slack)
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("physampler")]
    assert len(lines) == 1 and "rank 1" in lines[0] and "stopped responding" in lines[0], err
    man = json.loads((out / "manifest.json").read_text())
    assert 0 < man["step"] < 8000
    for f in man["files"]:
        load_checkpoint(out / man["directory"] / f)  # the named set is complete and readable
    outs = finish(launch_ranks(cfg, out, extra=("--resume",)))
    # it really continues the manifest's set (a restart from step 0 would also end bitwise equal)
    assert f"resuming at step {man['step']} of 8000" in outs[0][1], outs[0][1]
    with xr.open_dataset(ref / "landscape.nc") as a, xr.open_dataset(out / "landscape.nc") as b:
        for v in ("sampling_entropy", "histogram"):
            assert a[v].values.tobytes() == b[v].values.tobytes()
    with xr.open_dataset(ref / "trajectory.nc") as a, xr.open_dataset(out / "trajectory.nc") as b:
        assert np.array_equal(a["energy"].values, b["energy"].values)


@pytest.mark.parametrize("damage, what", [("garbage", "SHA-256 differs"), ("missing", "no such"),
                                          ("manifest", "not a physampler manifest")])
def test_distributed_resume_refuses_a_damaged_checkpoint_set(tmp_path, damage, what):
    cfg = tmp_path / "c.toml"
    cfg.write_text(harmonic_config(steps=200, walkers=2, report=50, checkpoint=100, sync_interval=50, sync_timeout=20.0))
    out = tmp_path / "out"
    finish(launch_ranks(cfg, out))
    man = json.loads((out / "manifest.json").read_text())
    rank1 = out / man["directory"] / "rank-1.pt"
    if damage == "garbage":
        rank1.write_bytes(rank1.read_bytes() + b"garbage")
    elif damage == "missing":
        rank1.unlink()
    else:
        (out / "manifest.json").write_text("{not json")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    procs = launch_ranks(cfg, out, extra=("--resume", "--steps", "400"))
    for p in procs:
        _, err = p.communicate(timeout=300)
        lines = err.strip().splitlines()
        assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ") and what in lines[0], err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_windows_on_two_ranks_resume_bit_for_bit(tmp_path):
    """[windows] count = 2 under torchrun: every rank holds walkers of both windows and swaps
    among them; a run split by --resume at step 300 writes the joined S of the uninterrupted
    run bit for bit (each rank's labels and swap generator ride in its rank file)."""
    text = harmonic_config(steps=600, walkers=4, report=50, checkpoint=300, sync_interval=50, sync_timeout=20.0)
    cfg = tmp_path / "w.toml"
    cfg.write_text(text.replace("[output]", "[windows]\ncount = 2\nswap_interval = 50\n\n[output]"))
    finish(launch_ranks(cfg, tmp_path / "one"))
    finish(launch_ranks(cfg, tmp_path / "two", extra=("--steps", "300")))
    finish(launch_ranks(cfg, tmp_path / "two", extra=("--resume",)))
    with xr.open_dataset(tmp_path / "one" / "landscape.nc") as a, xr.open_dataset(tmp_path / "two" / "landscape.nc") as b:
        assert a.attrs["ranks"] == 2 and a.attrs["windows_count"] == 2
        assert np.isfinite(a["entropy"].values).all()
        assert np.array_equal(a["entropy"].values, b["entropy"].values)
        assert a.attrs["windows_swap_attempts"] == b.attrs["windows_swap_attempts"] > 0
