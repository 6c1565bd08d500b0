"""Captured steps: the steps of a :class:`~.wlmd.BiasedMD` as one tensor-only function over static
buffers, run eagerly, compiled by ``torch.compile(fullgraph=True)`` or replayed as a CUDA graph
(docs/science.md §7.1, docs/architecture.md "Captured steps").

A step reads nothing back from the device: the step counter t is a 0-d int64 tensor, so f(t) is
computed there (:meth:`~physampler.schedules.Schedule.tensor`); the noise is counter-based
(:class:`~physampler.rng.CounterRNG`, whose request counters live on the device); numerical faults
are accumulated in a :class:`~physampler.faults.FaultLog` and raised at the end of a block.  Every
buffer — positions, velocities, acceleration, CVs, t, the streams' counters, the fault log, the
landscape's S, H and per-bin observables — is updated in place, which is what a CUDA graph needs
(its replays read and write fixed addresses).

Eagerly, the captured steps are bitwise the steps of :meth:`BiasedMD.step` with the same streams;
compiled, equal to rounding (the compiler may fuse and reorder floating-point operations); in a
CUDA graph, equal to the eager steps on the same device (tests/test_graph.py).
"""
from __future__ import annotations

import torch

from .. import _checks
from ..faults import FaultLog
from ..rng import CounterRNG
from .wlmd import BiasedMD, WLMDState

#: how a captured step runs: eagerly (the reference), compiled, or as a CUDA graph
MODES = ("eager", "compile", "cuda_graph")


class CapturedSteps:
    """``steps`` steps of ``engine`` per call, from ``state``, in ``mode`` (:data:`MODES`).

    ``state.rng`` must be a :class:`~physampler.rng.CounterRNG` (``run.noise = "counter"``); the
    landscape is the engine's, updated in place.  ``backend`` is ``torch.compile``'s (``mode =
    "compile"``).  :meth:`run` advances, :meth:`state` returns the :class:`WLMDState` (its step
    count is kept on the host as well, so reading it costs nothing).
    """

    def __init__(self, engine: BiasedMD, state: WLMDState, *, mode: str = "eager", steps: int = 1,
                 backend: str = "inductor"):
        if not isinstance(engine, BiasedMD):
            raise ValueError(f"engine: must be a BiasedMD (got {type(engine).__name__})")
        self.mode = _checks.choice("mode", mode, MODES)
        self.steps = _checks.positive_int("steps", steps)
        if not isinstance(state.rng, CounterRNG):
            raise ValueError("rng: a captured step draws counter-based noise; use run.noise = 'counter' "
                             f"(got {getattr(state.rng, 'kind', type(state.rng).__name__)!r} streams)")
        q = state.positions
        if self.mode == "cuda_graph" and q.device.type != "cuda":
            raise ValueError(f"mode: 'cuda_graph' needs positions on a CUDA device (got {q.device})")
        self.engine, self.rng = engine, state.rng
        self.q, self.v, self.a = (x.detach().clone().contiguous() for x in (state.positions, state.velocities, state.accel))
        self.xi = state.cv.detach().clone()
        self.t = torch.tensor(state.step, dtype=torch.int64, device=q.device)
        self.step = state.step  # the host's copy of t: reading self.t would be a sync
        self.faults = state.faults if state.faults is not None else FaultLog(q.shape[0], len(engine.cvs), q.device)
        if self.mode == "compile":
            self._call = torch.compile(self._body, fullgraph=True, dynamic=False, backend=backend)
        elif self.mode == "cuda_graph":
            self._call = self._capture()
        else:
            self._call = self._body

    def _body(self):
        for _ in range(self.steps):
            t = self.t + 1
            q, v, a, xi, _ = self.engine.advance(self.q, self.v, self.a, t, self.rng, self.faults)
            self.q.copy_(q)
            self.v.copy_(v)
            self.a.copy_(a)
            self.xi.copy_(xi)
            self.t.copy_(t)

    # ------------------------------------------------------------- CUDA graph
    def _buffers(self) -> list[torch.Tensor]:
        land = self.engine.landscape
        names = sorted(land.observable_sums)
        return [self.q, self.v, self.a, self.xi, self.t, self.rng.calls, self.faults.step, self.faults.kind,
                self.faults.value, land.S, land.H, *(land.observable_sums[k] for k in names),
                *(land.observable_counts[k] for k in names)]

    def _capture(self):
        """Warm up once on a side stream (allocations, lazy initialisation), put every buffer back,
        then record one call into a CUDA graph; replaying it is the call."""
        land = self.engine.landscape
        names = set(land.observable_sums)
        before = [b.clone() for b in self._buffers()]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            self._body()
        torch.cuda.current_stream().wait_stream(side)
        for name in set(land.observable_sums) - names:  # observables the warm-up recorded first: from zero
            land.observable_sums[name].zero_()
            land.observable_counts[name].zero_()
        for b, saved in zip(self._buffers(), before):
            b.copy_(saved)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._body()
        self.graph = graph
        return graph.replay

    # ------------------------------------------------------------------- use
    def run(self, steps: int, stop=None) -> int:
        """Advance ``steps`` steps (a multiple of the steps per call), or fewer once ``stop()`` —
        asked after every call — is true; returns the steps made."""
        steps = _checks.non_negative_int("steps", steps)
        if steps % self.steps:
            raise ValueError(f"steps: must be a multiple of the {self.steps} steps per call (got {steps})")
        done = 0
        while done < steps:
            self._call()
            done += self.steps
            self.step += self.steps
            if stop is not None and stop():
                break
        return done

    def state(self) -> WLMDState:
        """The walkers now (copies of the buffers, which the next call overwrites)."""
        return WLMDState(self.q.clone(), self.v.clone(), self.a.clone(), self.xi.clone(), self.step, self.rng,
                         self.faults)
