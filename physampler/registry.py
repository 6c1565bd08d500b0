"""Systems and job kinds as a registry: what a config's ``[system] kind`` (and a whole config
kind, such as ``physampler train``) may name, and how each is built (docs/architecture.md).

A :class:`SystemKind` carries everything the job machinery needs to know about one kind of
system — its ``[system]`` keys, the CVs it accepts, its builder and the walkers' starts, its
memory estimate and its plot title — so that :mod:`physampler.config`, :mod:`physampler.job`,
:mod:`physampler.resources` and :mod:`physampler.plotting` hold no branch per kind.  The
built-ins (harmonic, double_well, lj_cluster, python) register in
:mod:`physampler.systems.builtin`; plug-ins register through the entry-point group
``physampler.plugins`` (each entry a function that calls :func:`register_system` /
:func:`register_job_kind` / :func:`register_validation`): that is how ``physampler.adapters`` brings the neural-network
system and ``physampler train`` without the core importing ``torch.nn``.  A user's own code
needs no registration: ``[system] kind = "python"`` with ``factory = "module:function"``, or
:class:`physampler.Job` built from objects.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

GROUP = "physampler.plugins"


@dataclass(frozen=True)
class Built:
    """What a :attr:`SystemKind.build` returns: the System, its CVs (None: the core's physical
    CVs of ``cvs.names``), the constraints on its walkers and, where the built object knows them
    better than its kind, the walkers' starts ``starts(walkers, generator)``."""

    system: Any
    cvs: Any = None
    constraints: list = field(default_factory=list)
    starts: Callable | None = None


@dataclass(frozen=True)
class SystemKind:
    """One value of ``[system] kind``.

    ``keys``: its ``[system]`` keys (:class:`physampler.config.Key`), besides ``kind``.
    ``cvs``: the names ``cvs.names`` may hold for it (None: decided by what its builder gets, which
    checks them); ``observable``: those ``cvs.observe`` may.
    ``build(cfg, dtype, device, system)`` → :class:`Built` (``system``: an object given in place of a
    factory, or None).  ``initial_positions(cfg, system, walkers, generator)`` → the walkers' starts
    (float64 or the run dtype; moved to the device by the caller).  ``check(cfg)``: cross-checks
    beyond the key types (raise :class:`~physampler.config.ConfigError`).  ``coordinates(cfg)`` →
    (coordinates per walker, the key that sets them) and ``memory(cfg, bytes_per_number)`` → extra
    :class:`physampler.resources.Item` s, for the memory guard.  ``describe(cfg)``: a figure title.
    ``identity``: the keys that define the sampled system (a trajectory overlaid on a landscape
    must agree in them); default all.  ``potential``: whether walkers may feel −∇U.
    """

    name: str
    keys: dict
    build: Callable
    initial_positions: Callable
    cvs: tuple[str, ...] | None
    observable: tuple[str, ...] = ()
    check: Callable | None = None
    coordinates: Callable | None = None
    memory: Callable | None = None
    describe: Callable | None = None
    probe: Callable | None = None
    identity: tuple[str, ...] | None = None
    potential: bool = True
    doc: str = ""


@dataclass(frozen=True)
class JobKind:
    """A config kind besides ``run`` (e.g. ``train``): its sections, its cross-checks, the keys a
    resume may change, the section that marks a text as of this kind, and the section whose
    ``steps`` and ``device`` the command line overrides; ``memory(cfg)`` → the
    :class:`physampler.resources.Item` s of its memory estimate; ``describe(cfg)`` → what the job
    does, in a few words, and ``probe(cfg, text)`` → ``steps(n)``, running n steps of it in
    memory for the time estimate (``physampler check``)."""

    name: str
    schema: dict
    check: Callable
    marker: tuple[str, ...]
    resumable: tuple = ()
    section: str = ""
    needs: str = ""
    memory: Callable | None = None
    describe: Callable | None = None
    probe: Callable | None = None


@dataclass(frozen=True)
class ValidationKind:
    """A ``physampler validate NAME`` brought by a plug-in: ``arguments(parser)`` adds its options
    to its argparse sub-parser, ``run(args)`` runs it and returns the exit code (0 pass, 1 fail,
    2 bad input)."""

    name: str
    help: str
    arguments: Callable
    run: Callable


_SYSTEMS: dict[str, SystemKind] = {}
_JOBS: dict[str, JobKind] = {}
_VALIDATIONS: dict[str, ValidationKind] = {}
_loaded = False


def register_system(kind: SystemKind, *, replace: bool = False) -> None:
    """Make ``kind`` a value of ``[system] kind``; ValueError when the name is taken (unless ``replace``)."""
    if not kind.name.isidentifier():
        raise ValueError(f"system kind {kind.name!r}: must be an identifier")
    if kind.name in _SYSTEMS and not replace:
        raise ValueError(f"system kind {kind.name!r} is already registered")
    if "kind" in kind.keys:
        raise ValueError(f"system kind {kind.name!r}: 'kind' is not one of its own keys")
    _SYSTEMS[kind.name] = kind


def unregister_system(name: str) -> SystemKind:
    """Remove the system kind ``name`` (KeyError when none is registered); returns it."""
    _load()
    return _SYSTEMS.pop(name)


def register_job_kind(kind: JobKind, *, replace: bool = False) -> None:
    """Make ``kind`` a config kind (``physampler.config.parse(text, kind=name)``)."""
    if kind.name in _JOBS and not replace or kind.name == "run":
        raise ValueError(f"job kind {kind.name!r} is already registered")
    _JOBS[kind.name] = kind


def register_validation(kind: ValidationKind, *, replace: bool = False) -> None:
    """Make ``kind`` a target of ``physampler validate``."""
    if kind.name in _VALIDATIONS and not replace:
        raise ValueError(f"validation {kind.name!r} is already registered")
    _VALIDATIONS[kind.name] = kind


def validations() -> dict[str, ValidationKind]:
    """Every validation registered by a plug-in (the core's own are built into the CLI)."""
    _load()
    return dict(_VALIDATIONS)


def _load() -> None:
    """The built-ins, then every plug-in of the entry-point group, once per process."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    from importlib.metadata import entry_points

    from .systems import builtin

    builtin.register()
    # one entry per name: an installation seen twice on the path (an editable one and a copy)
    # lists its entry points twice
    for _, ep in sorted({ep.name: ep for ep in entry_points(group=GROUP)}.items()):
        ep.load()()


def systems() -> dict[str, SystemKind]:
    """Every registered system kind, built-ins first."""
    _load()
    return dict(_SYSTEMS)


def system_kind(name: str) -> SystemKind:
    return systems()[name]


def job_kinds() -> dict[str, JobKind]:
    _load()
    return dict(_JOBS)
