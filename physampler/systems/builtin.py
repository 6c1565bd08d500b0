"""The built-in system kinds of ``[system] kind`` (:mod:`physampler.registry`): the analytic
wells (docs/science.md §13), Lennard-Jones clusters (§11) and ``python``, a user's own System
from a factory or given as an object.  The physical CVs they share (energy, rg, q6, x0) are
built by :func:`physical_cvs`.
"""
from __future__ import annotations

import math

from .. import config as C
from ..registry import Built, SystemKind, register_system

PHYSICAL_CVS = ("energy", "rg", "q6", "x0")
_pos, _nonneg = (lambda x: x > 0), (lambda x: x >= 0)


def physical_cvs(cfg: dict, system, names=None):
    """The core's CVs of ``names`` (default ``cvs.names``): U, R_g, Q6 or the first coordinate."""
    from ..cvs import CVSet, FunctionCV, PotentialEnergy

    cvs = []
    for name in cfg["cvs"]["names"] if names is None else names:
        if name == "energy":
            cvs.append(PotentialEnergy(system))
        elif name == "rg":
            from ..order_parameters import RadiusOfGyration

            cvs.append(RadiusOfGyration())
        elif name == "q6":
            from ..order_parameters import Steinhardt

            cvs.append(Steinhardt(6, r_on=cfg["cvs"]["q6_r_on"], r_off=cfg["cvs"]["q6_r_off"]))
        elif name == "x0":
            cvs.append(FunctionCV(lambda q: q[:, 0], "x0", units="1", long_name="first coordinate"))
        else:
            raise C.ConfigError(f"cvs.names: {name!r} is not a physical CV ({', '.join(PHYSICAL_CVS)})")
    return CVSet(cvs)


# ------------------------------------------------------------------ harmonic, double well
def _harmonic(cfg, dtype, device, system=None):
    from .harmonic import HarmonicWell

    s = cfg["system"]
    return Built(HarmonicWell.isotropic(s["dims"], s["stiffness"], dtype=dtype, device=device))


def _harmonic_starts(cfg, system, walkers, gen):
    """N(0, 1/k) per coordinate: the canonical distribution at kT = 1."""
    import torch  # here, not at import: checking a config loads no torch

    s = cfg["system"]
    return torch.randn((walkers, s["dims"]), generator=gen, dtype=torch.float64) / math.sqrt(s["stiffness"])


def _double_well(cfg, dtype, device, system=None):
    from .double_well import DoubleWell1D

    return Built(DoubleWell1D(cfg["system"]["barrier"], dtype=dtype, device=device))


def _double_well_starts(cfg, system, walkers, gen):
    """x = −1 + N(0, 0.01): every walker in the left well."""
    import torch  # here, not at import: checking a config loads no torch

    return -1.0 + 0.1 * torch.randn((walkers, 1), generator=gen, dtype=torch.float64)


# ------------------------------------------------------------------ Lennard-Jones clusters
def _lj(cfg, dtype, device, system=None):
    from .lennard_jones import LJCluster

    s = cfg["system"]
    return Built(LJCluster(s["atoms"], s["radius"], wall_stiffness=s["wall_stiffness"],
                           sphere_centre=s["sphere_centre"], dtype=dtype, device=device))


def _lj_starts(cfg, system, walkers, gen):
    """FIRE-quenched random clusters from the run seed (every walker in some local minimum)."""
    from ..validation_lj import start_configurations
    from .lennard_jones import LJCluster

    return start_configurations(LJCluster(cfg["system"]["atoms"], cfg["system"]["radius"]), walkers,
                                cfg["run"]["seed"])


def _lj_memory(cfg, b):
    from ..resources import Item

    a = float(cfg["system"]["atoms"])
    # all-pairs distance vectors of the torch path and of the FIRE-quenched starts
    return [Item("system.atoms", "pair distances", cfg["run"]["walkers"] * a**2 * 3 * 8 * 4)]


# ------------------------------------------------------------------ python: a user's System
#: converters of a factory's result that is not a System: (accepts(obj), build(obj, cfg, dtype, device) -> Built,
#: the CV names the result may bring).  physampler.adapters adds one for an nn.Module with its data.
FACTORY_RESULTS: list[tuple] = []


def register_factory_result(accepts, build, cvs: tuple[str, ...]) -> None:
    """Let ``system.factory`` return something besides a System (``accepts(obj)`` true), turned into
    a :class:`~physampler.registry.Built` by ``build(obj, cfg, dtype, device)``; ``cvs``: its CV names."""
    FACTORY_RESULTS.append((accepts, build, tuple(cvs)))


def _factory_object(factory: str, dtype, device):
    import importlib

    if factory is None:
        raise C.ConfigError("system.factory: is required for kind = 'python', e.g. 'mypackage.systems:build' "
                            "(or pass the system to physampler.run_job) (got nothing)")
    mod, _, fn = factory.partition(":")
    try:
        obj = getattr(importlib.import_module(mod), fn)
    except (ImportError, AttributeError) as e:
        raise C.ConfigError(f"system.factory: cannot import {factory!r} ({type(e).__name__}: {e})") from None
    return obj(dtype=dtype, device=device)


