"""Thermodynamics of LJ systems against independent code (OpenMM, pymbar).

Criterion everywhere: |physampler − reference| ≤ 3·√(se₁² + se₂²), the standard
errors coming from the statistical inefficiency of each time series (bulk) or
from independent WLMD replicas and an MBAR bootstrap (cluster).  Seeds are
fixed, so each test is deterministic; the z = 3 bound is what makes it a
statistical statement rather than a tuned number.  Negative controls show that
the comparisons detect a wrong entropy (reweighting), a wrong thermostat
temperature and a shifted deposit.
"""
import numpy as np
import pytest

from physampler.analysis import canonical

references = pytest.importorskip("physampler.references")
pytest.importorskip("openmm")
pytest.importorskip("pymbar")

from physampler.systems.lennard_jones import LJBulk  # noqa: E402
from physampler.validation_lj import fcc_start, run_bulk, run_lj_cluster  # noqa: E402


@pytest.mark.slow
@pytest.mark.parametrize("temperature,density", [(0.85, 0.776), (2.0, 0.8)])
def test_bulk_energy_matches_openmm(temperature, density):
    """N = 256, truncated and shifted at 2.5σ, Langevin γ = 1, dt = 0.005 in both codes."""
    ours = run_bulk(temperature, density, n=256, steps=20000, equilibrate=3000, seed=11)
    lj = LJBulk(256, density=density, cutoff=2.5, cutoff_mode="shifted")
    series = references.openmm_langevin(lj, fcc_start(lj, 12)[0].numpy(), temperature, steps=20000, report=10,
                                        equilibrate=3000, seed=12, platform="CPU") / 256
    ref, ref_se = references.mean_with_error(series)
    err = np.hypot(ours.error, ref_se)
    assert abs(ours.energy_per_atom - ref) <= 3 * err, (ours.energy_per_atom, ours.error, ref, ref_se)
    assert 3 * err < 0.01 * abs(ref)  # the comparison is sharp: a 1 % error in U/N would fail it


@pytest.mark.slow
def test_lj13_heat_capacity_matches_openmm_mbar():
    """Shortened `physampler validate lj13`: 4 replicas × 16 walkers × 7.5e5 WLMD steps (half the
    default) against the packaged OpenMM+MBAR reference: Langevin runs of 2e5 steps at 11
    temperatures (half the default) with R_g and Q6 per frame, made by the command in its
    ``command`` attribute (the same start, steps and seed run_lj_cluster would use; regenerating
    it costs ≈ 5 CPU-minutes, which is why it ships; test_packaged_lj13_reference checks it)."""
    ref = references.packaged_reference("lj13")
    r = run_lj_cluster("lj13", steps=750_000, walkers=16, replicas=4, seed=7, reference=ref)
    assert r.checks["global minimum"], r.minimum_found  # −44.326801 to 1e-5
    assert r.checks["C_V vs OpenMM+MBAR"], r.deviations
    assert r.checks["C_V peak in literature range"], r.peak_temperature
    # ⟨U⟩ is reported, not asserted: it carries the O(dt) offset of the WLMD step (validation_lj docstring).

    ref = r.reference
    u = r.landscape.grid.axes[0].centres().numpy()
    s = r.landscape.shifted().numpy()

    def worst_z(entropy, energies=u, temps=r.temperatures):
        c = canonical(energies, entropy, temps)
        zc = (c.heat_capacity - ref.heat_capacity) / np.hypot(r.heat_capacity_error, ref.heat_capacity_error)
        zu = (c.mean_energy - ref.mean_energy) / np.hypot(r.mean_energy_error, ref.mean_energy_error)
        return np.max(np.abs(zc)), np.max(np.abs(zu))

    # Negative controls: each wrong ingredient shows up far outside the error bars.
    assert worst_z(1.1 * s)[0] > 3  # thermostat at 1.1·T0, or deposits 10 % too high: S → 1.1·ln g
    assert worst_z(s, temps=r.temperatures * 1.05)[0] > 3  # reweighting at the wrong temperature
    assert worst_z(s, energies=u + 4 * (u[1] - u[0]))[1] > 3  # deposits four bins (0.2 ε) off in U

    # The BAOAB splitting (numba engine) against the same reference: ⟨U⟩(T) is tested too, since
    # BAOAB has no c_f/(2 − c_f) configurational offset (docs/science.md §3; the full validation:
    # benchmarks/RESULTS.md).  Measured |z(U)| ≤ 2.28.  Not fewer walkers: at 8 walkers each deposit
    # doubles and the lag of WLMD raises <U> by up to 0.6 ε (ktd, |z| 7.7; baoab, |z| 10).
    #
    # Then the multicanonical production: the BAOAB run's mean S frozen as a StaticBias, R_g and Q6
    # recorded per energy bin, reweighted to ⟨R_g⟩(T), ⟨Q6⟩(T) with ln g = S + ln H, against MBAR's
    # expectations of the same per-frame observables at all 11 temperatures (z ≤ 3).
    b = run_lj_cluster("lj13", steps=750_000, walkers=16, replicas=4, seed=8, reference=ref, splitting="baoab",
                       observables=True)
    assert b.checks["C_V vs OpenMM+MBAR"], b.deviations
    assert b.checks["<U> vs OpenMM+MBAR"], b.energy_deviations
    assert b.checks["C_V peak in literature range"], b.peak_temperature
    assert b.checks["<rg> vs OpenMM+MBAR"], b.observable_deviations("rg")
    assert b.checks["<q6> vs OpenMM+MBAR"], b.observable_deviations("q6")
    # Controls: the same per-bin means reweighted at a 5 % wrong temperature, or filed twenty bins
    # (1 ε) off in U, leave the error bars (four bins, 0.2 ε, moves R_g by only ≈ 0.003: not enough).
    import dataclasses

    o = b.observables

    def worst_obs_z(name, obs=o, temps=r.temperatures):
        mean, se = obs.reweighted(temps)
        return np.max(np.abs(mean[name] - ref.observables[name][0]) / np.hypot(se[name], ref.observables[name][1]))

    off = dataclasses.replace(o, per_bin={n: np.roll(v, 20, axis=1) for n, v in o.per_bin.items()})
    for name in ("rg", "q6"):
        assert worst_obs_z(name, temps=r.temperatures * 1.05) > 3, name
        assert worst_obs_z(name, obs=off) > 3, name


