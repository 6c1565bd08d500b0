"""Nothing lost, nothing overwritten, nothing left to a traceback (issue 13).

Each test is named after the behaviour it guards; the reproducers are the issue's.
Child processes are signalled or killed only after a line they print (tests/_procs.py).
"""
import errno
import os
import pickle
import random
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from physampler import cli
from physampler.io import load_checkpoint, save_checkpoint

from _configs import harmonic_config, nn_config, train_text_of
from _procs import Child

ROOT = Path(__file__).resolve().parents[1]

def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def run_config(tmp_path, name="B.toml", **kw) -> Path:
    args = dict(steps=200, walkers=4, report=50, checkpoint=100) | kw
    return write(tmp_path / name, harmonic_config(**args))


def train_config(tmp_path, name="T.toml", *, optimizer="wand", steps=200, checkpoint=50, system=""):
    return write(tmp_path / name, train_text_of(optimizer, steps, checkpoint, system))


def one_line(capsys, code, start, status=2) -> str:
    """The one closing line of a refused or failed command (the run's own "starting ..." line aside)."""
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("starting ")]
    assert code == status, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(start), lines[0]
    return lines[0]


def snapshot(d: Path) -> dict:
    """Every entry below ``d`` (links as their target text): what a refused command must leave as it was."""
    out = {}
    for p in sorted(d.rglob("*")):
        if p.is_symlink():
            out[str(p.relative_to(d))] = ("link", os.readlink(p))
        elif p.is_file():
            out[str(p.relative_to(d))] = p.read_bytes()
    return out


def interrupt_after_start(command: str, cfg: Path, out: Path, sig) -> int:
    """Start ``command``, send ``sig`` once it has printed its start line, check that it stopped
    with a checkpoint (status 128 + sig); returns the checkpoint's step."""
    p = Child(command, cfg, "--out", out, "--quiet")
    assert p.wait_for(f" in {out}")
    p.signal(sig)
    code, lines = p.finish()
    assert code == 128 + sig and any("checkpoint written" in ln for ln in lines), lines
    return load_checkpoint(out / "checkpoint.pt")["step"]


def same_history_and_model(a: Path, b: Path):
    with xr.open_dataset(a / "history.nc") as x, xr.open_dataset(b / "history.nc") as y:
        assert np.array_equal(x["step"].values, y["step"].values)
        for v in x.data_vars:
            assert x[v].values.tobytes() == y[v].values.tobytes(), v
    ma, mb = (torch.load(d / "model.pt", weights_only=True) for d in (a, b))
    assert ma["step"] == mb["step"]
    for k in ma["model"]:
        assert torch.equal(ma["model"][k], mb["model"][k]), k
    flat = [torch.cat([t.reshape(-1).double() for t in _tensors(m["optimizer"])]) for m in (ma, mb)]
    assert torch.equal(*flat)  # AdamW moments, or WanD's landscape, velocities and random stream


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for k in sorted(obj, key=str):
            yield from _tensors(obj[k])
    elif isinstance(obj, (list, tuple)):
        for x in obj:
            yield from _tensors(x)


# --------------------------------------------------------------- 1. links
def test_writes_never_follow_a_link_planted_in_the_output_directory(tmp_path, capsys):
    victim = write(tmp_path / "victim", "data")
    cfg = run_config(tmp_path)
    out = tmp_path / "s"
    out.mkdir()
    (out / ".physampler-write-test").symlink_to(victim)  # the reproducer
    assert cli.main(["run", str(cfg), "--out", str(out), "--steps", "100", "--overwrite", "--quiet"]) == 0
    for name in ("landscape.nc", "config.toml", "landscape.png"):  # links where the outputs go
        (out / name).unlink(missing_ok=True)
        (out / name).symlink_to(victim)
    assert cli.main(["run", str(cfg), "--out", str(out), "--resume", "--quiet"]) == 0
    assert victim.read_text() == "data"
    for name in ("landscape.nc", "config.toml"):
        assert not (out / name).is_symlink() and (out / name).stat().st_size > 0, name
    for name in ("landscape.nc", "config.toml", "trajectory.nc", "checkpoint.pt"):
        (out / name).unlink()
        (out / name).symlink_to(victim)
    assert cli.main(["run", str(cfg), "--out", str(out), "--overwrite", "--quiet"]) == 0
    assert victim.read_text() == "data" and not (out / "landscape.nc").is_symlink()
    capsys.readouterr()
    # a link planted as the lock file is refused, not followed
    (out / ".physampler.lock").unlink()
    (out / ".physampler.lock").symlink_to(victim)
    code = cli.main(["run", str(cfg), "--out", str(out), "--resume", "--steps", "300", "--quiet"])
    assert ".physampler.lock is a symbolic link" in one_line(capsys, code, "config error: output.directory")
    assert victim.read_text() == "data"


