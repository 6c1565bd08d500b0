"""physampler train: AdamW / SGD / WanD full-batch training, histories, fixed-norm mode."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from physampler import Axis, Landscape
from physampler import config as C
from physampler.adapters.training import Trainer, grokking_times
from physampler.io import write_landscape

from _configs import train_config

ROOT = Path(__file__).resolve().parents[1]

def small(tmp_path, name="adamw", lr=3e-3, steps=40, system="", optimizer="", out="run"):
    text = train_config(name=name, lr=lr, steps=steps, system=system, optimizer=optimizer,
                        output=f'directory = "{tmp_path / out}"')
    path = tmp_path / f"{out}.toml"
    path.write_text(text)
    return path


def cli(*args):
    return subprocess.run([sys.executable, "-m", "physampler", *map(str, args)], capture_output=True, text=True,
                          timeout=600)


def test_grokking_times():
    steps = np.arange(0, 100, 10)
    tr = np.array([0, .5, .99, 1, 1, .98, 1, 1, 1, 1])
    te = np.array([0, .1, .2, .3, .5, .9, .96, .94, 1, 1])
    assert grokking_times(steps, tr, te) == (20, 60)
    assert grokking_times(steps, tr, te * 0.5) == (20, None)


@pytest.mark.parametrize("name, extra", [("adamw", "weight_decay = 1.0"), ("sgd", "momentum = 0.9"),
                                         ("wand", "wall_at = 0.0\nlower = -6.0\nupper = 3.0\nbins = 180")])
def test_train_cli_writes_a_cf_history_and_a_safe_checkpoint(tmp_path, name, extra):
    cfg = small(tmp_path, name=name, lr=3e-3 if name != "sgd" else 0.1, optimizer=extra)
    p = cli("train", cfg, "--quiet")
    assert p.returncode == 0, p.stderr
    out = tmp_path / "run"
    with xr.open_dataset(out / "history.nc", engine="netcdf4") as ds:
        assert ds.attrs["Conventions"] == "CF-1.10" and ds.attrs["optimizer"] == name
        assert list(ds["step"].values) == list(range(41))  # the initial state and every step
        for v in ("train_loss", "test_loss", "train_accuracy", "test_accuracy", "log_train_loss",
                  "smoothed_accuracy", "weight_norm"):
            assert ds[v].attrs["units"] == "1" and ds[v].attrs["long_name"]
        assert np.allclose(ds["log_train_loss"].values, np.log(ds["train_loss"].values))
        assert ds["train_loss"].values[-1, 0] < ds["train_loss"].values[0, 0]  # it trains
    ck = torch.load(out / "model.pt", weights_only=True)
    assert ck["step"] == 40 and "W_E" in ck["model"]
    assert (out / "history.png").stat().st_size > 0
    # a second run refuses to overwrite; --overwrite replaces only its own files
    (out / "notes.txt").write_text("mine")
    p = cli("train", cfg, "--quiet")
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "--overwrite" in p.stderr
    assert cli("train", cfg, "--quiet", "--overwrite").returncode == 0
    assert (out / "notes.txt").read_text() == "mine"


def test_history_overlays_on_a_landscape_and_histories_plot_together(tmp_path):
    for name in ("a", "b"):
        assert cli("train", small(tmp_path, out=name, steps=10), "--quiet").returncode == 0
    land = Landscape([Axis("log_train_loss", -4.0, 1.0, bins=50), Axis("smoothed_accuracy", 0.0, 1.0, bins=20)])
    land.H += 1
    write_landscape(tmp_path / "landscape.nc", land)
    p = cli("plot", tmp_path / "landscape.nc", "--trajectory", tmp_path / "a" / "history.nc", "-o", tmp_path / "l.png")
    assert p.returncode == 0, p.stderr
    p = cli("plot", tmp_path / "a" / "history.nc", tmp_path / "b" / "history.nc", "-o", tmp_path / "h.png")
    assert p.returncode == 0 and (tmp_path / "h.png").stat().st_size > 0, p.stderr
    p = cli("plot", tmp_path / "a" / "history.nc", tmp_path / "landscape.nc")
    assert p.returncode == 2 and "every file must be a history.nc" in p.stderr


@pytest.mark.parametrize("edit, field", [
    (("name = \"adamw\"", "name = \"adam\""), "optimizer.name"),
    (("lr = 0.003", "lr = -1.0"), "optimizer.lr"),
    (("steps = 40", "steps = 0"), "train.steps"),
    (("[train]", "[train]\nseed = -2"), "train.seed"),
    (("[system]", "[system]\nconstraint = \"box\""), "system.constraint"),
    (("[system]", "[system]\nkind = \"harmonic\""), "system.kind"),
    (("[optimizer]", "[optimizer]\nbetas = [0.9]"), "optimizer.betas"),
    (("[optimizer]", "[optimizer]\nedge_wall_strength = 0.0"), "optimizer.edge_wall_strength"),
    (("[output]", "[landscape]\nlower = [0.0]\n[output]"), "landscape"),
])
def test_bad_train_configs_one_line_exit_2_nothing_written(tmp_path, edit, field):
    cfg = small(tmp_path)
    cfg.write_text(cfg.read_text().replace(*edit))
    p = cli("train", cfg)
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith(f"config error: {field}") and p.stderr.count("\n") == 1, p.stderr
    assert not (tmp_path / "run").exists()


def test_wand_grid_edge_walls_come_from_the_config(tmp_path):
    grid = "wall_at = 0.0\nlower = -6.0\nupper = 3.0\nbins = 180"  # bin width 0.05
    default = Trainer(C.parse(small(tmp_path, name="wand", lr=1e-3, optimizer=grid).read_text(), kind="train"))
    assert default.optimizer.landscape.wall_strength == pytest.approx([1 / 0.05**2])
    strong = Trainer(C.parse(small(tmp_path, name="wand", lr=1e-3, optimizer=grid + "\nedge_wall_strength = 3e4")
                             .read_text(), kind="train"))
    assert strong.optimizer.landscape.wall_strength == [3e4]


def test_fixed_norm_mode_keeps_the_norm(tmp_path):
    cfg = C.parse(small(tmp_path, system="constraint = \"norm\"\nnorm_radius = 7.5").read_text(), kind="train")
    tr = Trainer(cfg)
    for _ in range(50):
        tr.step()
        norm = float(torch.cat([p.detach().reshape(-1) for p in tr.params]).norm())
        assert abs(norm - 7.5) <= 1e-6 * 7.5


def _grok(path, steps, seed=0):
    """Train the example config ``path`` with ``seed`` until test accuracy reaches 0.95 (or ``steps``)."""
    cfg = C.load(path, kind="train")[0]
    cfg["train"]["seed"] = seed
    cfg["train"]["stop_after_generalization"] = 0
    tr = Trainer(cfg)
    tr.run(steps)
    return tr


ADAMW = ROOT / "examples" / "train" / "adamw_add_p23_d32.toml"
WAND = ROOT / "examples" / "train" / "wand_add_p23_d32.toml"
SEEDS = range(32)  # both optimizers' first passages are broad and heavy-tailed: medians over 32 seeds
CAP = 1500  # steps; a run that has not generalised by then counts as never (∞)


def _passages(path, seeds=SEEDS, steps=CAP):
    """(t_fit, t_gen, initial norm, final norm) per seed; t_fit/t_gen None when not reached."""
    out = []
    for seed in seeds:
        tr = _grok(path, steps, seed)
        out.append((*tr.history.times, tr.initial_norm, float(tr.history.column("weight_norm")[-1])))
    return out


def _medians(runs):
    """Median t_gen and median grokking delay over seeds.  Never generalised: ∞ for both.
    Generalised before train accuracy reached 0.99 (the run stops at t_gen, so t_fit is
    unknown but later): the delay is negative, counted as −1."""
    gens = [np.inf if g is None else g for _, g, *_ in runs]
    delays = [np.inf if g is None else (-1 if f is None else g - f) for f, g, *_ in runs]
    return float(np.median(gens)), float(np.median(delays))


@pytest.fixture(scope="module")
def adamw_runs():
    return _passages(ADAMW)


@pytest.mark.slow
@pytest.mark.xdist_group("adamw_runs")  # one worker computes the module fixture once (--dist loadgroup)
def test_adamw_groks_on_the_cpu_task_and_a_fixed_norm_removes_the_delay(adamw_runs):
    """[P1] §4 on the CPU scale (x+y mod 23, 70 % train, d_model 32; examples/train).

    AdamW (lr 3e-3, weight decay 1): at seed 0 it fits at step ≈ 110 and generalises at
    ≈ 910, a grokking delay of ≈ 800 steps; over seeds 0–31 every run fits by step 120 and
    the median delay is ≈ 1 090 (13 seeds have not generalised by step 1 500).  At a fixed norm (|θ| = 20, lr 1e-3, no
    weight decay) fitting and generalising come together at seed 0: t_fit ≈ 290, t_gen ≈
    460, delay ≈ 170, 0.21 of AdamW's.  Asked: AdamW's delay ≥ 400 and ≥ 3·t_fit at seed 0
    and a median delay ≥ 400; the fixed-norm delay ≤ 0.3 of AdamW's at seed 0.
    """
    t_fit, t_gen = adamw_runs[0][:2]
    assert t_fit is not None and t_gen is not None, (t_fit, t_gen)
    delay = t_gen - t_fit
    assert delay >= max(400, 3 * t_fit), (t_fit, t_gen)
    assert _medians(adamw_runs)[1] >= 400, adamw_runs
    norm = _grok(ROOT / "examples" / "train" / "adamw_norm20_add_p23_d32.toml", 3000)
    assert norm.history.delay is not None and norm.history.delay <= 0.3 * delay, norm.history.times
    assert np.allclose(norm.history.column("weight_norm"), 20.0, rtol=1e-6)


def test_training_examples_run_and_gpu_scale_ones_build(tmp_path):
    from physampler import cli as physampler_cli

    cpu = sorted((ROOT / "examples" / "train").glob("*.toml"))
    assert len(cpu) >= 5
    for ex in cpu:
        out = tmp_path / ex.stem
        assert physampler_cli.main(["train", str(ex), "--out", str(out), "--steps", "15", "--quiet"]) == 0, ex
        with xr.open_dataset(out / "history.nc", engine="netcdf4") as ds:
            assert int(ds["step"].values[-1]) == 15
    gpu = sorted((ROOT / "examples" / "gpu" / "train").glob("*.toml"))
    assert len(gpu) == 7
    for ex in gpu:
        cfg = C.load(ex, kind="train")[0]
        assert cfg["train"]["device"] == "cuda" and cfg["system"]["p"] == 67
        cfg["train"]["device"] = "cpu"
        n = sum(p.numel() for p in Trainer(cfg).params)
        assert (2.1e5 < n < 2.3e5) if cfg["system"]["d_model"] == 128 else n < 2.1e5


@pytest.mark.slow
@pytest.mark.xdist_group("adamw_runs")
def test_wand_generalises_as_fast_as_adamw_with_a_shorter_delay(adamw_runs):
    """[P1] §5 on the CPU scale (x+y mod 23, 70 % train, d_model 32): WanD without weight
    decay (examples/train/wand_add_p23_d32.toml: box c = 1.5, dt 1e-3, λ 0.03, F 3 000,
    t_WL 500, σ 10 bins, wall β 1e4 at ln L = −5) against AdamW (lr 3e-3, wd 1), both
    over the same fixed seeds 0–31, recorded every 10 steps.

    First passages vary widely from seed to seed for both optimizers, so the statistics
    are medians over the seeds.  WanD's delays are bimodal: many seeds generalise within
    60 steps of fitting (or before), most others after one more melt-and-quench cycle of
    the Wang–Landau deposits, and 9 stall at high loss (∞).  The start is projected into
    the box (Trainer; 21.2 → 17.6).  Measured: WanD median t_gen 555, median delay 130;
    AdamW median t_gen 1 185, median delay 1 085 (ratios 0.47 and 0.12); every WanD norm
    grows (17.4–17.9 → 25.9–30.3).  (Before the start was projected: 580 and 120.)  Asked: the
    issue's bounds, median t_gen ≤ 1.5× AdamW's and median delay ≤ 0.25× AdamW's, and a
    larger final than initial norm for every WanD run.  Margin: over 64 WanD seeds
    (1-thread sweep, RESULTS.md, start not yet projected) the median delay is 155; resampling 32 WanD and 32 AdamW
    seeds from the measured ones puts the delay ratio above 0.25 in ≈ 11 % of draws, so
    the bound is met in the population, not only for these seeds.
    """
    runs = _passages(WAND)
    (a_gen, a_delay), (gen, delay) = _medians(adamw_runs), _medians(runs)
    assert gen <= 1.5 * a_gen, (runs, a_gen)
    assert delay <= 0.25 * a_delay, (runs, adamw_runs)
    assert all(final > initial for *_, initial, final in runs), runs


def test_sigint_stops_training_and_writes_what_was_recorded(tmp_path):
    import signal
    import time

    from _procs import Child

    cfg = small(tmp_path, steps=10_000_000)
    cfg.write_text(cfg.read_text().replace("[output]", "[output]\ncheckpoint_interval = 20"))
    out = tmp_path / "run"
    proc = Child("train", cfg, "--quiet")
    assert proc.wait_for(f" in {out}")  # the child's start line
    t_end = time.monotonic() + 300
    while not (out / "checkpoint.pt").exists() and time.monotonic() < t_end:  # its first checkpoint: steps done
        time.sleep(0.05)
    proc.signal(signal.SIGINT)
    code, lines = proc.finish(timeout=120)
    assert code == 130, lines
    with xr.open_dataset(out / "history.nc", engine="netcdf4") as ds:
        n = ds.sizes["step"]
        assert n > 1 and int(ds["step"].values[-1]) == n - 1
    assert torch.load(out / "model.pt", weights_only=True)["step"] == n - 1
