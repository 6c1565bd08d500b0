"""physampler — Wang–Landau molecular dynamics and entropy landscapes.

Pipeline: system → CVs → method (bias) → integrator → driver (Job) → IO/analysis (docs/architecture.md).

The public names below are imported on first use (PEP 562), so that ``import
physampler`` — and the command line, which must answer ``--help`` and handle a
signal before torch has loaded — costs nothing until a name is used.
"""
from importlib.metadata import PackageNotFoundError, version as _version

from .lazy import exports

try:
    __version__ = _version("physampler")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"

_EXPORTS = {
    ".analysis": ("Canonical", "EquilibriumCurves", "canonical", "equilibrium_curves"),
    ".biases": ("GridBias", "HarmonicRestraint", "LinearWall", "QuadraticWall"),
    ".constraints": ("ConfiningSphere", "FixedNormShell", "PeriodicBox", "ReflectiveBox"),
    ".cvs": ("CV", "CVSet", "Coordinate", "FunctionCV", "PotentialEnergy"),
    ".faults": ("NumericalFault", "OutOfGridError"),
    ".grid": ("Axis", "Grid"),
    ".io": ("FileError", "load_checkpoint", "read_landscape", "read_trajectory", "save_checkpoint", "write_landscape",
            "write_trajectory"),
    ".integrators": ("BAOAB", "BiasedMD", "WLMD", "WLMDState", "VelocityVerlet", "integrator_class"),
    ".job": ("Job", "Output", "run_job"),
    ".landscape": ("Landscape",),
    ".methods": ("Method", "StaticBias", "WangLandau", "WellTemperedMetadynamics"),
    ".reporters": ("CVTimeSeries", "EnergySeries", "LandscapeSnapshots"),
    ".rng": ("WalkerRNG",),
    ".runner": ("Runner",),
    ".schedules": ("Constant", "InverseTime", "ThreeStage", "make_schedule"),
    ".system": ("System",),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


__getattr__ = exports(__name__, _WHERE)


def __dir__():
    return sorted(set(globals()) | set(__all__))
