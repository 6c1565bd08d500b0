"""Command-line interface: ``physampler run | train | plot | info | analyze | validate``.

Bad arguments print one line ``physampler: error: ...`` and exit with status 2,
without a traceback; a config key that is wrong, ``config error: <section.key>: ...``
(exit 2); a file that cannot be used, ``error: <path>: <what is wrong>`` (exit 2); a
file that cannot be written (disk full), ``error: <path>: ...`` (exit 1).

Signals: :func:`main` installs its SIGINT/SIGTERM handler before anything heavy is
imported, so a signal at any moment — imports, model build, compilation, the final
writes — ends with one line and status 128 + signal number.  While a job steps, its
own handler takes over and stops it at the next chunk end with a checkpoint.  A signal whose
exception a library swallowed is still honoured (:mod:`physampler.signals`).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from . import __version__
from . import signals


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse would also print usage)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _int_at_least(low: int, what: str):
    """An argparse type: an integer >= ``low`` (``what`` words it in the message)."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            v = None
        if v is None or v < low:
            raise argparse.ArgumentTypeError(f"must be {what} (got {text!r})")
        return v

    return parse


positive_int = _int_at_least(1, "a positive integer")
non_negative_int = _int_at_least(0, "an integer >= 0")


def _job_arguments(p: argparse.ArgumentParser, kind: str) -> None:
    """The options ``run`` and ``train`` share; ``kind`` names the config section they override."""
    p.add_argument("--out", help="output directory (overrides output.directory)")
    p.add_argument("--steps", type=positive_int, help=f"total steps (overrides {kind}.steps)")
    p.add_argument("--device", help=f"cpu | cuda | cuda:N (overrides {kind}.device)")
    p.add_argument("--threads", type=non_negative_int, help=f"torch intra-op threads, 0: auto (overrides {kind}.threads)")
    p.add_argument("--resume", action="store_true", help="continue the directory's checkpoint (refused when there is none)")
    p.add_argument("--overwrite", action="store_true", help="replace the outputs of an existing directory")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def build_parser(plugins: bool = True) -> argparse.ArgumentParser:
    """The CLI; ``plugins``: add the validations plug-ins register (loading them imports torch,
    so :func:`main` asks for them only for ``validate``)."""
    p = _Parser(prog="physampler", description="Wang–Landau MD entropy landscapes.")
    p.add_argument("--version", action="version", version=f"physampler {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    v = sub.add_parser("validate", help="run a validation against exact results")
    vs = v.add_subparsers(dest="target", required=True, parser_class=_Parser)
    h = vs.add_parser("harmonic", help="WLMD on N-dim harmonic wells vs S(U) = (N/2 - 1) ln U + c")
    from .validation_cases import HARMONIC_CASES

    h.add_argument("--dims", type=int, nargs="+", default=sorted(HARMONIC_CASES), choices=sorted(HARMONIC_CASES),
                   metavar="N", help="wells to run (allowed: %(choices)s; default: all)")
    h.add_argument("--steps", type=positive_int, default=None,
                   help="WLMD steps per well (default: 60000 for N = 2, 4; 120000 for N = 10)")
    h.add_argument("--walkers", type=positive_int, default=256, help="walkers sharing the landscape (default %(default)s)")
    h.add_argument("--seed", type=non_negative_int, default=2026, help="run seed (default %(default)s)")
    h.add_argument("--device", default="cpu", help="torch device (default %(default)s)")
    h.add_argument("--windows", type=positive_int, default=1,
                   help="replica-exchange Wang-Landau windows along U (overlap 0.75, swaps every 100 steps), "
                        "judged on their joined S (default %(default)s: one window)")
    m = vs.add_parser("metad", help="well-tempered metadynamics: F(x) of a double well, S(U) of a 10-D harmonic well")
    m.add_argument("--cases", nargs="+", default=["double_well", "harmonic10"], choices=["double_well", "harmonic10"],
                   metavar="CASE", help="cases to run (allowed: %(choices)s; default: both)")
    m.add_argument("--steps", type=positive_int, default=None, help="steps per case (default: 80000)")
    m.add_argument("--walkers", type=positive_int, default=None, help="walkers sharing the bias (default: 64)")
    m.add_argument("--seed", type=non_negative_int, default=2026, help="run seed (default %(default)s)")
    from .validation_cases import LJ_CASES

    for name, case in LJ_CASES.items():
        c = vs.add_parser(name, help=f"WLMD S(U) of LJ{case.n} in a sphere R_c = {case.radius}: global minimum, "
                                     "C_V(T) vs literature and OpenMM+MBAR")
        c.add_argument("--steps", type=positive_int, default=case.steps, help="WLMD steps per walker (default %(default)s)")
        c.add_argument("--walkers", type=positive_int, default=case.walkers, help="walkers per replica (default %(default)s)")
        c.add_argument("--replicas", type=_replicas, default=case.replicas,
                       help="independent replicas for the error bars, >= 2 (default %(default)s)")
        c.add_argument("--seed", type=non_negative_int, default=2026, help="run seed (default %(default)s)")
        c.add_argument("--threads", type=positive_int, default=2, help="replicas run in parallel (default %(default)s)")
        c.add_argument("--reference-steps", type=positive_int, default=None,
                       help=f"OpenMM Langevin steps per reference temperature (default {case.reference_steps}; "
                            f"{4 * case.reference_steps} with --sphere-centre com)")
        c.add_argument("--no-reference", action="store_true", help="skip the OpenMM+MBAR comparison")
        c.add_argument("--reference-file", metavar="FILE", default=None,
                       help="compare with a stored OpenMM+MBAR reference (written by --save-reference) instead of "
                            "running OpenMM; 'packaged' for the one shipped with physampler" + (
                                "" if name in ("lj13",) else " (none ships for this case)"))
        c.add_argument("--save-reference", metavar="FILE", default=None,
                       help="write the OpenMM+MBAR reference of this run, with its provenance, as NetCDF")
        c.add_argument("--integrator", choices=("ktd", "baoab"), default="ktd",
                       help="splitting of the WLMD step (default %(default)s); with baoab <U>(T) is checked against "
                            "OpenMM+MBAR too, since ktd's configurational bias offsets it")
        c.add_argument("--observables", action="store_true",
                       help="add a static-bias production run on the Wang-Landau S recording R_g and Q6 per energy bin, "
                            "reweighted to <R_g>(T), <Q6>(T) and checked against OpenMM+MBAR")
        c.add_argument("--observable-steps", type=positive_int, default=None,
                       help="steps per walker of that production run (default: a third of --steps)")
        c.add_argument("--windows", type=positive_int, default=1,
                       help="replica-exchange Wang-Landau windows along U (overlap 0.75, swaps every 100 steps; "
                            "--walkers a multiple of it), judged on their joined S (default %(default)s)")
        c.add_argument("--sphere-centre", choices=("origin", "com"), default="origin",
                       help="centre of the confining sphere: the origin, or the centre of mass as in the heat-capacity "
                            "literature (default %(default)s); the OpenMM reference uses the same")
    r = sub.add_parser("run", help="run a sampling job from a TOML config (no CONFIG: the built-in default)")
    r.add_argument("config", nargs="?", help="TOML config (see docs/config.md); omitted: the built-in LJ13 job")
    _job_arguments(r, "run")
    r.add_argument("--print-default-config", action="store_true", help="print the built-in default config and exit")
    ck = sub.add_parser("check", help="check a run or train config: validate it, estimate its memory and run time, "
                                      "print the resolved config; writes nothing")
    ck.add_argument("config", nargs="?", help="run or train config (TOML); omitted: the built-in default job")
    ck.add_argument("--out", help="output directory to check (default: output.directory)")
    ck.add_argument("--steps", type=positive_int, help="steps (overrides run.steps / train.steps)")
    ck.add_argument("--device", help="cpu | cuda | cuda:N (overrides run.device / train.device)")
    ck.add_argument("--threads", type=non_negative_int, help="torch intra-op threads, 0: auto (overrides run.threads / "
                    "train.threads)")
    ck.add_argument("--probe-seconds", type=_seconds, default=1.0,
                    help="wall time of the timed probe, 0.01-600 (default %(default)s)")
    t = sub.add_parser("train", help="full-batch training (adamw | sgd | wand) of a modular-arithmetic model")
    t.add_argument("config", help="train config (TOML: [system] [optimizer] [train] [output])")
    _job_arguments(t, "train")
    pl = sub.add_parser("plot", help="plot a landscape.nc (S(xi), C_V(T), 2-D heat map) or training histories")
    pl.add_argument("landscape", nargs="+", metavar="FILE",
                    help="landscape.nc, or one or more history.nc of physampler train (drawn together)")
    pl.add_argument("-o", "--output", help="PNG to write (default: next to the first file, .png)")
    pl.add_argument("--trajectory", help="trajectory.nc or a training history.nc to overlay on a 2-D landscape")
    inf = sub.add_parser("info", help="grid, steps, walkers, final f_WL, flatness and provenance of a landscape.nc")
    inf.add_argument("landscape", help="landscape.nc")
    inf.add_argument("--target", type=_positive_float, default=0.01, metavar="RMS",
                     help="rms change of S per report interval the estimate of the steps still needed aims at "
                          "(default %(default)s)")
    an = sub.add_parser("analyze", help="canonical table <U>, C_V(T) of a 1-D energy landscape; with --trajectory, "
                                        "the barrier, high-entropy advantage and continuity numbers of a 2-D "
                                        "landscape along a path; as CSV; several replica landscapes of one "
                                        "system: mean and standard error")
    an.add_argument("landscape", nargs="+", help="landscape.nc (one, or independent replicas of one job)")
    an.add_argument("--temperatures", nargs="+", type=_temperature, metavar="T",
                    help="temperatures, or one range LO:HI:N (1-D energy landscapes)")
    an.add_argument("--trajectory", help="trajectory.nc or a training history.nc: the path to analyse on a 2-D "
                                         "landscape")
    an.add_argument("--walker", type=non_negative_int, default=0,
                    help="walker of the trajectory file (position along its walker dimension; default 0)")
    an.add_argument("--low-loss", type=float, metavar="X",
                    help="the advantage is averaged over the columns at x <= X (default: x where the history "
                         "memorised, t_fit; for a trajectory without t_fit, the median x of the path)")
    an.add_argument("--path-csv", help="CSV of the path point by point (step, x, y, S of each replica)")
    an.add_argument("--plot", help="PNG of the landscape with the path and of S along it")
    an.add_argument("--kinetic-dof", type=non_negative_int, default=0,
                    help="degrees of freedom d: add d/2 to C_V for the total heat capacity (default 0)")
    an.add_argument("-o", "--output", help="CSV file (default: standard output)")
    cp = sub.add_parser("compare", help="rms and max |S_B - S_A| after the best offset over the bins both visited, "
                                        "against the tolerance the runs' own statistics give; exit 1 when they "
                                        "disagree")
    cp.add_argument("landscape", nargs=2, metavar="FILE", help="two landscape.nc of one system and grid")
    cp.add_argument("-o", "--output", help="PNG of the difference (1-D: both S and their difference; 2-D: a map)")
    b = vs.add_parser("lj-bulk", help="bulk LJ <U>/N from Langevin MD vs the NIST reference values")
    b.add_argument("--steps", type=positive_int, default=100000, help="production steps per state point (default %(default)s)")
    b.add_argument("--equilibrate", type=positive_int, default=20000, help="equilibration steps (default %(default)s)")
    b.add_argument("--atoms", type=positive_int, default=500, help="atoms, 4k^3 for the fcc start (default %(default)s, as NIST)")
    b.add_argument("--seed", type=non_negative_int, default=2026, help="run seed (default %(default)s)")
    b.add_argument("--threads", type=positive_int, default=2, help="state points run in parallel (default %(default)s)")
    if plugins:
        from .registry import validations

        for kind in validations().values():
            kind.arguments(vs.add_parser(kind.name, help=kind.help))
    return p


def _seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not 0.01 <= v <= 600:  # NaN fails too
        raise argparse.ArgumentTypeError(f"must be a number of seconds from 0.01 to 600 (got {text!r})")
    return v


def _positive_float(text: str) -> float:
    import math

    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not (v > 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0 (got {text!r})")
    return v


def _temperature(text: str):
    import numpy as np

    try:
        if ":" in text:
            lo, hi, n = text.split(":")
            lo, hi, n = float(lo), float(hi), int(n)
            if not (0 < lo < hi) or n < 2:
                raise ValueError
            return list(np.linspace(lo, hi, n))
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a temperature > 0 or a range LO:HI:N with 0 < LO < HI, N >= 2 "
                                         f"(got {text!r})") from None
    if not (v > 0 and np.isfinite(v)):
        raise argparse.ArgumentTypeError(f"must be a temperature > 0 (got {text!r})")
    return [v]


def _replicas(text: str) -> int:
    v = positive_int(text)
    if v < 2:
        raise argparse.ArgumentTypeError(f"must be an integer >= 2 (got {text!r})")
    return v


def _validate_harmonic(args) -> int:
    import torch

    from .validation import run_harmonic

    try:
        torch.device(args.device)
    except (RuntimeError, ValueError):
        print(f"physampler: error: --device: must be a torch device such as cpu or cuda (got {args.device!r})", file=sys.stderr)
        return 2
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"physampler: error: --device: CUDA is not available on this machine (got {args.device!r})", file=sys.stderr)
        return 2
    head = (f"{'N':>3} {'dS/dlnU':>9} {'exact':>6} {'max|dev|':>9} {'edge|dev|':>9} {'H min/mean':>10} {'H max/mean':>10} "
            f"{'<U>':>8} {'exact':>6} {'C_V':>7} {'exact':>6} {'wall s':>7}  result")
    steps = "default" if args.steps is None else args.steps
    if args.walkers % args.windows:
        print(f"physampler: error: --walkers: must be a multiple of --windows = {args.windows} (got {args.walkers})",
              file=sys.stderr)
        return 2
    win = f", {args.windows} replica-exchange windows" if args.windows > 1 else ""
    print(f"physampler {__version__}: WLMD on harmonic wells, {args.walkers} walkers x {steps} steps, seed {args.seed}"
          + win)
    print(head)
    ok = True
    for n in args.dims:
        try:
            r = run_harmonic(n, steps=args.steps, walkers=args.walkers, seed=args.seed, device=args.device,
                             windows=args.windows)
        except ValueError as e:  # windows that do not fit the well's grid
            print(f"physampler: error: --windows: {e}", file=sys.stderr)
            return 2
        failed = [k for k, v in r.checks.items() if not v]
        ok &= not failed
        verdict = "PASS" if not failed else "FAIL (" + ", ".join(failed) + ")"
        print(f"{n:>3} {r.slope:>9.4f} {r.exact_slope:>6.2f} {r.max_deviation:>9.4f} {r.edge_deviation:>9.4f} "
              f"{r.flat_min:>10.3f} {r.flat_max:>10.3f} {r.mean_energy:>8.4f} {r.exact_mean_energy:>6.2f} "
              f"{r.heat_capacity:>7.4f} {r.exact_heat_capacity:>6.2f} {r.wall_time:>7.1f}  {verdict}", flush=True)
    print("criteria: max|dev| <= 0.1 (interior bins, c fitted), H within +-20 % of flat (second half), "
          "slope within 2 % (or 0.05), <U> and C_V within 2 % at the check temperature")
    return 0 if ok else 1


