"""Per-walker random streams.

Every walker owns an independent ``torch.Generator`` whose seed is derived from
``(seed, rank, walker index)`` with NumPy's ``SeedSequence`` (so neighbouring
seeds give statistically independent streams).  A batch of W walkers therefore
draws exactly the numbers that W single-walker runs with the same
``(seed, rank, index)`` would draw: batched == single, bitwise, by construction.

Small draws are made in blocks: each walker draws the numbers of ``block``
consecutive requests of the same shape in one call and hands them out in
order, which removes the per-call overhead that dominates for small systems.
The stream of a walker therefore depends on (seed, rank, index, shape, block),
never on how many walkers are batched together.

The generator states and the unused part of the block are plain tensors, so
checkpoints hold no pickled objects.

:class:`CounterRNG` is the alternative for accelerators: counter-based streams
(Philox4x32-10, Salmon, Moraes, Dror & Shaw, SC'11, doi:10.1145/2063384.2063405),
where the numbers of walker w's n-th request are a pure function of (its key, n,
element index).  All walkers draw in one set of element-wise kernels, the state is
one request counter per walker on the device (no host sync, capturable by CUDA
graphs), and batched == single holds by construction (docs/science.md §3).
:func:`make_rng` picks between the two (``run.noise``).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from . import _checks
from .rules import NOISE


def walker_seed(seed: int, rank: int, walker: int) -> int:
    """63-bit seed of walker ``walker`` on process ``rank`` of a run seeded ``seed``."""
    ss = np.random.SeedSequence([int(seed), int(rank), int(walker)])
    return int(ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


class _Streams:
    """What every kind of walker streams shares: the run seed, the walkers' global indices and
    ranks (the derivation of their seeds, :func:`walker_seed`) and the device."""

    kind = ""

    def __init__(self, seed: int, walkers: Sequence[int] | int, *, rank: int = 0, device="cpu"):
        self.seed = _checks.non_negative_int("seed", seed)
        if isinstance(walkers, int):
            walkers = range(_checks.positive_int("walkers", walkers))
        self.walkers = [int(w) for w in walkers]
        if not self.walkers:
            raise ValueError("walkers: must name at least one walker (got an empty list)")
        if isinstance(rank, (list, tuple, range)):
            ranks = [_checks.non_negative_int("rank", r) for r in rank]
            if len(ranks) != len(self.walkers):
                raise ValueError(f"rank: must be one integer or one per walker ({len(self.walkers)}) (got {len(ranks)})")
            self.rank = ranks[0] if len(set(ranks)) == 1 else -1
        else:
            ranks = [_checks.non_negative_int("rank", rank)] * len(self.walkers)
            self.rank = ranks[0]
        self.ranks = ranks
        self.device = torch.device(device)

    def __len__(self) -> int:
        return len(self.walkers)

    def seeds(self) -> list[int]:
        return [walker_seed(self.seed, r, w) for r, w in zip(self.ranks, self.walkers)]

    def _identity(self) -> dict:
        return {"kind": self.kind, "seed": self.seed, "rank": self.rank,
                "ranks": torch.tensor(self.ranks, dtype=torch.int64),
                "walkers": torch.tensor(self.walkers, dtype=torch.int64)}

    def _check_identity(self, state: dict) -> None:
        """Refuse a state written by another noise kind or for other (seed, ranks, walkers)."""
        kind = state.get("kind", "streams")  # states written before CounterRNG existed are streams
        if kind != self.kind:
            raise ValueError(f"rng state: written with run.noise = {kind!r}; this job draws {self.kind!r} noise")
        walkers = [int(w) for w in state["walkers"]]
        ranks = [int(r) for r in state["ranks"]] if "ranks" in state else [int(state["rank"])] * len(walkers)
        if walkers != self.walkers or int(state["seed"]) != self.seed or ranks != self.ranks:
            raise ValueError(
                "rng state: seed/rank/walkers differ from this generator's "
                f"(got seed={int(state['seed'])}, rank={int(state['rank'])}, {len(walkers)} walkers)"
            )


class WalkerRNG(_Streams):
    """One generator per walker, on ``device`` (``run.noise = "streams"``).

    Parameters
    ----------
    seed : run seed (integer >= 0).
    walkers : walker indices owned here (e.g. ``range(W)``); walker ``i`` of a
        batch uses the stream of global index ``walkers[i]``.
    rank : process rank, part of the seed derivation; or one rank per walker (a
        single process reproducing the walkers of several ranks exactly).
    """

    #: numbers drawn per walker per block (a block holds max(1, BLOCK_NUMBERS // numel) requests)
    BLOCK_NUMBERS = 4096
    kind = "streams"

    def __init__(self, seed: int, walkers: Sequence[int] | int, *, rank: int = 0, device="cpu"):
        super().__init__(seed, walkers, rank=rank, device=device)
        self.generators = []
        for seed_w in self.seeds():
            g = torch.Generator(device=self.device)
            g.manual_seed(seed_w)
            self.generators.append(g)
        self._reset_buffer()

    def _reset_buffer(self):
        self._buf = None  # [W, block, *shape]
        self._key = None  # (shape, dtype) of the buffered requests
        self._pos = 0

    def _refill(self, shape, dtype):
        numel = 1
        for s in shape:
            numel *= s
        block = max(1, self.BLOCK_NUMBERS // max(numel, 1))
        buf = torch.empty((len(self.generators), block, *shape), dtype=dtype, device=self.device)
        for g, row in zip(self.generators, buf):
            torch.randn((block, *shape), generator=g, dtype=dtype, device=self.device, out=row)
        self._buf, self._key, self._pos = buf, (shape, dtype), 0

    def normal(self, shape, dtype=torch.float64) -> torch.Tensor:
        """Standard normal numbers of shape ``[W, *shape]``, walker w from stream w."""
        shape = tuple(int(s) for s in shape)
        if self._key != (shape, dtype) or self._pos >= self._buf.shape[1]:
            self._refill(shape, dtype)
        out = self._buf[:, self._pos]
        self._pos += 1
        return out

    def normal_steps(self, steps: int, shape, dtype=torch.float64) -> torch.Tensor:
        """``steps`` consecutive :meth:`normal` requests at once, ``[W, steps, *shape]``:
        exactly the numbers those calls would return, for compiled block loops."""
        steps = _checks.positive_int("steps", steps)
        shape = tuple(int(s) for s in shape)
        out = torch.empty((len(self.generators), steps, *shape), dtype=dtype, device=self.device)
        done = 0
        while done < steps:
            if self._key != (shape, dtype) or self._pos >= self._buf.shape[1]:
                self._refill(shape, dtype)
            take = min(steps - done, self._buf.shape[1] - self._pos)
            out[:, done : done + take] = self._buf[:, self._pos : self._pos + take]
            self._pos += take
            done += take
        return out

    def state_dict(self) -> dict:
        out = self._identity() | {"states": torch.stack([g.get_state() for g in self.generators])}
        if self._buf is not None and self._pos < self._buf.shape[1]:
            out["buffer"] = self._buf[:, self._pos :].detach().cpu().clone()
        return out

    def load_state_dict(self, state: dict) -> None:
        self._check_identity(state)
        states = state["states"]
        if not isinstance(states, torch.Tensor) or states.dtype != torch.uint8 or states.shape[0] != len(self):
            raise ValueError(f"rng state: 'states' must be a uint8 tensor with one row per walker ({len(self)})")
        for g, s in zip(self.generators, states):
            g.set_state(s.clone())
        self._reset_buffer()
        if "buffer" in state:
            buf = state["buffer"]
            if not isinstance(buf, torch.Tensor) or buf.dim() < 2 or buf.shape[0] != len(self) \
                    or not buf.dtype.is_floating_point:
                raise ValueError(f"rng state: 'buffer' must be a float tensor [walkers = {len(self)}, n, ...]")
            buf = buf.to(self.device)
            self._buf, self._key, self._pos = buf, (tuple(buf.shape[2:]), buf.dtype), 0


# ----------------------------------------------------------------------------- Philox
_MASK32 = 0xFFFFFFFF
_PHILOX_M = (0xD2511F53, 0xCD9E8D57)
_PHILOX_W = (0x9E3779B9, 0xBB67AE85)
PHILOX_ROUNDS = 10


def _mulhilo(m: int, x: torch.Tensor):
    """(hi, lo) 32-bit halves of the 64-bit product m·x for 32-bit m and x held in int64.

    x is split into 16-bit halves so that no partial product exceeds 2^48: exact in int64
    on every device, with no reliance on wrapping overflow."""
    a = m * (x >> 16)  # < 2^48
    s = ((a & 0xFFFF) << 16) + m * (x & 0xFFFF)  # < 2^49
    return (a >> 16) + (s >> 32), s & _MASK32


def philox4x32(c0, c1, c2, c3, k0, k1, rounds: int = PHILOX_ROUNDS):
    """Philox4x32 of counter (c0, c1, c2, c3) under key (k0, k1): four 32-bit words.

    Every argument is an int64 tensor (or int) holding values in [0, 2^32), broadcastable;
    the Random123 known-answer vectors are in ``tests/test_rng.py``.  One round is

        (hi0, lo0) = M0·c0,  (hi1, lo1) = M1·c2
        c ← (hi1 ⊕ c1 ⊕ k0,  lo1,  hi0 ⊕ c3 ⊕ k1,  lo0),   k ← k + (W0, W1) mod 2^32
    """
    for r in range(rounds):
        if r:
            k0 = (k0 + _PHILOX_W[0]) & _MASK32
            k1 = (k1 + _PHILOX_W[1]) & _MASK32
        hi0, lo0 = _mulhilo(_PHILOX_M[0], c0)
        hi1, lo1 = _mulhilo(_PHILOX_M[1], c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


def _uniform53(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """A float64 uniform in (0, 1) from two 32-bit words: (27 + 26 bits + ½)·2^−53, never 0 or 1."""
    return ((a >> 5) * 67108864 + (b >> 6)).to(torch.float64).add_(0.5).mul_(2.0**-53)


class CounterRNG(_Streams):
    """Counter-based normal streams, one key per walker (``run.noise = "counter"``).

    Request n of walker w (n = 0, 1, …, counted per walker in ``calls`` [W] on the device) of
    ``numel`` numbers takes counters (j, 0, n mod 2^32, n div 2^32) for j < ⌈numel/2⌉ under the
    walker's key (the two 32-bit halves of :func:`walker_seed`); Philox4x32-10 turns each counter
    into four words, two 53-bit uniforms u1, u2, and Box–Muller into two normals
    √(−2 ln u1)·(cos 2πu2, sin 2πu2).  The numbers are computed in float64 and rounded to the
    requested dtype, so a walker's stream depends on (seed, rank, index, request sizes) only:
    batched == single, a resume continues bitwise from ``calls``, and all walkers draw in one
    set of element-wise kernels with no host sync (capturable by CUDA graphs).

    Parameters are those of :class:`WalkerRNG`.
    """

    kind = "counter"

    def __init__(self, seed: int, walkers: Sequence[int] | int, *, rank: int = 0, device="cpu"):
        super().__init__(seed, walkers, rank=rank, device=device)
        seeds = self.seeds()
        i64 = dict(dtype=torch.int64, device=self.device)
        self.key0 = torch.tensor([s & _MASK32 for s in seeds], **i64)[:, None]
        self.key1 = torch.tensor([s >> 32 for s in seeds], **i64)[:, None]
        #: requests made so far by each walker (the whole state of its stream)
        self.calls = torch.zeros(len(self.walkers), **i64)

    def normal(self, shape, dtype=torch.float64) -> torch.Tensor:
        """Standard normal numbers of shape ``[W, *shape]``, walker w from its own stream."""
        shape = tuple(int(s) for s in shape)
        n = 1
        for s in shape:
            n *= s
        m = (n + 1) // 2
        j = torch.arange(m, dtype=torch.int64, device=self.device)[None, :]
        n0 = (self.calls & _MASK32)[:, None]
        n1 = (self.calls >> 32)[:, None]
        x0, x1, x2, x3 = philox4x32(j, torch.zeros_like(j), n0, n1, self.key0, self.key1)
        r = torch.sqrt(-2.0 * torch.log(_uniform53(x0, x1)))
        phi = (2.0 * torch.pi) * _uniform53(x2, x3)
        z = torch.stack((r * torch.cos(phi), r * torch.sin(phi)), dim=2).reshape(len(self.walkers), 2 * m)
        self.calls.add_(1)
        return z[:, :n].reshape(len(self.walkers), *shape).to(dtype)

    def normal_steps(self, steps: int, shape, dtype=torch.float64) -> torch.Tensor:
        """``steps`` consecutive :meth:`normal` requests at once, ``[W, steps, *shape]``."""
        steps = _checks.positive_int("steps", steps)
        return torch.stack([self.normal(shape, dtype) for _ in range(steps)], dim=1)

    def state_dict(self) -> dict:
        return self._identity() | {"calls": self.calls.detach().cpu().clone()}

    def load_state_dict(self, state: dict) -> None:
        self._check_identity(state)
        calls = state["calls"]
        if not isinstance(calls, torch.Tensor) or calls.dtype != torch.int64 or tuple(calls.shape) != (len(self),) \
                or bool((calls < 0).any()):
            raise ValueError(f"rng state: 'calls' must be an int64 tensor of {len(self)} counts >= 0")
        self.calls.copy_(calls.to(self.device))


def noise_kind(noise: str, device) -> str:
    """The noise a job draws: ``streams`` (one generator per walker, the CPU default) or
    ``counter`` (:class:`CounterRNG`, the CUDA default); ``auto`` picks by device."""
    noise = _checks.choice("noise", noise, NOISE)
    if noise == "auto":
        return "counter" if torch.device(device).type == "cuda" else "streams"
    return noise


def make_rng(seed: int, walkers, *, rank=0, device="cpu", noise: str = "auto"):
    """The walkers' random streams of kind :func:`noise_kind` (``noise``, ``device``)."""
    cls = CounterRNG if noise_kind(noise, device) == "counter" else WalkerRNG
    return cls(seed, walkers, rank=rank, device=device)
