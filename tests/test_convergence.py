"""The convergence series a run records (round trips, flatness, rms change of S, the second-half
error estimate), the steps-still-needed estimate and ``physampler compare``."""
import math

import numpy as np
import pytest

from physampler.convergence import RoundTrips, steps_to_target


def test_round_trips_count_passages_between_the_ends_and_nothing_else():
    rt = RoundTrips(0.0, 10.0, walkers=3)  # ends: x <= 1 and x >= 9
    # walker 0: low, high, low, high, low = 2 round trips; walker 1 wanders in the middle and
    # touches only the low end; walker 2 goes low -> high once (half a round trip)
    rows = [[0.5, 5.0, 0.2], [5.0, 0.9, 5.0], [9.5, 5.0, 9.0], [5.0, 1.5, 9.9], [0.0, 8.9, 5.0],
            [9.0, 5.0, 5.0], [1.0, 5.0, 5.0]]
    for r in rows:
        rt.update(np.array(r))
    assert rt.trips.tolist() == [2, 0, 0] and rt.half.tolist() == [4, 0, 1]
    again = RoundTrips(0.0, 10.0, walkers=3)
    for r in rows[:-1]:  # control: without the last record walker 0 is one passage short
        again.update(np.array(r))
    assert again.trips.tolist() == [1, 0, 0]


def test_steps_to_target_extrapolates_a_power_law_and_refuses_a_flat_trend():
    t = np.arange(1, 11) * 1000.0
    rms = 2.0 * (t / 1000.0) ** -1.0  # 2 at t = 1000, 0.2 at t = 10 000: reaches 0.05 at t = 40 000
    tr = steps_to_target(np.stack([t, rms], axis=1), 0.05)
    assert tr.exponent == pytest.approx(1.0) and tr.remaining == pytest.approx(30_000.0, rel=1e-9)
    assert steps_to_target(np.stack([t, rms], axis=1), 0.3).remaining == 0.0
    flat = steps_to_target(np.stack([t, np.full(10, 0.2)], axis=1), 0.05)
    assert flat.remaining is None and abs(flat.exponent) < 1e-9
    assert steps_to_target(np.zeros((0, 5)), 0.05).remaining is None


def test_compare_removes_the_best_offset_over_the_common_bins():
    from physampler.analysis import compare

    a = np.linspace(0.0, 3.0, 30)
    b = a + 7.0
    b[::2] += 0.1  # half the bins +0.1: offset 7.05, difference ±0.05 everywhere
    a[0] = np.nan  # unvisited in one: left out
    d = compare(a, b)
    assert d.common == 29 and d.offset == pytest.approx(7.0 + 0.1 * 14 / 29)
    assert d.rms == pytest.approx(math.sqrt(np.mean((b[1:] - a[1:] - d.offset) ** 2)))
    assert np.isnan(d.difference[0])


def test_compare_two_seeds_agree_within_their_own_error_and_another_system_does_not(tmp_path, capsys):
    """Two seeds of the 6-D harmonic well (4 walkers x 8000 steps) against the tolerance
    1.5·sqrt(δ_A² + δ_B²) from each run's rms change of S over its second half; the control, a
    10-D well on the same grid (S differs by 2 ln U + c), must be refused."""
    from _configs import harmonic_config
    from physampler import cli

    base = harmonic_config(steps=8000, walkers=4, report=400, checkpoint=8000)
    runs = {"a": base, "b": base.replace("seed = 4", "seed = 5"), "ten": base.replace("dims = 6", "dims = 10")}
    assert runs["b"] != base and runs["ten"] != base
    for name, text in runs.items():
        (tmp_path / f"{name}.toml").write_text(text)
        assert cli.main(["run", str(tmp_path / f"{name}.toml"), "--out", str(tmp_path / name), "--quiet"]) == 0
    capsys.readouterr()
    assert cli.main(["info", str(tmp_path / "a" / "landscape.nc")]) == 0
    info = capsys.readouterr().out
    assert "round trips per walker between energy <= 1.7 and >= 11.3" in info and "error estimate of S" in info
    assert "steps to rms change 0.01: about" in info
    rc = cli.main(["compare", str(tmp_path / "a" / "landscape.nc"), str(tmp_path / "b" / "landscape.nc"),
                   "-o", str(tmp_path / "d.png")])
    out = capsys.readouterr().out
    assert rc == 0 and "verdict     consistent" in out and (tmp_path / "d.png").stat().st_size > 0, out
    rc = cli.main(["compare", str(tmp_path / "a" / "landscape.nc"), str(tmp_path / "ten" / "landscape.nc")])
    assert rc == 1 and "NOT consistent" in capsys.readouterr().out
    assert cli.main(["compare", str(tmp_path / "a" / "landscape.nc"), str(tmp_path / "nothing.nc")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