def _validate_metad(args) -> int:
    from .validation_metad import RUNS

    print(f"physampler {__version__}: well-tempered metadynamics (BAOAB, potential on, T = 1), seed {args.seed}")
    ok = True
    for name in args.cases:
        r = RUNS[name](steps=args.steps, walkers=args.walkers, seed=args.seed)
        print(f"{name}: {r.walkers} walkers x {r.steps} steps, {r.wall_time:.1f} s")
        for label, value in r.measured.items():
            limit, passed = r.limits[label]
            ok &= passed
            print(f"  {label:<22} {value:>10.4f}   {limit:<12} {'PASS' if passed else 'FAIL'}", flush=True)
    return 0 if ok else 1


def _validate_lj(args) -> int:
    from .validation_lj import LJ_CASES, run_lj_cluster

    case = LJ_CASES[args.target]
    clash = [f for f, on in (("--no-reference", args.no_reference), ("--reference-steps", args.reference_steps)) if on]
    if args.reference_file and clash:
        print(f"physampler: error: --reference-file: cannot be combined with {clash[0]}", file=sys.stderr)
        return 2
    if args.save_reference and (args.no_reference or args.reference_file):
        print("physampler: error: --save-reference: needs a fresh OpenMM reference (drop --no-reference and "
              "--reference-file)", file=sys.stderr)
        return 2
    if args.save_reference:
        from .io import FileError

        try:
            _output_path(args.save_reference)
        except FileError as e:
            print(f"physampler: error: --save-reference: {e}", file=sys.stderr)
            return 2
    reference = not args.no_reference
    if args.reference_file:
        from .io import FileError
        from .references import PACKAGED, packaged_reference, read_reference
        from .validation_lj import reference_mismatch

        if args.reference_file == "packaged" and args.target not in PACKAGED:
            print(f"physampler: error: --reference-file: no reference ships for {args.target} (packaged: "
                  f"{', '.join(PACKAGED)})", file=sys.stderr)
            return 2
        try:
            reference = (packaged_reference(args.target) if args.reference_file == "packaged"
                         else read_reference(args.reference_file))
        except FileError as e:
            print(f"physampler: error: {e}", file=sys.stderr)
            return 2
        why = reference_mismatch(args.target, reference, args.sphere_centre, args.observables)
        if why:
            print(f"physampler: error: {args.reference_file}: {why}", file=sys.stderr)
            return 2
    elif not args.no_reference:
        from .references import available

        missing = available()
        if missing:
            print(f"physampler: error: --no-reference: the OpenMM+MBAR reference needs {missing}; install "
                  "'physampler[validation]' or pass --no-reference", file=sys.stderr)
            return 2
    if args.walkers % args.windows:
        print(f"physampler: error: --walkers: must be a multiple of --windows = {args.windows} (got {args.walkers})",
              file=sys.stderr)
        return 2
    print(f"physampler {__version__}: WLMD S(U) of LJ{case.n} in a confining sphere R_c = {case.radius} sigma "
          f"around the {'centre of mass' if args.sphere_centre == 'com' else 'origin'} "
          f"(wall k = 100 eps/sigma^2), {args.replicas} replicas x {args.walkers} walkers x {args.steps} steps, "
          f"splitting {args.integrator}, seed {args.seed}"
          + (f", {args.windows} replica-exchange windows" if args.windows > 1 else ""), flush=True)
    r = run_lj_cluster(args.target, steps=args.steps, walkers=args.walkers, replicas=args.replicas, seed=args.seed,
                       reference=reference, reference_steps=args.reference_steps, threads=args.threads,
                       splitting=args.integrator, sphere_centre=args.sphere_centre, observables=args.observables,
                       observable_steps=args.observable_steps, windows=args.windows)
    print(f"WLMD wall time {r.wall_time:.1f} s; landscape flatness (min, max H/mean) "
          f"{r.flatness[0]:.3f}, {r.flatness[1]:.3f}")
    print("C_V is configurational (add 3n/2 = %.1f for the total)" % (1.5 * r.n))
    _lj_table(r)
    if r.observables is not None:
        _lj_observables_table(r)
    found = ", ".join(f"{s.energy:.6f} (x{s.count})" for s in r.structures[:5])
    print(f"inherent structures (lowest 5 of {len(r.structures)}): {found}")
    if args.save_reference:
        from .references import write_reference

        write_reference(args.save_reference, r.reference, command=" ".join(["physampler", *args.argv]))
        print(f"wrote the OpenMM+MBAR reference to {args.save_reference}")
    return _lj_checks(r, args)


