"""The runner: steps W walkers with one integrator and pulls reporters at their intervals."""
from __future__ import annotations

from typing import Callable, Sequence

from . import _checks
from .reporters import Reporter


class Runner:
    """Drive ``integrator.step`` from ``state``.

    ``run(n)`` advances n steps; after each step every reporter whose interval
    divides the step number records it.  ``callback(state, info)``, if given, runs
    after the reporters (progress bars, checkpoints).  Faults raised by the
    integrator (NaN/Inf, CV off the grid) propagate with their step and walker.
    """

    def __init__(self, integrator, state, reporters: Sequence[Reporter] = (), callback: Callable | None = None):
        for r in reporters:
            if not isinstance(r, Reporter):
                raise ValueError(f"reporters: must be Reporter objects (got {type(r).__name__})")
        self.integrator = integrator
        self.state = state
        self.reporters = list(reporters)
        self.callback = callback

    def run(self, n_steps: int, *, stop: Callable[[], bool] | None = None, progress: bool = False):
        """Advance ``n_steps`` steps, or fewer when ``stop()`` (asked after every step) turns true
        — e.g. a signal flag, so that Ctrl-C takes effect within a step; the state is exact
        at any step, so a run stopped and resumed there continues bit for bit.  ``progress``:
        show a bar (a terminal) or log lines (otherwise) with the step rate and f_WL."""
        n_steps = _checks.non_negative_int("n_steps", n_steps)
        step = self.integrator.step
        state = self.state
        bar = None
        if progress:
            from .progress import Progress

            bar = Progress(state.step + n_steps, state.step)
        try:
            for _ in range(n_steps):
                state, info = step(state)
                for r in self.reporters:
                    if state.step % r.interval == 0:
                        r.report(state, info)
                if self.callback is not None:
                    self.callback(state, info)
                self.state = state
                if bar is not None:
                    f = getattr(info, "f_wl", None)
                    bar.update(state.step, text="" if f is None else f"f_WL {f:.3g}")
                if stop is not None and stop():
                    break
        finally:
            if bar is not None:
                bar.close()
        return state
