"""Run configuration: a TOML file (read with ``tomllib``) checked against a schema.

Every key of every section is declared (:class:`Key`) with its type, default,
allowed values and a one-line description; ``docs/config.md`` is written from
the same tables (:func:`markdown`), so documentation and checks cannot drift.
The ``[system]`` keys are those of the chosen system kind, registered with
:mod:`physampler.registry` (built-ins, and plug-ins such as the NN system).
Any problem raises :class:`ConfigError` whose message reads
``<section.key>: <what is wrong> (got <value>)``.

Sections of a sampling (``run``) config: ``[system]`` ``[cvs]`` ``[landscape]``
``[bias]`` ``[integrator]`` ``[schedule]`` ``[run]`` ``[output]`` (:func:`schema`); a
registered job kind brings its own (``train``, from ``physampler.adapters``:
``[system]`` ``[optimizer]`` ``[train]`` ``[output]``).
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .rules import NOISE, PHYSICAL_DEFAULT

ENGINES = ("auto", "torch", "compiled")
CAPTURES = ("none", "compile", "cuda_graph")
SCHEDULE_KINDS = ("inverse_time", "three_stage", "constant")
DTYPES = ("float64", "float32")


class ConfigError(ValueError):
    """A configuration problem; ``str()`` is the one line the CLI prints after ``config error: ``."""


@dataclass(frozen=True)
class Key:
    type: str  # int | float | bool | str | list[float] | list[int] | list[str] | list[table]
    default: Any  # REQUIRED for keys without a default; None: optional, absent
    doc: str
    allowed: str = ""  # human-readable range for the docs and the messages
    check: Callable[[Any], bool] | None = None
    choices: tuple = ()


REQUIRED = object()


def is_factory(text: str) -> bool:
    """'package.module:function' with identifiers on both sides."""
    mod, sep, fn = text.partition(":")
    return bool(sep) and all(p.isidentifier() for p in mod.split(".")) and fn.isidentifier()


def _pos(x):
    return x > 0


def _nonneg(x):
    return x >= 0


def _unit(x):
    return 0.0 <= x <= 1.0


THREADS_DOC = ("torch intra-op threads; 0: auto, the cores this process may use less those other running p"
               "rocesses occupy at the start (at least 1; split between torchrun's local ranks); a resume "
               "keeps the count its checkpoint ran with")

#: the sections of a run config besides [system], whose keys come from the registered system
#: kinds (:func:`schema`); the CV names of [cvs] are those the kinds accept
_RUN_SECTIONS: dict[str, dict[str, Key]] = {
    "cvs": {
        "names": Key("list[str]", ["energy"], "the CVs, one landscape axis each, in order (those the system kind "
                     "takes)", "non-empty, unique"),
        "observe": Key("list[str]", [], "physical CVs recorded per landscape bin but not biased (their per-bin means "
                       "are reweighted to ⟨O⟩(T) by analyze: a static-bias production run)", "unique, not in names"),
        "observe_every": Key("int", 1, "record the observed CVs every this many steps", "> 0", _pos),
        "q6_r_on": Key("float", 1.3, "q6: bond weight 1 below this distance (σ)", "> 0", _pos),
        "q6_r_off": Key("float", 1.5, "q6: bond weight 0 beyond this distance (σ)", "> q6_r_on", _pos),
    },
    "landscape": {
        "lower": Key("list[float]", REQUIRED, "lower grid edge per CV", "finite, < upper"),
        "upper": Key("list[float]", REQUIRED, "upper grid edge per CV", "finite, > lower"),
        "bins": Key("list[int]", REQUIRED, "bins per CV", ">= 3", lambda x: x >= 3),
        "sigma": Key("float", 1.0, "deposit kernel width in bins; the window cutoff·sigma must fit in the grid", "> 0",
                     _pos),
        "cutoff": Key("float", 4.0, "kernel truncation in units of sigma (the window cutoff·sigma must reach at least "
                      "half a bin)", "> 0", _pos),
        "edge": Key("str", "reflect", "kernel mass beyond an edge is mirrored or dropped", choices=("reflect", "truncate")),
        "out_of_range": Key("str", "wall", "a CV off the grid raises, or feels edge walls",
                            choices=("raise", "wall")),
        "wall_strength": Key("float", None, "β of the edge walls (per CV unit²); default 1/bin width²; at most "
                             "1e6/bin width² (10⁶ kT one bin beyond the edge)", "> 0", _pos),
        "initial_temperature": Key("float", None, "start S as (U − lower)/T along the energy CV, so walkers begin "
                                   "with canonical dynamics at T instead of free flight; at least integrator.kT/1e4; "
                                   "default: S = 0", "> 0", _pos),
    },
    "bias": {
        "walls": Key("list[table]", [], "extra walls: {cv, side = lower|upper, at, strength, shape = quadratic|linear}",
                     "each cv among [cvs].names"),
    },
    "method": {
        "kind": Key("str", "wang_landau", "the bias method (docs/science.md §4): Wang–Landau, well-tempered "
                    "metadynamics, or a static (frozen) entropy bias for a multicanonical production run",
                    choices=tuple(PHYSICAL_DEFAULT)),
        "delta_T": Key("float", None, "well_tempered_metadynamics: ΔT of the bias factor γ = (T + ΔT)/T (required "
                       "there); deposit heights f(t)·exp(−V/ΔT) come from [schedule]", "> 0", _pos),
        "landscape": Key("str", None, "static: the landscape.nc whose entropy is the frozen bias (required there; its "
                         "grid must equal [landscape])"),
    },
    "integrator": {
        "kind": Key("str", "wlmd", "the integrator", choices=("wlmd",)),
        "engine": Key("str", "auto", "compiled: numba block loop (lj_cluster or harmonic, one energy CV, CPU); auto picks it "
                      "when it applies", choices=ENGINES),
        "dt": Key("float", REQUIRED, "time step", "> 0", _pos),
        "c_f": Key("float", 0.01, "thermostat coefficient c_f per step", "[0, 1]", _unit),
        "splitting": Key("str", "ktd", "ktd: kick, thermostat, drift (the [P1] step); baoab: Leimkuhler–Matthews "
                         "BAOAB of the same operators, without ktd's c_f/(2 − c_f) configurational bias; obabo: "
                         "Bussi–Parrinello; verlet: velocity Verlet, no thermostat (c_f = 0)",
                         choices=("ktd", "baoab", "obabo", "verlet")),
        "potential": Key("bool", None, "walkers also feel the system's potential at kT; default: the method's "
                         "(true for well_tempered_metadynamics, false otherwise)"),
        "kT": Key("float", 1.0, "thermostat temperature T0 (= kT)", "> 0", _pos),
        "capture": Key("str", "none", "run the whole step captured, with no host sync (docs/science.md §7.1): "
                       "compile — torch.compile(fullgraph=True), cuda_graph — replayed as a CUDA graph (run.device "
                       "cuda); both draw counter-based noise (run.noise = counter, the CUDA default)",
                       choices=CAPTURES),
    },
    "schedule": {
        "kind": Key("str", "inverse_time", "f_WL(t) schedule", choices=SCHEDULE_KINDS),
        "F": Key("float", 0.5, "inverse_time/three_stage: peak factor F", "> 0", _pos),
        "t_wl": Key("float", None, "inverse_time: t_WL (steps); default run.steps / 8 of the run as first started "
                    "(a resume with more steps keeps it)", "> 0", _pos),
        "t_rise": Key("float", None, "three_stage: end of the linear rise (steps)", "> 0", _pos),
        "t_drop": Key("float", None, "three_stage: start of the 1/t decay (steps)", ">= t_rise", _pos),
        "t_off": Key("float", 0.0, "three_stage: offset of the 1/t decay", "< t_drop"),
        "f": Key("float", 0.0, "constant: f_WL", ">= 0", _nonneg),
    },
    "run": {
        "walkers": Key("int", 16, "walkers sharing the landscape", "> 0", _pos),
        "steps": Key("int", REQUIRED, "steps per walker (in total, across resumes)", "> 0", _pos),
        "seed": Key("int", 0, "run seed; walker w uses the stream of (seed, rank, w)", ">= 0", _nonneg),
        "device": Key("str", "cpu", "torch device: cpu, cuda, cuda:N (checked against this machine's devices)"),
        "dtype": Key("str", "float64", "positions and velocities (landscapes are always float64)", choices=DTYPES),
        "threads": Key("int", 0, THREADS_DOC, ">= 0 (0: auto)", _nonneg),
        "noise": Key("str", "auto", "thermostat noise: streams, one generator per walker (the CPU default); counter, "
                     "counter-based Philox streams drawn for all walkers at once with no host sync (the CUDA "
                     "default; docs/science.md §3); auto picks by run.device", choices=NOISE),
        "sync_interval": Key("int", 100, "under torchrun: steps K between all-reduces of the landscape increments",
                             "> 0", _pos),
        "sync_timeout": Key("float", 300.0, "under torchrun: seconds before a silent rank counts as failed", "> 0",
                            _pos),
    },
    "windows": {
        "count": Key("int", 1, "replica-exchange Wang–Landau (docs/science.md §4): overlapping windows of equal width "
                     "along the first CV, each with its own S and run.walkers / count walkers, joined at the end; "
                     "1: one window, the whole grid", ">= 1 (> 1: wang_landau without the potential, "
                     "out_of_range = wall, run.walkers a multiple of it)", _pos),
        "overlap": Key("float", 0.75, "fraction of a window its neighbour shares (Vogel et al.: 0.75)", "(0, 1)",
                       lambda x: 0.0 < x < 1.0),
        "swap_interval": Key("int", 100, "steps between configuration swaps of neighbouring windows", "> 0", _pos),
        "wall_slope": Key("float", 10.0, "largest slope of the walls at a window's edges (S per unit of the first "
                          "CV): quadratic (landscape.wall_strength) near the edge, linear beyond, so walkers that "
                          "start far outside their window are pulled in, not flung", "> 0", _pos),
    },
    "output": {
        "directory": Key("str", "physampler-run", "output directory (created; never overwritten without "
                         "--overwrite)"),
        "report_interval": Key("int", 1000, "steps between trajectory records and progress updates", "> 0", _pos),
        "checkpoint_interval": Key("int", 100000, "steps between checkpoints (a multiple of report_interval; under "
                                   "torchrun also of run.sync_interval)", "> 0", _pos),
        "plot": Key("bool", True, "write landscape.png at the end"),
        "temperatures": Key("list[float]", [], "energy CV: temperatures of the C_V(T) table/plot; default from S",
                            "> 0", _pos),
    },
}

WALL_KEYS = {"cv": str, "side": str, "at": float, "strength": float, "shape": str}



def _system_table(kind: str | None = None) -> dict[str, Key]:
    """[system]: ``kind`` and the keys of that kind (of every registered kind when None)."""
    from .registry import systems

    kinds = systems()
    table = {"kind": Key("str", REQUIRED, "the system sampled (docs/architecture.md: built-ins and plug-ins)",
                         choices=tuple(kinds))}
    for name, k in kinds.items():
        if kind is None or name == kind:
            table |= k.keys
    return table


def _cv_names() -> tuple[str, ...]:
    from .registry import systems

    return tuple(dict.fromkeys(n for k in systems().values() for n in (k.cvs or ()) + k.observable))


def schema(kind: str = "run", system: str | None = None) -> dict[str, dict[str, Key]]:
    """The sections and keys of a config of ``kind`` (``run``, or a registered job kind such as
    ``train``); for a run, [system] holds the keys of system kind ``system`` (None: of all kinds)."""
    if kind != "run":
        from .registry import job_kinds

        return job_kinds()[kind].schema
    names = _cv_names()
    cvs = dict(_RUN_SECTIONS["cvs"])
    for k in ("names", "observe"):
        cvs[k] = Key(cvs[k].type, cvs[k].default, cvs[k].doc, cvs[k].allowed, cvs[k].check, choices=names)
    return {"system": _system_table(system), **_RUN_SECTIONS, "cvs": cvs}


def _job(kind: str):
    from .registry import job_kinds

    kinds = job_kinds()
    if kind not in kinds:
        raise ValueError(f"kind: must be run or one of {', '.join(kinds)} (got {kind!r})")
    return kinds[kind]


def printable(text: str) -> str:
    """A section or key name as it may stand in a one-line message (repr() when it holds
    control characters such as a newline)."""
    return text if text.isprintable() else repr(text)


def format_value(v) -> str:
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, dict):
        return "{" + ", ".join(f"{printable(str(k))} = {format_value(x)}" for k, x in v.items()) + "}"
    text = str(v)
    return text if len(text) <= 80 else text[:60] + f"... ({len(text)} characters)"


def error(where: str, what: str, got) -> ConfigError:
    return ConfigError(f"{where}: {what} (got {format_value(got)})")


def _scalar(where: str, typ: str, v):
    if typ == "bool":
        if not isinstance(v, bool):
            raise error(where, "must be true or false", v)
        return v
    if typ == "int":
        if isinstance(v, bool) or not isinstance(v, int):
            raise error(where, "must be an integer", v)
        if not -(2**63) <= v < 2**63:  # what numpy, torch and the seed streams can hold
            raise error(where, "must be an integer of at most 64 bits (|n| < 2^63)", v)
        return v
    if typ == "float":
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise error(where, "must be a number", v)
        try:
            v = float(v)
        except OverflowError:  # an integer literal beyond the float range, e.g. 10**400
            raise error(where, "must be finite", v) from None
        if not math.isfinite(v):
            raise error(where, "must be finite", v)
        return v
    if typ == "str":
        if not isinstance(v, str):
            raise error(where, "must be a string", v)
        return v
    raise AssertionError(typ)


def _value(where: str, key: Key, v):
    if key.type.startswith("list["):
        inner = key.type[5:-1]
        if not isinstance(v, list):
            raise error(where, f"must be a list of {inner}s", v)
        if inner == "table":
            return [_wall(f"{where}[{i}]", x) for i, x in enumerate(v)]
        out = [_scalar(f"{where}[{i}]", inner, x) for i, x in enumerate(v)]
        items = [(f"{where}[{i}]", x) for i, x in enumerate(out)]
    else:
        out = _scalar(where, key.type, v)
        items = [(where, out)]
    for w, x in items:
        if key.choices and x not in key.choices:
            raise error(w, "must be one of " + ", ".join(key.choices), x)
        if key.check is not None and not key.check(x):
            raise error(w, f"must be {key.allowed}", x)
    return out


def _wall(where: str, v) -> dict:
    if not isinstance(v, dict):
        raise error(where, "must be a table {cv, side, at, strength, shape}", v)
    extra = sorted(set(v) - set(WALL_KEYS))
    if extra:
        raise error(f"{where}.{printable(extra[0])}", "unknown key; allowed: " + ", ".join(WALL_KEYS), v[extra[0]])
    out = {"shape": "quadratic"} | dict(v)
    for k, t in WALL_KEYS.items():
        if k not in out:
            raise error(f"{where}.{k}", "is required", None)
        out[k] = _scalar(f"{where}.{k}", "float" if t is float else "str", out[k])
    if out["side"] not in ("lower", "upper"):
        raise error(f"{where}.side", "must be one of lower, upper", out["side"])
    if out["shape"] not in ("quadratic", "linear"):
        raise error(f"{where}.shape", "must be one of quadratic, linear", out["shape"])
    if out["strength"] <= 0:
        raise error(f"{where}.strength", "must be > 0", out["strength"])
    return out


def parse(text: str, *, kind: str = "run") -> dict:
    """Parse and check TOML ``text`` as a ``run`` (sampling) config or one of a registered job kind
    (``train``); returns {section: {key: value}} with every default filled."""
    if kind == "run":
        cross, needs = cross_checks, "[system], [landscape], [integrator] and [run]"
    else:
        job = _job(kind)
        cross, needs = job.check, job.needs
    if not text.strip():
        raise ConfigError(f"config: the file is empty; it needs at least {needs} "
                          f"(got {len(text)} bytes of whitespace)")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config: not valid TOML: {e} (got {text.splitlines()[0][:40]!r}...)") from None
    tables = schema(kind)
    if kind == "run":
        # [system] takes the keys of its kind only: the kind first, then the table it selects
        given = raw.get("system", {})
        if isinstance(given, dict) and "kind" in given:
            tables = schema(kind, _value("system.kind", tables["system"]["kind"], given["kind"]))
    unknown = sorted(set(raw) - set(tables))
    if unknown:
        raise error(printable(unknown[0]), "unknown section; allowed: " + ", ".join(tables), raw[unknown[0]])
    cfg: dict[str, dict] = {}
    for sec, keys in tables.items():
        given = raw.get(sec, {})
        if not isinstance(given, dict):
            raise error(sec, "must be a table [" + sec + "]", given)
        extra = sorted(set(given) - set(keys))
        if extra:
            raise error(f"{sec}.{printable(extra[0])}", "unknown key; allowed: " + ", ".join(keys), given[extra[0]])
        out = {}
        for name, key in keys.items():
            where = f"{sec}.{name}"
            if name in given:
                out[name] = _value(where, key, given[name])
            elif key.default is REQUIRED:
                raise ConfigError(f"{where}: is required (got nothing)")
            else:
                out[name] = key.default
        cfg[sec] = out
    cross(cfg)
    return cfg


def check(cfg: dict, kind: str = "run") -> None:
    """The cross-checks of a parsed config of ``kind`` (again after command-line overrides)."""
    (cross_checks if kind == "run" else _job(kind).check)(cfg)


def section(kind: str) -> str:
    """The section whose ``steps`` and ``device`` the command line overrides."""
    return "run" if kind == "run" else _job(kind).section


def describe(cfg: dict, kind: str) -> str:
    """What a job of a registered kind does, in a few words."""
    job = _job(kind)
    return job.describe(cfg) if job.describe is not None else f"{kind} job"


def _cv_checks(cfg: dict, kind) -> None:
    """cvs.names and cvs.observe: unique, disjoint, and CVs that system kind ``kind`` takes."""
    from .registry import systems

    names, observed = cfg["cvs"]["names"], cfg["cvs"]["observe"]
    if not names:
        raise error("cvs.names", "must name at least one CV", names)
    if len(set(names)) != len(names):
        raise error("cvs.names", "must be unique", names)
    if len(set(observed)) != len(observed) or set(observed) & set(names):
        raise error("cvs.observe", f"must be unique and not among cvs.names {names}", observed)
    if kind.cvs is None:  # known once the factory's result is (the kind's builder checks)
        return
    for key, listed, allowed in (("cvs.names", names, kind.cvs), ("cvs.observe", observed, kind.observable)):
        for n in listed:
            if n not in allowed:
                owners = [k.name for k in systems().values() if n in (k.cvs or ()) + k.observable]
                raise error(key, f"{n!r} is not a{'n observed' if key == 'cvs.observe' else ''} CV of system.kind = "
                            f"{kind.name!r}, which takes " + (", ".join(allowed) or "none")
                            + (f" ({n!r} is one of {', '.join(owners)})" if owners else ""), listed)


def cross_checks(cfg: dict) -> None:
    from .registry import system_kind

    kind = system_kind(cfg["system"]["kind"])
    names = cfg["cvs"]["names"]
    _cv_checks(cfg, kind)
    if kind.check is not None:
        kind.check(cfg)
    if cfg["cvs"]["q6_r_off"] <= cfg["cvs"]["q6_r_on"]:
        raise error("cvs.q6_r_off", "must be > q6_r_on", cfg["cvs"]["q6_r_off"])
    ls = cfg["landscape"]
    for k in ("lower", "upper", "bins"):
        if len(ls[k]) != len(names):
            raise error(f"landscape.{k}", f"must give one value per CV ({len(names)})", ls[k])
    for i, (lo, hi) in enumerate(zip(ls["lower"], ls["upper"])):
        if not lo < hi:
            raise error(f"landscape.lower[{i}]", f"must be < landscape.upper[{i}] = {hi}", lo)
    if ls["initial_temperature"] is not None and "energy" not in names:
        raise error("landscape.initial_temperature", "needs an 'energy' CV in cvs.names", ls["initial_temperature"])
    for i, w in enumerate(cfg["bias"]["walls"]):
        if w["cv"] not in names:
            raise error(f"bias.walls[{i}].cv", "must be one of " + ", ".join(names), w["cv"])
    sc = cfg["schedule"]
    if sc["kind"] == "three_stage":
        for k in ("t_rise", "t_drop"):
            if sc[k] is None:
                raise ConfigError(f"schedule.{k}: is required for kind = 'three_stage' (got nothing)")
        if sc["t_drop"] < sc["t_rise"]:
            raise error("schedule.t_drop", "must be >= schedule.t_rise", sc["t_drop"])
        if sc["t_off"] >= sc["t_drop"]:
            raise error("schedule.t_off", "must be < schedule.t_drop", sc["t_off"])
    widths = [(hi - lo) / b for lo, hi, b in zip(ls["lower"], ls["upper"], ls["bins"])]
    kernel_checks("landscape", ls["sigma"], ls["cutoff"], ls["bins"])
    if ls["wall_strength"] is not None:
        for w in widths:
            wall_check("landscape.wall_strength", ls["wall_strength"], w, "quadratic")
    for i, wall in enumerate(cfg["bias"]["walls"]):
        wall_check(f"bias.walls[{i}].strength", wall["strength"], widths[names.index(wall["cv"])], wall["shape"])
    t0 = ls["initial_temperature"]
    if t0 is not None and cfg["integrator"]["kT"] / t0 > 1e4:
        raise error("landscape.initial_temperature", f"must be >= integrator.kT/1e4 = {cfg['integrator']['kT'] / 1e4:g}"
                   " (the starting WL force kT/T would exceed 10⁴ times the canonical one)", t0)
    out = cfg["output"]
    if out["checkpoint_interval"] % out["report_interval"]:
        raise error("output.checkpoint_interval", f"must be a multiple of output.report_interval = "
                   f"{out['report_interval']}", out["checkpoint_interval"])
    device_name("run.device", cfg["run"]["device"])
    _method_checks(cfg, kind)
    eng, cap = cfg["integrator"]["engine"], cfg["integrator"]["capture"]
    if cap != "none":
        cuda = cfg["run"]["device"].startswith("cuda")
        if eng == "compiled":
            raise error("integrator.capture", "the compiled (numba) engine has no captured step; set "
                        "integrator.engine = 'torch' or capture = 'none'", cap)
        if cap == "cuda_graph" and not cuda:
            raise error("integrator.capture", "'cuda_graph' needs run.device = 'cuda'", cap)
        noise = cfg["run"]["noise"]
        if noise == "streams" or (noise == "auto" and not cuda):
            raise error("integrator.capture", f"{cap!r} needs run.noise = 'counter' (counter-based noise; "
                        f"got run.noise = {noise!r} on {cfg['run']['device']!r})", cap)
    if eng == "compiled":
        why = compiled_obstacle(cfg)
        if why:
            raise error("integrator.engine", f"'compiled' needs {why}", eng)
    _window_checks(cfg)


def _window_checks(cfg: dict) -> None:
    from .grid import Axis
    from .windows import layout

    win, m, it, ls = cfg["windows"], cfg["method"], cfg["integrator"], cfg["landscape"]
    n = win["count"]
    if n == 1:
        return
    potential = PHYSICAL_DEFAULT[m["kind"]] if it["potential"] is None else it["potential"]
    if m["kind"] != "wang_landau" or potential:
        raise error("windows.count", "windows need method.kind = 'wang_landau' without the potential "
                    f"(got method.kind = {m['kind']!r}, potential {bool(potential)})", n)
    if ls["out_of_range"] != "wall":
        raise error("windows.count", "windows need landscape.out_of_range = 'wall' (walls keep walkers in their "
                    "window)", n)
    if cfg["run"]["walkers"] % n:
        raise error("run.walkers", f"must be a multiple of windows.count = {n} (each window gets an equal share)",
                    cfg["run"]["walkers"])
    if it["capture"] != "none":
        raise error("windows.count", "windows swap between blocks of steps, outside a captured step "
                    "(integrator.capture = 'none')", n)
    try:
        layout(Axis(cfg["cvs"]["names"][0], ls["lower"][0], ls["upper"][0], bins=ls["bins"][0]), n, win["overlap"])
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _method_checks(cfg: dict, kind) -> None:
    m, it = cfg["method"], cfg["integrator"]
    if m["kind"] == "well_tempered_metadynamics" and m["delta_T"] is None:
        raise ConfigError("method.delta_T: is required for well_tempered_metadynamics (got nothing)")
    if m["kind"] == "static" and m["landscape"] is None:
        raise ConfigError("method.landscape: is required for static, the landscape.nc of the frozen bias (got nothing)")
    if it["splitting"] == "verlet" and it["c_f"] != 0.0:
        raise error("integrator.c_f", "must be 0 for splitting = 'verlet', which has no thermostat", it["c_f"])
    potential = PHYSICAL_DEFAULT[m["kind"]] if it["potential"] is None else it["potential"]
    if potential and not kind.potential:
        raise error("integrator.potential", f"must be false for system.kind = {kind.name!r}, whose walkers feel only "
                    "the CV forces", it["potential"])


MAX_WALL = 1e6  # kT: a wall's energy one bin beyond its start; stiffer walls cannot be integrated at a sane dt


def kernel_checks(sec: str, sigma: float, cutoff: float, bins) -> None:
    """The deposit window ±cutoff·σ must reach a bin centre wherever ξ lies (≥ ½ bin) and fit in the grid."""
    if cutoff * sigma < 0.5:
        key, val = ("cutoff", cutoff) if sec == "landscape" else ("sigma", sigma)
        raise error(f"{sec}.{key}", f"cutoff·sigma = {cutoff * sigma:.3g} bins leaves the deposit window without a bin "
                   f"centre; it must be >= 0.5 bins", val)
    for i, b in enumerate(bins):
        if cutoff * sigma > b:
            raise error(f"{sec}.sigma", f"the deposit window cutoff·sigma = {cutoff * sigma:.3g} bins is wider than the "
                       f"grid's {b} bins" + (f" on axis {i}" if len(bins) > 1 else ""), sigma)


def wall_check(where: str, strength: float, width: float, shape: str) -> None:
    energy = strength * (width**2 if shape == "quadratic" else width)
    if energy > MAX_WALL:
        limit = MAX_WALL / (width**2 if shape == "quadratic" else width)
        raise error(where, f"must be <= {limit:.3g} (the wall would rise {energy:.3g} kT one bin of {width:.3g} "
                   f"beyond its start; at most {MAX_WALL:g})", strength)


def device_name(where: str, dev: str) -> None:
    if not (dev == "cpu" or dev == "cuda" or (dev.startswith("cuda:") and dev[5:].isdigit() and len(dev) <= 9)):
        raise error(where, "must be cpu, cuda or cuda:N (N a device index below 10000)", dev)


def check_device(where: str, dev: str) -> None:
    """The device must exist on this machine (CUDA available, index below the device count)."""
    import torch

    if dev.startswith("cuda"):
        if not torch.cuda.is_available():
            raise error(where, "CUDA is not available on this machine", dev)
        index = int(dev[5:]) if ":" in dev else 0
        if index >= torch.cuda.device_count():
            raise error(where, f"this machine has {torch.cuda.device_count()} CUDA device(s)", dev)


def compiled_obstacle(cfg: dict) -> str | None:
    """None when the compiled WLMD applies to ``cfg``, else what it would need (:mod:`physampler.rules`)."""
    from .rules import PHYSICAL_DEFAULT, compiled_obstacle as rule

    it = cfg["integrator"]
    method = cfg["method"]["kind"]
    potential = PHYSICAL_DEFAULT[method] if it["potential"] is None else it["potential"]
    return rule(system=cfg["system"]["kind"], cvs=cfg["cvs"]["names"], device=cfg["run"]["device"],
                dtype=cfg["run"]["dtype"], splitting=it["splitting"], method=method, potential=potential)


def load(path: str | Path, *, kind: str = "run") -> tuple[dict, str]:
    """Read and check a config file (``run`` or ``train``); returns (config, text).  A file that
    cannot be read as TOML raises :class:`physampler.io.FileError`; a key that is wrong,
    :class:`ConfigError`."""
    from .io import FileError, regular_file

    p = Path(path)
    try:
        data = regular_file(p, "TOML config").read_bytes()
    except OSError as e:
        raise FileError(p, f"cannot be read: {e.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise FileError(p, f"not UTF-8 text, so not a TOML config ({len(data)} bytes)") from None
    if not text.strip():
        raise FileError(p, "holds only whitespace, so no config")
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise FileError(p, f"not valid TOML: {e}") from None
    return parse(text, kind=kind), text


#: keys a resume of a run may change: they do not change the trajectory (a job kind names its own)
RESUMABLE_CHANGES = (("run", "steps"), ("output", "directory"), ("run", "device"), ("run", "sync_timeout"),
                     ("output", "checkpoint_interval"), ("output", "plot"), ("run", "threads"))


def diff(a: dict, b: dict, *, kind: str = "run") -> list[str]:
    """Keys (``section.key``) whose values differ between two parsed configs of ``kind``,
    except those a resume may change (:data:`RESUMABLE_CHANGES`)."""
    ignore = RESUMABLE_CHANGES if kind == "run" else _job(kind).resumable
    out = []
    for sec in dict.fromkeys((*a, *b)):
        for k in dict.fromkeys((*a.get(sec, {}), *b.get(sec, {}))):
            if (sec, k) not in ignore and a.get(sec, {}).get(k) != b.get(sec, {}).get(k):
                out.append(f"{sec}.{k}")
    return out


def _toml(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        import json

        return json.dumps(v, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml(x)}" for k, x in v.items()) + "}"
    return "[" + ", ".join(_toml(x) for x in v) + "]"


def dumps(cfg: dict, *, kind: str = "run") -> str:
    """The parsed config ``cfg`` as TOML with every default filled in (keys whose default is
    "unset" as comments); ``parse(dumps(cfg)) == cfg``."""
    lines = []
    tables = schema(kind, cfg["system"]["kind"]) if kind == "run" else schema(kind)
    for sec, keys in tables.items():
        lines.append(f"[{sec}]")
        for k in keys:
            v = cfg[sec][k]
            lines.append(f"# {k}: unset ({keys[k].doc})" if v is None else f"{k} = {_toml(v)}")
        lines.append("")
    return "\n".join(lines)


def kind_of(text: str) -> str:
    """The job kind whose marker section the text has (``train``: [optimizer] or [train]), else ``run``."""
    from .registry import job_kinds

    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return "run"
    return next((j.name for j in job_kinds().values() if any(m in raw for m in j.marker)), "run")


def _table(title: str, keys: dict[str, Key]) -> list[str]:
    lines = [title, "", "| key | type | default | allowed | meaning |", "| --- | --- | --- | --- | --- |"]
    for name, k in keys.items():
        default = "required" if k.default is REQUIRED else ("—" if k.default is None else f"`{format_value(k.default)}`")
        allowed = ", ".join(f"`{c}`" for c in k.choices) if k.choices else (k.allowed or "any")
        lines.append(f"| `{name}` | {k.type} | {default} | {allowed} | {k.doc} |")
    return lines + [""]


def markdown(kind: str = "run") -> str:
    """The key reference of docs/config.md for configs of ``kind``, generated from :func:`schema`
    (for a run: [system] with one table per registered system kind)."""
    from .registry import systems

    if kind != "run":
        return "\n".join(line for sec, keys in schema(kind).items() for line in _table(f"### `[{sec}]`", keys))
    tables = schema()
    lines = _table("### `[system]`", {"kind": tables["system"]["kind"]})
    for name, k in systems().items():
        if k.keys:
            lines += _table(f"#### `[system]` kind = `{name}`: {k.doc}", k.keys)
        else:
            lines += [f"#### `[system]` kind = `{name}`: {k.doc}", "", "No keys besides `kind`.", ""]
    for sec, keys in tables.items():
        if sec != "system":
            lines += _table(f"### `[{sec}]`", keys)
    return "\n".join(lines)