def _lj_table(r) -> None:
    ref = r.reference
    head = f"{'T':>6} {'<U> WLMD':>16} {'C_V WLMD':>14}"
    if ref is not None:
        head += f" {'<U> OpenMM+MBAR':>16} {'C_V OpenMM+MBAR':>16} {'z(U)':>6} {'z(C_V)':>6}"
    print(head)
    for k, t in enumerate(r.temperatures):
        line = (f"{t:>6.3f} {r.mean_energy[k]:>9.3f} ± {r.mean_energy_error[k]:<5.3f}"
                f" {r.heat_capacity[k]:>7.2f} ± {r.heat_capacity_error[k]:<4.2f}")
        if ref is not None:
            line += (f" {ref.mean_energy[k]:>9.3f} ± {ref.mean_energy_error[k]:<5.3f}"
                     f" {ref.heat_capacity[k]:>8.2f} ± {ref.heat_capacity_error[k]:<5.2f}"
                     f" {r.energy_deviations[k]:>6.2f} {r.deviations[k]:>6.2f}")
        print(line)


def _lj_observables_table(r) -> None:
    o = r.observables
    names = list(o.mean)
    print(f"static-bias production: {o.replicas} replicas x {o.steps} steps, observed every {o.every} steps, "
          f"{o.wall_time:.1f} s")
    have_ref = r.reference is not None and all(n in r.reference.observables for n in names)
    print(f"{'T':>6}" + "".join(f" {'<' + n + '> static':>18}" + (f" {'<' + n + '> OpenMM+MBAR':>20} {'z':>6}"
                                                                   if have_ref else "") for n in names))
    for k, t in enumerate(r.temperatures):
        line = f"{t:>6.3f}"
        for n in names:
            line += f" {o.mean[n][k]:>9.4f} ± {o.error[n][k]:<6.4f}"
            if have_ref:
                ref, se = r.reference.observables[n]
                line += f" {ref[k]:>11.4f} ± {se[k]:<6.4f} {r.observable_deviations(n)[k]:>6.2f}"
        print(line)


