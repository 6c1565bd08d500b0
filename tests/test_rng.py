"""The walkers' random streams (physampler.rng): the counter-based Philox streams that CUDA runs
draw by default, checked on the CPU — known answers, normal statistics, batched == single and
resume — and the choice between the two kinds."""
import math

import numpy as np
import pytest
import torch
from scipy import stats

from physampler.rng import CounterRNG, WalkerRNG, make_rng, noise_kind, philox4x32

#: Random123's kat_vectors for philox4x32_10: (counter, key, output)
KATS = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


def _philox(ctr, key, rounds=10):
    words = philox4x32(*[torch.tensor([c], dtype=torch.int64) for c in ctr + key], rounds=rounds)
    return tuple(int(w[0]) for w in words)


@pytest.mark.parametrize("ctr,key,expected", KATS)
def test_philox_matches_the_random123_known_answers(ctr, key, expected):
    """Exact 32-bit words, all three vectors.  Control that must fail: 9 rounds."""
    assert _philox(ctr, key) == expected
    assert _philox(ctr, key, rounds=9) != expected


def test_counter_normals_have_normal_statistics_and_independent_walkers():
    """4 walkers × 3 requests × 2·10⁵ numbers: every sample's mean within 4.5/√n, variance within
    4.5·√(2/n) of 1 (4.5 standard errors: a false alarm below 1e-4 over the 12 samples), the pooled
    numbers pass a Kolmogorov–Smirnov test against N(0, 1) at p > 1e-3, and walkers and successive
    requests are uncorrelated (|r| < 4.5/√n).  Control that must fail: two walkers with one
    key draw the same numbers (r = 1)."""
    n = 200_000
    rng = CounterRNG(11, 4)
    draws = torch.stack([rng.normal((n,)) for _ in range(3)], dim=1).numpy()  # [W, requests, n]
    tol = 4.5 / math.sqrt(n)
    flat = draws.reshape(12, n)
    assert np.abs(flat.mean(axis=1)).max() < tol
    assert np.abs(flat.var(axis=1) - 1.0).max() < 4.5 * math.sqrt(2.0 / n)
    assert stats.kstest(flat.reshape(-1)[:1_000_000], "norm").pvalue > 1e-3
    r = np.corrcoef(flat)
    off = r[~np.eye(12, dtype=bool)]
    assert np.abs(off).max() < tol, np.abs(off).max()
    twin = CounterRNG(11, [0, 0]).normal((n,)).numpy()
    assert np.corrcoef(twin)[0, 1] > 1 - 1e-12


def test_counter_streams_batched_equal_single_and_resume_bitwise():
    """Walker w of a batch draws exactly what a single-walker generator of w draws, for requests of
    several shapes (odd sizes included) and dtypes; a generator loaded from a state_dict continues
    bitwise.  Control: a different seed or rank differs."""
    shapes = [((7,), torch.float64), ((3, 5), torch.float32), ((1,), torch.float64), ((4096,), torch.float64)]
    batch = CounterRNG(5, [0, 3, 9], rank=2)
    got = [batch.normal(s, dtype=d) for s, d in shapes]
    for i, w in enumerate([0, 3, 9]):
        one = CounterRNG(5, [w], rank=2)
        for (s, d), g in zip(shapes, got):
            x = one.normal(s, dtype=d)
            assert x.dtype == d and x.shape == (1, *s)
            assert torch.equal(x[0], g[i])
    sd = batch.state_dict()
    nxt = batch.normal((6,))
    again = CounterRNG(5, [0, 3, 9], rank=2)
    again.load_state_dict(sd)
    assert torch.equal(again.normal((6,)), nxt)
    assert not torch.equal(CounterRNG(6, [0], rank=2).normal((7,))[0], got[0][0])
    assert not torch.equal(CounterRNG(5, [0], rank=1).normal((7,))[0], got[0][0])


def test_noise_kinds_are_chosen_by_device_and_never_mixed_on_resume():
    """auto: streams on the CPU, counter on CUDA; a state of one kind does not load into the other,
    with a message naming run.noise."""
    assert noise_kind("auto", "cpu") == "streams" and noise_kind("auto", "cuda") == "counter"
    assert isinstance(make_rng(0, 2, noise="counter"), CounterRNG)
    assert isinstance(make_rng(0, 2), WalkerRNG)
    with pytest.raises(ValueError, match="noise"):
        noise_kind("philox", "cpu")
    with pytest.raises(ValueError, match="run.noise = 'streams'"):
        CounterRNG(0, 2).load_state_dict(WalkerRNG(0, 2).state_dict())
    with pytest.raises(ValueError, match="run.noise = 'counter'"):
        WalkerRNG(0, 2).load_state_dict(CounterRNG(0, 2).state_dict())
    bad = CounterRNG(0, 2).state_dict() | {"calls": torch.tensor([1, -1])}
    with pytest.raises(ValueError, match="calls"):
        CounterRNG(0, 2).load_state_dict(bad)