# --------------------------------------------------------------- 2. resume
def test_resume_without_a_checkpoint_refuses_and_touches_nothing(tmp_path, capsys):
    cfg = run_config(tmp_path)
    other = write(tmp_path / "B_seed99.toml", cfg.read_text().replace("seed = 4", "seed = 99"))
    out = tmp_path / "X"
    assert cli.main(["run", str(cfg), "--out", str(out), "--quiet"]) == 0
    (out / "checkpoint.pt").unlink()
    before = snapshot(out)
    capsys.readouterr()
    code = cli.main(["run", str(other), "--out", str(out), "--resume", "--steps", "300", "--quiet"])
    assert "no checkpoint" in one_line(capsys, code, "config error: --resume")
    assert snapshot(out) == before
    missing = tmp_path / "never"
    code = cli.main(["run", str(cfg), "--out", str(missing), "--resume", "--quiet"])
    one_line(capsys, code, "config error: --resume")
    assert not missing.exists()
    code = cli.main(["train", str(train_config(tmp_path)), "--out", str(missing), "--resume", "--quiet"])
    one_line(capsys, code, "config error: --resume")
    assert not missing.exists()


# ------------------------------------------------------------- 4. training
@pytest.mark.slow
def test_train_resumes_bitwise_after_sigkill_at_random_moments(tmp_path):
    """WanD (landscape, velocities and random stream in its state) killed at ≥ 3 random moments,
    each after the run's start line, and resumed each time: the final history.nc and model.pt
    equal an uninterrupted run's, every byte of every tensor.  A kill advances the run by at most
    2 s of steps (≈ 200 here), so 2 500 steps leave room for every kill."""
    cfg = train_config(tmp_path, optimizer="wand", steps=2500, checkpoint=100)
    ref = tmp_path / "ref"
    assert cli.main(["train", str(cfg), "--out", str(ref), "--quiet"]) == 0
    out = tmp_path / "killed"
    rnd = random.Random(13)
    kills = 0

    def mode():
        if (out / "checkpoint.pt").exists():
            return ["--resume"]
        return ["--overwrite"] if out.exists() else []

    for _ in range(20):
        p = Child("train", cfg, "--out", out, "--quiet", *mode())
        if not p.wait_for(f" in {out}"):
            break
        time.sleep(rnd.uniform(0.0, 2.0))  # a random moment; every moment must be survivable
        if p.poll() is not None:
            break
        os.kill(p.proc.pid, signal.SIGKILL)
        p.finish()
        kills += 1
        if (out / "checkpoint.pt").exists():  # whatever the moment, what is there is complete
            ck = load_checkpoint(out / "checkpoint.pt")
            if (out / "history.nc").exists():  # written right after every checkpoint, never ahead of it
                with xr.open_dataset(out / "history.nc") as h:
                    assert int(h["step"].values[-1]) <= ck["step"]
        if kills >= 3:
            break
    assert kills >= 3, f"only {kills} kills landed mid-run"
    code, lines = Child("train", cfg, "--out", out, "--quiet", *mode()).finish()
    assert code == 0, lines
    same_history_and_model(ref, out)


def test_train_sigterm_writes_a_checkpoint_and_resume_equals_the_uninterrupted_run(tmp_path):
    """AdamW (its moments and step counts in the optimizer state) at a fixed norm."""
    cfg = train_config(tmp_path, optimizer="adamw", steps=600, checkpoint=50,
                       system='constraint = "norm"\nnorm_radius = 9.0')
    ref = tmp_path / "ref"
    assert cli.main(["train", str(cfg), "--out", str(ref), "--quiet"]) == 0
    out = tmp_path / "int"
    step = interrupt_after_start("train", cfg, out, signal.SIGTERM)
    assert step < 600
    code, lines = Child("train", cfg, "--out", out, "--quiet", "--resume").finish()
    assert code == 0 and any(f"resuming at step {step}" in ln for ln in lines), lines
    same_history_and_model(ref, out)


