"""Torch threads are chosen, never left at torch's default (physampler.threads): auto counts the
cores less the busy ones, an explicit count and PHYSAMPLER_THREADS win, and a resume keeps the
count its checkpoint ran with (bitwise continuation)."""
import subprocess
import sys

import numpy as np
import pytest
import torch
import xarray as xr

from physampler import cli, threads
from physampler.config import ConfigError
from physampler.io import load_checkpoint

from _configs import harmonic_config


def test_auto_threads_leave_the_busy_cores_alone(monkeypatch):
    """With a CPU-bound process running beside it, auto takes at most cores − 1 threads (at least
    one).  Control: the same choice without the busy count is one thread per core (torch's
    default), beyond that bound on any machine with 2 or more cores."""
    assert threads.choose(2, 1) == 1 and threads.choose(2, 0) == 2 and threads.choose(2, 5) == 1
    assert threads.choose(16, 3, local_ranks=4) == 3
    monkeypatch.delenv("PHYSAMPLER_THREADS", raising=False)
    busy = subprocess.Popen([sys.executable, "-c", "import sys; print('spinning', flush=True)\nwhile True: pass"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert busy.stdout.readline().strip() == "spinning"
        cores = threads.available_cores()
        n, how = threads.resolve(0)
        assert how.startswith("auto") and 1 <= n <= max(1, cores - 1), (n, how, cores)
        if cores >= 2:  # control: not counting the busy process gives every core, beyond the bound
            assert threads.choose(cores, 0) == cores > max(1, cores - 1)
    finally:
        busy.kill()
        busy.wait()
    assert threads.resolve(3) == (3, "set")
    assert threads.resolve(0, stored=2) == (2, "checkpoint")
    monkeypatch.setenv("PHYSAMPLER_THREADS", "2")
    assert threads.resolve(0) == (2, "PHYSAMPLER_THREADS")
    monkeypatch.setenv("PHYSAMPLER_THREADS", "two")
    with pytest.raises(ConfigError, match="PHYSAMPLER_THREADS: must be a positive integer"):
        threads.resolve(0)


def test_a_run_records_its_threads_and_a_resume_keeps_them(tmp_path, capsys):
    """``--threads 2`` is what the run uses and records; a resume under auto keeps the
    checkpoint's 2 (auto would pick 1 here: the suite sets PHYSAMPLER_THREADS=1) and says so
    on its start line, and its landscape equals the uninterrupted 2-thread run's bit for bit.
    Control: a resume with ``--threads 1`` records 1."""
    old = torch.get_num_threads()
    try:
        cfg = tmp_path / "h.toml"
        cfg.write_text(harmonic_config(steps=400, walkers=4, report=100, checkpoint=100))
        ref, out, other = tmp_path / "ref", tmp_path / "out", tmp_path / "other"
        assert cli.main(["run", str(cfg), "--out", str(ref), "--threads", "2", "--quiet"]) == 0
        for d in (out, other):
            assert cli.main(["run", str(cfg), "--out", str(d), "--threads", "2", "--steps", "200", "--quiet"]) == 0
        assert load_checkpoint(out / "checkpoint.pt")["threads"] == 2
        capsys.readouterr()
        assert cli.main(["run", str(cfg), "--out", str(out), "--resume", "--threads", "0", "--quiet"]) == 0
        assert "(2 torch threads: checkpoint)" in capsys.readouterr().err
        assert cli.main(["run", str(cfg), "--out", str(other), "--resume", "--threads", "1", "--quiet"]) == 0
        with xr.open_dataset(ref / "landscape.nc") as a, xr.open_dataset(out / "landscape.nc") as b, \
                xr.open_dataset(other / "landscape.nc") as c:
            assert a.attrs["torch_threads"] == b.attrs["torch_threads"] == 2
            assert c.attrs["torch_threads"] == 1
            assert np.array_equal(a["entropy"].values, b["entropy"].values, equal_nan=True)
    finally:
        torch.set_num_threads(old)
