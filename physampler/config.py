"""Run configuration: a TOML file (read with ``tomllib``) checked against a schema.

Every key of every section is declared in :data:`SCHEMA` with its type, default,
allowed values and a one-line description; ``docs/config.md`` is written from
the same table (:func:`markdown`), so documentation and checks cannot drift.
Any problem raises :class:`ConfigError` whose message reads
``<section.key>: <what is wrong> (got <value>)``.

Sections of a sampling (``run``) config: ``[system]`` ``[cvs]`` ``[landscape]``
``[bias]`` ``[integrator]`` ``[schedule]`` ``[run]`` ``[output]``; of a training
(``train``) config (:data:`TRAIN_SCHEMA`): ``[system]`` ``[optimizer]`` ``[train]``
``[output]``.
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ._checks import is_prime
from .rules import PHYSICAL_DEFAULT

SYSTEMS = ("harmonic", "double_well", "lj_cluster", "nn", "python")
NN_CVS = ("log_train_loss", "smoothed_accuracy", "log_test_loss", "weight_norm")
CV_KINDS = ("energy", "rg", "q6", "x0") + NN_CVS
TASKS = ("x+y", "x2+y", "x3+xy2+y")
ENGINES = ("auto", "torch", "compiled")
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


SCHEMA: dict[str, dict[str, Key]] = {
    "system": {
        "kind": Key("str", REQUIRED, "the system sampled", choices=SYSTEMS),
        "dims": Key("int", 10, "harmonic: number of coordinates N", "> 0", _pos),
        "stiffness": Key("float", 1.0, "harmonic: spring constant k of U = ½ Σ k x²", "> 0", _pos),
        "barrier": Key("float", 1.0, "double_well: barrier height h of U = h (x² − 1)²", "> 0", _pos),
        "atoms": Key("int", 13, "lj_cluster: number of atoms n", ">= 2", lambda x: x >= 2),
        "radius": Key("float", 2.0, "lj_cluster: confining-sphere radius R_c (σ)", "> 0", _pos),
        "wall_stiffness": Key("float", 100.0, "lj_cluster: sphere wall k_w (ε/σ²)", "> 0", _pos),
        "sphere_centre": Key("str", "origin", "lj_cluster: centre of the confining sphere: the origin, or the "
                             "cluster's centre of mass (com, the heat-capacity literature's convention)",
                             choices=("origin", "com")),
        "model": Key("str", "transformer", "nn: the network (docs/science.md §8 transformer, or a one-hidden-layer MLP)",
                     choices=("transformer", "mlp")),
        "task": Key("str", "x+y", "nn: modular-arithmetic task", choices=TASKS),
        "p": Key("int", 67, "nn: the prime modulus", "prime >= 2", is_prime),
        "train_fraction": Key("float", 0.5, "nn: fraction of the p² examples used for training", "(0, 1)",
                              lambda x: 0 < x < 1),
        "split_seed": Key("int", 0, "nn: seed of the train/test split", ">= 0", _nonneg),
        "d_model": Key("int", 128, "nn transformer: residual width", "> 0", _pos),
        "heads": Key("int", 4, "nn transformer: attention heads", "> 0", _pos),
        "d_head": Key("int", 32, "nn transformer: width per head", "> 0", _pos),
        "d_mlp": Key("int", 512, "nn transformer: MLP width", "> 0", _pos),
        "hidden": Key("int", 64, "nn mlp: hidden width", "> 0", _pos),
        "constraint": Key("str", "box", "nn: reflective box |θ| ≤ c/√m per tensor, fixed global norm R, or none",
                          choices=("box", "norm", "none")),
        "box_c": Key("float", 3.0, "nn box: c in c/√m", "> 0", _pos),
        "box_dim": Key("str", "first", "nn box: m = a tensor's first dimension (output neurons), last, or numel",
                       choices=("first", "last", "numel")),
        "norm_radius": Key("float", 30.0, "nn norm: the global L2 norm R ([P1] §4.2: 30)", "> 0", _pos),
        "sharpness": Key("float", 6.0, "nn: k of the smoothed accuracy sigmoid(k·margin)", "> 0", _pos),
        "precision": Key("str", "default", "nn: matmul precision: default (run.dtype), tf32 (CUDA tensor cores) or "
                         "bf16 (bfloat16 autocast of the forward); tf32/bf16 need run.dtype = 'float32'",
                         choices=("default", "tf32", "bf16")),
        "compile": Key("bool", False, "nn: torch.compile the batched forward and backward (fused kernels; the first "
                       "step pays the compilation)"),
        "factory": Key("str", None, "python: your own system, 'package.module:function', called as function(dtype, "
                       "device) and returning a physampler System with initial_positions(walkers, generator) "
                       "(docs/architecture.md); required there unless the system is passed to physampler.run_job",
                       "module:function", is_factory),
    },
    "cvs": {
        "names": Key("list[str]", ["energy"], "the CVs, one landscape axis each, in order", "non-empty, unique",
                     choices=CV_KINDS),
        "observe": Key("list[str]", [], "physical CVs recorded per landscape bin but not biased (their per-bin means "
                       "are reweighted to ⟨O⟩(T) by analyze: a static-bias production run)", "unique, not in names",
                       choices=CV_KINDS),
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
        "engine": Key("str", "auto", "compiled: numba block loop (lj_cluster, one energy CV, CPU); auto picks it "
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
        "sync_interval": Key("int", 100, "under torchrun: steps K between all-reduces of the landscape increments",
                             "> 0", _pos),
        "sync_timeout": Key("float", 300.0, "under torchrun: seconds before a silent rank counts as failed", "> 0",
                            _pos),
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

OPTIMIZERS = ("adamw", "wand", "sgd")
#: WanD's defaults — the one source of the ``WanD`` class, ``physampler train`` and docs/config.md.
#: Found on x+y mod 23 (d_model 32, P ≈ 1.4e4; benchmarks/RESULTS.md) and checked on a model
#: the project was not tuned on, a 4.5k-parameter spiral MLP without a box (tests/test_wand.py;
#: test accuracy 1.00 like AdamW, where the earlier class defaults heated the loss to ln L ≈ 1.6).
#: F and the wall strength act per unit of ln L on all P parameters at once: keep them of order
#: P (README, "SCIENCE notes on WanD").
WAND_DEFAULTS = {"lr": 1e-3, "friction": 0.03, "kT": 1.0, "F": 3000.0, "t_wl": 500.0, "sigma": 10.0,
                 "lower": -8.0, "upper": 2.0, "bins": 500, "wall_at": -5.0, "wall_strength": 1e4}
NN_SYSTEM_KEYS = ("model", "task", "p", "train_fraction", "split_seed", "d_model", "heads", "d_head", "d_mlp",
                   "hidden", "sharpness")

#: ``physampler train``: full-batch training of the [system] kind = "nn" models (docs/science.md §8–9).
TRAIN_SCHEMA: dict[str, dict[str, Key]] = {
    "system": {
        "kind": Key("str", "nn", "the trained system", choices=("nn",)),
        **{k: SCHEMA["system"][k] for k in NN_SYSTEM_KEYS},
        "constraint": Key("str", "none", "none, or a fixed global weight norm R (rescaled after every step; WanD: "
                          "the fixed-norm shell), or WanD's reflective box |θ| ≤ c/√m", choices=("none", "norm", "box")),
        "norm_radius": SCHEMA["system"]["norm_radius"],
        "box_c": SCHEMA["system"]["box_c"],
    },
    "optimizer": {
        "name": Key("str", REQUIRED, "adamw (torch.optim.AdamW), sgd (torch.optim.SGD) or wand (physampler WanD)",
                    choices=OPTIMIZERS),
        "lr": Key("float", REQUIRED, "learning rate; WanD: the time step dt", "> 0", _pos),
        "weight_decay": Key("float", 0.0, "adamw/sgd: decoupled (adamw) or L2 (sgd) weight decay", ">= 0", _nonneg),
        "betas": Key("list[float]", [0.9, 0.999], "adamw: (β1, β2) (torch default; [N] used 0.9, 0.98)", "two values in [0, 1)",
                     lambda x: 0 <= x < 1),
        "eps": Key("float", 1e-8, "adamw: ε", "> 0", _pos),
        "momentum": Key("float", 0.0, "sgd: momentum", "[0, 1]", _unit),
        "friction": Key("float", WAND_DEFAULTS["friction"], "wand: λ, velocity damping per step", "[0, 1)", lambda x: 0 <= x < 1),
        "kT": Key("float", WAND_DEFAULTS["kT"], "wand: temperature T0 = kT ([P1]: 1)", "> 0", _pos),
        "F": Key("float", WAND_DEFAULTS["F"], "wand: f_WL peak of the inverse-time schedule F·min(t/t_WL, t_WL/t)", "> 0", _pos),
        "t_wl": Key("float", WAND_DEFAULTS["t_wl"], "wand: t_WL of the schedule (steps)", "> 0", _pos),
        "sigma": Key("float", WAND_DEFAULTS["sigma"], "wand: deposit kernel width in bins ([P2]: 10–25)", "> 0", _pos),
        "lower": Key("float", WAND_DEFAULTS["lower"], "wand: lower edge of the ln L grid", "< upper"),
        "upper": Key("float", WAND_DEFAULTS["upper"], "wand: upper edge of the ln L grid", "> lower"),
        "bins": Key("int", WAND_DEFAULTS["bins"], "wand: bins of the ln L grid", ">= 3", lambda x: x >= 3),
        "wall_at": Key("float", WAND_DEFAULTS["wall_at"], "wand: ξ0 of the quadratic wall β(ξ − ξ0)² above ξ0 that "
                       "pushes towards low loss ([P1] §5); at or above `upper`: no wall"),
        "wall_strength": Key("float", WAND_DEFAULTS["wall_strength"], "wand: β of that wall ([P2]: 3e3–1e5)", "> 0", _pos),
        "edge_wall_strength": Key("float", None, "wand: β of the walls at the grid edges, β·(distance beyond the "
                                  "edge)²; default 1/bin width²", "> 0", _pos),
        "splitting": Key("str", "ktd", "wand: the splitting of the step (as integrator.splitting of a run; verlet "
                         "needs friction = 0)", choices=("ktd", "baoab", "obabo", "verlet")),
    },
    "train": {
        "steps": Key("int", REQUIRED, "full-batch optimizer steps", "> 0", _pos),
        "seed": Key("int", 0, "seed of the initial parameters (and of WanD's noise)", ">= 0", _nonneg),
        "device": Key("str", "cpu", "torch device: cpu, cuda, cuda:N"),
        "dtype": Key("str", "float32", "parameters and data", choices=DTYPES),
        "record_interval": Key("int", 1, "steps between history records (1: every step)", "> 0", _pos),
        "stop_after_generalization": Key("int", None, "stop this many steps after test accuracy first reaches 0.95 "
                                         "(default: run all steps)", ">= 0", _nonneg),
    },
    "output": {
        "directory": Key("str", "physampler-train", "output directory (never overwritten without --overwrite)"),
        "checkpoint_interval": Key("int", 1000, "steps between checkpoints (history.nc, model.pt and checkpoint.pt, "
                                   "for --resume); also written on SIGINT/SIGTERM and at the end", "> 0", _pos),
        "plot": Key("bool", True, "write history.png ([P1] Fig. 3 panels) at the end"),
    },
}


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


def _err(where: str, what: str, got) -> ConfigError:
    return ConfigError(f"{where}: {what} (got {format_value(got)})")


def _scalar(where: str, typ: str, v):
    if typ == "bool":
        if not isinstance(v, bool):
            raise _err(where, "must be true or false", v)
        return v
    if typ == "int":
        if isinstance(v, bool) or not isinstance(v, int):
            raise _err(where, "must be an integer", v)
        if not -(2**63) <= v < 2**63:  # what numpy, torch and the seed streams can hold
            raise _err(where, "must be an integer of at most 64 bits (|n| < 2^63)", v)
        return v
    if typ == "float":
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _err(where, "must be a number", v)
        try:
            v = float(v)
        except OverflowError:  # an integer literal beyond the float range, e.g. 10**400
            raise _err(where, "must be finite", v) from None
        if not math.isfinite(v):
            raise _err(where, "must be finite", v)
        return v
    if typ == "str":
        if not isinstance(v, str):
            raise _err(where, "must be a string", v)
        return v
    raise AssertionError(typ)


def _value(where: str, key: Key, v):
    if key.type.startswith("list["):
        inner = key.type[5:-1]
        if not isinstance(v, list):
            raise _err(where, f"must be a list of {inner}s", v)
        if inner == "table":
            return [_wall(f"{where}[{i}]", x) for i, x in enumerate(v)]
        out = [_scalar(f"{where}[{i}]", inner, x) for i, x in enumerate(v)]
        items = [(f"{where}[{i}]", x) for i, x in enumerate(out)]
    else:
        out = _scalar(where, key.type, v)
        items = [(where, out)]
    for w, x in items:
        if key.choices and x not in key.choices:
            raise _err(w, "must be one of " + ", ".join(key.choices), x)
        if key.check is not None and not key.check(x):
            raise _err(w, f"must be {key.allowed}", x)
    return out


def _wall(where: str, v) -> dict:
    if not isinstance(v, dict):
        raise _err(where, "must be a table {cv, side, at, strength, shape}", v)
    extra = sorted(set(v) - set(WALL_KEYS))
    if extra:
        raise _err(f"{where}.{printable(extra[0])}", "unknown key; allowed: " + ", ".join(WALL_KEYS), v[extra[0]])
    out = {"shape": "quadratic"} | dict(v)
    for k, t in WALL_KEYS.items():
        if k not in out:
            raise _err(f"{where}.{k}", "is required", None)
        out[k] = _scalar(f"{where}.{k}", "float" if t is float else "str", out[k])
    if out["side"] not in ("lower", "upper"):
        raise _err(f"{where}.side", "must be one of lower, upper", out["side"])
    if out["shape"] not in ("quadratic", "linear"):
        raise _err(f"{where}.shape", "must be one of quadratic, linear", out["shape"])
    if out["strength"] <= 0:
        raise _err(f"{where}.strength", "must be > 0", out["strength"])
    return out


def parse(text: str, *, kind: str = "run") -> dict:
    """Parse and check TOML ``text`` as a ``run`` (sampling) or ``train`` config; returns
    {section: {key: value}} with every default filled."""
    schema, cross, needs = ((SCHEMA, cross_checks, "[system], [landscape], [integrator] and [run]") if kind == "run"
                            else (TRAIN_SCHEMA, train_checks, "[system], [optimizer] and [train]"))
    if not text.strip():
        raise ConfigError(f"config: the file is empty; it needs at least {needs} "
                          f"(got {len(text)} bytes of whitespace)")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config: not valid TOML: {e} (got {text.splitlines()[0][:40]!r}...)") from None
    unknown = sorted(set(raw) - set(schema))
    if unknown:
        raise _err(printable(unknown[0]), "unknown section; allowed: " + ", ".join(schema), raw[unknown[0]])
    cfg: dict[str, dict] = {}
    for sec, keys in schema.items():
        given = raw.get(sec, {})
        if not isinstance(given, dict):
            raise _err(sec, "must be a table [" + sec + "]", given)
        extra = sorted(set(given) - set(keys))
        if extra:
            raise _err(f"{sec}.{printable(extra[0])}", "unknown key; allowed: " + ", ".join(keys), given[extra[0]])
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


def cross_checks(cfg: dict) -> None:
    names = cfg["cvs"]["names"]
    if not names:
        raise _err("cvs.names", "must name at least one CV", names)
    if len(set(names)) != len(names):
        raise _err("cvs.names", "must be unique", names)
    kind = cfg["system"]["kind"]
    if kind != "python" and cfg["system"]["factory"] is not None:  # kind = python without one: physampler.run_job
        raise _err("system.factory", f"is only for kind = 'python' (system.kind = {kind!r})", cfg["system"]["factory"])
    observed = cfg["cvs"]["observe"]
    if len(set(observed)) != len(observed) or set(observed) & set(names):
        raise _err("cvs.observe", f"must be unique and not among cvs.names {names}", observed)
    for n in observed:
        if n in NN_CVS:
            raise _err("cvs.observe", f"{n!r}: a network run records test_accuracy per bin by itself; observe takes "
                       "physical CVs", observed)
    for key, listed in (("cvs.names", names), ("cvs.observe", observed)):
        for n in listed:
            if (n in NN_CVS) != (kind == "nn"):
                raise _err(key, f"{n!r} and system.kind = {kind!r} do not go together (nn CVs: "
                           + ", ".join(NN_CVS) + ")", listed)
            if n in ("rg", "q6") and kind != "lj_cluster":
                raise _err(key, f"{n!r} needs system.kind = 'lj_cluster'", listed)
            if n == "x0" and kind == "lj_cluster":
                raise _err(key, "'x0' (first coordinate) applies to harmonic and double_well", listed)
    if cfg["system"]["precision"] != "default" and cfg["run"]["dtype"] != "float32":
        raise _err("system.precision", "tf32 and bf16 need run.dtype = 'float32'", cfg["system"]["precision"])
    if cfg["cvs"]["q6_r_off"] <= cfg["cvs"]["q6_r_on"]:
        raise _err("cvs.q6_r_off", "must be > q6_r_on", cfg["cvs"]["q6_r_off"])
    ls = cfg["landscape"]
    for k in ("lower", "upper", "bins"):
        if len(ls[k]) != len(names):
            raise _err(f"landscape.{k}", f"must give one value per CV ({len(names)})", ls[k])
    for i, (lo, hi) in enumerate(zip(ls["lower"], ls["upper"])):
        if not lo < hi:
            raise _err(f"landscape.lower[{i}]", f"must be < landscape.upper[{i}] = {hi}", lo)
    if ls["initial_temperature"] is not None and "energy" not in names:
        raise _err("landscape.initial_temperature", "needs an 'energy' CV in cvs.names", ls["initial_temperature"])
    for i, w in enumerate(cfg["bias"]["walls"]):
        if w["cv"] not in names:
            raise _err(f"bias.walls[{i}].cv", "must be one of " + ", ".join(names), w["cv"])
    sc = cfg["schedule"]
    if sc["kind"] == "three_stage":
        for k in ("t_rise", "t_drop"):
            if sc[k] is None:
                raise ConfigError(f"schedule.{k}: is required for kind = 'three_stage' (got nothing)")
        if sc["t_drop"] < sc["t_rise"]:
            raise _err("schedule.t_drop", "must be >= schedule.t_rise", sc["t_drop"])
        if sc["t_off"] >= sc["t_drop"]:
            raise _err("schedule.t_off", "must be < schedule.t_drop", sc["t_off"])
    widths = [(hi - lo) / b for lo, hi, b in zip(ls["lower"], ls["upper"], ls["bins"])]
    _kernel_checks("landscape", ls["sigma"], ls["cutoff"], ls["bins"])
    if ls["wall_strength"] is not None:
        for w in widths:
            _wall_check("landscape.wall_strength", ls["wall_strength"], w, "quadratic")
    for i, wall in enumerate(cfg["bias"]["walls"]):
        _wall_check(f"bias.walls[{i}].strength", wall["strength"], widths[names.index(wall["cv"])], wall["shape"])
    t0 = ls["initial_temperature"]
    if t0 is not None and cfg["integrator"]["kT"] / t0 > 1e4:
        raise _err("landscape.initial_temperature", f"must be >= integrator.kT/1e4 = {cfg['integrator']['kT'] / 1e4:g}"
                   " (the starting WL force kT/T would exceed 10⁴ times the canonical one)", t0)
    if kind == "nn":
        _split_check(cfg["system"])
    out = cfg["output"]
    if out["checkpoint_interval"] % out["report_interval"]:
        raise _err("output.checkpoint_interval", f"must be a multiple of output.report_interval = "
                   f"{out['report_interval']}", out["checkpoint_interval"])
    _device_name("run.device", cfg["run"]["device"])
    _method_checks(cfg)
    eng = cfg["integrator"]["engine"]
    if eng == "compiled":
        why = compiled_obstacle(cfg)
        if why:
            raise _err("integrator.engine", f"'compiled' needs {why}", eng)


def _method_checks(cfg: dict) -> None:
    m, it = cfg["method"], cfg["integrator"]
    if m["kind"] == "well_tempered_metadynamics" and m["delta_T"] is None:
        raise ConfigError("method.delta_T: is required for well_tempered_metadynamics (got nothing)")
    if m["kind"] == "static" and m["landscape"] is None:
        raise ConfigError("method.landscape: is required for static, the landscape.nc of the frozen bias (got nothing)")
    if it["splitting"] == "verlet" and it["c_f"] != 0.0:
        raise _err("integrator.c_f", "must be 0 for splitting = 'verlet', which has no thermostat", it["c_f"])
    potential = PHYSICAL_DEFAULT[m["kind"]] if it["potential"] is None else it["potential"]
    if potential and cfg["system"]["kind"] == "nn":
        raise _err("integrator.potential", "must be false for the nn system, whose walkers feel only the CV forces",
                   it["potential"])


def train_checks(cfg: dict) -> None:
    o = cfg["optimizer"]
    if len(o["betas"]) != 2:
        raise _err("optimizer.betas", "must give two values (β1, β2)", o["betas"])
    if not o["lower"] < o["upper"]:
        raise _err("optimizer.lower", f"must be < optimizer.upper = {o['upper']}", o["lower"])
    if o["wall_at"] is not None and not math.isfinite(o["wall_at"]):
        raise _err("optimizer.wall_at", "must be a finite number", o["wall_at"])
    if o["name"] == "wand" and o["splitting"] == "verlet" and o["friction"] != 0.0:
        raise _err("optimizer.friction", "must be 0 for optimizer.splitting = 'verlet', which has no thermostat",
                   o["friction"])
    if cfg["system"]["constraint"] == "box" and o["name"] != "wand":
        raise _err("system.constraint", "'box' is WanD's reflective box; adamw and sgd take 'none' or 'norm'",
                   cfg["system"]["constraint"])
    _device_name("train.device", cfg["train"]["device"])
    _split_check(cfg["system"])
    if o["name"] == "wand":
        width = (o["upper"] - o["lower"]) / o["bins"]
        _kernel_checks("optimizer", o["sigma"], 4.0, [o["bins"]])
        _wall_check("optimizer.wall_strength", o["wall_strength"], width, "quadratic")
        if o["edge_wall_strength"] is not None:
            _wall_check("optimizer.edge_wall_strength", o["edge_wall_strength"], width, "quadratic")


MAX_WALL = 1e6  # kT: a wall's energy one bin beyond its start; stiffer walls cannot be integrated at a sane dt


def _kernel_checks(sec: str, sigma: float, cutoff: float, bins) -> None:
    """The deposit window ±cutoff·σ must reach a bin centre wherever ξ lies (≥ ½ bin) and fit in the grid."""
    if cutoff * sigma < 0.5:
        key, val = ("cutoff", cutoff) if sec == "landscape" else ("sigma", sigma)
        raise _err(f"{sec}.{key}", f"cutoff·sigma = {cutoff * sigma:.3g} bins leaves the deposit window without a bin "
                   f"centre; it must be >= 0.5 bins", val)
    for i, b in enumerate(bins):
        if cutoff * sigma > b:
            raise _err(f"{sec}.sigma", f"the deposit window cutoff·sigma = {cutoff * sigma:.3g} bins is wider than the "
                       f"grid's {b} bins" + (f" on axis {i}" if len(bins) > 1 else ""), sigma)


def _wall_check(where: str, strength: float, width: float, shape: str) -> None:
    energy = strength * (width**2 if shape == "quadratic" else width)
    if energy > MAX_WALL:
        limit = MAX_WALL / (width**2 if shape == "quadratic" else width)
        raise _err(where, f"must be <= {limit:.3g} (the wall would rise {energy:.3g} kT one bin of {width:.3g} "
                   f"beyond its start; at most {MAX_WALL:g})", strength)


def _split_check(s: dict) -> None:
    """The modular task's train/test split must leave both sets non-empty (as ModularTask rounds it)."""
    n = s["p"] ** 2
    n_train = int(round(s["train_fraction"] * n))
    if not 0 < n_train < n:
        raise _err("system.train_fraction", f"leaves an empty {'train' if n_train == 0 else 'test'} set of the "
                   f"p² = {n} examples of p = {s['p']}", s["train_fraction"])


