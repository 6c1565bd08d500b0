"""Rules that the config check and the objects share, kept free of torch and numba so that
checking a config imports neither: whether walkers feel the system's potential by default
(per method) and when the compiled (numba) engine runs a job (:func:`physampler.config.compiled_obstacle`
and :class:`~physampler.integrators.compiled.CompiledWLMD` both apply :func:`compiled_obstacle`).
"""
from __future__ import annotations

#: per method kind: whether walkers also feel the system's potential unless told otherwise
PHYSICAL_DEFAULT = {"wang_landau": False, "well_tempered_metadynamics": True, "static": False}

#: thermostat noise kinds (physampler.rng.make_rng): auto, one generator per walker, counter-based
NOISE = ("auto", "streams", "counter")

#: the methods the compiled block loop implements (a static bias is its loop with f = 0)
COMPILED_METHODS = ("wang_landau", "static")

#: the system kinds the compiled block loop implements (physampler.systems.lj_kernels)
COMPILED_SYSTEMS = ("lj_cluster", "harmonic")

#: the splittings the compiled block loop implements (physampler.systems.lj_kernels.wlmd_cluster_block)
COMPILED_SPLITTINGS = ("ktd", "baoab")


def compiled_obstacle(*, system: str, cvs: list[str], device: str, dtype: str, splitting: str, method: str,
                      potential: bool) -> str | None:
    """None when the compiled engine applies, else the first setting it would need, worded as config keys."""
    if system not in COMPILED_SYSTEMS:
        return "system.kind among " + ", ".join(map(repr, COMPILED_SYSTEMS))
    if list(cvs) != ["energy"]:
        return "cvs.names = ['energy']"
    if device != "cpu" or dtype != "float64":
        return "run.device = 'cpu' and run.dtype = 'float64'"
    if splitting not in COMPILED_SPLITTINGS:
        return f"integrator.splitting among {', '.join(map(repr, COMPILED_SPLITTINGS))}"
    if method not in COMPILED_METHODS:
        return "method.kind among " + ", ".join(map(repr, COMPILED_METHODS))
    if potential:
        return "integrator.potential = false"
    return None
