"""Walkers across processes: one landscape shared by all ranks through torch.distributed.

Launch with ``torchrun`` (or any launcher that sets RANK, WORLD_SIZE,
MASTER_ADDR, MASTER_PORT): gloo on CPU, NCCL on CUDA.  Each rank owns W walkers
whose streams derive from (seed, rank, walker index); every walker deposits
f_WL/(R·W) (docs/science.md §6 averaging semantics).  Every K steps the ranks
all-reduce their landscape and histogram *increments* since the last sync,

    S ← S_sync + Σ_r (S_r − S_sync),    H likewise,    S_sync ← S,

in one collective that also carries a stop flag (a signal on any rank stops all
ranks at the same step).  With K = 1 the result equals one process holding all
R·W walkers up to the summation order (≤ 1e-12); with any K every rank holds a
bitwise-identical landscape after each sync — checked at run time by
all-gathering a fingerprint of S and H computed on their device.

Failure handling: collectives time out after ``run.sync_timeout`` seconds (a
hung rank), a dead rank breaks them at once; the survivors mark themselves in
the rendezvous store, wait two seconds for each other and name the ranks
without a mark (with their last heartbeat step) in a one-line error before
exiting with status 1.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .landscape import Landscape


class RankFailure(RuntimeError):
    """Another rank died or hung; the message names it."""


@dataclass
class World:
    rank: int
    size: int
    backend: str
    timeout: float
    #: the rendezvous key-value store (public ``torch.distributed.Store``) used for heartbeats and
    #: failure reports; None when the process group was created by the caller.
    store: object = None

    @property
    def is_root(self) -> bool:
        return self.rank == 0


def world_from_env() -> tuple[int, int] | None:
    """(rank, world size) when launched by torchrun with more than one process, else None."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return None
    return int(os.environ["RANK"]), size


def init(device: torch.device, timeout: float) -> World:
    backend = "nccl" if device.type == "cuda" else "gloo"
    store = None
    if not dist.is_initialized():
        # The public env:// rendezvous (the one init_process_group would make) gives us the store
        # itself, so heartbeats need no private accessor; a prefix keeps our keys apart from c10d's.
        delta = _dt.timedelta(seconds=timeout)
        base, rank, size = next(dist.rendezvous("env://", timeout=delta))
        base.set_timeout(delta)
        dist.init_process_group(backend, store=dist.PrefixStore("default_pg", base), rank=rank,
                                world_size=size, timeout=delta)
        store = dist.PrefixStore("physampler", base)
    return World(dist.get_rank(), dist.get_world_size(), backend, timeout, store)