def test_a_training_fault_keeps_the_history_so_far(tmp_path, capsys):
    """SGD at lr 1e6 overflows within a few steps: one line naming the step, exit 1, and the
    records made before the fault are in history.nc (no checkpoint is claimed)."""
    cfg = write(tmp_path / "f.toml", train_text_of("adamw", steps=400, checkpoint=100)
                .replace('name = "adamw"', 'name = "sgd"').replace("lr = 0.003", "lr = 1e6")
                .replace("weight_decay = 1.0", ""))
    out = tmp_path / "f"
    code = cli.main(["train", str(cfg), "--out", str(out), "--quiet"])
    line = one_line(capsys, code, "physampler: numerical fault: step ", status=1)
    assert "non-finite training loss" in line and "no checkpoint was written yet" in line
    with xr.open_dataset(out / "history.nc") as h:
        assert int(h["step"].values[0]) == 0 and np.isfinite(h["train_loss"].values).all()
    assert not (out / "checkpoint.pt").exists()


def test_train_checkpoint_that_does_not_fit_is_one_line(tmp_path, capsys):
    cfg = train_config(tmp_path, steps=60, checkpoint=20)
    out = tmp_path / "t"
    assert cli.main(["train", str(cfg), "--out", str(out), "--quiet"]) == 0
    ck = load_checkpoint(out / "checkpoint.pt")
    ck["model"]["W_E"] = ck["model"]["W_E"][:2]
    save_checkpoint(out / "checkpoint.pt", ck)
    before = snapshot(out)
    capsys.readouterr()
    code = cli.main(["train", str(cfg), "--out", str(out), "--resume", "--steps", "80", "--quiet"])
    assert "model state does not fit" in one_line(capsys, code, f"error: {out / 'checkpoint.pt'}: ")
    assert snapshot(out) == before


# ----------------------------------------------------------- 5. bad input
def _h(section_key_values: str, base=None):
    """The small harmonic config with lines added to their sections (``section.key = value`` lines)."""
    text = base or harmonic_config(steps=200, walkers=4, report=50, checkpoint=100)
    for item in filter(None, section_key_values.split("\n")):
        sk, value = item.split(" = ", 1)
        sec, key = sk.split(".", 1)
        lines = [ln for ln in text.splitlines() if not ln.startswith(f"{key} =")]
        if f"[{sec}]" not in lines:
            lines += ["", f"[{sec}]"]
        lines.insert(lines.index(f"[{sec}]") + 1, f"{key} = {value}")
        text = "\n".join(lines) + "\n"
    return text


def _t(section_key_values: str):
    return _h(section_key_values, base=train_text_of(steps=20, checkpoint=10))


BAD_RUN = [
    ("bins 1e9", _h("landscape.bins = [1000000000]"), "landscape.bins: the job needs an estimated"),
    ("3-D bins 1e5", _h("cvs.names = [\"energy\", \"rg\", \"q6\"]\nlandscape.bins = [100000, 100000, 100000]\n"
                        "landscape.lower = [-40.0, 0.5, 0.0]\nlandscape.upper = [-10.0, 3.0, 0.6]\n"
                        "system.kind = \"lj_cluster\"").replace("dims = 6\n", ""),  # dims: a harmonic key
     "landscape.bins: the job needs an estimated"),
    ("walkers 1e12", _h("run.walkers = 1000000000000"), "run.walkers: the job needs an estimated"),
    ("dims 1e12", _h("system.dims = 1000000000000"), "system.dims: the job needs an estimated"),
    ("dims 2**63", _h("system.dims = 9223372036854775808"), "system.dims: must be an integer of at most 64 bits"),
    ("nn d_model 1e9", nn_config("d_model = 1000000000").replace("d_model = 4\n", ""), "system.d_model: the job needs"),
    ("atoms 1e5", _h("system.kind = \"lj_cluster\"\nsystem.atoms = 100000\nlandscape.lower = [-40.0]\n"
                     "landscape.upper = [0.0]").replace("dims = 6\n", ""), "system.atoms: the job needs an estimated"),
    ("dt 10**400", _h("integrator.dt = 1" + "0" * 400), "integrator.dt: must be finite"),
    ("p 10**400", nn_config("p = 1" + "0" * 400).replace("p = 5\n", ""), "system.p: must be an integer of at most 64"),
    ("p 2**61-1", nn_config("p = 2305843009213693951").replace("p = 5\n", ""), "system.p: the job needs an estimated"),
    ("device index", _h("run.device = \"cuda:99999999999999999999\""), "run.device: must be cpu, cuda or cuda:N"),
    ("seed 2**64", _h("run.seed = 18446744073709551616"), "run.seed: must be an integer of at most 64 bits"),
    ("sigma 1e300", _h("landscape.sigma = 1e300"), "landscape.sigma: the deposit window"),
    ("sigma 1000 on 3 bins", _h("landscape.bins = [3]\nlandscape.sigma = 1000.0"), "landscape.sigma: the deposit"),
    ("cutoff 1e-12", _h("landscape.cutoff = 1e-12"), "landscape.cutoff: cutoff·sigma"),
    ("initial_temperature 1e-300", _h("landscape.initial_temperature = 1e-300"), "landscape.initial_temperature"),
    ("wall_strength 1e308", _h("landscape.wall_strength = 1e308"), "landscape.wall_strength: must be <="),
    ("bias wall 1e308", _h("bias.walls = [{cv = \"energy\", side = \"upper\", at = 10.0, strength = 1e308}]"),
     "bias.walls[0].strength: must be <="),
    ("nn empty train set", nn_config("train_fraction = 0.1").replace("p = 5", "p = 2"), "system.train_fraction: leaves an "
                                                                                 "empty train set"),
    ("newline in a key", _h('system."bad\\nkey" = 1'), "config error: system.'bad\\nkey': unknown key"),
    ("newline in a section", _h("") + '\n["a\\nb"]\nx = 1\n', "config error: 'a\\nb': unknown section"),
]
BAD_TRAIN = [
    ("train d_model 1e7", _t("system.d_model = 10000000"), "system.d_model: the job needs an estimated"),
    ("wand bins 1e10", _t("optimizer.bins = 10000000000"), "optimizer.bins: the job needs an estimated"),
    ("split_seed 2**64", _t("system.split_seed = 18446744073709551616"), "system.split_seed: must be an integer of"),
    ("train seed 2**64", _t("train.seed = 18446744073709551616"), "train.seed: must be an integer of"),
    ("empty test set", _t("system.train_fraction = 0.99").replace("p = 7", "p = 2"), "system.train_fraction: leaves "
                                                                                    "an empty test set"),
    ("wand sigma beyond the grid", _t("optimizer.sigma = 100.0"), "optimizer.sigma: the deposit window"),
    ("wand wall 1e308", _t("optimizer.wall_strength = 1e308"), "optimizer.wall_strength: must be <="),
]
if not torch.cuda.is_available():
    BAD_TRAIN.append(("cuda on a CPU build", _t("train.device = \"cuda\""), "train.device: CUDA is not available"))
    BAD_RUN.append(("cuda on a CPU build", _h("run.device = \"cuda\""), "run.device: CUDA is not available"))