def _lj_checks(r, args) -> int:
    import numpy as np

    rows = [
        ("global minimum", f"{r.minimum_found:.6f}", f"{r.global_minimum:.6f} (to 1e-5)", "global minimum"),
        ("C_V peak T", f"{r.peak_temperature:.4f}", f"{r.peak_range[0]}-{r.peak_range[1]} (literature)",
         "C_V peak in literature range"),
        ("C_V peak height", f"{r.peak_height:.2f}", "reported", None),
    ]
    if r.reference is not None:
        rows += [("C_V vs OpenMM+MBAR", f"max|z| {np.max(np.abs(r.deviations)):.2f}", f"<= {r.z}", "C_V vs OpenMM+MBAR"),
                 ("<U> vs OpenMM+MBAR", f"max|z| {np.max(np.abs(r.energy_deviations)):.2f}",
                  "reported (ktd offset)" if args.integrator == "ktd" else f"<= {r.z}", "<U> vs OpenMM+MBAR")]
        for n in (r.observables.mean if r.observables is not None else ()):
            z = r.observable_deviations(n)
            if z is not None:
                rows.append((f"<{n}> vs OpenMM+MBAR", f"max|z| {np.max(np.abs(z)):.2f}", f"<= {r.z}",
                             f"<{n}> vs OpenMM+MBAR"))
    checks = r.checks
    ok = True
    print(f"{'check':<20} {'measured':>20} {'reference':>28}  result")
    for label, got, want, key in rows:
        key = key if key in checks else None
        verdict = "" if key is None else ("PASS" if checks[key] else "FAIL")
        ok &= key is None or checks[key]
        print(f"{label:<20} {got:>20} {want:>28}  {verdict}")
    return 0 if ok else 1


def _validate_bulk(args) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from .validation_lj import NIST_POINTS, run_bulk

    k = round((args.atoms / 4) ** (1 / 3))
    if 4 * k**3 != args.atoms or (args.atoms / 0.86) ** (1 / 3) < 6.0:
        print(f"physampler: error: --atoms: must be 4k^3 with a box of at least 6 sigma (2 r_c), e.g. 256, 500, 864 "
              f"(got {args.atoms})", file=sys.stderr)
        return 2
    print(f"physampler {__version__}: bulk LJ, {args.atoms} atoms, cutoff 3 sigma truncated + analytic tail correction "
          f"(the NIST convention), BAOAB dt 0.005, gamma 1, {args.equilibrate} + {args.steps} steps, seed {args.seed}",
          flush=True)

    def one(p):
        return run_bulk(p.temperature, p.density, n=args.atoms, cutoff=3.0, cutoff_mode="truncated",
                        tail_correction=True, steps=args.steps, equilibrate=args.equilibrate, seed=args.seed)

    with ThreadPoolExecutor(max_workers=args.threads) as ex:
        results = list(ex.map(one, NIST_POINTS))
    print(f"{'T*':>5} {'rho*':>6} {'U/N measured':>20} {'U/N NIST':>9} {'z':>6} {'wall s':>7}  result")
    ok = True
    for p, r in zip(NIST_POINTS, results):
        z = (r.energy_per_atom - p.energy) / r.error
        good = abs(z) <= 3.0
        ok &= good
        print(f"{p.temperature:>5.2f} {p.density:>6.3f} {r.energy_per_atom:>11.4f} ± {r.error:<6.4f} {p.energy:>9.4f} "
              f"{z:>6.2f} {r.wall_time:>7.1f}  {'PASS' if good else 'FAIL'}")
    print("criterion: |U/N - NIST| <= 3 standard errors (blocking); NIST's own error (~1e-4) is neglected. MD with a "
          "truncated potential misses the impulsive force at r_c that MC sees; at 3 sigma its effect is below the error.")
    return 0 if ok else 1


