"""Config files: every malformed input gives one `config error: <section.key>: ...` line, exit 2,
no traceback, and nothing written; docs/config.md is generated from the schema."""
import math
import subprocess
import sys
from pathlib import Path

import pytest

from physampler import cli
from physampler import config as C
from physampler.job import DEFAULT_CONFIG

GOOD = """
[system]
kind = "harmonic"
dims = 4

[landscape]
lower = [0.1]
upper = [10.0]
bins = [50]

[integrator]
dt = 0.05

[run]
steps = 200
walkers = 2

[output]
report_interval = 50
checkpoint_interval = 100
plot = false
"""


def edit(section_key: str, value: str) -> str:
    """GOOD with ``section.key = value`` set (added to the section)."""
    sec, key = section_key.split(".")
    lines = GOOD.splitlines()
    i = lines.index(f"[{sec}]") if f"[{sec}]" in lines else None
    if i is None:
        return GOOD + f"\n[{sec}]\n{key} = {value}\n"
    kept = [ln for ln in lines if not ln.startswith(f"{key} =") or not _in_section(lines, ln, sec)]
    j = kept.index(f"[{sec}]")
    kept.insert(j + 1, f"{key} = {value}")
    return "\n".join(kept) + "\n"


def _in_section(lines, line, sec):
    cur = None
    for ln in lines:
        if ln.startswith("["):
            cur = ln.strip("[]")
        if ln is line:
            return cur == sec
    return False


def drop(section_key: str) -> str:
    sec, key = section_key.split(".")
    out, cur = [], None
    for ln in GOOD.splitlines():
        if ln.startswith("["):
            cur = ln.strip("[]")
        if cur == sec and ln.startswith(f"{key} ="):
            continue
        out.append(ln)
    return "\n".join(out) + "\n"


BAD = [
    ("unknown section", GOOD + "\n[colours]\nred = 1\n", "colours"),
    ("unknown key", edit("system.colour", '"red"'), "system.colour"),
    ("wrong type", edit("run.walkers", '"many"'), "run.walkers"),
    ("zero size", edit("run.walkers", "0"), "run.walkers"),
    ("negative steps", edit("run.steps", "-10"), "run.steps"),
    ("too few bins", edit("landscape.bins", "[2]"), "landscape.bins"),
    ("lower >= upper", edit("landscape.lower", "[10.0]"), "landscape.lower[0]"),
    ("NaN", edit("integrator.dt", "nan"), "integrator.dt"),
    ("inf", edit("integrator.kT", "inf"), "integrator.kT"),
    ("unknown kind", edit("system.kind", '"argon"'), "system.kind"),
    ("missing required key", drop("landscape.lower"), "landscape.lower"),
    ("missing steps", drop("run.steps"), "run.steps"),
    ("c_f out of range", edit("integrator.c_f", "1.5"), "integrator.c_f"),
    ("unknown schedule", edit("schedule.kind", '"linear"'), "schedule.kind"),
    ("cv needs a cluster", edit("cvs.names", '["q6"]'), "cvs.names"),
    ("unknown cv", edit("cvs.names", '["volume"]'), "cvs.names[0]"),
    ("duplicate cvs", edit("cvs.names", '["energy", "energy"]'), "cvs.names"),
    ("observe a biased cv", edit("cvs.observe", '["energy"]'), "cvs.observe"),
    ("observe needs a cluster", edit("cvs.observe", '["rg"]'), "cvs.observe"),
    ("observe a network cv", edit("cvs.observe", '["log_train_loss"]'), "cvs.observe"),
    ("observe_every zero", edit("cvs.observe_every", "0"), "cvs.observe_every"),
    ("bounds per cv", edit("landscape.upper", "[10.0, 20.0]"), "landscape.upper"),
    ("wall on unknown cv", edit("bias.walls", '[{cv = "q6", side = "upper", at = 1.0, strength = 1.0}]'),
     "bias.walls[0].cv"),
    ("wall side", edit("bias.walls", '[{cv = "energy", side = "top", at = 1.0, strength = 1.0}]'),
     "bias.walls[0].side"),
    ("wall missing key", edit("bias.walls", '[{cv = "energy", side = "upper", strength = 1.0}]'), "bias.walls[0].at"),
    ("intervals", edit("output.checkpoint_interval", "75"), "output.checkpoint_interval"),
    ("device", edit("run.device", '"tpu"'), "run.device"),
    ("dtype", edit("run.dtype", '"float16"'), "run.dtype"),
    ("sigma zero", edit("landscape.sigma", "0.0"), "landscape.sigma"),
    ("three_stage needs t_rise", edit("schedule.kind", '"three_stage"'), "schedule.t_rise"),
    # the compiled engine runs lj_cluster and harmonic wells on ktd or baoab only
    ("compiled needs its splittings", edit("integrator.engine", '"compiled"').replace("dt = 0.05", 'dt = 0.05\nsplitting = "obabo"'),
     "integrator.engine"),
    ("bool", edit("output.plot", '"yes"'), "output.plot"),
    ("float for int", edit("run.seed", "1.5"), "run.seed"),
    ("section not a table", GOOD.replace("[run]\nsteps = 200\nwalkers = 2\n", "") + "\nrun = 5\n", "run"),
    ("not TOML", "[system\nkind = ", "job.toml: not valid TOML"),
    ("empty file", "", "job.toml: is empty"),
    ("initial_temperature without energy", edit("cvs.names", '["x0"]') .replace("[landscape]", "[landscape]\ninitial_temperature = 1.0"),
     "landscape.initial_temperature"),
]