def _device_name(where: str, dev: str) -> None:
    if not (dev == "cpu" or dev == "cuda" or (dev.startswith("cuda:") and dev[5:].isdigit() and len(dev) <= 9)):
        raise _err(where, "must be cpu, cuda or cuda:N (N a device index below 10000)", dev)


def check_device(where: str, dev: str) -> None:
    """The device must exist on this machine (CUDA available, index below the device count)."""
    import torch

    if dev.startswith("cuda"):
        if not torch.cuda.is_available():
            raise _err(where, "CUDA is not available on this machine", dev)
        index = int(dev[5:]) if ":" in dev else 0
        if index >= torch.cuda.device_count():
            raise _err(where, f"this machine has {torch.cuda.device_count()} CUDA device(s)", dev)


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


#: keys a resume may change: they do not change the trajectory
RESUMABLE_CHANGES = {"run": (("run", "steps"), ("output", "directory"), ("run", "device"), ("run", "sync_timeout"),
                             ("output", "checkpoint_interval"), ("output", "plot")),
                     "train": (("train", "steps"), ("output", "directory"), ("train", "device"),
                               ("output", "checkpoint_interval"), ("output", "plot"))}


def diff(a: dict, b: dict, *, kind: str = "run") -> list[str]:
    """Keys (``section.key``) whose values differ between two parsed configs of ``kind``,
    except :data:`RESUMABLE_CHANGES`."""
    ignore = RESUMABLE_CHANGES[kind]
    out = []
    for sec, keys in (SCHEMA if kind == "run" else TRAIN_SCHEMA).items():
        for k in keys:
            if (sec, k) in ignore:
                continue
            if a.get(sec, {}).get(k) != b.get(sec, {}).get(k):
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
    for sec, keys in (SCHEMA if kind == "run" else TRAIN_SCHEMA).items():
        lines.append(f"[{sec}]")
        for k in keys:
            v = cfg[sec][k]
            lines.append(f"# {k}: unset ({keys[k].doc})" if v is None else f"{k} = {_toml(v)}")
        lines.append("")
    return "\n".join(lines)


def kind_of(text: str) -> str:
    """``train`` for a text with an [optimizer] or [train] section, else ``run``."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return "run"
    return "train" if ("optimizer" in raw or "train" in raw) else "run"


def markdown(schema: dict | None = None) -> str:
    """The key reference of docs/config.md, generated from :data:`SCHEMA` (or :data:`TRAIN_SCHEMA`)."""
    lines = []
    for sec, keys in (schema or SCHEMA).items():
        lines += [f"### `[{sec}]`", "", "| key | type | default | allowed | meaning |", "| --- | --- | --- | --- | --- |"]
        for name, k in keys.items():
            default = "required" if k.default is REQUIRED else ("—" if k.default is None else f"`{format_value(k.default)}`")
            allowed = ", ".join(f"`{c}`" for c in k.choices) if k.choices else (k.allowed or "any")
            lines.append(f"| `{name}` | {k.type} | {default} | {allowed} | {k.doc} |")
        lines.append("")
    return "\n".join(lines)