def checked_user_system(system, what: str):
    """A user's System, with ``initial_positions(walkers, generator)`` for the walkers' starts."""
    from ..system import System

    if not isinstance(system, System):
        raise C.ConfigError(f"system.factory: {what} must be a physampler System (got {type(system).__name__})")
    if not callable(getattr(system, "initial_positions", None)):
        raise C.ConfigError(f"system.factory: the {type(system).__name__} of {what} has no "
                            "initial_positions(walkers, generator) for the walkers' starts")
    return system


def _python(cfg, dtype, device, system=None):
    """The factory's result (or the object given to run_job): a System, or what a registered
    converter accepts; the CVs must be the ones that result provides."""
    from ..system import System

    what = "the system given to run_job" if system is not None else repr(cfg["system"]["factory"])
    obj = system if system is not None else _factory_object(cfg["system"]["factory"], dtype, device)
    names = cfg["cvs"]["names"]
    if not isinstance(obj, System):
        for accepts, build, cvs in FACTORY_RESULTS:
            if accepts(obj):
                bad = [n for n in names if n not in cvs]
                if bad:
                    raise C.ConfigError(f"cvs.names: {bad[0]!r} is not a CV of the {type(obj).__name__} of {what} "
                                        f"(it provides {', '.join(cvs)})")
                return build(obj, cfg, dtype, device)
    bad = [n for n in names + cfg["cvs"]["observe"] if n not in ("energy", "x0")]
    if bad and isinstance(obj, System):
        raise C.ConfigError(f"cvs.names: {bad[0]!r} is not a CV of a python System (energy, x0)")
    return Built(checked_user_system(obj, what))


def _python_starts(cfg, system, walkers, gen):
    import torch  # here, not at import: checking a config loads no torch

    return torch.as_tensor(system.initial_positions(walkers, gen))  # job.initial_positions checks the shape


def register() -> None:
    K = C.Key
    register_system(SystemKind(
        "harmonic", {"dims": K("int", 10, "harmonic: number of coordinates N", "> 0", _pos),
                     "stiffness": K("float", 1.0, "harmonic: spring constant k of U = ½ Σ k x²", "> 0", _pos)},
        _harmonic, _harmonic_starts, cvs=("energy", "x0"), observable=("energy", "x0"),
        coordinates=lambda cfg: (float(cfg["system"]["dims"]), "system.dims"),
        describe=lambda s: f"{s['dims']}-D harmonic well, k = {s['stiffness']:g}",
        doc="isotropic harmonic well U = ½ k Σ x² in N dimensions (exact ln g = (N/2 − 1) ln U)"))
    register_system(SystemKind(
        "double_well", {"barrier": K("float", 1.0, "double_well: barrier height h of U = h (x² − 1)²", "> 0", _pos)},
        _double_well, _double_well_starts, cvs=("energy", "x0"), observable=("energy", "x0"),
        coordinates=lambda cfg: (1.0, "system.kind"),
        describe=lambda s: f"1-D double well, barrier h = {s['barrier']:g}",
        doc="1-D double well U = h (x² − 1)²"))
    register_system(SystemKind(
        "lj_cluster", {
            "atoms": K("int", 13, "lj_cluster: number of atoms n", ">= 2", lambda x: x >= 2),
            "radius": K("float", 2.0, "lj_cluster: confining-sphere radius R_c (σ)", "> 0", _pos),
            "wall_stiffness": K("float", 100.0, "lj_cluster: sphere wall k_w (ε/σ²)", "> 0", _pos),
            "sphere_centre": K("str", "origin", "lj_cluster: centre of the confining sphere: the origin, or the "
                               "cluster's centre of mass (com, the heat-capacity literature's convention)",
                               choices=("origin", "com"))},
        _lj, _lj_starts, cvs=("energy", "rg", "q6"), observable=("energy", "rg", "q6"),
        coordinates=lambda cfg: (3.0 * cfg["system"]["atoms"], "system.atoms"), memory=_lj_memory,
        describe=lambda s: f"LJ{s['atoms']} in a sphere R_c = {s['radius']:g} σ",
        doc="n Lennard-Jones atoms in a confining sphere (reduced units ε = σ = m = 1)"))
    register_system(SystemKind(
        "python", {"factory": K("str", None, "python: your own system, 'package.module:function', called as "
                                "function(dtype, device) and returning a physampler System with "
                                "initial_positions(walkers, generator), or a network with its data "
                                "(physampler.adapters.NetworkTask) (docs/architecture.md); required unless the "
                                "system is passed to physampler.run_job", "module:function", C.is_factory)},
        _python, _python_starts, cvs=None, observable=("energy", "x0"),
        # the factory's own system is not known before it is built: not counted
        coordinates=lambda cfg: (1.0, "system.factory"),
        describe=lambda s: f"system of {s['factory']}",
        doc="your own System (or network) from a factory or a Python object"))