def check_one_line(capsys, code, field):
    """A key that is wrong: ``config error: <section.key>: ... (got ...)``; a file that cannot be
    used: ``error: <path>: <what is wrong>``; either way one line, exit 2."""
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    if lines[0].startswith("error: "):
        assert field in lines[0] and ": " in lines[0][7:], lines[0]
        return
    assert lines[0].startswith("config error: ") and field in lines[0], lines[0]
    assert "(got " in lines[0]


@pytest.mark.parametrize("name,text,field", BAD, ids=[b[0] for b in BAD])
def test_bad_config_one_line_exit_2_writes_nothing(tmp_path, capsys, name, text, field):
    cfg = tmp_path / "job.toml"
    cfg.write_text(text)
    out = tmp_path / "out"
    code = cli.main(["run", str(cfg), "--out", str(out), "--quiet"])
    check_one_line(capsys, code, field)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.toml"]


def test_bad_files_and_directories(tmp_path, capsys):
    binary = tmp_path / "bin.toml"
    binary.write_bytes(bytes(range(256)))
    check_one_line(capsys, cli.main(["run", str(binary), "--out", str(tmp_path / "o")]), "bin.toml: not UTF-8")
    check_one_line(capsys, cli.main(["run", str(tmp_path), "--out", str(tmp_path / "o")]), "is a directory")
    check_one_line(capsys, cli.main(["run", str(tmp_path / "missing.toml")]), "missing.toml: no such")
    good = tmp_path / "good.toml"
    good.write_text(GOOD)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    check_one_line(capsys, cli.main(["run", str(good), "--out", str(blocker / "out"), "--quiet"]), "output.directory")
    assert blocker.read_text() == "x"
    assert not (tmp_path / "o").exists()


def test_existing_directory_needs_overwrite(tmp_path, capsys):
    good = tmp_path / "good.toml"
    good.write_text(GOOD)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    check_one_line(capsys, cli.main(["run", str(good), "--out", str(out), "--quiet"]), "output.directory")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert cli.main(["run", str(good), "--out", str(out), "--quiet", "--overwrite"]) == 0
    assert (out / "notes.txt").read_text() == "mine"  # only physampler's own files are replaced
    assert (out / "landscape.nc").exists()


