"""Wang–Landau factor schedules f_WL(t): pure functions of the step t (1-based;
the deposit after the t-th move uses f_WL(t)).

Each schedule is evaluated three ways with the same IEEE operations, hence the same bits:
``schedule(t)`` for a Python step, :meth:`Schedule.values` for a block of steps (the compiled
engine) and :meth:`Schedule.tensor` for a step held in a device tensor (a captured step,
:mod:`physampler.integrators.graph`, with no host sync)."""
from __future__ import annotations

import abc

import numpy as np
import torch

from . import _checks


class Schedule(abc.ABC):
    kind: str

    @abc.abstractmethod
    def __call__(self, step: int) -> float:
        """f_WL at step ``step`` (>= 0)."""

    def values(self, start: int, count: int) -> np.ndarray:
        """f_WL(start), …, f_WL(start + count − 1) as float64, equal to calling the schedule."""
        return np.array([self(t) for t in range(start, start + count)], dtype=np.float64)

    @abc.abstractmethod
    def tensor(self, step: torch.Tensor) -> torch.Tensor:
        """f_WL at the steps of the integer tensor ``step``, float64 on its device."""

    def params(self) -> dict:
        return {k: v for k, v in vars(self).items()}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.params() == other.params()


class InverseTime(Schedule):
    """[P1] eq. 3:  f_WL(t) = F · min(t / t_WL, t_WL / t)

    — a linear rise to F at t = t_WL, then 1/t decay.  F = ``F``, t_WL = ``t_wl``
    ([P2]: F = 20, t_WL = 5e5–1e6).
    """

    kind = "inverse_time"

    def __init__(self, F: float, t_wl: float):
        self.F = _checks.positive("F", F)
        self.t_wl = _checks.positive("t_wl", t_wl)

    def __call__(self, step):
        t = float(step)
        if t <= 0:
            return 0.0
        return self.F * min(t / self.t_wl, self.t_wl / t)

    def values(self, start, count):
        # Same IEEE operations as __call__, vectorised for compiled block loops.
        t = np.arange(start, start + count, dtype=np.float64)
        with np.errstate(divide="ignore"):
            out = self.F * np.minimum(t / self.t_wl, self.t_wl / t)
        return np.where(t <= 0, 0.0, out)

    def tensor(self, step):
        t = step.to(torch.float64)
        # full_like(·)/t, not t_wl/t: a Python number over a tensor is a reciprocal times the number in
        # torch, which is not the correctly rounded quotient that __call__ computes
        return torch.where(t <= 0, 0.0, self.F * torch.minimum(t / self.t_wl, torch.full_like(t, self.t_wl) / t))


class ThreeStage(Schedule):
    """[P2] three-stage schedule:

        f(t) = F·t/t_rise                      for t < t_rise
             = F                               for t_rise ≤ t < t_drop
             = F·(t_drop − t_off)/(t − t_off)  for t ≥ t_drop

    with 0 < t_rise ≤ t_drop and t_off < t_drop (continuous at t_drop).
    """

    kind = "three_stage"

    def __init__(self, F: float, t_rise: float, t_drop: float, t_off: float = 0.0):
        self.F = _checks.positive("F", F)
        self.t_rise = _checks.positive("t_rise", t_rise)
        self.t_drop = _checks.positive("t_drop", t_drop)
        self.t_off = _checks.finite("t_off", t_off)
        if self.t_drop < self.t_rise:
            raise ValueError(f"t_drop: must be >= t_rise (got t_drop={t_drop!r}, t_rise={t_rise!r})")
        if self.t_off >= self.t_drop:
            raise ValueError(f"t_off: must be < t_drop (got t_off={t_off!r}, t_drop={t_drop!r})")

    def __call__(self, step):
        t = float(step)
        if t <= 0:
            return 0.0
        if t < self.t_rise:
            return self.F * t / self.t_rise
        if t < self.t_drop:
            return self.F
        return self.F * (self.t_drop - self.t_off) / (t - self.t_off)

    def tensor(self, step):
        t = step.to(torch.float64)
        decay = torch.full_like(t, self.F * (self.t_drop - self.t_off)) / (t - self.t_off)
        out = torch.where(t < self.t_rise, self.F * t / self.t_rise, torch.where(t < self.t_drop, self.F, decay))
        return torch.where(t <= 0, 0.0, out)


class Constant(Schedule):
    """f_WL(t) = f for every t (f = 0 freezes the landscape)."""

    kind = "constant"

    def __init__(self, f: float):
        self.f = _checks.non_negative("f", f)

    def __call__(self, step):
        return self.f

    def tensor(self, step):
        return torch.full(step.shape, self.f, dtype=torch.float64, device=step.device)


SCHEDULES = {cls.kind: cls for cls in (InverseTime, ThreeStage, Constant)}


def make_schedule(kind: str, **params) -> Schedule:
    """Build a schedule by name: ``inverse_time`` | ``three_stage`` | ``constant``."""
    cls = SCHEDULES.get(kind)
    if cls is None:
        raise ValueError(f"schedule: must be one of {', '.join(map(repr, SCHEDULES))} (got {kind!r})")
    try:
        return cls(**params)
    except TypeError as e:
        raise ValueError(f"schedule.{kind}: {e}") from None
