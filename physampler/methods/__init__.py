"""Bias methods: what the walkers deposit on a grid and the force it exerts (docs/science.md §4).

A method is independent of the integrator that carries it (:mod:`physampler.integrators`):
any method runs on any splitting.  Each holds a :class:`~physampler.landscape.Landscape`
— its grid quantity S_m(ξ) in units of kT and the visit histogram H — and provides

  ``check_range(ξ, t, walkers)``   the in-grid mask under the landscape's edge policy,
  ``gradient(ξ)``                  ∂S_m/∂ξ (plus the edge walls), the force coefficient,
  ``update(ξ, t, inside, n)``      the deposit of step t by W = n walkers sharing the grid,
  ``log_density()``                its estimate of ln ρ(ξ), the log density of ξ without bias,
  ``state_dict()/load_state_dict()``.
"""
from .base import Method
from .metadynamics import WellTemperedMetadynamics
from .static import StaticBias
from .wang_landau import WangLandau

METHODS = {"wang_landau": WangLandau, "well_tempered_metadynamics": WellTemperedMetadynamics, "static": StaticBias}

__all__ = ["Method", "WangLandau", "WellTemperedMetadynamics", "StaticBias", "METHODS"]
