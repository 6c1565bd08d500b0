"""Canonical reweighting and equilibrium curves."""
import numpy as np
import pytest

from physampler.analysis import canonical, equilibrium_curves


@pytest.mark.parametrize("n", [2, 4, 10])
@pytest.mark.parametrize("T", [0.5, 1.0, 2.0])
def test_reweighting_exact_harmonic_entropy(n, T):
    # Midpoint sums on bins of w = 1e-3 over [0, 80 T]: relative error ~ w^2/(24 T^2) < 2e-7,
    # truncation ~ exp(-80) — both far below the 1e-6 asked for.
    w = 1e-3 * T
    u = (np.arange(int(80 * T / w)) + 0.5) * w
    s = (n / 2 - 1) * np.log(u)
    c = canonical(u, s, [T], kinetic_dof=0)
    assert c.mean_energy[0] == pytest.approx(n * T / 2, rel=1e-6)
    assert c.heat_capacity[0] == pytest.approx(n / 2, rel=1e-6)
    ck = canonical(u, s, [T], kinetic_dof=n)
    assert ck.heat_capacity[0] == pytest.approx(n, rel=1e-6)


def test_reweighting_ignores_unvisited_and_is_shift_invariant():
    u = np.linspace(0.05, 20, 400)
    s = np.log(u)
    a = canonical(u, s, [1.0, 2.0])
    b = canonical(u, s + 123.0, [1.0, 2.0])
    assert np.allclose(a.mean_energy, b.mean_energy) and np.allclose(a.log_z + 123.0, b.log_z)
    s2 = s.copy()
    s2[-50:] = np.nan  # tail U > 17.5 unvisited: mass 18.5 e^-17.5 = 4.6e-7 at T = 1
    c = canonical(u, s2, [1.0])
    # dropping it moves <U> ~ 2 by about 4.6e-7 * 17.5 = 8e-6 (relative 4e-6)
    assert c.mean_energy[0] == pytest.approx(a.mean_energy[0], rel=1e-5)
    assert c.mean_energy[0] != a.mean_energy[0]
    with pytest.raises(ValueError, match="temperatures: must be finite and > 0"):
        canonical(u, s, [0.0])


def test_equilibrium_curves():
    x = np.linspace(0, 1, 11)
    y = np.linspace(-2, 2, 401)
    X, Y = np.meshgrid(x, y, indexing="ij")
    ystar = 0.5 * x - 0.2
    s = -((Y - ystar[:, None]) ** 2) / (2 * 0.1**2)  # Gaussian in y around y*(x)
    s[3, :] = np.nan
    curves = equilibrium_curves(x, y, s)
    ok = ~np.isnan(curves.argmax)
    assert np.isnan(curves.argmax[3]) and ok.sum() == 10
    assert np.allclose(curves.argmax[ok], ystar[ok], atol=0.005)  # grid spacing 0.01
    assert np.allclose(curves.mean[ok], ystar[ok], atol=1e-6)  # symmetric Gaussian, far from edges


# ------------------------------------------------------------------ numbers from a path
# Synthetic landscapes on x = ln L_train ∈ [-4, 1] (50 bins of 0.1) and y = Ã ∈ [0, 1] (10 bins
# of 0.1): every answer below is exact on the bin centres, so the tolerances are round-off.
X = np.linspace(-4, 1, 51)[:-1] + 0.05
Y = np.linspace(0, 1, 11)[:-1] + 0.05
DIP = 5.0


def _landscape(dip: bool):
    """S = 2x (falling towards low loss, as ln g does), with, if ``dip``, a hole of depth DIP in
    the bins x ∈ (-2.3, -1.7), y ∈ (0.4, 0.6) — a barrier for any path that crosses it."""
    s = np.broadcast_to(2.0 * X[:, None], (X.size, Y.size)).copy()
    if dip:
        s[(np.abs(X + 2.0) < 0.3)[:, None] & (np.abs(Y - 0.5) < 0.1)[None, :]] -= DIP
    return s


def _path(y_value, n=400):
    """From high loss (x = 0.95) to low loss (x = -3.95) at fixed y, several points per bin."""
    x = np.linspace(0.95, -3.95, n)
    return np.arange(n), x, np.full(n, y_value)


def test_barrier_of_a_landscape_with_and_without_a_hole_of_known_depth():
    from physampler.analysis import path_barrier, project_path

    steps, x, y = _path(0.55)
    with_hole = path_barrier(project_path(X, Y, _landscape(True), x, y).entropy)
    # Ends: S(0.95) = 1.9, S(-3.95) = -7.9; lowest S along the path: the hole's lowest bin,
    # x = -2.25: 2(-2.25) - 5 = -9.5, 1.6 below the lower end.
    assert with_hole.depth == pytest.approx(-7.9 - (-9.5), abs=1e-12)
    assert x[with_hole.index] == pytest.approx(-2.25, abs=0.05)
    without = path_barrier(project_path(X, Y, _landscape(False), x, y).entropy)
    assert without.depth == 0.0 and x[without.index] == pytest.approx(-3.95, abs=0.05)
    around = path_barrier(project_path(X, Y, _landscape(True), x, np.full_like(x, 0.85)).entropy)
    assert around.depth == 0.0  # control: the same landscape, a path that passes beside the hole
    # unvisited bins on the path are skipped and counted, not read as S = -inf
    s = _landscape(True)
    s[(np.abs(X + 1.0) < 0.15), :] = np.nan
    holey = path_barrier(project_path(X, Y, s, x, y).entropy)
    assert holey.depth == pytest.approx(1.6, abs=1e-12) and holey.skipped > 0