@pytest.mark.parametrize("command, text, start", [("run", t, s) for _, t, s in BAD_RUN]
                         + [("train", t, s) for _, t, s in BAD_TRAIN],
                         ids=[f"run {n}" for n, *_ in BAD_RUN] + [f"train {n}" for n, *_ in BAD_TRAIN])
def test_bad_sizes_overflows_and_combinations_are_one_line_before_anything_is_written(tmp_path, capsys, monkeypatch,
                                                                                      command, text, start):
    monkeypatch.setenv("PHYSAMPLER_MEMORY_LIMIT", "16G")  # the same verdicts on any machine
    cfg = write(tmp_path / "c.toml", text)
    out = tmp_path / "out"
    code = cli.main([command, str(cfg), "--out", str(out), "--quiet"])
    line = one_line(capsys, code, "config error: " if not start.startswith("config error") else start)
    assert start in line
    assert not out.exists()


def test_the_memory_estimate_is_printed_and_a_config_that_fits_runs(tmp_path, capsys, monkeypatch):
    cfg = run_config(tmp_path)
    monkeypatch.setenv("PHYSAMPLER_MEMORY_LIMIT", "1K")  # control: the same config against a tiny limit
    code = cli.main(["run", str(cfg), "--out", str(tmp_path / "a"), "--quiet"])
    line = one_line(capsys, code, "config error: ")
    assert "needs an estimated" in line and "available on cpu" in line and not (tmp_path / "a").exists()
    monkeypatch.setenv("PHYSAMPLER_MEMORY_LIMIT", "16G")
    assert cli.main(["run", str(cfg), "--out", str(tmp_path / "b"), "--quiet"]) == 0


# ---------------------------------------------------------- 6. checkpoints
def _malicious(path: Path, marker: Path):
    class Boom:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with open(path, "wb") as f:
        pickle.dump({"format": 1, "x": Boom()}, f)


def _edit(key, value):
    def f(path, _):
        ck = load_checkpoint(path)
        if value is None:
            ck.pop(key)
        else:
            ck[key] = value(ck) if callable(value) else value
        save_checkpoint(path, ck)
    return f


