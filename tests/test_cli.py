"""CLI: bad arguments give one error line and exit 2; a failing validation exits 1."""
import subprocess
import sys

import pytest


def run(*args):
    return subprocess.run([sys.executable, "-m", "physampler", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "args, field",
    [
        (["validate", "harmonic", "--dims", "3"], "--dims"),
        (["validate", "harmonic", "--steps", "0"], "--steps"),
        (["validate", "harmonic", "--walkers", "many"], "--walkers"),
        (["validate", "harmonic", "--seed", "-1"], "--seed"),
        (["validate", "harmonic", "--device", "cuda:banana"], "--device"),
        (["validate", "lj13", "--replicas", "1"], "--replicas"),
        (["validate", "lj13", "--steps", "-5"], "--steps"),
        (["validate", "lj38", "--reference-steps", "x"], "--reference-steps"),
        (["validate", "lj-bulk", "--atoms", "300"], "--atoms"),
        (["validate", "lj-bulk", "--atoms", "32"], "--atoms"),
        (["validate", "nothing"], "target"),
        (["frobnicate"], "command"),
        ([], "command"),
    ],
)
def test_bad_arguments_one_line_exit_2(args, field):
    p = run(*args)
    assert p.returncode == 2
    assert p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr
    assert lines[0].startswith("physampler") and "error:" in lines[0]
    assert field in lines[0] or field in ("target", "command")


def test_failing_validation_exits_1():
    # far too short to converge: must print FAIL and exit non-zero
    p = run("validate", "harmonic", "--dims", "4", "--steps", "300", "--walkers", "4")
    assert p.returncode == 1, p.stderr
    assert "FAIL" in p.stdout and "PASS" not in p.stdout.split("criteria")[0]


def test_lj13_short_run_without_reference_fails_cleanly():
    # 2 000 steps cannot fill S(U): the checks must fail (exit 1), never crash
    p = run("validate", "lj13", "--steps", "2000", "--walkers", "2", "--replicas", "2", "--no-reference")
    assert p.returncode == 1, p.stderr
    assert "FAIL" in p.stdout and "Traceback" not in p.stderr
