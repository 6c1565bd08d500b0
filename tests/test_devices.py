"""The network path on every device: the same tests on the CPU (always) and on CUDA (marked
``cuda``, skipped without a GPU; ``pytest -m cuda`` and benchmarks/gpu_check.sh run them there,
with the device-parametrized tests of tests/test_nn_adapter.py: batched == per-walker, reduced
precision, torch.compile).

- a whole ``physampler run`` of a network landscape on the device, stopped and resumed: bitwise
  on the CPU; on CUDA within 1e-9 (its scatter-adds are atomic, so their order may vary);
- a numerical fault on the device names the step and the walker.
"""
import numpy as np
import pytest
import xarray as xr

from physampler import cli

from _configs import nn_config


def _run(cfg, out, *args):
    return cli.main(["run", str(cfg), "--out", str(out), "--quiet", *args])


@pytest.mark.parametrize("noise", ["auto", "counter"])
def test_a_network_run_on_the_device_resumes_and_reports_faults(tmp_path, device, noise, capsys):
    """20 + 20 steps resumed equal 40 uninterrupted on ``device``, with the device's default noise
    and with the counter-based noise of CUDA runs (so that its resume is checked on the CPU too).  Control: a grid that the
    walkers' ln L_train (≈ ln ln 11 = 0.87 at the start) lies above, under out_of_range =
    "raise", is a numerical fault naming the step and the walker, exit status 1."""
    text = (nn_config().replace("steps = 20", "steps = 40").replace("[run]", f'[run]\ndevice = "{device.type}"\nnoise = "{noise}"')
            + "\n[schedule]\nt_wl = 10\n")  # t_wl fixed: the default is run.steps/8 of the first leg
    cfg = tmp_path / "nn.toml"
    cfg.write_text(text)
    assert _run(cfg, tmp_path / "ref") == 0
    assert _run(cfg, tmp_path / "two", "--steps", "20") == 0
    assert _run(cfg, tmp_path / "two", "--resume") == 0
    with xr.open_dataset(tmp_path / "ref" / "landscape.nc") as a, xr.open_dataset(tmp_path / "two" / "landscape.nc") as b:
        s_a, s_b = a["sampling_entropy"].values, b["sampling_entropy"].values
        if device.type == "cpu":
            assert s_a.tobytes() == s_b.tobytes()
        else:
            assert np.allclose(s_a, s_b, rtol=0, atol=1e-9)
        assert a["histogram"].values.sum() == b["histogram"].values.sum() == 2 * 40
    if noise != "auto":
        return  # the fault below does not depend on the noise
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("upper = [3.0, 1.0]", "upper = [-3.0, 1.0]").replace('out_of_range = "wall"',
                                                                                   'out_of_range = "raise"'))
    capsys.readouterr()
    assert _run(bad, tmp_path / "bad") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("physampler: numerical fault: step 0, walker 0"), err
