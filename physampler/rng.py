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
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from . import _checks


def walker_seed(seed: int, rank: int, walker: int) -> int:
    """63-bit seed of walker ``walker`` on process ``rank`` of a run seeded ``seed``."""
    ss = np.random.SeedSequence([int(seed), int(rank), int(walker)])
    return int(ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


class WalkerRNG:
    """One generator per walker, on ``device``.

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
        self.generators = []
        for r, w in zip(self.ranks, self.walkers):
            g = torch.Generator(device=self.device)
            g.manual_seed(walker_seed(self.seed, r, w))
            self.generators.append(g)
        self._reset_buffer()

    def _reset_buffer(self):
        self._buf = None  # [W, block, *shape]
        self._key = None  # (shape, dtype) of the buffered requests
        self._pos = 0

    def __len__(self) -> int:
        return len(self.generators)

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
        out = {
            "seed": self.seed,
            "rank": self.rank,
            "ranks": torch.tensor(self.ranks, dtype=torch.int64),
            "walkers": torch.tensor(self.walkers, dtype=torch.int64),
            "states": torch.stack([g.get_state() for g in self.generators]),
        }
        if self._buf is not None and self._pos < self._buf.shape[1]:
            out["buffer"] = self._buf[:, self._pos :].detach().cpu().clone()
        return out

    def load_state_dict(self, state: dict) -> None:
        walkers = [int(w) for w in state["walkers"]]
        ranks = [int(r) for r in state["ranks"]] if "ranks" in state else [int(state["rank"])] * len(walkers)
        if walkers != self.walkers or int(state["seed"]) != self.seed or ranks != self.ranks:
            raise ValueError(
                "rng state: seed/rank/walkers differ from this generator's "
                f"(got seed={int(state['seed'])}, rank={int(state['rank'])}, {len(walkers)} walkers)"
            )
        states = state["states"]
        if not isinstance(states, torch.Tensor) or states.dtype != torch.uint8 or states.shape[0] != len(walkers):
            raise ValueError(f"rng state: 'states' must be a uint8 tensor with one row per walker ({len(walkers)})")
        for g, s in zip(self.generators, states):
            g.set_state(s.clone())
        self._reset_buffer()
        if "buffer" in state:
            buf = state["buffer"]
            if not isinstance(buf, torch.Tensor) or buf.dim() < 2 or buf.shape[0] != len(walkers) \
                    or not buf.dtype.is_floating_point:
                raise ValueError(f"rng state: 'buffer' must be a float tensor [walkers = {len(walkers)}, n, ...]")
            buf = buf.to(self.device)
            self._buf, self._key, self._pos = buf, (tuple(buf.shape[2:]), buf.dtype), 0
