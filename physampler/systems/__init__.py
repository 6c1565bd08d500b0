"""Analytic model systems with exactly known densities of states (docs/science.md §13), the
Lennard-Jones clusters and the built-in system kinds of the registry (:mod:`.builtin`).

The classes are imported on first use (PEP 562), so that the registry — which a config check
loads — imports no torch."""
from ..lazy import exports

_WHERE = {"HarmonicWell": ".harmonic", "DoubleWell1D": ".double_well", "DoubleWell2D": ".double_well"}
__all__ = sorted(_WHERE)


__getattr__ = exports(__name__, _WHERE)