def _say(prefix: str, msg) -> None:
    """One line on stderr, whatever the message holds."""
    print(prefix + " ".join(str(msg).split("\n")), file=sys.stderr, flush=True)


def _job_errors(fn, out_of):
    """Run ``fn()``; the errors a job can end with become one line and an exit status."""
    from . import config as C
    from .distributed import RankFailure
    from .faults import NumericalFault
    from .io import FileError
    from .outdir import JobError

    try:
        return fn()
    except (C.ConfigError, JobError) as e:
        _say("config error: ", e)
        return 2
    except FileError as e:
        _say("error: ", e)
        return 2
    except NumericalFault as e:
        out = out_of()
        kept = out is not None and any((out / f).exists() for f in ("checkpoint.pt", "manifest.json"))
        _say("physampler: numerical fault: ", f"{e} (" + ("the last checkpoint is intact; fix the set-up or resume"
                                                         if kept else "no checkpoint was written yet") + ")")
        return 1
    except RankFailure as e:
        # The process group is broken: leave at once rather than hang in its teardown.
        _say("physampler: error: ", e)
        os._exit(1)
    except OSError as e:  # a write that failed (disk full, read-only): the previous files are intact
        _say("error: ", f"{e.filename or '?'}: cannot write: {e.strerror or e}; the files written before are intact")
        return 1


def _bad_input(e: Exception) -> int:
    """One line for a file (``error: PATH: ...``) or a value (``physampler: error: ...``) that cannot be used; status 2."""
    from .io import FileError

    _say("error: " if isinstance(e, FileError) else "physampler: error: ", e)
    return 2


def _apply_overrides(cfg: dict, args, kind: str) -> str:
    """``--steps``, ``--device`` and ``--threads`` into the section of ``kind`` that holds them, then
    the config's cross-checks again; returns that section's name."""
    from . import config as C

    sec = C.section(kind)
    for key in ("steps", "device", "threads"):
        if getattr(args, key) is not None:
            cfg[sec][key] = getattr(args, key)
    C.check(cfg, kind)
    return sec


def _launch(args, kind: str, load, start) -> int:
    """``run`` or ``train`` (``kind`` names the config section with ``steps`` and ``device``):
    ``load()`` gives (config, text); the command-line overrides are applied and checked again;
    ``start(cfg, text, out, **options)`` runs the job; errors become one line (:func:`_job_errors`)."""
    from pathlib import Path

    where = {}

    def go():
        cfg, text = load()
        _apply_overrides(cfg, args, kind)
        where["out"] = out = Path(args.out or cfg["output"]["directory"])
        return start(cfg, text, out, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet,
                     log=lambda m: print(m, file=sys.stderr, flush=True))

    return _job_errors(go, lambda: where.get("out"))


def _run(args) -> int:
    from . import config as C
    from .job import DEFAULT_CONFIG, run

    if args.print_default_config:
        print(DEFAULT_CONFIG, end="")
        return 0
    return _launch(args, "run", lambda: (C.parse(DEFAULT_CONFIG), DEFAULT_CONFIG) if args.config is None
                   else C.load(args.config), run)


def _train(args) -> int:
    from . import config as C

    def start(*a, **kw):
        from .adapters.training import run_training

        return run_training(*a, **kw)

    return _launch(args, "train", lambda: C.load(args.config, kind="train"), start)


def _probe(cfg: dict, text: str, kind: str, seconds: float) -> tuple[int, float]:
    """(steps, seconds) of a timed probe of the job in memory, after one warm-up chunk (numba
    compilation, torch's first-call costs); doubles the chunk until it lasts ``seconds``."""
    import time

    if kind != "run":
        from .registry import job_kinds

        probe_steps = job_kinds()[kind].probe(cfg, text)
    else:
        from .job import advance, build, initial_positions
        from .rng import make_rng

        job = build(cfg, text)
        rng = make_rng(cfg["run"]["seed"], cfg["run"]["walkers"], device=job.device, noise=cfg["run"]["noise"])
        box = [job.integrator.init(initial_positions(job), rng)]

        def probe_steps(n):
            box[0] = advance(job, box[0], n)
    probe_steps(1)
    n = 1
    while True:
        t0 = time.perf_counter()
        probe_steps(n)
        dt = time.perf_counter() - t0
        if dt >= seconds or n >= 1 << 20:
            return n, dt
        n = min(n * 2 if dt < seconds / 8 else max(n + 1, int(n * seconds / max(dt, 1e-9))), 1 << 20)


def _check(args) -> int:
    """``physampler check``: what ``run`` / ``train`` would do with this config, without doing it."""
    from pathlib import Path

    from . import config as C
    from .io import regular_file
    from .job import DEFAULT_CONFIG, preflight
    from .resources import format_bytes, available_memory

    def go():
        if args.config is None:
            text, kind = DEFAULT_CONFIG, "run"
            cfg = C.parse(text)
        else:
            kind = C.kind_of(regular_file(args.config, "TOML config").read_text(encoding="utf-8", errors="replace"))
            cfg, text = C.load(args.config, kind=kind)
        sec = _apply_overrides(cfg, args, kind)
        need = preflight(cfg, sec)
        total = cfg[sec]["steps"]
        what = (f"{cfg['system']['kind']}, {cfg['run']['walkers']} walkers x {total} steps" if kind == "run"
                else C.describe(cfg, kind))
        print(f"config      {args.config or '(built-in default)'}: {kind} config, {what}")
        print(f"memory      estimated {format_bytes(need)} of {format_bytes(available_memory(cfg[sec]['device']))} "
              f"available on {cfg[sec]['device']}")
        from .threads import apply

        threads, how = apply(cfg[sec]["threads"])
        n, dt = _probe(cfg, text, kind, args.probe_seconds)
        rate = n / dt
        print(f"time        about {_duration(total / rate)} at {rate:.4g} steps/s (a probe of {n} steps, "
              f"{threads} torch threads, {how})")
        out = Path(args.out or cfg["output"]["directory"])
        ckpt = out / ("checkpoint.pt" if kind != "run" or not os.environ.get("WORLD_SIZE") else "manifest.json")
        state = ("does not exist: run creates it" if not out.exists() else
                 "holds a checkpoint: --resume continues it" if ckpt.exists() else
                 "exists: run needs --overwrite (or is refused)" if any(out.iterdir()) else "exists and is empty")
        print(f"output      {out} {state}")
        print("resolved config (every default filled in):")
        print(C.dumps(cfg, kind=kind), end="")
        return 0

    return _job_errors(go, lambda: None)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _output_path(path: str):
    """``-o``: a file to write, in a directory that exists."""
    from pathlib import Path

    from .io import FileError

    p = Path(path)
    if p.is_dir():
        raise FileError(p, "is a directory; -o names the file to write")
    if not p.parent.is_dir():
        raise FileError(p, f"cannot be written: the directory {str(p.parent)!r} does not exist")
    return p


