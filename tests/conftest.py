"""Shared fixtures.  Under pytest-xdist (the README's ``-n auto``) every worker — and every
child process it starts, through the environment — uses one intra-op thread: workers fill
the cores, and torch's default intra-op threads collapse when the cores are shared
(measured on this project's CI class: 13x slower beside one other job).  The same thread count on both sides keeps the bitwise comparisons between a
test process and its children exact; PHYSAMPLER_THREADS=1 makes the jobs' ``threads = 0``
(auto) choose it too."""
import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "PHYSAMPLER_THREADS"):
        os.environ[_var] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """The long tests (marked ``slow``) first: under ``--dist loadgroup`` the workers take the
    work in collection order, and the longest ones collected last (the training and example
    tests) left one worker running alone for minutes at the end (benchmarks/RESULTS.md)."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield


#: the devices a device-parametrized test runs on: the CPU always, CUDA when present (marked
#: ``cuda``: ``pytest -m cuda`` runs the GPU half alone, as benchmarks/gpu_check.sh does)
DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device")])]


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)
