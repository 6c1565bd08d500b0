"""Every NetCDF file physampler writes passes the IOOS compliance checker for CF-1.10 at its
strictest criteria (issue 14, item 7): landscape.nc and trajectory.nc of an energy landscape
(reduced unit ε) and of a 2-D network landscape, and the history.nc of ``physampler train``.
Control: the layout physampler wrote before (units "epsilon", a ``time`` dimension without a
coordinate variable, no ``history``) must fail the same check."""
import json

import numpy as np
import xarray as xr

from compliance_checker.runner import CheckSuite, ComplianceChecker

from _configs import harmonic_config, nn_config, train_text_of
from physampler import cli
from physampler.io import cf_units, read_landscape, read_trajectory


def cf_report(path, tmp_path):
    """(points scored, points possible, failure messages) of ``cf:1.10`` at criteria 'strict'."""
    CheckSuite.load_all_available_checkers()
    out = tmp_path / f"{path.parent.name}-{path.stem}.json"
    ComplianceChecker.run_checker(str(path), ["cf:1.10"], 0, "strict", output_filename=str(out),
                                  output_format="json")
    r = json.loads(out.read_text())["cf:1.10"]
    msgs = [m for level in ("high_priorities", "medium_priorities", "low_priorities") for c in r[level]
            for m in c["msgs"]]
    return r["scored_points"], r["possible_points"], msgs


def assert_clean(path, tmp_path):
    scored, possible, msgs = cf_report(path, tmp_path)
    assert msgs == [] and scored == possible, f"{path.name}: {msgs}"


def test_energy_landscape_files_pass_cf(tmp_path):
    cfg = tmp_path / "h.toml"
    cfg.write_text(harmonic_config(steps=400, walkers=4, report=100, checkpoint=200))
    out = tmp_path / "harmonic"
    assert cli.main(["run", str(cfg), "--out", str(out), "--quiet"]) == 0
    for f in ("landscape.nc", "trajectory.nc"):
        assert_clean(out / f, tmp_path)
    with xr.open_dataset(out / "trajectory.nc") as tr:
        assert tr["energy"].attrs["units"] == "1" and tr["energy"].attrs["reduced_unit"] == "epsilon"
        assert tr["step"].dims == ("step",) and tr["step"].attrs["units"] == "1" and tr.attrs["history"]
    ls, attrs = read_landscape(out / "landscape.nc")
    assert ls.grid.axes[0].units == "epsilon" and "physampler" in attrs["history"]  # the reduced unit reads back


def test_network_landscape_and_training_history_pass_cf(tmp_path):
    cfg = tmp_path / "nn.toml"
    cfg.write_text(nn_config())
    assert cli.main(["run", str(cfg), "--out", str(tmp_path / "nn"), "--quiet"]) == 0
    for f in ("landscape.nc", "trajectory.nc"):
        assert_clean(tmp_path / "nn" / f, tmp_path)
    tcfg = tmp_path / "t.toml"
    tcfg.write_text(train_text_of(steps=40, checkpoint=20))
    assert cli.main(["train", str(tcfg), "--out", str(tmp_path / "train"), "--quiet"]) == 0
    assert_clean(tmp_path / "train" / "history.nc", tmp_path)


def test_legacy_layout_fails_cf_and_still_reads(tmp_path):
    """Control: the old layout fails the checker, so the checks above can fail; the reader still
    takes such a file (a run started before the fix resumes)."""
    legacy = tmp_path / "legacy" / "trajectory.nc"
    legacy.parent.mkdir()
    xr.Dataset({"energy": (("time", "walker"), np.ones((3, 2)), {"units": "epsilon", "long_name": "energy"})},
               coords={"step": ("time", np.array([10, 20, 30]), {"long_name": "WLMD step"}),
                       "walker": ("walker", np.arange(2))},
               attrs={"Conventions": "CF-1.10", "title": "old"}).to_netcdf(legacy)
    scored, possible, msgs = cf_report(legacy, tmp_path)
    assert scored < possible
    assert any("UDUNITS" in m for m in msgs) and any("coordinate" in m for m in msgs)
    assert any("history" in m for m in msgs)
    tr = read_trajectory(legacy, ["energy"])
    assert tr["energy"].dims == ("step", "walker") and list(tr["step"].values) == [10, 20, 30]
    assert cf_units(tr["energy"].attrs) == "epsilon"