CHECKPOINT_DAMAGE = {
    "empty": (lambda p, _: p.write_bytes(b""), "is empty"),
    "truncated": (lambda p, _: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "not a physampler checkpoint"),
    "a directory": (lambda p, _: (p.unlink(), p.mkdir()), "is a directory"),
    "/dev/zero": (lambda p, _: (p.unlink(), p.symlink_to("/dev/zero")), "is not a regular file"),
    "malicious pickle": (lambda p, m: _malicious(p, m), "refused"),
    "missing key": (_edit("rng", None), "no 'rng' entry"),
    "wrong shape": (_edit("positions", lambda ck: ck["positions"][:, :2]), "'positions' must be a float tensor"),
    "bad rng dict": (_edit("rng", {"seed": 4, "rank": 0, "walkers": torch.arange(4), "states": torch.zeros(4, 2)}),
                     "random streams"),
    "bad landscape dict": (_edit("landscape", lambda ck: ck["landscape"] | {"entropy": torch.zeros(3)}),
                           "landscape"),
    "negative step": (_edit("step", -5), "'step' must be an integer >= 0"),
}


@pytest.mark.parametrize("damage", list(CHECKPOINT_DAMAGE))
def test_a_checkpoint_that_cannot_be_used_is_one_line_and_nothing_changes(tmp_path, capsys, damage):
    cfg = run_config(tmp_path)
    out = tmp_path / "X"
    assert cli.main(["run", str(cfg), "--out", str(out), "--quiet"]) == 0
    marker = tmp_path / "pwned"
    fn, what = CHECKPOINT_DAMAGE[damage]
    fn(out / "checkpoint.pt", marker)
    before = snapshot(out)
    capsys.readouterr()
    code = cli.main(["run", str(cfg), "--out", str(out), "--resume", "--steps", "400", "--quiet"])
    line = one_line(capsys, code, f"error: {out / 'checkpoint.pt'}: ")
    assert what in line, line
    assert snapshot(out) == before and not marker.exists()


@pytest.mark.parametrize("damage, what", [("deleted", "missing: the checkpoint expects"),
                                          ("truncated", "cannot be read as NetCDF")])
def test_a_missing_or_damaged_trajectory_is_refused_instead_of_dropping_records(tmp_path, capsys, damage, what):
    cfg = run_config(tmp_path)
    out = tmp_path / "X"
    assert cli.main(["run", str(cfg), "--out", str(out), "--quiet"]) == 0
    tr = out / "trajectory.nc"
    if damage == "deleted":
        tr.unlink()
    else:
        tr.write_bytes(tr.read_bytes()[:200])
    before = snapshot(out)
    capsys.readouterr()
    code = cli.main(["run", str(cfg), "--out", str(out), "--resume", "--steps", "400", "--quiet"])
    assert what in one_line(capsys, code, f"error: {tr}: ")
    assert snapshot(out) == before


# -------------------------------------------------- 7. info / plot / analyze
@pytest.fixture
def finished(tmp_path):
    out = tmp_path / "X"
    assert cli.main(["run", str(run_config(tmp_path)), "--out", str(out), "--quiet"]) == 0
    return out


def _hand_edit(src: Path, dst: Path, fn) -> Path:
    with xr.open_dataset(src) as ds:
        ds = fn(ds.load())
        ds.to_netcdf(dst)
    return dst


def test_hand_edited_landscapes_give_an_answer_or_one_line(finished, tmp_path, capsys):
    land = finished / "landscape.nc"

    def attr(name, value):
        def f(ds):
            ds.attrs[name] = value
            return ds
        return f

    odd = _hand_edit(land, tmp_path / "odd.nc", attr("f_wl_final", "a string"))
    odd = _hand_edit(odd, tmp_path / "odd2.nc", attr("complete", np.array([1, 0, 1])))
    assert cli.main(["info", str(odd)]) == 0
    info = capsys.readouterr().out
    assert "f_WL        ? at the last step" in info and "complete ?" in info
    nan = _hand_edit(land, tmp_path / "nan.nc", lambda ds: ds.assign(entropy=ds["entropy"] * np.nan))
    renamed = _hand_edit(land, tmp_path / "renamed.nc", lambda ds: ds.rename({"entropy": "S"}))
    for f in (nan, renamed):  # the figure is drawn from the sampler's own S and H
        assert cli.main(["plot", str(f), "-o", str(tmp_path / "p.png")]) == 0
    capsys.readouterr()
    gone = _hand_edit(land, tmp_path / "gone.nc", lambda ds: ds.rename({"sampling_entropy": "x"}))
    for command in (["info", str(gone)], ["plot", str(gone)], ["analyze", str(gone), "--temperatures", "1"]):
        assert "has no variable 'sampling_entropy'" in one_line(capsys, cli.main(command), f"error: {gone}: ")
    empty = _hand_edit(land, tmp_path / "empty.nc", lambda ds: ds.assign(histogram=ds["histogram"] * 0))
    for command in (["plot", str(empty)], ["analyze", str(empty), "--temperatures", "1"]):
        assert "no bin was visited" in one_line(capsys, cli.main(command), f"error: {empty}: ")
    bad = _hand_edit(land, tmp_path / "bad.nc", attr("kernel_sigma_bins", "wide"))
    assert "not numeric" in one_line(capsys, cli.main(["info", str(bad)]), f"error: {bad}: ")


