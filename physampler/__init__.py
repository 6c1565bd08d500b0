"""physampler — Wang–Landau molecular dynamics and entropy landscapes.

Pipeline: system → CVs → landscape/biases → integrator → runner → reporters → analysis.
"""
from importlib.metadata import PackageNotFoundError, version as _version

from .analysis import Canonical, EquilibriumCurves, canonical, equilibrium_curves
from .biases import GridBias, HarmonicRestraint, LinearWall, QuadraticWall
from .constraints import ConfiningSphere, FixedNormShell, PeriodicBox, ReflectiveBox
from .cvs import CV, CVSet, FunctionCV, PotentialEnergy
from .faults import NumericalFault, OutOfGridError
from .grid import Axis, Grid
from .integrators import BAOAB, WLMD, VelocityVerlet, integrator_class
from .landscape import Landscape
from .reporters import CVTimeSeries, EnergySeries, LandscapeSnapshots
from .rng import WalkerRNG
from .runner import Runner
from .schedules import Constant, InverseTime, ThreeStage, make_schedule
from .system import System

try:
    __version__ = _version("physampler")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"

__all__ = [
    "Axis", "Grid", "Landscape", "System", "CV", "CVSet", "FunctionCV", "PotentialEnergy",
    "QuadraticWall", "LinearWall", "HarmonicRestraint", "GridBias",
    "ReflectiveBox", "PeriodicBox", "ConfiningSphere", "FixedNormShell",
    "VelocityVerlet", "BAOAB", "WLMD", "integrator_class",
    "InverseTime", "ThreeStage", "Constant", "make_schedule",
    "Runner", "CVTimeSeries", "LandscapeSnapshots", "EnergySeries", "WalkerRNG",
    "canonical", "equilibrium_curves", "Canonical", "EquilibriumCurves",
    "NumericalFault", "OutOfGridError",
]
