"""Jobs as users run them: outputs, CF metadata, exact continuation and resume after SIGTERM/SIGKILL."""
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from physampler import WLMD, PotentialEnergy, WalkerRNG, cli
from physampler.io import load_checkpoint, read_landscape, write_landscape
from physampler.validation import harmonic_setup

from _configs import harmonic_config

ROOT = Path(__file__).parents[1]



def launch(cfg, out, *extra):
    return subprocess.Popen([sys.executable, "-m", "physampler", "run", str(cfg), "--out", str(out), "--quiet", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def same_landscape_files(a: Path, b: Path):
    with xr.open_dataset(a) as x, xr.open_dataset(b) as y:
        for v in ("sampling_entropy", "histogram", "entropy"):
            assert x[v].values.tobytes() == y[v].values.tobytes(), v
        ax, ay = dict(x.attrs), dict(y.attrs)
        for k in ("date_created", "history", "nn_strategy_probe_ms"):  # when it was written, how fast; not what
            ax.pop(k, None), ay.pop(k, None)
        assert {k: str(v) for k, v in ax.items()} == {k: str(v) for k, v in ay.items()}


def cf_check(path: Path):
    with xr.open_dataset(path) as ds:
        assert ds.attrs["Conventions"] == "CF-1.10"
        for d in ds["entropy"].dims:
            c = ds[d]
            assert c.attrs["units"] and c.attrs["long_name"]
            b = ds[c.attrs["bounds"]]
            assert b.shape == (ds.sizes[d], 2)
            assert np.allclose(0.5 * (b.values[:, 0] + b.values[:, 1]), c.values)
            assert np.allclose(b.values[1:, 0], b.values[:-1, 1])  # contiguous cells
        for v in ("entropy", "histogram", "sampling_entropy"):
            assert "units" in ds[v].attrs and "long_name" in ds[v].attrs


def test_default_job_outputs_and_commands(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["run", "--out", str(out), "--steps", "20000", "--quiet"]) == 0
    for f in ("landscape.nc", "trajectory.nc", "checkpoint.pt", "landscape.png", "config.toml"):
        assert (out / f).stat().st_size > 0, f
    cf_check(out / "landscape.nc")
    with xr.open_dataset(out / "landscape.nc") as ds:
        assert ds.attrs["steps_done"] == 20000 and ds.attrs["walkers"] == 16 and ds.attrs["seed"] == 2026
        assert "[system]" in ds.attrs["config"] and ds.attrs["source"].startswith("physampler")
        s = ds["entropy"].values
        assert np.isnan(s[~(ds["histogram"].values > 0)]).all() and np.nanmin(s) == 0.0
    with xr.open_dataset(out / "trajectory.nc") as tr:
        assert tr.sizes["step"] == 4 and tr.sizes["walker"] == 16 and list(tr["step"].values) == [5000, 10000, 15000, 20000]
        assert tr["energy"].attrs["units"] == "1" and tr["energy"].attrs["reduced_unit"] == "epsilon"
    ck = load_checkpoint(out / "checkpoint.pt")
    assert ck["step"] == 20000 and ck["trajectory_records"] == 4
    capsys.readouterr()
    assert cli.main(["info", str(out / "landscape.nc")]) == 0
    info = capsys.readouterr().out
    assert "energy [epsilon]: -43 .. -20, 460 bins" in info and "steps 20000, walkers 16" in info
    assert cli.main(["analyze", str(out / "landscape.nc"), "--temperatures", "0.25", "0.3:0.4:3", "--kinetic-dof", "39"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    assert rows[0] == ("T,mean_energy,mean_energy_error,energy_variance,heat_capacity,heat_capacity_error,log_z,"
                       "truncation,contained") and len(rows) == 5
    t, u, _, var, cv, _, _, _, _ = (float(x) if x else math.nan for x in rows[2].split(","))
    assert cv == pytest.approx(var / t**2 + 19.5, rel=1e-8)  # C_V = Var U / T² + d/2
    png = tmp_path / "s.png"
    assert cli.main(["plot", str(out / "landscape.nc"), "-o", str(png)]) == 0 and png.read_bytes()[:4] == b"\x89PNG"
    assert cli.main(["info", str(out / "trajectory.nc")]) == 2  # not a landscape: one line, exit 2
    assert "not a physampler landscape.nc" in capsys.readouterr().err


def test_written_landscape_continues_sampling_exactly(tmp_path):
    wlmd, state = harmonic_setup(4, walkers=6, seed=3, steps=4000)
    system = wlmd.system
    for _ in range(300):
        state, _ = wlmd.step(state)
    write_landscape(tmp_path / "l.nc", wlmd.landscape, attrs={"config": "x"})
    back, attrs = read_landscape(tmp_path / "l.nc")
    assert torch.equal(back.S, wlmd.landscape.S) and torch.equal(back.H, wlmd.landscape.H)
    assert back.sigma.tolist() == wlmd.landscape.sigma.tolist() and back.out_of_range == wlmd.landscape.out_of_range
    twin = WLMD(system, PotentialEnergy(system), back, wlmd.schedule, dt=wlmd.dt, c_f=wlmd.c_f, kT=wlmd.kT,
                biases=wlmd.biases)
    rng2 = WalkerRNG(3, 6)
    rng2.load_state_dict(state.rng.state_dict())
    s1, s2 = state, type(state)(**{**state.__dict__, "rng": rng2})
    for _ in range(200):
        s1, _ = wlmd.step(s1)
        s2, _ = twin.step(s2)
    assert torch.equal(s1.positions, s2.positions) and torch.equal(wlmd.landscape.S, back.S)


def test_examples_are_configs_that_run(tmp_path):
    examples = sorted((ROOT / "examples").glob("*.toml"))
    assert len(examples) >= 3
    for ex in examples:
        out = tmp_path / ex.stem
        assert cli.main(["run", str(ex), "--out", str(out), "--steps", "400", "--quiet"]) == 0, ex
        assert (out / "landscape.nc").exists() and (out / "landscape.png").exists()
        if "q6" in ex.stem:
            with xr.open_dataset(out / "landscape.nc") as ds:
                assert ds["entropy"].dims == ("energy", "q6")
        if ex.stem.startswith("nn_"):
            with xr.open_dataset(out / "landscape.nc") as ds:
                assert ds["entropy"].dims == ("log_train_loss", "smoothed_accuracy")
                acc = ds["mean_test_accuracy"].values
                assert np.isfinite(acc).any() and np.nanmax(acc) <= 1.0 and np.nanmin(acc) >= 0.0
    # the shipped-data networks (kind = "python" factories): the CNN's test accuracy, the MLP's test MSE
    for name, dims, obs in (("digits_cnn_box", ("log_train_loss", "smoothed_accuracy"), "mean_test_accuracy"),
                            ("diabetes_mlp_box", ("log_train_loss", "log_test_loss"), "mean_test_loss")):
        out = tmp_path / name
        assert cli.main(["run", str(ROOT / "examples" / "data" / f"{name}.toml"), "--out", str(out), "--steps", "100",
                         "--quiet"]) == 0, name
        with xr.open_dataset(out / "landscape.nc") as ds:
            assert ds["entropy"].dims == dims and ds.attrs["nn_strategy"] in ("batched", "vmap", "chunked:4", "loop")
            v = ds[obs].values
            assert np.isfinite(v).any() and np.nanmin(v) >= 0.0


def test_gpu_scale_examples_parse_and_build_on_cpu():
    from physampler import config as C
    from physampler.job import build

    gpu = sorted((ROOT / "examples" / "gpu").glob("*.toml"))
    assert len(gpu) == 6
    for ex in gpu:
        cfg, text = C.load(ex)
        assert cfg["run"]["device"] == "cuda" and cfg["run"]["dtype"] == "float32"
        cfg["run"]["device"] = "cpu"
        job = build(cfg, text)
        n = job.system.shape[0]
        assert (2.1e5 < n < 2.3e5) if "d128" in ex.stem else n < 2.1e5


def test_sigterm_writes_checkpoint_and_resume_equals_uninterrupted(tmp_path):
    cfg = tmp_path / "lj.toml"
    text = (ROOT / "examples" / "lj13.toml").read_text()
    text = text.replace("steps = 1500000", "steps = 600000").replace("walkers = 16", "walkers = 4")
    text = text.replace("report_interval = 5000", "report_interval = 1000").replace("checkpoint_interval = 250000",
                                                                                   "checkpoint_interval = 50000")
    text = text.replace("plot = true", "plot = false")
    cfg.write_text(text)
    ref = tmp_path / "ref"
    assert cli.main(["run", str(cfg), "--out", str(ref), "--quiet"]) == 0
    out = tmp_path / "int"
    p = launch(cfg, out)
    while not (out / "trajectory.nc").exists() and p.poll() is None:  # wait for the first checkpoint
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    if p.returncode == 0:
        pytest.skip("the run finished before SIGTERM arrived")
    assert p.returncode == 128 + signal.SIGTERM and "checkpoint written" in err
    step = load_checkpoint(out / "checkpoint.pt")["step"]
    assert 0 < step < 600000 and step % 1000 == 0
    assert cli.main(["run", str(cfg), "--out", str(out), "--resume", "--quiet"]) == 0
    same_landscape_files(ref / "landscape.nc", out / "landscape.nc")
    with xr.open_dataset(ref / "trajectory.nc") as a, xr.open_dataset(out / "trajectory.nc") as b:
        assert np.array_equal(a["energy"].values, b["energy"].values) and np.array_equal(a["step"], b["step"])


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_is_bitwise_identical(tmp_path):
    """Each launch waits for the run's start line, then is killed after a random delay; a directory
    with a checkpoint is continued with --resume, one killed before its first checkpoint is
    restarted with --overwrite (--resume refuses a directory without a checkpoint)."""
    from _procs import Child

    cfg = tmp_path / "h.toml"
    cfg.write_text(harmonic_config(steps=40000, walkers=8, report=50, checkpoint=100))
    ref = tmp_path / "ref"
    assert cli.main(["run", str(cfg), "--out", str(ref), "--quiet"]) == 0
    out = tmp_path / "killed"
    rnd = random.Random(20261123)
    kills, attempts = 0, 0

    def mode():
        if (out / "checkpoint.pt").exists():
            return ["--resume"]
        return ["--overwrite"] if out.exists() else []

    while kills < 5 and attempts < 30:
        attempts += 1
        p = Child("run", cfg, "--out", out, "--quiet", *mode())
        if not p.wait_for(f" in {out}"):  # the start line: "starting ... in DIR" or "resuming at step N ... in DIR"
            code, lines = p.finish()
            assert code == 0, lines
            break
        time.sleep(rnd.uniform(0.0, 2.5))  # a random moment of the run; any moment must be survivable
        if p.poll() is not None:  # finished (or failed) before the kill
            code, lines = p.finish()
            assert code == 0, lines
            break
        os.kill(p.proc.pid, signal.SIGKILL)
        p.finish()
        kills += 1
        # Whatever the moment, every file present is complete and readable.
        if (out / "checkpoint.pt").exists():
            load_checkpoint(out / "checkpoint.pt")
        for f in ("landscape.nc", "trajectory.nc"):
            if (out / f).exists():
                xr.open_dataset(out / f).close()
    assert kills >= 5, f"only {kills} kills landed mid-run"
    p = Child("run", cfg, "--out", out, "--quiet", *mode())
    code, lines = p.finish()
    assert code == 0, lines
    assert not [f for f in os.listdir(out) if f.endswith(".tmp") or f.startswith(".physampler-tmp-")]
    same_landscape_files(ref / "landscape.nc", out / "landscape.nc")
    with xr.open_dataset(ref / "trajectory.nc") as a, xr.open_dataset(out / "trajectory.nc") as b:
        assert np.array_equal(a["energy"].values, b["energy"].values)


_USER_SYSTEM = '''
"""A system that exists only in this test, not in physampler or models/."""
import torch

from physampler import System


class QuarticWell(System):
    """U = sum_i (x_i^4 + x_i^2 / 2) in 3 dimensions."""

    def __init__(self, dtype, device):
        self.shape = (3,)
        self.masses = torch.tensor(1.0, dtype=dtype, device=device)

    def energy(self, q):
        return (q**4 + 0.5 * q**2).sum(-1)

    def initial_positions(self, walkers, generator):
        return 0.5 * torch.randn((walkers, 3), generator=generator, dtype=torch.float64)


def build(dtype, device):
    return QuarticWell(dtype, device)
'''

_FACTORY_JOB = """
[system]
kind = "python"
factory = "{module}:build"

[landscape]
lower = [0.05]
upper = [6.05]
bins = [60]
wall_strength = 2.0

[integrator]
dt = 0.01
c_f = 0.02

[schedule]
F = 0.5
t_wl = 1000

[run]
walkers = 8
steps = 30000
seed = 3

[output]
report_interval = 500
checkpoint_interval = 1000
plot = false
"""


def _quartic_log_g(u):
    """Exact ln g(U) + c of U = Σ_i (x_i⁴ + x_i²/2) in 3-D: the 3-fold convolution of the 1-D
    density 2/|f′(x(U))|, x² = (√(1/4 + 4U) − 1/2)/2, on a 5e-4 grid (checked against a
    4·10⁶-point Monte Carlo histogram to 0.01)."""
    du = 5e-4
    grid = np.arange(0.0, 8.0, du) + du / 2
    x = np.sqrt((np.sqrt(0.25 + 4 * grid) - 0.5) / 2)
    g1 = 2 / (4 * x**3 + x)
    g3 = np.convolve(np.convolve(g1, g1)[: grid.size] * du, g1)[: grid.size] * du
    return np.interp(u, grid, np.log(g3))


def test_a_system_defined_only_in_a_test_runs_from_a_config_factory_and_resumes_bitwise(tmp_path, monkeypatch, capsys):
    """``[system] kind = "python"``: a user's module on the path gives the whole job machinery —
    config, NetCDF, checkpoints — and a run SIGKILLed after its first checkpoint and resumed
    equals the uninterrupted run bit for bit.  Its S(U) is the quartic well's exact ln g to rms
    0.2 over U > 0.5 (30 000 steps at dt = 0.01; seeds 3, 4, 5 measured 0.068, 0.084, 0.091), and
    not the 3-D harmonic well's (control: 0.42–0.45; the two exact curves differ by rms 0.40).
    At dt = 0.02 the time-step error of the dynamics on the stiff quartic wall left S off by rms
    0.18–1.26 over the same seeds, with a flat histogram all the same.
    Bad factories are one line naming system.factory, exit status 2 (control: a typo'd name)."""
    from _procs import Child

    (tmp_path / "user_quartic_system.py").write_text(_USER_SYSTEM)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cfg = tmp_path / "q.toml"
    cfg.write_text(_FACTORY_JOB.format(module="user_quartic_system"))
    ref = tmp_path / "ref"
    assert cli.main(["run", str(cfg), "--out", str(ref), "--quiet"]) == 0
    out = tmp_path / "killed"
    p = Child("run", cfg, "--out", out, "--quiet", env={"PHYSAMPLER_CHECKPOINT_MARKER": "1"})
    assert p.wait_for("physampler: checkpoint written at step"), p.lines
    os.kill(p.proc.pid, signal.SIGKILL)
    p.finish()
    assert load_checkpoint(out / "checkpoint.pt")["step"] < 30000
    assert cli.main(["run", str(cfg), "--out", str(out), "--resume", "--quiet"]) == 0
    same_landscape_files(ref / "landscape.nc", out / "landscape.nc")
    with xr.open_dataset(ref / "landscape.nc") as ds:
        u, s = ds["energy"].values, ds["entropy"].values
    ok = np.isfinite(s) & (u > 0.5)

    def rms_from(ln_g):
        d = s[ok] - ln_g[ok]
        return float(np.sqrt(((d - d.mean()) ** 2).mean()))

    assert rms_from(_quartic_log_g(u)) <= 0.2  # measured 0.068
    assert rms_from(0.5 * np.log(u)) > 0.3  # control: the 3-D harmonic ln g, measured 0.42
    bad = tmp_path / "bad.toml"
    bad.write_text(_FACTORY_JOB.format(module="user_quartic_systen"))
    capsys.readouterr()
    assert cli.main(["run", str(bad), "--out", str(tmp_path / "b"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "system.factory: cannot import 'user_quartic_systen:build'" in err[0], err
    assert not (tmp_path / "b" / "landscape.nc").exists()


_PYTHON_JOB = _USER_SYSTEM + '''

if __name__ == "__main__":
    import sys

    from physampler import run_job

    config, out = sys.argv[1], sys.argv[2]
    sys.exit(run_job(config, out, system=QuarticWell(torch.float64, "cpu"), resume="--resume" in sys.argv,
                     log=lambda m: print(m, file=sys.stderr, flush=True)))
'''


def test_the_python_job_api_runs_a_system_object_is_sigkilled_and_resumes_bitwise(tmp_path, monkeypatch):
    """``physampler.run_job(config, out, system=obj)``: the same machinery from Python, for a
    System object that exists only in a script of this test (no factory in the config).  The
    script is SIGKILLed after its first checkpoint and resumed in this process; the landscape equals
    the uninterrupted run's bit for bit.  Control: the same config from the command line, with no
    object and no factory, is one line naming system.factory, exit status 2."""
    from _procs import Child

    (tmp_path / "user_job.py").write_text(_PYTHON_JOB)
    monkeypatch.syspath_prepend(str(tmp_path))
    import user_job
    from physampler import run_job

    cfg = tmp_path / "q.toml"
    cfg.write_text(_FACTORY_JOB.replace('factory = "{module}:build"\n', "").replace("steps = 30000", "steps = 15000"))
    ref = tmp_path / "ref"
    assert run_job(cfg, ref, system=user_job.QuarticWell(torch.float64, "cpu"), log=lambda m: None) == 0
    out = tmp_path / "killed"
    p = Child(cfg, out, command=[sys.executable, str(tmp_path / "user_job.py")],
              env={"PHYSAMPLER_CHECKPOINT_MARKER": "1"})
    assert p.wait_for("physampler: checkpoint written at step"), p.lines
    os.kill(p.proc.pid, signal.SIGKILL)
    p.finish()
    assert load_checkpoint(out / "checkpoint.pt")["step"] < 15000
    assert run_job(cfg, out, system=user_job.QuarticWell(torch.float64, "cpu"), resume=True, log=lambda m: None) == 0
    same_landscape_files(ref / "landscape.nc", out / "landscape.nc")
    cli_run = subprocess.run([sys.executable, "-m", "physampler", "run", str(cfg), "--out", str(tmp_path / "c")],
                             capture_output=True, text=True, timeout=300)
    lines = cli_run.stderr.strip().splitlines()
    assert cli_run.returncode == 2 and len(lines) == 1 and "system.factory: is required" in lines[0], lines