def test_plot_trajectories_and_histories_that_cannot_be_used_are_one_line(finished, tmp_path, capsys):
    from physampler.io import write_landscape
    from physampler import Axis, Landscape

    land = Landscape([Axis("log_train_loss", -4.0, 1.0, bins=20), Axis("smoothed_accuracy", 0.0, 1.0, bins=10)])
    land.H += 1
    write_landscape(tmp_path / "l2.nc", land)
    nosuch = tmp_path / "nosuch.nc"
    code = cli.main(["plot", str(tmp_path / "l2.nc"), "--trajectory", str(nosuch)])
    assert "no such" in one_line(capsys, code, f"error: {nosuch}: ")
    corrupt = write(tmp_path / "corrupt.nc", "not netcdf")
    code = cli.main(["plot", str(tmp_path / "l2.nc"), "--trajectory", str(corrupt)])
    one_line(capsys, code, f"error: {corrupt}: ")
    wrong = finished / "trajectory.nc"  # an energy trajectory on an NN landscape
    assert "has no variable 'log_train_loss'" in one_line(
        capsys, cli.main(["plot", str(tmp_path / "l2.nc"), "--trajectory", str(wrong)]), f"error: {wrong}: ")
    tr = tmp_path / "tr"
    assert cli.main(["train", str(train_config(tmp_path, steps=20, checkpoint=10)), "--out", str(tr), "--quiet"]) == 0
    capsys.readouterr()
    hist = _hand_edit(tr / "history.nc", tmp_path / "h.nc", lambda ds: ds.drop_vars("train_accuracy"))
    assert "has no variable 'train_accuracy'" in one_line(capsys, cli.main(["plot", str(hist)]), f"error: {hist}: ")


def test_outputs_into_a_missing_directory_are_one_line_and_the_csv_is_written_atomically(finished, tmp_path, capsys):
    land = finished / "landscape.nc"
    missing = tmp_path / "nodir" / "x.png"
    assert "does not exist" in one_line(capsys, cli.main(["plot", str(land), "-o", str(missing)]), f"error: {missing}")
    missing = tmp_path / "nodir" / "x.csv"
    code = cli.main(["analyze", str(land), "--temperatures", "1", "-o", str(missing)])
    one_line(capsys, code, f"error: {missing}")
    victim = write(tmp_path / "victim", "data")
    csv = tmp_path / "t.csv"
    csv.symlink_to(victim)  # the rename replaces a link at the target instead of writing through it
    assert cli.main(["analyze", str(land), "--temperatures", "1", "2", "-o", str(csv)]) == 0
    assert victim.read_text() == "data" and not csv.is_symlink()
    assert csv.read_text().splitlines()[0].startswith("T,mean_energy,")


# ------------------------------------------------------------ 8. concurrency
def test_a_second_run_into_a_locked_directory_is_refused_naming_the_holder(tmp_path, capsys):
    cfg = run_config(tmp_path, steps=10_000_000)
    out = tmp_path / "L"
    p = Child("run", cfg, "--out", out, "--quiet")
    try:
        assert p.wait_for(f" in {out}")
        before = snapshot(out)
        for args in (["--resume"], ["--overwrite"]):
            line = one_line(capsys, cli.main(["run", str(cfg), "--out", str(out), "--quiet", *args]),
                            "config error: output.directory: in use by process")
            assert f"process {p.proc.pid} " in line
            assert set(snapshot(out)) == set(before)
    finally:
        p.signal(signal.SIGTERM)
        code, lines = p.finish()
    assert code == 143, lines


def test_an_output_subdirectory_planted_as_a_link_is_refused(tmp_path, capsys):
    """Renaming over a link protects a file path, not files written *into* a linked directory
    (the torchrun checkpoint sets live in DIR/checkpoints/)."""
    from physampler.job import OUTPUTS
    from physampler.outdir import JobError, OutputDirectory

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "checkpoints").symlink_to(elsewhere)
    (out / "manifest.json").write_text("{}")
    for resume in (True, False):
        with pytest.raises(JobError, match="checkpoints is a symbolic link to a directory"):
            OutputDirectory(out, resume=resume, overwrite=True, outputs=OUTPUTS, checkpoint="manifest.json").open()
    assert not list(elsewhere.iterdir()) and not (out / ".physampler.lock").exists()


