"""Analytic model systems with exactly known densities of states (docs/science.md §13), the
Lennard-Jones clusters and the built-in system kinds of the registry (:mod:`.builtin`).

The classes are imported on first use (PEP 562), so that the registry — which a config check
loads — imports no torch."""
from importlib import import_module

_WHERE = {"HarmonicWell": ".harmonic", "DoubleWell1D": ".double_well", "DoubleWell2D": ".double_well"}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(import_module(_WHERE[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
