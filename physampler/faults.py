"""Numerical faults, reported with the step and the walker, never absorbed."""
from __future__ import annotations

import functools

import torch


class NumericalFault(FloatingPointError):
    """NaN/Inf in the state of a walker."""

    def __init__(self, message: str, *, step: int, walker: int):
        super().__init__(message)
        self.step = step
        self.walker = walker

    def __reduce__(self):
        # Exceptions pickle as cls(*args); step and walker are keyword-only, so a fault raised in a
        # worker process (ProcessPoolExecutor, multiprocessing) would otherwise break the pool
        # instead of reaching the parent.
        return functools.partial(type(self), step=self.step, walker=self.walker), (str(self),)


class OutOfGridError(NumericalFault):
    """A CV left the landscape's grid under the ``raise`` policy."""


def finite_rows(t: torch.Tensor) -> torch.Tensor:
    """[W] bool: whether every value of walker w (leading axis) is finite.

    No temporary of its size: a NaN propagates into both the minimum and the maximum and ±inf shows
    in one of them, so both are finite exactly when every value is (``isfinite(t).all()`` makes a
    bool copy; a sum could overflow).  ``amin`` and ``amax`` as two reductions, not ``aminmax``:
    on the CPU the fused reduction along a row is 10–30× slower than the two (measured on torch
    2.13, float32/float64/bf16: 208 µs against 11 µs for one row of 92k numbers; 2.4 ms against
    0.1 ms for 1M), and it reads the whole [W, P] force once per step (benchmarks/RESULTS.md)."""
    rows = t.reshape(t.shape[0], -1)
    if rows.shape[1] == 0 or not (rows.is_floating_point() or rows.is_complex()):
        return torch.ones(rows.shape[0], dtype=torch.bool, device=t.device)
    if rows.is_complex():
        rows = torch.view_as_real(rows).reshape(rows.shape[0], -1)
    return torch.isfinite(rows.amin(dim=1)) & torch.isfinite(rows.amax(dim=1))


def first_bad_walker(t: torch.Tensor) -> int | None:
    """Index of the first walker (leading axis) holding a non-finite value, or None."""
    bad = ~finite_rows(t)
    if not bool(bad.any()):
        return None
    return int(torch.nonzero(bad)[0, 0])


def check_finite(name: str, t: torch.Tensor, step: int, walkers=None) -> None:
    """Raise :class:`NumericalFault` naming ``step`` and the walker if ``t`` [W, ...] holds NaN/Inf."""
    w = first_bad_walker(t)
    if w is not None:
        gw = walkers[w] if walkers is not None else w
        raise NumericalFault(f"step {step}, walker {gw}: non-finite {name}", step=step, walker=gw)


#: fault kinds of :class:`FaultLog`, in the order one step checks them
CV_FAULT, RANGE_FAULT, FORCE_FAULT = 1, 2, 3
_WHAT = {CV_FAULT: "CV", FORCE_FAULT: "force"}


class FaultLog:
    """Each walker's first numerical fault, accumulated on the device (no host sync).

    A step records its CV, range and force checks as masks (:meth:`record`); :meth:`raise_first`
    reads them back once — at the end of a block of steps — and raises the exception the
    step-by-step checks would have raised: the earliest step, in the order CV, range, force
    within a step, and the lowest walker.  ``step`` [W] is −1 until walker w faults; ``value``
    [W, K] holds its CVs at that step (for the out-of-grid message).
    """

    def __init__(self, walkers: int, cvs: int, device):
        self.step = torch.full((walkers,), -1, dtype=torch.int64, device=device)
        self.kind = torch.zeros(walkers, dtype=torch.int64, device=device)
        self.value = torch.zeros((walkers, cvs), dtype=torch.float64, device=device)

    def record(self, kind: int, bad: torch.Tensor, step: int, xi: torch.Tensor) -> None:
        """Note ``bad`` [W] walkers at ``step`` (an int or a 0-d device tensor; those with an earlier
        fault keep theirs)."""
        new = bad & (self.step < 0)
        self.step.masked_fill_(new, step)
        self.kind.masked_fill_(new, kind)
        # in place: a captured step (CUDA graph) keeps reading and writing the same buffers
        self.value.copy_(torch.where(new[:, None], xi.detach().to(torch.float64), self.value))

    def raise_first(self, walkers=None, grid=None) -> None:
        """Raise the first recorded fault (one host sync); nothing when there is none.
        ``walkers``: the global index of each walker; ``grid``: for the out-of-grid message."""
        hit = self.step >= 0
        if not bool(hit.any()):
            return
        key = torch.where(hit, self.step * 4 + self.kind, torch.iinfo(torch.int64).max)
        w = int(torch.argmin(key))  # argmin returns the first index of the minimum: the lowest walker
        step, kind = int(self.step[w]), int(self.kind[w])
        gw = walkers[w] if walkers is not None else w
        if kind == RANGE_FAULT:
            raise out_of_grid(grid, self.value[w], step, gw)
        raise NumericalFault(f"step {step}, walker {gw}: non-finite {_WHAT[kind]}", step=step, walker=gw)


def out_of_grid(grid, xi_w: torch.Tensor, step: int, walker: int) -> OutOfGridError:
    """The :class:`OutOfGridError` of walker ``walker`` whose CVs ``xi_w`` [K] left ``grid`` at ``step``."""
    parts = ", ".join(f"{a.name} = {float(xi_w[i]):.6g} (grid [{a.lower:g}, {a.upper:g}])"
                      for i, a in enumerate(grid.axes))
    return OutOfGridError(f"step {step}, walker {walker}: CV outside the landscape grid: {parts}; "
                          "widen the grid or set out_of_range='wall'", step=step, walker=walker)