def test_resume_refuses_a_different_config(tmp_path, capsys):
    good = tmp_path / "good.toml"
    good.write_text(GOOD)
    out = tmp_path / "out"
    assert cli.main(["run", str(good), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    changed = tmp_path / "changed.toml"
    changed.write_text(edit("integrator.dt", "0.02").replace("kind = \"harmonic\"", "kind = \"harmonic\"\nstiffness = 2.0"))
    before = (out / "landscape.nc").read_bytes()
    code = cli.main(["run", str(changed), "--out", str(out), "--resume", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "system.stiffness" in err and "integrator.dt" in err and len(err.strip().splitlines()) == 1
    assert (out / "landscape.nc").read_bytes() == before
    # Extending run.steps is allowed.
    longer = tmp_path / "longer.toml"
    longer.write_text(edit("run.steps", "300"))
    assert cli.main(["run", str(longer), "--out", str(out), "--resume", "--quiet"]) == 0


def test_process_exit_code_and_no_traceback(tmp_path):
    cfg = tmp_path / "job.toml"
    cfg.write_text(edit("run.walkers", "-3"))
    p = subprocess.run([sys.executable, "-m", "physampler", "run", str(cfg), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.strip() == "config error: run.walkers: must be > 0 (got -3)"


def test_defaults_and_schema_docs_in_sync():
    cfg = C.parse(GOOD)
    assert cfg["landscape"]["sigma"] == 1.0 and cfg["run"]["seed"] == 0 and cfg["bias"]["walls"] == []
    assert C.parse(DEFAULT_CONFIG)["system"]["kind"] == "lj_cluster"
    docs = (Path(__file__).parents[1] / "docs" / "config.md").read_text()
    assert C.markdown() in docs, "docs/config.md is out of date: regenerate its key tables from config.markdown()"
    assert C.markdown("train") in docs, "docs/config.md: regenerate the train tables (markdown('train'))"
    for sec, keys in C.schema().items():
        for k in keys:
            assert f"| `{k}` |" in docs
    assert math.isinf(C.parse(edit("integrator.kT", "1e308"))["integrator"]["kT"] * 10)


def _plugin_config() -> str:
    """The quartic job of tests/test_job.py, on a kind registered at run time, 20 000 steps."""
    from test_job import _FACTORY_JOB

    return (_FACTORY_JOB.replace('kind = "python"\nfactory = "{module}:build"', 'kind = "quartic_plugin"\na = 1.0')
            .replace("steps = 30000", "steps = 20000"))


def test_system_kinds_come_from_the_registry_and_keys_belong_to_their_kind(tmp_path, capsys):
    """[system] takes the keys of its kind only, and the core's config holds no network key: the
    nn keys are registered by physampler.adapters through its entry point.  A kind registered
    at run time (its key, builder and starts; no line in physampler) runs with physampler run
    and samples ln g(U) of U = a·Σx⁴ in 6-D, exactly (6/4 − 1) ln U + c: S differs from it by
    rms < 0.25 over U ∈ [0.5, 5] (8 walkers × 20 000 steps; seeds 3–5 measured 0.09–0.14, the
    WL error of such a run).  Controls: from the 6-D harmonic ln g = 2 ln U it differs by > 0.5
    (measured 0.79); an nn key on a harmonic config and the kind once removed are each one line
    naming the key."""
    import numpy as np
    import torch
    import xarray as xr

    from physampler.registry import Built, SystemKind, register_system, unregister_system
    from physampler.system import System

    assert "d_model" not in (Path(C.__file__)).read_text() and "transformer" not in Path(C.__file__).read_text()
    assert "d_model" in C.schema(system="nn")["system"] and "d_model" not in C.schema(system="harmonic")["system"]
    with pytest.raises(C.ConfigError, match=r"^system\.hidden: unknown key; allowed: kind, dims, stiffness"):
        C.parse(GOOD.replace('kind = "harmonic"', 'kind = "harmonic"\nhidden = 8'))

    class Quartic(System):
        def __init__(self, a, dtype, device):
            self.a, self.shape = a, (6,)
            self.masses = torch.tensor(1.0, dtype=dtype, device=device)

        def energy(self, q):
            return self.a * (q**4).sum(-1)

    register_system(SystemKind(
        "quartic_plugin", {"a": C.Key("float", 1.0, "quartic_plugin: U = a Σ x⁴", "> 0", lambda x: x > 0)},
        lambda cfg, dtype, device, system=None: Built(Quartic(cfg["system"]["a"], dtype, device)),
        lambda cfg, system, w, gen: 0.7 * torch.randn((w, 6), generator=gen, dtype=torch.float64),
        cvs=("energy",), doc="a test's quartic well"))
    try:
        cfg = tmp_path / "q.toml"
        cfg.write_text(_plugin_config())
        assert cli.main(["run", str(cfg), "--out", str(tmp_path / "q"), "--quiet"]) == 0
        with xr.open_dataset(tmp_path / "q" / "landscape.nc") as ds:
            u, s = ds["energy"].values, ds["entropy"].values
        ok = (u > 0.5) & (u < 5.0) & np.isfinite(s)

        def rms_from(ln_g):
            d = s[ok] - ln_g
            return float(np.sqrt(((d - d.mean()) ** 2).mean()))

        assert rms_from(0.5 * np.log(u[ok])) < 0.25  # seeds 3, 4, 5: 0.14, 0.09, 0.12
        assert rms_from(2.0 * np.log(u[ok])) > 0.5  # control: the 6-D harmonic well's ln g = 2 ln U (0.79)
    finally:
        unregister_system("quartic_plugin")
    capsys.readouterr()
    assert cli.main(["run", str(cfg), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("config error: system.kind: must be one of harmonic"), err
    assert not (tmp_path / "r").exists()
