"""Bias methods on any splitting (docs/science.md §3, §4): Wang–Landau as the [P1] WLMD,
well-tempered metadynamics against exact free energies, a static bias and its reweighting,
and the obabo and verlet splittings against their exact harmonic-well results."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import physampler as ps
from physampler.analysis import reweight_observables
from physampler.integrators import BiasedMD, WLMDState
from physampler.methods import StaticBias, WangLandau, WellTemperedMetadynamics
from physampler.systems import DoubleWell1D, HarmonicWell
from physampler.validation_metad import run_double_well, run_harmonic10

from _stats import mean_square_position


def _harmonic_wl(method_of, splitting="ktd", walkers=3, seed=4, steps=200):
    system = HarmonicWell.isotropic(4)
    land = ps.Landscape([ps.Axis("energy", 0.0, 12.0, bins=60)], sigma=1.0, out_of_range="wall")
    md = BiasedMD(system, ps.PotentialEnergy(system), method_of(land), dt=0.05, c_f=0.02, kT=1.0, splitting=splitting)
    rng = ps.WalkerRNG(seed, walkers)
    state = md.init(torch.randn(walkers, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)), rng)
    for _ in range(steps):
        state, _ = md.step(state)
    return md, state


def test_wlmd_is_wang_landau_on_the_ktd_splitting_bitwise():
    """WLMD(landscape, schedule) and BiasedMD(WangLandau(landscape, schedule)) are one engine:
    the same trajectory and landscape, bit for bit; a different seed differs (control)."""
    a, sa = _harmonic_wl(lambda land: WangLandau(land, ps.InverseTime(0.5, 50)))
    system = HarmonicWell.isotropic(4)
    land = ps.Landscape([ps.Axis("energy", 0.0, 12.0, bins=60)], sigma=1.0, out_of_range="wall")
    w = ps.WLMD(system, ps.PotentialEnergy(system), land, ps.InverseTime(0.5, 50), dt=0.05, c_f=0.02, kT=1.0)
    s = w.init(torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(4)), ps.WalkerRNG(4, 3))
    for _ in range(200):
        s, _ = w.step(s)
    assert torch.equal(s.positions, sa.positions) and torch.equal(land.S, a.landscape.S)
    b, sb = _harmonic_wl(lambda land: WangLandau(land, ps.InverseTime(0.5, 50)), seed=5)
    assert not torch.equal(sb.positions, sa.positions)


@pytest.mark.parametrize("splitting", ["baoab", "obabo", "verlet"])
def test_every_splitting_batched_equals_single_runs(splitting):
    """Walkers on the leading axis with a frozen bias (nothing couples them) equal single-walker
    runs of the same streams, bit for bit, on every splitting."""
    def run(walkers):
        system = HarmonicWell.isotropic(3)
        land = ps.Landscape([ps.Axis("energy", 0.0, 30.0, bins=60)], sigma=1.0, out_of_range="wall")
        land.S.copy_(0.5 * land.grid.axes[0].centres())
        c_f = 0.0 if splitting == "verlet" else 0.1
        md = BiasedMD(system, ps.PotentialEnergy(system), StaticBias(land), dt=0.05, c_f=c_f, splitting=splitting,
                      potential=True)
        rng = ps.WalkerRNG(8, walkers)
        q0 = torch.stack([torch.tensor([1.0, 0.2 * w, -0.5], dtype=torch.float64) for w in rng.walkers])
        state = md.init(q0, rng)
        for _ in range(150):
            state, _ = md.step(state)
        return state

    batch = run(3)
    for w in range(3):
        single = run([w])
        assert torch.equal(single.positions[0], batch.positions[w])
        assert torch.equal(single.velocities[0], batch.velocities[w])


def _frozen_variance(splitting: str, dt: float, c_f: float, steps: int = 6000):
    """⟨x²⟩ of Langevin dynamics on U = ½ Σ x² at kT = 1 (a frozen S = 0 with the potential on),
    16 walkers × 20 coordinates after 500 steps of burn-in; (mean, standard error of 20 blocks)."""
    system = HarmonicWell.isotropic(20)
    land = ps.Landscape([ps.Axis("energy", 0.0, 400.0, bins=40)], sigma=1.0, out_of_range="wall")
    md = BiasedMD(system, ps.PotentialEnergy(system), StaticBias(land), dt=dt, c_f=c_f, kT=1.0, splitting=splitting,
                  potential=True)
    state = md.init(torch.randn(16, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(3)),
                    ps.WalkerRNG(seed=21, walkers=16))
    return mean_square_position(md, state, steps)


def test_obabo_samples_its_exact_harmonic_variance_and_baoab_the_true_one():
    """On a harmonic well (ω = 1) OBABO's stationary ⟨x²⟩ is exactly kT/(1 − ω²dt²/4) for any
    friction, BAOAB's exactly kT (Leimkuhler & Matthews 2013, §4): at dt = 0.6, 1.0989 and 1.
    Within 3 standard errors at c_f = 0.2 (measured 1.0951 ± 0.0028 and 0.9970 ± 0.0023);
    control that must fail: OBABO is not at 1."""
    dt = 0.6
    exact_obabo = 1.0 / (1.0 - dt * dt / 4)
    v, se = _frozen_variance("obabo", dt, 0.2)
    assert abs(v - exact_obabo) <= 3 * se and se < 0.01, (v, se)
    assert abs(v - 1.0) > 3 * se
    vb, seb = _frozen_variance("baoab", dt, 0.2)
    assert abs(vb - 1.0) <= 3 * seb, (vb, seb)


def test_verlet_conserves_the_energy_of_the_biased_hamiltonian():
    """Velocity Verlet under a frozen bias is Hamiltonian: E = ½mv² + U + kT·S(U) stays within
    O(dt²) of its start — measured 7.4e-5 relative over 2000 steps at dt = 0.02, asserted
    ≤ 1e-3.  Control that must fail: ktd with c_f = 0.2 (a thermostat) moves E by 3.8 (> 0.1)."""
    def energy_series(splitting, c_f):
        system = HarmonicWell.isotropic(10)
        land = ps.Landscape([ps.Axis("energy", 0.0, 60.0, bins=300)], sigma=1.0, out_of_range="wall")
        land.S.copy_(0.3 * land.grid.axes[0].centres())  # linear S: exact gradient, a smooth force
        md = BiasedMD(system, ps.PotentialEnergy(system), StaticBias(land), dt=0.02, c_f=c_f, splitting=splitting,
                      potential=True)
        state = md.init(torch.randn(4, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(1)),
                        ps.WalkerRNG(2, 4))
        out = []
        for _ in range(2000):
            state, _ = md.step(state)
            u = system.energy(state.positions)
            out.append(0.5 * state.velocities.pow(2).sum(1) + u + md.kT * land.value(u[:, None]))
        return torch.stack(out)

    e = energy_series("verlet", 0.0)
    assert float(((e - e[0]).abs() / e[0].abs()).max()) < 1e-3
    t = energy_series("ktd", 0.2)
    assert float(((t - t[0]).abs() / t[0].abs()).max()) > 0.1


def test_verlet_refuses_a_thermostat_and_methods_check_their_arguments():
    system = HarmonicWell.isotropic(2)
    land = ps.Landscape([ps.Axis("energy", 0.0, 6.0, bins=30)])
    with pytest.raises(ValueError, match="c_f: splitting 'verlet' has no thermostat; set c_f = 0"):
        BiasedMD(system, ps.PotentialEnergy(system), WangLandau(land, ps.Constant(0.1)), dt=0.1, c_f=0.1,
                 splitting="verlet")
    with pytest.raises(ValueError, match="delta_T: must be > 0"):
        WellTemperedMetadynamics(land, ps.Constant(0.1), delta_T=0.0, kT=1.0)
    with pytest.raises(ValueError, match="method: must be a physampler Method"):
        BiasedMD(system, ps.PotentialEnergy(system), land, dt=0.1, c_f=0.1)
    bad = ps.Landscape([ps.Axis("energy", 0.0, 6.0, bins=30)])
    bad.S[3] = float("nan")
    with pytest.raises(ValueError, match="static bias must be finite"):
        StaticBias(bad)


def test_well_tempered_deposit_is_damped_by_the_bias_already_there():
    """One deposit of height (f/W)·exp(−V(ξ)/ΔT): with V = kT·S = 2 at the walker and ΔT = 4
    the kernel mass added is f/W·e^(−1/2), exactly."""
    land = ps.Landscape([ps.Axis("x", -1.0, 1.0, bins=40)], sigma=1.0)
    land.S.fill_(2.0)
    m = WellTemperedMetadynamics(land, ps.Constant(0.3), delta_T=4.0, kT=1.0)
    xi = torch.tensor([[0.01], [0.3]], dtype=torch.float64)
    m.update(xi, 1, torch.tensor([True, True]), 2)
    assert float(land.S.sum() - 2.0 * 40) == pytest.approx(2 * 0.15 * math.exp(-0.5), rel=1e-12)
    assert m.bias_factor == pytest.approx(5.0)


def test_metadynamics_recovers_the_double_well_free_energy():
    """F(x) = −((T + ΔT)/ΔT)·V of the 1-D double well a = 3 kT equals U(x) + c over |x| ≤ 1.5.
    The full validation (``physampler validate metad``: 64 walkers × 80 000 steps) is within
    0.1 kT (benchmarks/RESULTS.md); this shortened run (32 walkers × 20 000 steps; seeds 1-3
    measured 0.151, 0.160, 0.145 kT) must be within 0.25 kT.  Control that must fail: reading the
    bias as F = −V, without the well-tempered factor (T + ΔT)/ΔT = 7/6, misses F/7 ≈ 0.7 kT at |x| = 1.5."""
    r = run_double_well(steps=20000, walkers=32, seed=1)
    dev = r.measured["max|F - U - c| (kT)"]
    assert dev <= 0.25, dev
    x = r.landscape.grid.axes[0].centres()
    inner = x.abs() <= 1.5
    naive = (-1.0 * r.landscape.S - DoubleWell1D(3.0).energy(x[:, None]))[inner]
    assert float((naive - naive.mean()).abs().max()) > 0.25


def test_metadynamics_recovers_the_harmonic_density_of_states():
    """S(U) = −F/T + U/T of the 10-D harmonic well from well-tempered metadynamics with the
    potential on.  The full validation (64 walkers × 80 000 steps) meets the Wang–Landau
    criteria (max deviation 0.06 ≤ 0.1, slope 3.997, ⟨U⟩ and C_V within 0.2 %); this shortened
    run (64 walkers × 20 000 steps; seeds 1-3 measured 0.12, 0.21, 0.15 and slopes 4.02, 3.94,
    4.04) must be within 0.3 of 4 ln U + c with the slope within 5 %.  Control that must fail:
    S without the U/T term, −F/T = ((T + ΔT)/ΔT)·S_m, is 4 ln U − U + c, far from slope 4."""
    r = run_harmonic10(steps=20000, walkers=64, seed=1)
    assert r.measured["max|S - 4 ln U - c|"] <= 0.3, r.measured
    assert abs(r.measured["dS/dlnU"] / 4 - 1) <= 0.05, r.measured
    u = r.landscape.grid.axes[0].centres().numpy()
    naive = (20.0 / 19.0) * r.landscape.S.numpy()
    assert abs(np.polyfit(np.log(u), naive, 1)[0] / 4 - 1) > 0.5


def test_static_bias_reweights_per_bin_observables_to_the_canonical_average():
    """⟨O⟩(T) = Σ g ⟨O⟩_b e^(−U/T)/Z: with ln g = 4 ln U (10-D well) and O = U itself the
    reweighted ⟨U⟩ is N·T/2 = 5·T to the grid's quadrature error (< 0.5 % at T = 1, 2, 3 on
    0.05-wide bins); control: a flat ln g gives ⟨U⟩ = T (far off)."""
    u = np.arange(0.025, 60.0, 0.05)
    temps = [1.0, 2.0, 3.0]
    got = reweight_observables(u, 4 * np.log(u), {"u": u}, temps)["u"]
    assert np.allclose(got, 5 * np.array(temps), rtol=5e-3), got
    flat = reweight_observables(u, np.zeros_like(u), {"u": u}, temps)["u"]
    assert not np.allclose(flat, 5 * np.array(temps), rtol=0.1)


def _run_cli(*args) -> int:
    from physampler.cli import main

    return main([str(a) for a in args])


_METAD_JOB = """
[system]
kind = "harmonic"
dims = 4

