"""Command-line interface: ``physampler validate harmonic``.

Bad arguments print one line ``physampler: error: ...`` and exit with status 2,
without a traceback.
"""
from __future__ import annotations

import argparse
import sys

from . import __version__


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse would also print usage)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer (got {text!r})") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer (got {text!r})")
    return v


def _non_negative_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0 (got {text!r})") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0 (got {text!r})")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="physampler", description="Wang–Landau MD entropy landscapes.")
    p.add_argument("--version", action="version", version=f"physampler {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    v = sub.add_parser("validate", help="run a validation against exact results")
    vs = v.add_subparsers(dest="target", required=True, parser_class=_Parser)
    h = vs.add_parser("harmonic", help="WLMD on N-dim harmonic wells vs S(U) = (N/2 - 1) ln U + c")
    from .validation import HARMONIC_CASES

    h.add_argument("--dims", type=int, nargs="+", default=sorted(HARMONIC_CASES), choices=sorted(HARMONIC_CASES),
                   metavar="N", help="wells to run (allowed: %(choices)s; default: all)")
    h.add_argument("--steps", type=_positive_int, default=60000, help="WLMD steps per well (default %(default)s)")
    h.add_argument("--walkers", type=_positive_int, default=256, help="walkers sharing the landscape (default %(default)s)")
    h.add_argument("--seed", type=_non_negative_int, default=2026, help="run seed (default %(default)s)")
    h.add_argument("--device", default="cpu", help="torch device (default %(default)s)")
    return p


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
    print(f"physampler {__version__}: WLMD on harmonic wells, {args.walkers} walkers x {args.steps} steps, seed {args.seed}")
    print(head)
    ok = True
    for n in args.dims:
        r = run_harmonic(n, steps=args.steps, walkers=args.walkers, seed=args.seed, device=args.device)
        failed = [k for k, v in r.checks.items() if not v]
        ok &= not failed
        verdict = "PASS" if not failed else "FAIL (" + ", ".join(failed) + ")"
        print(f"{n:>3} {r.slope:>9.4f} {r.exact_slope:>6.2f} {r.max_deviation:>9.4f} {r.edge_deviation:>9.4f} "
              f"{r.flat_min:>10.3f} {r.flat_max:>10.3f} {r.mean_energy:>8.4f} {r.exact_mean_energy:>6.2f} "
              f"{r.heat_capacity:>7.4f} {r.exact_heat_capacity:>6.2f} {r.wall_time:>7.1f}  {verdict}", flush=True)
    print("criteria: max|dev| <= 0.1 (interior bins, c fitted), H within +-20 % of flat (second half), "
          "slope within 2 % (or 0.05), <U> and C_V within 2 % at the check temperature")
    return 0 if ok else 1


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "validate" and args.target == "harmonic":
        return _validate_harmonic(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
