"""Analytic model systems with exactly known densities of states (docs/science.md §13)."""
from .harmonic import HarmonicWell
from .double_well import DoubleWell1D, DoubleWell2D

__all__ = ["HarmonicWell", "DoubleWell1D", "DoubleWell2D"]