def _plot(args) -> int:
    from pathlib import Path

    from .io import FileError
    from .plotting import is_training_history, plot_landscape, plot_training

    try:
        first = args.landscape[0]
        out = _output_path(args.output) if args.output else Path(first).with_suffix(".png")
        if is_training_history(first):
            for f in args.landscape:
                if not is_training_history(f):
                    raise ValueError(f"FILE: every file must be a history.nc of physampler train (got {f!r})")
            plot_training(args.landscape, out)
        else:
            if len(args.landscape) > 1:
                raise ValueError(f"FILE: one landscape.nc at a time (got {len(args.landscape)} files)")
            plot_landscape(first, out, trajectory=args.trajectory)
    except (FileError, ValueError) as e:
        return _bad_input(e)
    print(out)
    return 0


def _attr(attrs: dict, name: str, kind=float):
    """A global attribute as ``kind``, or '?' when it is missing or not of that kind."""
    import numpy as np

    v = np.asarray(attrs.get(name, np.nan)).reshape(-1)
    try:
        return kind(v[0]) if v.size == 1 and np.isfinite(float(v[0])) else "?"
    except (TypeError, ValueError):
        return "?"


def _info(args) -> int:
    from . import convergence
    from .io import FileError, read_landscape

    try:
        ls, attrs = read_landscape(args.landscape)
    except FileError as e:
        _say("error: ", e)
        return 2
    print(f"file        {args.landscape}")
    print(f"source      {attrs.get('source', '?')}, created {attrs.get('date_created', '?')}, "
          f"Conventions {attrs.get('Conventions', '?')}")
    for a in ls.grid.axes:
        print(f"axis        {a.name} [{a.units}]: {a.lower:g} .. {a.upper:g}, {a.bins} bins of {a.width:g}")
    print(f"kernel      sigma {ls.sigma.tolist()} bins, cutoff {ls.cutoff} sigma, edge {ls.edge}, "
          f"out_of_range {ls.out_of_range}")
    if "method" in attrs:
        dT = _attr(attrs, "method_delta_T")
        tempering = "" if dT == "?" else f" (delta_T {dT:g}, bias factor {_attr(attrs, 'method_bias_factor'):g})"
        potential = {1: "on", 0: "off"}.get(_attr(attrs, "integrator_potential", int), "?")
        print(f"method      {attrs['method']}{tempering}, splitting {attrs.get('integrator_splitting', '?')}, "
              f"potential {potential}")
    complete = _attr(attrs, "complete", int)
    print(f"run         steps {_attr(attrs, 'steps_done', int)}, walkers {_attr(attrs, 'walkers', int)}, "
          f"seed {_attr(attrs, 'seed', int)}, complete {'?' if complete == '?' else bool(complete)}")
    f = _attr(attrs, "f_wl_final")
    print(f"f_WL        {f if f == '?' else format(f, '.6g')} at the last step")
    lo, hi = ls.flatness()
    print(f"histogram   {int(ls.visited().sum())} of {ls.grid.size} bins visited; min/mean {lo:.3f}, max/mean {hi:.3f}")
    print(f"convergence {convergence.from_attrs(attrs)}")
    print(f"            criterion: {convergence.CRITERION}")
    for line in _series_lines(attrs, args.target):
        print(f"            {line}")
    return 0


def _series_lines(attrs: dict, target: float) -> list[str]:
    """What ``physampler info`` says of the convergence series of a landscape.nc."""
    import numpy as np

    from . import convergence

    def col(name):
        v = np.asarray(attrs.get(name, []), dtype=np.float64).reshape(-1)
        return v

    steps, rms = col("convergence_record_steps"), col("convergence_rms_change")
    if not steps.size or rms.size != steps.size:
        return ["series: none recorded (a run with fewer than two report records)"]
    out = [f"series: {steps.size} records; at step {steps[-1]:.0f}: rms change of S since the previous record "
           f"{rms[-1]:.3g}"]
    flat = col("convergence_record_flatness")
    if flat.size == steps.size and np.isfinite(flat[-1]):
        out[-1] += f", flatness min/mean H {flat[-1]:.3g}"
    per_walker = col("round_trips")
    if per_walker.size:
        ends = col("round_trip_ends")
        where = (f" between {attrs.get('round_trip_axis', 'the first CV')} <= {ends[0]:.4g} and >= {ends[1]:.4g}"
                 if ends.size == 2 else "")
        out.append(f"round trips per walker{where}: mean {per_walker.mean():.3g}, min {per_walker.min():.0f}, "
                   f"max {per_walker.max():.0f}")
    delta = _attr(attrs, "convergence_second_half_change")
    if delta != "?":
        out.append(f"error estimate of S: {delta:.3g} (rms change of S over the second half; "
                   "physampler compare uses it)")
    tr = convergence.steps_to_target(np.stack([steps, rms], axis=1), target)
    if tr.remaining is None:
        why = ("fewer than 3 records with a change" if tr.records < 3 else
               f"the rms change does not fall (exponent {tr.exponent:.2g} over the last {tr.records} records, "
               "from a quarter of the last step on)")
        out.append(f"steps to rms change {target:g}: no estimate ({why})")
    elif tr.remaining == 0:
        out.append(f"steps to rms change {target:g}: reached")
    else:
        out.append(f"steps to rms change {target:g}: about {tr.remaining:.3g} more (rms change ~ t^-{tr.exponent:.2g} "
                   f"over the last {tr.records} records, from a quarter of the last step on, at the same report "
                   "interval)")
    return out


