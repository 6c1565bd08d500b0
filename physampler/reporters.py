"""Reporters: pulled by the :class:`~physampler.runner.Runner` every ``interval`` steps."""
from __future__ import annotations

import abc

import numpy as np
import torch

from . import _checks


class Reporter(abc.ABC):
    def __init__(self, interval: int):
        self.interval = _checks.positive_int("interval", interval)

    def due(self, step: int) -> bool:
        return step % self.interval == 0

    @abc.abstractmethod
    def report(self, state, info) -> None:
        """Record what this reporter keeps from ``state`` / ``info`` at ``state.step``."""


class CVTimeSeries(Reporter):
    """CV values of every walker: ``steps`` [n], ``values`` [n, W, K] (float64)."""

    def __init__(self, interval: int):
        super().__init__(interval)
        self._steps: list[int] = []
        self._values: list[np.ndarray] = []

    def report(self, state, info):
        self._steps.append(state.step)
        self._values.append(state.cv.detach().to("cpu", torch.float64).numpy().copy())

    @property
    def steps(self) -> np.ndarray:
        return np.asarray(self._steps, dtype=np.int64)

    @property
    def values(self) -> np.ndarray:
        return np.stack(self._values) if self._values else np.zeros((0, 0, 0))


class LandscapeSnapshots(Reporter):
    """Copies of S and H of a landscape: ``steps`` [n], ``entropy``/``histogram`` [n, *grid]."""

    def __init__(self, interval: int, landscape):
        super().__init__(interval)
        self.landscape = landscape
        self._steps: list[int] = []
        self._S: list[np.ndarray] = []
        self._H: list[np.ndarray] = []

    def report(self, state, info):
        self._steps.append(state.step)
        self._S.append(self.landscape.S.detach().cpu().numpy().copy())
        self._H.append(self.landscape.H.detach().cpu().numpy().copy())

    @property
    def steps(self) -> np.ndarray:
        return np.asarray(self._steps, dtype=np.int64)

    @property
    def entropy(self) -> np.ndarray:
        return np.stack(self._S)

    @property
    def histogram(self) -> np.ndarray:
        return np.stack(self._H)


class EnergySeries(Reporter):
    """Potential and kinetic energy per walker for MD integrators: [n, W] each."""

    def __init__(self, interval: int):
        super().__init__(interval)
        self._steps, self._pot, self._kin = [], [], []

    def report(self, state, info):
        self._steps.append(state.step)
        self._pot.append(info.potential.detach().cpu().numpy().copy())
        self._kin.append(info.kinetic.detach().cpu().numpy().copy())

    @property
    def steps(self):
        return np.asarray(self._steps, dtype=np.int64)

    @property
    def potential(self):
        return np.stack(self._pot)

    @property
    def kinetic(self):
        return np.stack(self._kin)