def test_straight_path_barrier_between_memorising_and_generalising_accuracy():
    from physampler.analysis import straight_path_barrier

    col = _landscape(True)[np.argmin(np.abs(X + 2.05))]  # the column x = -2.05 crosses the hole
    assert straight_path_barrier(Y, col, 0.05, 0.95).depth == pytest.approx(DIP, abs=1e-12)
    assert straight_path_barrier(Y, col, 0.95, 0.05).depth == pytest.approx(DIP, abs=1e-12)
    assert straight_path_barrier(Y, col, 0.05, 0.35).depth == 0.0  # control: stops short of it
    flat = _landscape(False)[np.argmin(np.abs(X + 2.05))]
    assert straight_path_barrier(Y, flat, 0.05, 0.95).depth == 0.0
    assert np.isnan(straight_path_barrier(Y, col, 0.05, 1.5).depth)  # off the grid: no number


def test_high_entropy_advantage_and_the_jump_of_the_max_entropy_curve():
    from physampler.analysis import entropy_advantage, equilibrium_curves, max_entropy_jump, project_path

    # S = -200 (y - y*)^2 with y* = 0.75 below x = -1.5 and 0.25 above: at the low-loss columns the
    # max-entropy network is 0.5 more accurate than a path at y = 0.25; <y> differs from y* by the
    # asymmetry of the grid around 0.75, e^-18 (y = 0.45 and 1.05 against 0.55 and 0.95).
    ystar = np.where(X < -1.5, 0.75, 0.25)
    s = -200.0 * (Y[None, :] - ystar[:, None]) ** 2
    curves = equilibrium_curves(X, Y, s)
    steps, x, y = _path(0.25)
    adv = entropy_advantage(curves, project_path(X, Y, s, x, y), x_low=-1.5)
    assert adv.columns_low_loss == 25
    assert adv.max_entropy_low_loss == pytest.approx(0.5, abs=1e-12)
    assert adv.mean_low_loss == pytest.approx(0.5, abs=1e-6)
    high = entropy_advantage(curves, project_path(X, Y, s, x, y), x_low=10.0)
    assert high.max_entropy_low_loss == pytest.approx(0.25, abs=1e-12)  # control: all 50 columns, half at 0
    j = max_entropy_jump(curves, 0.1)
    assert j.size == pytest.approx(0.5) and j.bins == pytest.approx(5.0) and (j.x_from, j.x_to) == pytest.approx((-1.55, -1.45))
    smooth = -200.0 * (Y[None, :] - np.clip(0.5 - 0.1 * X, 0, 1)[:, None]) ** 2  # y* rising by 0.1 per unit x
    assert max_entropy_jump(equilibrium_curves(X, Y, smooth), 0.1).bins <= 1.0 + 1e-9


def _write_nn_landscape(path, s):
    import torch

    import physampler as ps

    ls = ps.Landscape([ps.Axis("log_train_loss", -4.0, 1.0, bins=50), ps.Axis("smoothed_accuracy", 0.0, 1.0, bins=10)])
    ls.S.copy_(torch.as_tensor(np.nan_to_num(s, nan=0.0)))
    ls.H.copy_(torch.as_tensor(np.isfinite(s).astype(float)))
    ps.write_landscape(path, ls)


def test_analyze_cli_gives_the_numbers_of_a_history_on_replica_landscapes(tmp_path, capsys):
    import csv

    from physampler import cli
    from physampler.io import write_trajectory

    for name in ("a", "b"):
        _write_nn_landscape(tmp_path / f"{name}.nc", _landscape(True))
    # a history that memorises at y = 0.05 (step 300, x = -2.05) and then generalises at fixed x
    steps = np.arange(300)
    x = np.concatenate([np.linspace(0.95, -2.05, 200), np.full(100, -2.05)])
    y = np.concatenate([np.full(200, 0.05), np.linspace(0.05, 0.95, 100)])
    v = np.stack([x, y], axis=-1)[:, None, :]
    write_trajectory(tmp_path / "h.nc", steps, v, ["log_train_loss", "smoothed_accuracy"], ["1", "1"], [0],
                     attrs={"t_fit": 199, "t_gen": 299})
    rc = cli.main(["analyze", str(tmp_path / "a.nc"), str(tmp_path / "b.nc"), "--trajectory", str(tmp_path / "h.nc"),
                   "-o", str(tmp_path / "s.csv"), "--path-csv", str(tmp_path / "p.csv"), "--plot", str(tmp_path / "a.png")])
    assert rc == 0
    rows = {r["quantity"]: r for r in csv.DictReader(open(tmp_path / "s.csv"))}
    assert float(rows["straight_barrier"]["value"]) == pytest.approx(DIP)  # up the column x = -2.05 through the hole
    assert float(rows["straight_barrier"]["standard_error"]) == 0.0 and rows["barrier"]["replicas"] == "2"
    assert float(rows["x_low"]["value"]) == pytest.approx(-2.05)  # x at t_fit
    path = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert len(path) == 300 and set(path[0]) == {"step", "log_train_loss", "smoothed_accuracy", "S_0", "S_1"}
    assert (tmp_path / "a.png").stat().st_size > 0
    # bad input: one line, exit 2
    capsys.readouterr()
    assert cli.main(["analyze", str(tmp_path / "a.nc")]) == 2
    assert "--temperatures" in capsys.readouterr().err
    assert cli.main(["analyze", str(tmp_path / "a.nc"), "--trajectory", str(tmp_path / "h.nc"), "--walker", "3"]) == 2
    assert "--walker" in capsys.readouterr().err