[landscape]
lower = [0.25]
upper = [12.25]
bins = [48]
out_of_range = "wall"
wall_strength = 2.0

[method]
kind = "{kind}"
delta_T = 9.0
{extra}

[integrator]
dt = 0.02
c_f = 0.02
splitting = "baoab"

[schedule]
kind = "constant"
f = 0.05

[run]
walkers = 16
steps = {steps}
seed = 5

[output]
report_interval = 500
checkpoint_interval = 1000
plot = false
"""


def test_config_runs_metadynamics_then_a_static_production_on_its_landscape(tmp_path, capsys):
    """From configs: well-tempered metadynamics (potential on) writes ln g = −F/T + U/T as
    ``entropy`` (4-D well: slope dS/d ln U = 1 exactly; measured within 0.1 after 6000 steps);
    a static production run on that landscape deposits nothing — its sampler S is the file's
    entropy bit for bit (unvisited bins at the highest value) — and writes ln g = S + ln H, also of slope 1.  Control: the Wang–Landau
    method on the same config does change S.  A static bias on a file of another grid is one
    line naming the file, exit status 2."""
    import xarray as xr

    meta = tmp_path / "metad.toml"
    meta.write_text(_METAD_JOB.format(kind="well_tempered_metadynamics", extra="", steps=6000))
    assert _run_cli("run", meta, "--out", tmp_path / "m", "--quiet") == 0
    with xr.open_dataset(tmp_path / "m" / "landscape.nc") as ds:
        assert ds.attrs["method"] == "well_tempered_metadynamics" and ds.attrs["integrator_potential"] == 1
        u, s = ds["energy"].values, ds["entropy"].values
    ok = np.isfinite(s) & (u > 1.0) & (u < 11.0)
    assert abs(np.polyfit(np.log(u[ok]), s[ok], 1)[0] - 1.0) < 0.1
    capsys.readouterr()
    assert _run_cli("info", tmp_path / "m" / "landscape.nc") == 0
    assert ("method      well_tempered_metadynamics (delta_T 9, bias factor 10), splitting baoab, potential on"
            in capsys.readouterr().out)
    static = tmp_path / "static.toml"
    static.write_text(_METAD_JOB.format(kind="static", extra=f'landscape = "{tmp_path / "m" / "landscape.nc"}"',
                                        steps=16000).replace("delta_T = 9.0", "").replace("walkers = 16", "walkers = 64")
                      + '[cvs]\nobserve = ["x0"]\nobserve_every = 4\n')
    assert _run_cli("run", static, "--out", tmp_path / "s", "--quiet") == 0
    with xr.open_dataset(tmp_path / "s" / "landscape.nc") as ds:
        assert ds.attrs["method"] == "static" and ds.attrs["integrator_potential"] == 0
        s2, kept, h = ds["entropy"].values, ds["sampling_entropy"].values, ds["histogram"].values
        recorded = float(ds["count_x0"].sum())
    # x0 recorded per bin at every 4th step: a quarter of the visits (to the rounding of in-range walkers)
    assert abs(recorded / h.sum() - 0.25) < 0.01, recorded / h.sum()
    capsys.readouterr()
    assert _run_cli("analyze", tmp_path / "s" / "landscape.nc", "-o", tmp_path / "s" / "c.csv",
                    "--temperatures", "0.5", "1.0", "2.0") == 0
    import csv

    rows = list(csv.DictReader(open(tmp_path / "s" / "c.csv")))
    assert [float(r["mean_x0"]) for r in rows] and all(abs(float(r["mean_x0"])) < 0.1 for r in rows)  # ⟨x0⟩ = 0
    assert np.array_equal(kept, np.where(np.isfinite(s), s, np.nanmax(s)))  # frozen: the file's ln g, gaps filled
    ok2 = np.isfinite(s2) & (u > 1.0) & (u < 11.0) & (h > 50)
    assert abs(np.polyfit(np.log(u[ok2]), s2[ok2], 1)[0] - 1.0) < 0.1
    wl = tmp_path / "wl.toml"
    wl.write_text(_METAD_JOB.format(kind="wang_landau", extra="", steps=1000).replace("delta_T = 9.0", ""))
    assert _run_cli("run", wl, "--out", tmp_path / "w", "--quiet") == 0
    with xr.open_dataset(tmp_path / "w" / "landscape.nc") as ds:
        assert np.ptp(ds["sampling_entropy"].values) > 0
    other = tmp_path / "other.toml"
    other.write_text(static.read_text().replace("bins = [48]", "bins = [40]"))
    capsys.readouterr()
    assert _run_cli("run", other, "--out", tmp_path / "o", "--quiet") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "landscape.nc" in err[0] and "grid" in err[0], err
    assert not (tmp_path / "o" / "landscape.nc").exists()


def test_engine_state_dict_round_trip_continues_bitwise_and_refuses_another_method():
    """BiasedMD.state_dict() (the method and its landscape) plus the walker state continue a
    metadynamics run bit for bit; a Wang–Landau engine refuses a metadynamics state (control)."""
    def engine():
        system = DoubleWell1D(3.0)
        land = ps.Landscape([ps.Axis("x", -1.9, 1.9, bins=38)], sigma=1.0, out_of_range="wall")
        m = WellTemperedMetadynamics(land, ps.Constant(0.05), delta_T=4.0, kT=1.0)
        from physampler.cvs import Coordinate

        return BiasedMD(system, [Coordinate(0, "x")], m, dt=0.01, c_f=0.05, splitting="obabo")

    a = engine()
    s = a.init(torch.full((4, 1), -1.0, dtype=torch.float64), ps.WalkerRNG(3, 4))
    for _ in range(100):
        s, _ = a.step(s)
    saved, walker = a.state_dict(), (s.positions.clone(), s.velocities.clone(), s.accel.clone(), s.cv.clone(), s.rng.state_dict())
    for _ in range(100):
        s, _ = a.step(s)
    b = engine()
    b.load_state_dict(saved)
    rng = ps.WalkerRNG(3, 4)
    rng.load_state_dict(walker[4])
    t = WLMDState(*walker[:4], 100, rng)
    for _ in range(100):
        t, _ = b.step(t)
    assert torch.equal(t.positions, s.positions) and torch.equal(b.landscape.S, a.landscape.S)
    wl = BiasedMD(DoubleWell1D(3.0), [b.cvs.cvs[0]], WangLandau(ps.Landscape([ps.Axis("x", -1.9, 1.9, bins=38)]),
                                                                  ps.Constant(0.1)), dt=0.01, c_f=0.05, splitting="obabo")
    with pytest.raises(ValueError, match="method state: kind: the saved 'well_tempered_metadynamics' differs"):
        wl.load_state_dict(saved)