def test_a_symlinked_output_directory_is_refused(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "empty")
    code = cli.main(["run", str(run_config(tmp_path)), "--out", str(tmp_path / "link"), "--quiet"])
    assert "is a symbolic link" in one_line(capsys, code, "config error: output.directory")
    assert not list((tmp_path / "empty").iterdir())


def test_a_full_disk_ends_with_one_line_keeps_the_last_checkpoint_and_resumes_exactly(tmp_path, capsys, monkeypatch):
    cfg = run_config(tmp_path, steps=400, report=50, checkpoint=100)
    ref = tmp_path / "ref"
    assert cli.main(["run", str(cfg), "--out", str(ref), "--quiet"]) == 0
    out = tmp_path / "full"
    real, calls = os.fsync, [0]

    def fsync(fd):  # the device fills up after the first checkpoint's writes
        calls[0] += 1
        if calls[0] > 8:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    capsys.readouterr()
    code = cli.main(["run", str(cfg), "--out", str(out), "--quiet"])
    line = one_line(capsys, code, "error: ", status=1)
    assert "No space left on device" in line and "intact" in line
    monkeypatch.setattr(os, "fsync", real)
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 100
    assert not [p for p in out.iterdir() if p.name.startswith(".physampler-tmp-")]
    assert cli.main(["run", str(cfg), "--out", str(out), "--resume", "--quiet"]) == 0
    with xr.open_dataset(ref / "landscape.nc") as a, xr.open_dataset(out / "landscape.nc") as b:
        assert a["sampling_entropy"].values.tobytes() == b["sampling_entropy"].values.tobytes()


# ---------------------------------------------------------------- 9. signals
def test_a_signal_at_any_moment_of_start_up_ends_with_one_line_and_the_documented_status(tmp_path):
    """SIGINT after the handlers are installed (the child says so) and after delays spread over
    imports, model build and the first steps: always 130 and one closing line, never a traceback."""
    cfg = ROOT / "examples" / "nn_add_p11_d16_box.toml"
    tcfg = train_config(tmp_path, steps=10_000_000, checkpoint=1000)
    rnd = random.Random(9)
    delays = [0.0, 0.01] + sorted(rnd.uniform(0.0, 6.0) for _ in range(4))
    for i, delay in enumerate(delays):
        args = ("run", cfg) if i % 2 == 0 else ("train", tcfg)
        out = tmp_path / f"o{i}"
        p = Child(*args, "--out", out, "--quiet", env={"PHYSAMPLER_STARTUP_MARKER": "1", "OMP_NUM_THREADS": "1"})
        assert p.wait_for("physampler: handlers installed")
        time.sleep(delay)
        p.signal(signal.SIGINT)
        code, lines = p.finish()
        closing = [ln for ln in lines if "handlers installed" not in ln and not ln.startswith("starting ")]
        assert code == 130 and len(closing) == 1 and not any("Traceback" in ln for ln in lines), (delay, lines)
        assert "SIGINT" in closing[0], closing


#: ``python SCRIPT ARGS`` = ``physampler ARGS``, with SIGINT delivered inside a bare ``except:``
#: the first time ``physampler.driver`` is imported — what mpmath does around its optional
#: ``import gmpy2``, reached through torch's lazy sympy import (the CI hang of 2026-12-03)
SWALLOWING_LIBRARY = """
import signal, sys

fired = []

class Swallow:
    def find_spec(self, name, path=None, target=None):
        if name == "physampler.driver" and not fired:
            fired.append(name)
            try:
                signal.raise_signal(signal.SIGINT)  # the Python handler runs before this call returns
            except:  # noqa: E722
                print("test: the library swallowed it", file=sys.stderr, flush=True)
        return None

sys.meta_path.insert(0, Swallow())
from physampler.cli import main
sys.exit(main())
"""


