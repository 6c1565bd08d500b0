"""Numerical faults, reported with the step and the walker, never absorbed."""
from __future__ import annotations

import torch


class NumericalFault(FloatingPointError):
    """NaN/Inf in the state of a walker."""

    def __init__(self, message: str, *, step: int, walker: int):
        super().__init__(message)
        self.step = step
        self.walker = walker


class OutOfGridError(NumericalFault):
    """A CV left the landscape's grid under the ``raise`` policy."""


def first_bad_walker(t: torch.Tensor) -> int | None:
    """Index of the first walker (leading axis) holding a non-finite value, or None."""
    bad = ~torch.isfinite(t.reshape(t.shape[0], -1)).all(dim=1)
    if not bool(bad.any()):
        return None
    return int(torch.nonzero(bad)[0, 0])


def check_finite(name: str, t: torch.Tensor, step: int, walkers=None) -> None:
    """Raise :class:`NumericalFault` naming ``step`` and the walker if ``t`` [W, ...] holds NaN/Inf."""
    w = first_bad_walker(t)
    if w is not None:
        gw = walkers[w] if walkers is not None else w
        raise NumericalFault(f"step {step}, walker {gw}: non-finite {name}", step=step, walker=gw)
