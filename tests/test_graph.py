"""Captured steps (physampler.integrators.graph): a whole WLMD step with no host sync, which
``torch.compile(fullgraph=True)`` and CUDA graphs capture.

- eagerly, bitwise the steps of BiasedMD.step with the same counter-based streams, for a 2-D
  landscape with walls and an extra bias past t_WL (so f(t) on the device takes both branches), and
  for a network in a reflective box;
- compiled with fullgraph=True — a graph break, which any host sync or Python branch on a device
  value would be, is an error — equal to the eager steps (``aot_eager`` here keeps the suite fast:
  it traces the same whole graph; inductor, measured once on the CPU, differed by 2e-16 and
  benchmarks/gpu_check.sh runs it with CUDA graphs);
- on CUDA (marked ``cuda``), replayed as a CUDA graph under torch.cuda.set_sync_debug_mode("error"),
  within 1e-9 of the eager steps (atomic scatter-adds);
- a NaN recorded by the captured steps is raised at the end naming the same step and walker as the
  step-by-step checks.
"""
import pytest
import torch

from physampler import config as C
from physampler.faults import NumericalFault
from physampler.integrators.graph import CapturedSteps
from physampler.job import build, initial_positions
from physampler.rng import CounterRNG

from _configs import nn_config
from test_integrators import _wlmd


def _double_well(device):
    assert device == "cpu"  # the double-well helper builds on the CPU
    return _wlmd(W=4, noise="counter", frozen=False)  # InverseTime(1, 50): 80 steps pass t_WL


def _network(device):
    text = nn_config().replace("[run]", f'[run]\nnoise = "counter"\ndevice = "{device}"')
    job = build(C.parse(text), text)
    return job.integrator, job.integrator.init(initial_positions(job), CounterRNG(0, job.walkers, device=device))


def _reference(make, steps, device="cpu"):
    integ, state = make(device)
    for _ in range(steps):
        state, _ = integ.step(state)
    return state, integ.landscape


@pytest.mark.parametrize("make,steps", [(_double_well, 80), (_network, 6)], ids=["double_well", "network"])
@pytest.mark.parametrize("mode", ["eager", "compile"])
def test_captured_steps_equal_the_steps(make, steps, mode):
    """Bitwise, eager and compiled (aot_eager traces the same ops).  Control that must fail: the same
    steps with one walker's counter advanced by one request differ."""
    ref, land_ref = _reference(make, steps)
    integ, state = make("cpu")
    cs = CapturedSteps(integ, state, mode=mode, backend="aot_eager", steps=2)
    assert cs.run(steps) == steps and cs.step == steps
    got = cs.state()
    assert got.step == ref.step and int(cs.t) == steps
    for name in ("positions", "velocities", "accel", "cv"):
        assert torch.equal(getattr(got, name), getattr(ref, name)), name
    assert torch.equal(integ.landscape.S, land_ref.S) and torch.equal(integ.landscape.H, land_ref.H)
    assert torch.equal(cs.rng.calls, ref.rng.calls)
    integ, state = make("cpu")
    state.rng.calls[1] += 1
    cs = CapturedSteps(integ, state, mode="eager", steps=2)
    cs.run(steps)
    assert not torch.equal(cs.state().positions[1], ref.positions[1])


def test_captured_steps_report_faults_and_need_counter_noise():
    """A NaN planted in walker 2's velocity reaches its CVs at the next step: the captured steps
    record it on the device and check_faults names step 1, walker 2, as the step-by-step checks
    do.  Streams of one generator per walker are refused with a message naming run.noise."""
    integ, state = _wlmd(W=4, noise="counter", frozen=False)
    state.velocities[2, 0] = float("nan")
    with pytest.raises(NumericalFault, match="step 1, walker 2") as step_checks:
        integ.step(state)
    integ, state = _wlmd(W=4, noise="counter", frozen=False)
    state.velocities[2, 0] = float("nan")
    cs = CapturedSteps(integ, state, mode="eager")
    cs.run(5)
    with pytest.raises(NumericalFault) as deferred:
        integ.check_faults(cs.state())
    assert str(deferred.value) == str(step_checks.value)
    integ, state = _wlmd(W=2)
    with pytest.raises(ValueError, match="run.noise = 'counter'"):
        CapturedSteps(integ, state)
    with pytest.raises(ValueError, match="cuda_graph"):
        CapturedSteps(*_wlmd(W=2, noise="counter"), mode="cuda_graph")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_cuda_graph_replays_the_network_steps_without_a_sync():
    ref, land_ref = _reference(_network, 8, "cuda")
    integ, state = _network("cuda")
    cs = CapturedSteps(integ, state, mode="cuda_graph", steps=4)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        cs.run(8)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    got = cs.state()
    assert torch.allclose(got.positions, ref.positions, rtol=0, atol=1e-9)
    assert torch.allclose(integ.landscape.S, land_ref.S, rtol=0, atol=1e-9)
    assert torch.equal(integ.landscape.H, land_ref.H)


def test_integrator_capture_runs_the_job_steps_and_is_checked(tmp_path):
    """integrator.capture = "compile" in a config: BiasedMD.run continues one captured step across
    calls (3 + 3 steps, the second asked to stop after its first call) and gives bitwise the steps of
    capture = "none" with the same counter noise.  A capture without counter noise, a CUDA graph on
    the CPU and the compiled engine are refused naming integrator.capture."""
    def job(capture):
        text = nn_config().replace("[run]", '[run]\nnoise = "counter"').replace(
            "[integrator]", f'[integrator]\ncapture = "{capture}"')
        j = build(C.parse(text), text)
        j.wlmd.compile_backend = "aot_eager"
        return j, j.integrator.init(initial_positions(j), CounterRNG(0, j.walkers))

    ref_job, ref = job("none")
    ref = ref_job.integrator.run(ref, 4)[0]
    cap_job, st = job("compile")
    st = cap_job.integrator.run(st, 3)[0]
    calls = []
    st = cap_job.integrator.run(st, 3, stop=lambda: calls.append(1) or True)[0]
    assert st.step == ref.step == 4 and len(calls) == 1
    assert torch.equal(st.positions, ref.positions) and torch.equal(cap_job.landscape.S, ref_job.landscape.S)
    base = nn_config()
    for edit, why in [(('[integrator]', '[integrator]\ncapture = "compile"'), "run.noise = 'counter'"),
                      (('[integrator]', '[integrator]\ncapture = "cuda_graph"'), "needs run.device = 'cuda'")]:
        with pytest.raises(C.ConfigError, match=f"integrator.capture.*{why}"):
            C.check(C.parse(base.replace(*edit)))