@pytest.mark.parametrize("command", ["run", "train", "check"])
def test_a_signal_a_library_swallows_still_ends_the_command_with_one_line_and_130(tmp_path, command):
    """The start-up handler records the signal before it raises: the driver raises it again before
    anything steps, and ``main`` after a command with no driver (``check``).  Control: without the
    record, each command runs to its end and exits 0 (the CI run hung on 10⁷ training steps)."""
    script = write(tmp_path / "swallow.py", SWALLOWING_LIBRARY)
    cfg = {"run": run_config(tmp_path), "train": train_config(tmp_path), "check": run_config(tmp_path)}[command]
    extra = ["--probe-seconds", "0.01"] if command == "check" else ["--out", tmp_path / "o", "--quiet"]
    p = Child(command, cfg, *extra, command=[sys.executable, script], env={"OMP_NUM_THREADS": "1"})
    code, lines = p.finish()
    assert "test: the library swallowed it" in lines, lines  # the signal did land in the bare except
    closing = [ln for ln in lines if not ln.startswith(("test: ", "starting "))]
    assert code == 130 and closing == [closing[0]] and "SIGINT: stopped" in closing[0], (code, lines)
    assert not any("Traceback" in ln for ln in lines), lines
    if command != "check":
        assert not (tmp_path / "o" / "checkpoint.pt").exists()  # stopped before the first step


def test_sigint_stops_within_a_step_and_the_stopped_run_resumes_exactly(tmp_path):
    """A report interval of 10⁶ steps takes minutes on the torch path; SIGINT must not wait for
    its end.  The checkpoint lands mid-interval, and resuming it to step + 300 equals the
    uninterrupted run of that length, bitwise."""
    cfg = run_config(tmp_path, steps=10_000_000, report=1_000_000, checkpoint=1_000_000)
    out = tmp_path / "int"
    step = interrupt_after_start("run", cfg, out, signal.SIGINT)
    assert 0 <= step < 1_000_000
    ref = tmp_path / "ref"
    assert cli.main(["run", str(cfg), "--out", str(ref), "--steps", str(step + 300), "--quiet"]) == 0
    assert cli.main(["run", str(cfg), "--out", str(out), "--steps", str(step + 300), "--resume", "--quiet"]) == 0
    with xr.open_dataset(ref / "landscape.nc") as a, xr.open_dataset(out / "landscape.nc") as b:
        assert a["sampling_entropy"].values.tobytes() == b["sampling_entropy"].values.tobytes()
        assert a["histogram"].values.tobytes() == b["histogram"].values.tobytes()


# ---------------------------------------------------------------- 10. smaller
def test_a_fault_before_the_first_checkpoint_does_not_claim_one_is_intact(tmp_path, capsys):
    cfg = write(tmp_path / "f.toml", _h("landscape.out_of_range = \"raise\"\nlandscape.lower = [3.0]\n"
                                        "landscape.upper = [3.1]\nlandscape.bins = [3]\nlandscape.sigma = 0.2"))
    code = cli.main(["run", str(cfg), "--out", str(tmp_path / "o"), "--quiet"])
    line = one_line(capsys, code, "physampler: numerical fault: step 0, walker", status=1)
    assert "no checkpoint was written yet" in line and "intact" not in line


def test_extending_a_run_without_t_wl_equals_the_longer_run_started_with_that_t_wl(tmp_path):
    """The rule (docs/config.md): unset t_wl = run.steps/8 of the run as first started, kept on resume."""
    text = run_config(tmp_path, steps=600).read_text().replace("t_wl = 500\n", "")
    short = write(tmp_path / "short.toml", text)
    explicit = write(tmp_path / "explicit.toml", text.replace("[schedule]", "[schedule]\nt_wl = 75.0")
                     .replace("steps = 600", "steps = 1200"))
    default_long = write(tmp_path / "long.toml", text.replace("steps = 600", "steps = 1200"))
    for cfg, out, extra in ((short, "ext", []), (explicit, "exp", []), (default_long, "long", [])):
        assert cli.main(["run", str(cfg), "--out", str(tmp_path / out), "--quiet", *extra]) == 0
    assert cli.main(["run", str(short), "--out", str(tmp_path / "ext"), "--resume", "--steps", "1200", "--quiet"]) == 0

    def S(name):
        with xr.open_dataset(tmp_path / name / "landscape.nc") as ds:
            return ds["sampling_entropy"].values, float(ds.attrs["schedule_t_wl"])

    (s_ext, t_ext), (s_exp, t_exp), (s_long, t_long) = S("ext"), S("exp"), S("long")
    assert t_ext == t_exp == 75.0 and s_ext.tobytes() == s_exp.tobytes()
    assert t_long == 150.0 and s_long.tobytes() != s_ext.tobytes()  # control: the other reading differs


def test_checkpoint_interval_need_not_divide_sync_interval_without_torchrun(tmp_path):
    cfg = run_config(tmp_path, steps=300, report=50, checkpoint=150, sync_interval=100)
    assert cli.main(["run", str(cfg), "--out", str(tmp_path / "o"), "--quiet"]) == 0
