"""Replica-exchange Wang–Landau windows (physampler.windows, docs/science.md §4)."""
import math

import numpy as np
import pytest
import torch

import physampler as ps
from physampler.cvs import PotentialEnergy
from physampler.rng import WalkerRNG
from physampler.systems import HarmonicWell
from physampler.windows import ReplicaExchange, WindowedLandscape, WindowedWLMD, join, layout

AXIS = ps.Axis("energy", 0.5, 12.5, bins=60)


def test_layout_covers_the_axis_with_equal_overlapping_windows_and_refuses_what_does_not_fit():
    w = layout(ps.Axis("energy", 1.0, 31.0, bins=120), 4, 0.75)
    assert (w.bins, w.starts) == (69, (0, 17, 34, 51)) and w.starts[-1] + w.bins == 120
    assert w.ranges()[0] == pytest.approx((1.0, 18.25)) and w.ranges()[-1] == pytest.approx((13.75, 31.0))
    assert all(w.bins - (b - a) >= 52 for a, b in zip(w.starts, w.starts[1:]))  # 75 % of 69 shared
    assert layout(AXIS, 1, 0.5).starts == (0,)
    with pytest.raises(ValueError, match="windows.count"):
        layout(AXIS, 40, 0.5)
    with pytest.raises(ValueError, match="windows.overlap"):
        layout(AXIS, 3, 1.0)


def _pair(K=3, W=6):
    lay = layout(AXIS, K, 0.6)
    ls = WindowedLandscape(lay, walkers=W, sigma=1.5, out_of_range="wall", wall_strength=2.0)
    alone = [ps.Landscape([ps.Axis("energy", lo, hi, bins=lay.bins)], sigma=1.5, out_of_range="wall",
                          wall_strength=2.0) for lo, hi in lay.ranges()]
    return lay, ls, alone


def test_a_windowed_landscape_is_its_windows_side_by_side():
    """Deposits, forces and values of walker w equal those of a plain Landscape on the range of
    its window, to round-off (the windowed one works in the shifted coordinate ξ − shift_k);
    control: the same walker read in its neighbour's window differs."""
    lay, ls, alone = _pair()
    gen = torch.Generator().manual_seed(0)
    labels = ls.window
    for step in range(50):
        lo = torch.tensor([lay.ranges()[k][0] for k in labels.tolist()], dtype=torch.float64)
        xi = (lo + torch.rand(6, generator=gen, dtype=torch.float64) * (lay.bins * AXIS.width))[:, None]
        xi[0, 0] += 0.6 * (step % 3 - 1)  # walker 0 also off its window's edges (the walls)
        ls.deposit(xi, 0.3)
        for k in range(3):
            sel = labels == k
            alone[k].deposit(xi[sel], 0.3)
        g = ls.gradient(xi)
        v = ls.value(xi)
        for k in range(3):
            sel = labels == k
            assert torch.allclose(g[sel], alone[k].gradient(xi[sel]), rtol=0, atol=1e-12)
            assert torch.allclose(v[sel], alone[k].value(xi[sel]), rtol=0, atol=1e-12)
    for k in range(3):
        assert torch.allclose(ls.S[k], alone[k].S, rtol=0, atol=1e-12) and torch.equal(ls.H[k], alone[k].H)
    other = ls.value(xi, torch.remainder(labels + 1, 3))
    assert (other - v).abs().max() > 0.1


def _harmonic(windows, W=6, seed=3, walkers=None, torch_engine=True, swap_interval=10**9):
    sysm = HarmonicWell.isotropic(6)
    if windows:
        land = WindowedLandscape(layout(AXIS, 3, 0.6), walkers=W, sigma=1.0, out_of_range="wall", wall_strength=2.0)
    else:
        land = ps.Landscape([AXIS], sigma=1.0, out_of_range="wall", wall_strength=2.0)
    integ = ps.WLMD(sysm, PotentialEnergy(sysm), land, ps.InverseTime(0.5, 50), dt=0.05, c_f=0.02, kT=1.0,
                    walkers_total=W)
    return sysm, land, integ