def test_packaged_lj13_reference_is_what_it_says():
    """The shipped reference: made for this case by the documented command, and reproduced by a
    fresh OpenMM run.  One Langevin run of 4e4 steps at T = 0.42 (one of the simulated
    temperatures, in the liquid, where U decorrelates fast) gives ⟨U⟩ within 3 combined standard
    errors of the stored MBAR ⟨U⟩(0.42) (se of the fresh run from its statistical inefficiency);
    the control, the same run against the stored ⟨U⟩(0.36), must be far outside."""
    from physampler.systems.lennard_jones import LJCluster, icosahedron13
    from physampler.validation_cases import LJ_CASES
    from physampler.validation_lj import reference_mismatch

    case = LJ_CASES["lj13"]
    ref = references.packaged_reference("lj13")
    assert reference_mismatch("lj13", ref, "origin", observables=True) is None
    prov = ref.provenance
    assert prov["case"] == "lj13" and prov["seed"] == 7 and prov["steps_per_temperature"] == 200_000
    assert "--save-reference" in prov["command"] and "--reference-steps 200000" in prov["command"]
    assert np.allclose(prov["simulated_temperatures"], case.reference_temperatures)
    assert reference_mismatch("lj13", ref, "com") is not None  # another sphere centre: refused

    series = references.openmm_langevin(LJCluster(13, case.radius), icosahedron13(), 0.42, steps=40_000, report=20,
                                         equilibrate=5000, seed=99)
    mean, se = references.mean_with_error(series)
    k = int(np.argmin(np.abs(ref.temperature - 0.42)))
    assert abs(ref.temperature[k] - 0.42) < 1e-9
    assert abs(mean - ref.mean_energy[k]) <= 3 * np.hypot(se, ref.mean_energy_error[k]), (mean, se, ref.mean_energy[k])
    k2 = int(np.argmin(np.abs(ref.temperature - 0.36)))
    assert abs(mean - ref.mean_energy[k2]) > 3 * np.hypot(se, ref.mean_energy_error[k2])


def test_stored_reference_round_trip_and_refusals(tmp_path, capsys):
    """write_reference → read_reference keeps every array and the provenance; the CLI refuses a
    reference made for other temperatures, and a file that is not one, with one line and exit 2."""
    from physampler import cli
    from physampler.validation_cases import LJ_CASES

    t = np.array(LJ_CASES["lj13"].temperatures)
    ref = references.MBARCanonical(t, -30 + t, 0.1 + 0 * t, 10 + t, 0.5 + 0 * t, np.arange(11),
                                   {"rg": (1 + t, 0.01 + 0 * t)}, {"case": "lj13", "seed": 3})
    f = tmp_path / "ref.nc"
    references.write_reference(f, ref, command="physampler validate lj13 --save-reference ref.nc")
    back = references.read_reference(f)
    for name in ("temperature", "mean_energy", "mean_energy_error", "heat_capacity", "heat_capacity_error", "samples"):
        assert np.array_equal(getattr(back, name), getattr(ref, name)), name
    assert np.array_equal(back.observables["rg"][0], 1 + t) and back.provenance["seed"] == 3
    assert back.provenance["command"].endswith("ref.nc")

    other = references.MBARCanonical(t[:5], *(np.zeros(5),) * 4, np.arange(11))
    references.write_reference(tmp_path / "other.nc", other)
    (tmp_path / "junk.nc").write_text("not netcdf")
    for path, words in ((tmp_path / "other.nc", "holds temperatures"), (tmp_path / "junk.nc", "cannot be read")):
        assert cli.main(["validate", "lj13", "--reference-file", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and words in err, err
