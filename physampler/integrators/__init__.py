"""Integrators built from the shared operators of :mod:`.operators`.

Each integrator is an ``init``/``step`` pair over a state dataclass whose tensors
carry a leading walker axis; ``step`` returns ``(state, info)``.
"""
from .operators import drift, friction_coefficient, kick, thermostat
from .md import BAOAB, MDState, VelocityVerlet
from .splittings import SPLITTINGS
from .wlmd import WLMD, BiasedMD, WLMDState

INTEGRATORS = {"velocity_verlet": VelocityVerlet, "baoab": BAOAB, "wlmd": WLMD}


def integrator_class(kind: str):
    """The integrator class called ``kind``: velocity_verlet | baoab | wlmd."""
    cls = INTEGRATORS.get(kind)
    if cls is None:
        raise ValueError(f"integrator: must be one of {', '.join(map(repr, INTEGRATORS))} (got {kind!r})")
    return cls


__all__ = [
    "kick", "drift", "thermostat", "friction_coefficient",
    "VelocityVerlet", "BAOAB", "MDState", "WLMD", "BiasedMD", "WLMDState", "SPLITTINGS", "INTEGRATORS", "integrator_class",
]