def _starts(W):
    lay = layout(AXIS, 3, 0.6)
    d = torch.randn(W, 6, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    u = torch.tensor([sum(lay.ranges()[w * 3 // W]) / 2 for w in range(W)], dtype=torch.float64)
    return d / d.norm(dim=1, keepdim=True) * torch.sqrt(2 * u)[:, None]


def test_windowed_run_equals_each_window_run_alone_and_the_compiled_engine_follows():
    """Batched == single: without swaps, the windows of one batched run equal three runs of one
    window each (its walkers, their streams, the same deposit height f/W), to round-off after
    200 steps; the compiled engine's windowed blocks equal the torch engine's."""
    from physampler.integrators.compiled import CompiledWLMD

    W, lay = 6, layout(AXIS, 3, 0.6)
    q0 = _starts(W)
    _, land, integ = _harmonic(True)
    eng = WindowedWLMD(integ, ReplicaExchange(land, 10**9, 0))
    state, _ = eng.run(eng.init(q0, WalkerRNG(5, W)), 200)
    _, cland, cinteg = _harmonic(True)
    ceng = WindowedWLMD(CompiledWLMD(cinteg), ReplicaExchange(cland, 10**9, 0))
    cstate, _ = ceng.run(ceng.init(q0, WalkerRNG(5, W)), 200)
    assert float((cstate.positions - state.positions).abs().max()) < 1e-10
    assert float((cland.S - land.S).abs().max()) < 1e-10 and torch.equal(cland.H, land.H)
    for k, (lo, hi) in enumerate(lay.ranges()):
        walkers = [w for w in range(W) if w * 3 // W == k]
        sysm = HarmonicWell.isotropic(6)
        one = ps.Landscape([ps.Axis("energy", lo, hi, bins=lay.bins)], sigma=1.0, out_of_range="wall",
                           wall_strength=2.0)
        single = ps.WLMD(sysm, PotentialEnergy(sysm), one, ps.InverseTime(0.5, 50), dt=0.05, c_f=0.02, kT=1.0,
                         walkers_total=W)
        s1, _ = single.run(single.init(q0[walkers], WalkerRNG(5, walkers)), 200)
        assert float((s1.positions - state.positions[walkers]).abs().max()) < 1e-10
        assert float((one.S - land.S[k]).abs().max()) < 1e-10 and torch.equal(one.H, land.H[k])
    assert float((s1.positions - state.positions[walkers[::-1]]).abs().max()) > 1e-3  # control


def test_swaps_are_accepted_with_the_derived_probability_and_only_in_the_overlap():
    """Two windows with S_0 = 0.8 ξ and S_1 = −0.5 ξ (frozen): a pair x in window 0 at ξ_x, y in
    window 1 at ξ_y swaps with min(1, exp[S_0(ξ_x) + S_1(ξ_y) − S_0(ξ_y) − S_1(ξ_x)]) =
    min(1, exp[1.3 (ξ_x − ξ_y)]).  4000 attempts per case: binomial standard error ≤ 0.008,
    tolerance 0.035 (> 4 SE).  Control: the opposite sign's probability is far outside it."""
    lay = layout(AXIS, 2, 0.6)
    ls = WindowedLandscape(lay, walkers=2, sigma=1.0, out_of_range="wall", wall_strength=2.0)
    for k, slope in enumerate((0.8, -0.5)):
        x = torch.tensor(lay.ranges()[k][0]) + (torch.arange(lay.bins, dtype=torch.float64) + 0.5) * AXIS.width
        ls.S[k] = slope * x
    lo, hi = lay.ranges()[1][0], lay.ranges()[0][1]  # the overlap
    ex = ReplicaExchange(ls, 1, seed=11)
    for xx, yy in ((lo + 0.3, lo + 1.0), (lo + 1.2, lo + 0.4), (lo + 0.5, lo + 0.5)):
        xi = torch.tensor([[xx], [yy]], dtype=torch.float64)
        acc = 0
        for _ in range(4000):
            ls.assign([0, 1])
            ex.parity = 0
            acc += ex.attempt(xi, 1)
        p = min(1.0, math.exp(1.3 * (xx - yy)))
        assert acc / 4000 == pytest.approx(p, abs=0.035), (xx, yy)
        if p < 0.9:
            assert abs(acc / 4000 - min(1.0, math.exp(-1.3 * (xx - yy)))) > 0.2
    for pair in ([[lo - 0.2], [lo + 0.5]], [[lo + 0.5], [hi + 0.2]]):  # one of them outside the overlap: never
        xi = torch.tensor(pair, dtype=torch.float64)
        ls.assign([0, 1])
        assert sum(ex.attempt(xi, 1) for _ in range(200)) == 0
    assert ex.attempts.sum() > 0 and ex.state_dict()["labels"].tolist() == [0, 1]


def test_join_recovers_one_function_from_windows_with_their_own_constants():
    lay = layout(ps.Axis("energy", 1.0, 31.0, bins=120), 4, 0.75)
    u = lay.axis.centres().numpy()
    exact = 4 * np.log(u)
    S = np.stack([exact[a:a + lay.bins] + 10.0 * k - 3.0 for k, a in enumerate(lay.starts)])
    H = np.ones_like(S)
    out, owner, rec = join(lay, S, H, margin=2)
    assert np.allclose(out - out[0], exact - exact[0], atol=1e-12)
    assert list(owner[[0, -1]]) == [0, 3] and all(lay.starts[k + 1] + 2 <= c < lay.starts[k] + lay.bins - 2
                                                   for k, c in enumerate(rec["join_columns"]))
    # a window with a kink: the switch avoids it, the constant still comes from the whole overlap
    S[1, 40:] += 0.05 * (np.arange(lay.bins - 40)) ** 2 / lay.bins
    _, _, rec2 = join(lay, S, H, margin=2)
    assert rec2["join_columns"][0] < lay.starts[1] + 40
    H[2] = 0  # a window that never ran: the windows above it are left out
    out3, owner3, rec3 = join(lay, S, H, margin=2)
    assert rec3["join_columns"][1:] == [-1] and np.isnan(out3[-1]) and owner3[-1] == -1


@pytest.mark.slow
def test_rewl_10d_harmonic_well_passes_the_single_window_validation():
    """`physampler validate harmonic --windows 4 --steps 240000` (256 walkers, seed 2026): the joined
    S of 4 windows meets the single-window criteria (max |ΔS| ≤ 0.1 over the interior bins, H
    flat within 20 %, slope, ⟨U⟩ and C_V within 2 %).  Windows need twice the single window's
    120 000 steps for it: at 240 000 the max deviation over seeds 2026, 2, 1, 3 was 0.076, 0.084,
    0.049, 0.062 (one window at 120 000: 0.04–0.08); at 120 000 it was 0.066–0.124 and failed for
    2 of 5 samples, always at the low-U edge, the smallest volume, which only the lowest window's
    walkers fill.  Control: the same windows side by side without the join's constants are off
    by > 1."""
    from physampler.validation import run_harmonic

    r = run_harmonic(10, windows=4, seed=2026, steps=240_000)
    assert r.passed, r.checks
    assert r.max_deviation <= 0.1
    # control: the windows' own S side by side, without the join's constants
    from physampler.analysis import fit_offset

    u = r.landscape.grid.axes[0].centres().numpy()
    offsets = np.array([0.0] + list(r.windows["join_offsets"]))
    raw = r.landscape.S.numpy() - offsets[r.windows["join_owner"]]
    assert fit_offset(4 * np.log(u[1:-1]), raw[1:-1])[1] > 1.0


def _windowed_config(**kw):
    from _configs import harmonic_config

    text = harmonic_config(steps=2000, walkers=4, report=100, checkpoint=1000)
    return text.replace("[output]", "[windows]\ncount = 2\noverlap = 0.75\nswap_interval = 50\n\n[output]")


@pytest.mark.parametrize("engine", ["torch", "compiled"])
def test_a_windowed_run_resumes_bit_for_bit_and_writes_the_joined_landscape(tmp_path, engine):
    """physampler run with [windows] count = 2 (6-D well, 4 walkers, swaps every 50 steps): a run
    split by --resume at step 1000 writes the same landscape.nc and trajectory as one
    uninterrupted run (labels, swap generator and counts ride in the checkpoint); landscape.nc
    holds the joined S on the full grid and the swap statistics.  Control: another seed differs."""
    import xarray as xr

    from physampler import cli

    text = _windowed_config().replace("[integrator]", f"[integrator]\nengine = \"{engine}\"")
    cfg = tmp_path / "w.toml"
    cfg.write_text(text)
    assert cli.main(["run", str(cfg), "--out", str(tmp_path / "one"), "--quiet"]) == 0
    assert cli.main(["run", str(cfg), "--out", str(tmp_path / "two"), "--quiet", "--steps", "1000"]) == 0
    assert cli.main(["run", str(cfg), "--out", str(tmp_path / "two"), "--quiet", "--resume", "--steps", "2000"]) == 0
    other = tmp_path / "o.toml"
    other.write_text(text.replace("seed = 4", "seed = 5"))
    assert cli.main(["run", str(other), "--out", str(tmp_path / "three"), "--quiet"]) == 0
    with xr.open_dataset(tmp_path / "one" / "landscape.nc") as a, xr.open_dataset(tmp_path / "two" / "landscape.nc") as b, \
            xr.open_dataset(tmp_path / "three" / "landscape.nc") as c:
        assert a["entropy"].shape == (60,) and np.isfinite(a["entropy"].values).sum() == 60
        assert np.array_equal(a["entropy"].values, b["entropy"].values, equal_nan=True)
        assert not np.allclose(a["entropy"].values, c["entropy"].values)
        assert a.attrs["windows_swap_attempts"] == b.attrs["windows_swap_attempts"] == 80  # 40 swap steps x 2 pairs
        assert a.attrs["windows_count"] == 2 and 0 < a.attrs["windows_swap_acceptance"] <= 1
        for k in ("join_columns", "join_offsets", "convergence_rms_change", "round_trips"):
            assert np.array_equal(np.asarray(a.attrs[k]), np.asarray(b.attrs[k])), k
    with xr.open_dataset(tmp_path / "one" / "trajectory.nc") as a, xr.open_dataset(tmp_path / "two" / "trajectory.nc") as b:
        assert np.array_equal(a["energy"].values, b["energy"].values)


@pytest.mark.parametrize("edits", [
    (("count = 2", "count = 3"), "run.walkers"),
    (("count = 2", "count = 30"), "windows.count"),
    (("overlap = 0.75", "overlap = 1.5"), "windows.overlap"),
    (("swap_interval = 50", "swap_interval = 0"), "windows.swap_interval"),
    (("out_of_range = \"wall\"", "out_of_range = \"raise\""), "windows.count"),
    (("seed = 4", "seed = 4\nnoise = \"counter\""), ("c_f = 0.02", "c_f = 0.02\ncapture = \"compile\""), "windows.count"),
])
def test_windows_config_errors_name_their_field(tmp_path, capsys, edits):
    from physampler import cli

    text, field = _windowed_config(), edits[-1]
    for old, new in edits[:-1]:
        assert old in text
        text = text.replace(old, new)
    cfg = tmp_path / "w.toml"
    cfg.write_text(text)
    capsys.readouterr()
    assert cli.main(["run", str(cfg), "--out", str(tmp_path / "x"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and field in err, err
    assert not (tmp_path / "x").exists()


def test_window_walls_pull_a_far_walker_in_at_a_bounded_rate_on_both_engines():
    """A walker far below its window feels the window's lower wall at its largest slope,
    windows.wall_slope (10), not 2β·distance; near the edge the wall is quadratic.  The compiled
    kernel caps its edge walls the same way (batched == per-window test above: inside; here a
    walker 5 units outside)."""
    lay = layout(AXIS, 3, 0.6)
    ls = WindowedLandscape(lay, walkers=3, sigma=1.0, out_of_range="wall", wall_strength=2.0)
    lo = [r[0] for r in lay.ranges()]
    far = torch.tensor([[lo[0] - 0.1], [lo[1] - 0.5], [lo[2] - 5.0]], dtype=torch.float64)
    g = ls.gradient(far)[:, 0]
    assert g.tolist() == pytest.approx([-2 * 2.0 * 0.1, -2 * 2.0 * 0.5, -10.0])
    uncapped = WindowedLandscape(lay, walkers=3, sigma=1.0, out_of_range="wall", wall_strength=2.0, wall_slope=None)
    assert float(uncapped.gradient(far)[2, 0]) == pytest.approx(-20.0)  # control: 2β·5
    from physampler.integrators.compiled import CompiledWLMD

    q0 = _starts(6)
    q0[5] *= math.sqrt(1.0 / (0.5 * float(q0[5].pow(2).sum())))  # walker 5 (window 2, U >= 5.7) at U = 1
    runs = []
    for compiled in (False, True):
        _, land, integ = _harmonic(True)
        eng = WindowedWLMD(CompiledWLMD(integ) if compiled else integ, ReplicaExchange(land, 10**9, 0))
        st, _ = eng.run(eng.init(q0, WalkerRNG(5, 6)), 60)
        runs.append((st, land))
    (a, la), (b, lb) = runs
    assert float((a.positions - b.positions).abs().max()) < 1e-10 and float((la.S - lb.S).abs().max()) < 1e-10


def test_join_of_two_dimensional_windows_along_the_first_cv():
    """Windows along ln L of an S(ln L, Ã) (the network case): each column of the other axis is
    carried along, one constant per window, unvisited bins stay NaN."""
    lay = layout(ps.Axis("log_train_loss", -4.0, 2.0, bins=60), 3, 0.6)
    x = lay.axis.centres().numpy()[:, None]
    y = np.linspace(0.025, 0.975, 20)[None, :]
    exact = 2.0 * x - 30.0 * (y - 0.2 - 0.1 * x) ** 2
    S = np.stack([exact[a:a + lay.bins] + 5.0 * k for k, a in enumerate(lay.starts)])
    H = np.ones_like(S)
    H[:, :, -1] = 0  # the top accuracy row never visited
    out, owner, rec = join(lay, S, H, margin=2)
    ok = np.isfinite(out)
    assert ok[:, :-1].all() and not ok[:, -1].any()
    d = (out - exact)[ok]
    assert np.abs(d - d.mean()).max() < 1e-12 and len(rec["join_columns"]) == 2


def test_join_starts_at_the_lowest_window_with_visits():
    lay = layout(ps.Axis("log_train_loss", -4.0, 2.0, bins=60), 3, 0.6)
    x = lay.axis.centres().numpy()
    S = np.stack([2.0 * x[a:a + lay.bins] + k for k, a in enumerate(lay.starts)])
    H = np.ones_like(S)
    H[0] = 0  # walkers of the lowest window not yet arrived (they start at high loss)
    out, owner, rec = join(lay, S, H, margin=2)
    assert rec["join_columns"][0] == -1 and rec["join_columns"][1] > 0
    assert np.isnan(out[: lay.starts[1]]).all() and np.isfinite(out[lay.starts[1]:]).all()
    assert owner[-1] == 2 and owner[0] == -1