CSV_COLUMNS = ("T", "mean_energy", "mean_energy_error", "energy_variance", "heat_capacity", "heat_capacity_error",
               "log_z", "truncation", "contained")


def _analyze(args) -> int:
    """CSV of the canonical estimates (:func:`physampler.analysis.canonical_replicas`): errors are
    standard errors over the replica files (empty for one file); ``truncation`` is the estimated
    fraction of the canonical variance beyond the sampled range and ``contained`` (1/0) whether
    it is at most 0.02 — a row with contained = 0 is biased by the grid's edges."""
    import csv
    import io as _io

    import numpy as np

    from .analysis import canonical_replicas, reweight_observables
    from .io import FileError, density_of_states, read_landscape, write_text
    from .plotting import is_energy_axis

    if args.trajectory is not None:
        return _analyze_path(args)
    try:
        if args.temperatures is None:
            raise ValueError("--temperatures: required for the canonical table of a 1-D energy landscape "
                             "(or give --trajectory to analyse a path on a 2-D landscape)")
        out = _output_path(args.output) if args.output else None
        pairs, observed = [], []
        for path in args.landscape:
            ls, attrs = read_landscape(path)
            if ls.grid.ndim != 1 or not is_energy_axis(ls.grid.axes[0].name, ls.grid.axes[0].units):
                raise ValueError(f"landscape: analyze needs 1-D landscapes over an energy CV (got axes {ls.grid.names}"
                                 f" in {path!r})")
            if not bool(ls.visited().any()):
                raise FileError(path, "no bin was visited, so there is no entropy to analyse")
            pairs.append((ls.grid.axes[0].centres(), density_of_states(path, ls, attrs)))
            observed.append({k: ls.observable_mean(k) for k in sorted(ls.observable_sums)})
        temps = [t for group in args.temperatures for t in group]
        c, se = canonical_replicas(pairs, temps, kinetic_dof=args.kinetic_dof)
        names = [k for k in observed[0] if all(k in o for o in observed)]
        per_file = [reweight_observables(u, e, {k: o[k] for k in names}, temps) for (u, e), o in zip(pairs, observed)]
        obs = {k: np.stack([r[k] for r in per_file]) for k in names}
    except (FileError, ValueError) as e:
        return _bad_input(e)
    buf = _io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(list(CSV_COLUMNS) + [col for k in obs for col in (f"mean_{k}", f"mean_{k}_error")])
    for i, t in enumerate(c.temperature):
        err = (lambda f: "" if se is None else f"{getattr(se, f)[i]:.10g}")
        extra = []
        for v in obs.values():
            extra += [f"{v[:, i].mean():.10g}", "" if len(v) < 2 else f"{v[:, i].std(ddof=1) / np.sqrt(len(v)):.10g}"]
        w.writerow([f"{t:.10g}", f"{c.mean_energy[i]:.10g}", err("mean_energy"), f"{c.energy_variance[i]:.10g}",
                    f"{c.heat_capacity[i]:.10g}", err("heat_capacity"), f"{c.log_z[i]:.10g}",
                    f"{c.truncation[i]:.4g}", int(c.contained[i])] + extra)
    if out is None:
        sys.stdout.write(buf.getvalue())
    else:
        write_text(out, buf.getvalue())
    return 0


def _compare(args) -> int:
    """Print the :func:`physampler.analysis.compare` of two landscapes and the verdict against
    :func:`~physampler.analysis.agreement_tolerance`: 0 consistent (or no tolerance: a run
    without a convergence judgement), 1 not consistent, 2 bad input."""
    import numpy as np

    from .analysis import AGREEMENT_FACTOR, agreement_tolerance, compare
    from .io import FileError, density_of_states, read_landscape

    try:
        out = _output_path(args.output) if args.output else None
        runs = []
        for path in args.landscape:
            ls, attrs = read_landscape(path)
            if not bool(ls.visited().any()):
                raise FileError(path, "no bin was visited, so there is no landscape to compare")
            runs.append((path, ls, attrs, density_of_states(path, ls, attrs)))
        (pa, la, aa, sa), (pb, lb, ab, sb) = runs
        for x, y in zip(la.grid.axes, lb.grid.axes):
            if la.grid.ndim != lb.grid.ndim or (x.name, x.lower, x.upper, x.bins) != (y.name, y.lower, y.upper, y.bins):
                raise ValueError(f"FILE: both landscapes must have one grid (got {la.grid.names} and {lb.grid.names}, "
                                 f"or other ranges, in {pa!r} and {pb!r})")
        d = compare(sa, sb)
        if d.common == 0:
            raise ValueError(f"FILE: {pa!r} and {pb!r} have no visited bin in common")
    except (FileError, ValueError) as e:
        return _bad_input(e)
    idx = np.unravel_index(d.where, sa.shape)
    where = ", ".join(f"{a.name} = {float(a.centres()[int(i)]):.4g}" for a, i in zip(la.grid.axes, idx))
    print(f"bins        {d.common} visited by both (of {int(np.isfinite(sa).sum())} and {int(np.isfinite(sb).sum())} "
          f"visited; grid {sa.size})")
    print(f"offset      S_B - S_A = {d.offset:.6g} (mean over those bins)")
    print(f"difference  rms {d.rms:.4g}, max |dS| {d.max_abs:.4g} at {where}")
    eps = [_attr(a, "convergence_second_half_change") for a in (aa, ab)]
    if "?" in eps:
        print("tolerance   none: a run without an error estimate (the rms change of S over its second half, "
              "docs/science.md §14; runs written before it, or with no report in their second half)")
        rc = 0
    else:
        tol = agreement_tolerance(*eps)
        print(f"tolerance   rms {tol:.4g} = {AGREEMENT_FACTOR:g}*sqrt(dA^2 + dB^2), d = each run's rms change of S "
              f"over its second half ({eps[0]:.3g}, {eps[1]:.3g})")
        ok = d.rms <= tol
        print(f"verdict     {'consistent' if ok else 'NOT consistent'}: rms dS {d.rms:.4g} "
              f"{'<=' if ok else '>'} {tol:.4g}")
        rc = 0 if ok else 1
    if out is not None:
        import matplotlib.pyplot as plt

        from .io import atomic_write
        from .plotting import difference_figure

        fig = difference_figure(la, sa, sb, d, labels=(str(pa), str(pb)))
        atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=110, format="png", bbox_inches="tight"))
        plt.close(fig)
        print(out)
    return rc