def landscape_hash(landscape: Landscape) -> str:
    h = hashlib.sha256()
    h.update(landscape.S.detach().cpu().numpy().tobytes())
    h.update(landscape.H.detach().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


class LandscapeSync:
    """All-reduce of landscape increments (see the module docstring)."""

    def __init__(self, landscape: Landscape, world: World):
        self.landscape = landscape
        self.world = world
        self.S_sync = landscape.S.clone()
        self.H_sync = landscape.H.clone()
        self.obs_sync: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.comm_seconds = 0.0
        self.syncs = 0
        self._last_beat = 0.0
        self._weights = None
        self.last_step = -1

    def reset(self) -> None:
        """Take the current S and H (and observable sums) as synced (after a resume)."""
        self.S_sync.copy_(self.landscape.S)
        self.H_sync.copy_(self.landscape.H)
        ls = self.landscape
        self.obs_sync = {k: (ls.observable_sums[k].clone(), ls.observable_counts[k].clone()) for k in ls.observable_sums}

    def _tracked(self):
        """(current, synced) pairs of every array merged across ranks, in a fixed order."""
        ls = self.landscape
        pairs = [(ls.S, self.S_sync), (ls.H, self.H_sync)]
        for k in sorted(ls.observable_sums):
            if k not in self.obs_sync:
                self.obs_sync[k] = (torch.zeros_like(ls.S), torch.zeros_like(ls.S))
            pairs += [(ls.observable_sums[k], self.obs_sync[k][0]), (ls.observable_counts[k], self.obs_sync[k][1])]
        return pairs

    def heartbeat(self, step: int, force: bool = False) -> None:
        """Record this rank's last synced step in the rendezvous store (at most once a second: it is
        a round trip to the store's host)."""
        import time

        now = time.monotonic()
        if not force and now - self._last_beat < 1.0:
            return
        self._last_beat = now
        if self.world.store is None:
            return
        try:
            self.world.store.set(f"last_sync/{self.world.rank}", str(step))
        except Exception:  # the store is best effort: only used to name a failed rank
            pass

    def sync(self, step: int, stop: bool) -> bool:
        """Merge increments of all ranks; returns True when any rank asked to stop."""
        import time

        t0 = time.perf_counter()
        pairs = self._tracked()  # every rank records the same observables, so the layout agrees
        n = self.landscape.S.numel()
        buf = torch.empty(len(pairs) * n + 1, dtype=torch.float64, device=self.landscape.S.device)
        for i, (cur, ref) in enumerate(pairs):
            buf[i * n : (i + 1) * n] = (cur - ref).reshape(-1)
        buf[-1] = 1.0 if stop else 0.0
        self.collective(lambda: dist.all_reduce(buf, op=dist.ReduceOp.SUM), step)
        for i, (cur, ref) in enumerate(pairs):
            cur.copy_(ref + buf[i * n : (i + 1) * n].reshape(cur.shape))
            ref.copy_(cur)
        self.check_identical(step)
        self.last_step = step
        self.heartbeat(step)
        self.comm_seconds += time.perf_counter() - t0
        self.syncs += 1
        return bool(buf[-1] > 0)

    def check_identical(self, step: int) -> None:
        """All-gather a fingerprint of S and H computed on their device (no host copy of the grid):
        identical arrays give identical reductions, a diverged rank almost surely does not."""
        ls = self.landscape
        if self._weights is None:
            self._weights = torch.linspace(1.0, 2.0, ls.S.numel(), dtype=torch.float64, device=ls.S.device)
        mine = torch.stack([ls.S.sum(), (ls.S.reshape(-1) * self._weights).sum(), (ls.H.reshape(-1) * self._weights).sum()])
        parts = [torch.empty_like(mine) for _ in range(self.world.size)]
        self.collective(lambda: dist.all_gather(parts, mine), step)
        out = [tuple(p.tolist()) for p in parts]
        if len(set(out)) != 1:
            bad = [r for r, h in enumerate(out) if h != out[0]]
            raise RankFailure(f"step {step}: the landscapes of ranks {bad} differ from rank 0's after the sync")

    def collective(self, fn, step: int):
        """Run the collective ``fn``; a dead or hung rank becomes :class:`RankFailure` naming it."""
        try:
            return fn()
        except RuntimeError as e:
            raise RankFailure(self.describe_failure(step, e)) from None

    def describe_failure(self, step: int, err: Exception) -> str:
        import time

        # Every survivor marks itself as alive in the store and waits for the others to do the same;
        # a dead or hung rank cannot, so the ranks without a mark are the ones that failed.
        behind = []
        try:
            store = self.world.store
            if store is None:
                raise LookupError("no rendezvous store")
            store.set_timeout(_dt.timedelta(seconds=2))
            store.set(f"survivor/{self.world.rank}", str(self.last_step))
            time.sleep(min(2.0, self.world.timeout))
            for r in range(self.world.size):
                if r == self.world.rank:
                    continue
                if not store.check([f"survivor/{r}"]):
                    try:
                        last = int(store.get(f"last_sync/{r}"))
                    except Exception:
                        last = -1
                    behind.append((r, last))
        except Exception:
            behind = [(0, -1)] if self.world.rank != 0 else []
        if behind:
            who = ", ".join(f"rank {r} (last heartbeat: {'none' if s < 0 else f'step {s}'})" for r, s in behind)
        else:
            who = "another rank"
        kind = "timed out" if "timeout" in str(err).lower() or "timed out" in str(err).lower() else "failed"
        return (f"rank {self.world.rank}: the landscape sync at step {step} {kind}: {who} stopped responding; "
                f"the last complete checkpoint is intact, continue with --resume")
