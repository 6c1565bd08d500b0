"""physampler.allocator: a tensor freed and allocated again reuses its pages instead of faulting in
new ones (the step's fresh [W, P] tensors; benchmarks/RESULTS.md 2026-12-07)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

CHILD = r"""
import json, resource, sys
import torch
from physampler import allocator
status = allocator.keep_freed_memory()
n = 16 * 2**20  # 64 MiB of float32: above glibc's largest mmap threshold (32 MiB)
torch.set_num_threads(1)
for _ in range(16):  # glibc's heap grows for the first 5-9 (each tensor carved from its top) until it holds them
    x = torch.ones(n)
    del x
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    x = torch.ones(n)  # touches every page
    del x
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"status": status, "faults": faults, "pages": n * 4 // resource.getpagesize()}))
"""


def _child(keep: bool) -> dict:
    env = dict(os.environ, PHYSAMPLER_KEEP_MEMORY="1" if keep else "0")
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc and getrusage page faults")
def test_freed_tensors_reuse_their_pages_and_the_system_default_faults_them_in_again():
    """Ten 64 MiB tensors allocated and freed in turn after keep_freed_memory and a warm-up of 16:
    fewer page faults than a tenth of one tensor's pages (they reuse the heap's pages).  Control (PHYSAMPLER_KEEP_MEMORY=0,
    glibc's defaults): each is a fresh mmap, at least half of its pages faulted in every time (all of
    them with 4 KiB pages; fewer only where the kernel backs it with huge pages)."""
    kept, system = _child(True), _child(False)
    if "not glibc" in kept["status"]:
        pytest.skip(kept["status"])
    assert kept["status"].startswith("freed memory kept") and system["status"].startswith("system default")
    assert kept["faults"] < kept["pages"] // 10, kept
    assert system["faults"] > 10 * kept["faults"] + 100, (system, kept)