def _analyze_path(args) -> int:
    """Summary CSV (quantity, value, standard_error, replicas, units, definition) of
    :data:`physampler.analysis.PATH_NUMBERS` for the path of ``--trajectory`` on each landscape;
    the straight path needs a training history's t_fit and t_gen attributes (−1: never)."""
    import csv
    import io as _io

    import numpy as np

    from .analysis import PATH_NUMBERS, mean_and_error, path_numbers, project_path
    from .io import FileError, atomic_write, density_of_states, read_landscape, read_path, write_text

    try:
        out = _output_path(args.output) if args.output else None
        extra = {k: _output_path(getattr(args, k)) for k in ("path_csv", "plot") if getattr(args, k)}
        grids, entropies, first_attrs = None, [], None
        for path in args.landscape:
            ls, attrs = read_landscape(path)
            if ls.grid.ndim != 2:
                raise ValueError(f"landscape: --trajectory needs 2-D landscapes (got axes {ls.grid.names} in {path!r})")
            if not bool(ls.visited().any()):
                raise FileError(path, "no bin was visited, so there is no entropy to analyse")
            g = [a.centres().numpy() for a in ls.grid.axes]
            if grids is None:
                grids, names, first_attrs = g, ls.grid.names, attrs
                labels = [f"{a.long_name or a.name}" for a in ls.grid.axes]
            elif ls.grid.names != names or any(a.shape != b.shape or not np.allclose(a, b) for a, b in zip(g, grids)):
                raise ValueError(f"landscape: every replica must have the grid of {args.landscape[0]!r} "
                                 f"(got another in {path!r})")
            entropies.append(density_of_states(path, ls, attrs))
        rec = read_path(args.trajectory, names, walker=args.walker, landscape_attrs=first_attrs)
        index = {}
        for key in ("t_fit", "t_gen"):
            t = np.asarray(rec.attrs.get(key, -1)).reshape(-1)
            hit = np.nonzero(rec.steps == int(t[0]))[0] if t.size == 1 and t[0] >= 0 else []
            index[key] = int(hit[0]) if len(hit) else None
        if args.low_loss is not None:
            x_low = float(args.low_loss)
        elif index["t_fit"] is not None:
            x_low = float(rec.values[0][index["t_fit"]])
        else:
            x_low = float(np.nanmedian(rec.values[0]))
        rows = [path_numbers(grids[0], grids[1], s, rec.steps, rec.values[0], rec.values[1], x_low=x_low,
                             memorised=index["t_fit"], generalised=index["t_gen"]) for s in entropies]
    except (FileError, ValueError) as e:
        return _bad_input(e)
    stats = mean_and_error(rows)
    buf = _io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["quantity", "value", "standard_error", "replicas", "units", "definition"])
    for k, (units, definition) in PATH_NUMBERS.items():
        m, e = stats[k]
        n = sum(np.isfinite(r[k]) for r in rows)
        w.writerow([k, f"{m:.10g}", "" if not np.isfinite(e) else f"{e:.4g}", n,
                    {"x": names[0], "y": names[1]}.get(units, units), definition])
    w.writerow(["x_low", f"{x_low:.10g}", "", len(rows), names[0], "low-loss part: columns at x <= x_low"])
    if out is None:
        sys.stdout.write(buf.getvalue())
    else:
        write_text(out, buf.getvalue())
    if "path_csv" in extra:
        pb = _io.StringIO()
        pw = csv.writer(pb, lineterminator="\n")
        pw.writerow(["step", names[0], names[1]] + [f"S_{r}" for r in range(len(entropies))])
        cols = [project_path(grids[0], grids[1], s, rec.values[0], rec.values[1]).entropy for s in entropies]
        for k in range(rec.steps.size):
            pw.writerow([int(rec.steps[k]), f"{rec.values[0][k]:.10g}", f"{rec.values[1][k]:.10g}"]
                        + ["" if not np.isfinite(c[k]) else f"{c[k]:.10g}" for c in cols])
        write_text(extra["path_csv"], pb.getvalue())
    if "plot" in extra:
        import matplotlib.pyplot as plt

        from .plotting import path_analysis_figure

        fig = path_analysis_figure(grids[0], grids[1], entropies, rec, stats, labels)
        atomic_write(extra["plot"], lambda tmp: fig.savefig(tmp, dpi=110, format="png", bbox_inches="tight"))
        plt.close(fig)
    return 0


def main(argv=None) -> int:
    """The command line; SIGINT/SIGTERM at any moment end it with one line and 128 + signal."""
    handlers = {}
    try:  # from the first handler on, a signal lands inside this try (also while the marker is printed)
        if threading.current_thread() is threading.main_thread():
            handlers = signals.install_startup()
        if os.environ.get("PHYSAMPLER_STARTUP_MARKER"):  # for tests that signal a starting process
            print("physampler: handlers installed", file=sys.stderr, flush=True)
        code = _main(argv)
        signals.raise_pending()  # a signal whose raise a library swallowed and no driver honoured
        return code
    except signals.Interrupted as e:
        signals.honoured()
        name = signal.Signals(e.signum).name
        _say("physampler: ", f"{name}: stopped; the files written before are complete (resume from the last "
                             f"checkpoint, if any)")
        return 128 + e.signum
    finally:
        signals.restore(handlers)


def _main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(plugins=argv[:1] == ["validate"]).parse_args(argv)
    args.argv = argv  # the command as given, for the provenance of what it writes
    if args.command in ("run", "train", "validate"):  # the commands that step walkers
        from .allocator import keep_freed_memory

        keep_freed_memory()
    command = {"run": _run, "plot": _plot, "train": _train, "check": _check, "info": _info, "analyze": _analyze,
               "compare": _compare}
    if args.command in command:
        return command[args.command](args)
    if args.command == "validate":
        from .faults import NumericalFault

        from .registry import validations
        from .validation_cases import LJ_CASES

        target = {"harmonic": _validate_harmonic, "lj-bulk": _validate_bulk, "metad": _validate_metad,
                  **dict.fromkeys(LJ_CASES, _validate_lj)}.get(args.target) or validations()[args.target].run
        try:
            return target(args)
        except NumericalFault as e:
            # A validation run that blows up has failed its checks: say where, exit 1.
            print(f"FAIL: numerical fault: {e}")
            return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
