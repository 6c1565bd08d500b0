"""The neural-network system (``[system] kind = "nn"``) and ``physampler train``, registered with
the core (:mod:`physampler.registry`) through the entry point ``physampler.plugins: nn``.

Everything the config layer must know about networks lives here — the ``[system]`` keys of a
modular-arithmetic network (docs/science.md §8), its CVs, the train config's tables, WanD's
defaults and the memory estimates of both — so that :mod:`physampler.config` holds no NN key.
The builders import :mod:`physampler.adapters.modular` and :mod:`physampler.adapters.training`
only when a job is built.
"""
from __future__ import annotations

import math

from .. import config as C
from .._checks import is_prime
from ..registry import Built, JobKind, SystemKind, register_job_kind, register_system

Key, REQUIRED = C.Key, C.REQUIRED
NN_CVS = ("log_train_loss", "smoothed_accuracy", "log_test_loss", "weight_norm", "logit_smoothed_accuracy",
          "log_validation_loss", "smoothed_validation_accuracy")
STRATEGIES = ("auto", "batched", "vmap", "chunked", "loop")
TASKS = ("x+y", "x2+y", "x3+xy2+y")
_pos, _nonneg = (lambda x: x > 0), (lambda x: x >= 0)

#: WanD's defaults — the one source of the ``WanD`` class, ``physampler train`` and docs/config.md.
#: Found on x+y mod 23 (d_model 32, P ≈ 1.4e4; benchmarks/RESULTS.md) and checked on a model
#: the project was not tuned on, a 4.5k-parameter spiral MLP without a box (tests/test_wand.py;
#: test accuracy 1.00 like AdamW, where the earlier class defaults heated the loss to ln L ≈ 1.6).
#: F and the wall strength act per unit of ln L on all P parameters at once: keep them of order
#: P (README, "SCIENCE notes on WanD").
WAND_DEFAULTS = {"lr": 1e-3, "friction": 0.03, "kT": 1.0, "F": 3000.0, "t_wl": 500.0, "sigma": 10.0,
                 "lower": -8.0, "upper": 2.0, "bins": 500, "wall_at": -5.0, "wall_strength": 1e4}

#: ``[system]`` keys of kind = "nn"
NN_KEYS: dict[str, Key] = {
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
    "strategy": Key("str", "auto", "nn: how W walkers are evaluated: forward_batched, vmap, chunked vmap, a loop of "
                    "module calls, or auto (the fastest in a timed probe at the start, recorded in the outputs and "
                    "repeated on resume; docs/science.md §7.1)", choices=STRATEGIES),
    "chunk": Key("int", None, "nn: walkers per chunk of strategy 'chunked' (default 16; auto tries 4 and 16)", "> 0",
                 _pos),
    "validation_fraction": Key("float", None, "nn: fraction of the training set carved off as a validation set "
                               "(the CVs log_validation_loss, smoothed_validation_accuracy); default none", "(0, 1)",
                               lambda x: 0 < x < 1),
}
#: the keys that define the data and the network (a history overlaid on a landscape must agree in them)
NN_SYSTEM_KEYS = ("model", "task", "p", "train_fraction", "split_seed", "d_model", "heads", "d_head", "d_mlp",
                  "hidden", "sharpness")
#: ... and of a landscape (a validation split changes the training set)
NN_IDENTITY = NN_SYSTEM_KEYS + ("validation_fraction",)


#: ``physampler train``: full-batch training of the [system] kind = "nn" models (docs/science.md §8–9).
TRAIN_SCHEMA: dict[str, dict[str, Key]] = {
    "system": {
        "kind": Key("str", "nn", "the trained system", choices=("nn",)),
        **{k: NN_KEYS[k] for k in NN_SYSTEM_KEYS},
        "constraint": Key("str", "none", "none, or a fixed global weight norm R (rescaled after every step; WanD: "
                          "the fixed-norm shell), or WanD's reflective box |θ| ≤ c/√m", choices=("none", "norm", "box")),
        "norm_radius": NN_KEYS["norm_radius"],
        "box_c": NN_KEYS["box_c"],
    },
    "optimizer": {
        "name": Key("str", REQUIRED, "adamw (torch.optim.AdamW), sgd (torch.optim.SGD) or wand (physampler WanD)",
                    choices=("adamw", "wand", "sgd")),
        "lr": Key("float", REQUIRED, "learning rate; WanD: the time step dt", "> 0", _pos),
        "weight_decay": Key("float", 0.0, "adamw/sgd: decoupled (adamw) or L2 (sgd) weight decay", ">= 0", _nonneg),
        "betas": Key("list[float]", [0.9, 0.999], "adamw: (β1, β2) (torch default; [N] used 0.9, 0.98)", "two values in [0, 1)",
                     lambda x: 0 <= x < 1),
        "eps": Key("float", 1e-8, "adamw: ε", "> 0", _pos),
        "momentum": Key("float", 0.0, "sgd: momentum", "[0, 1]", lambda x: 0.0 <= x <= 1.0),
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
        "dtype": Key("str", "float32", "parameters and data", choices=C.DTYPES),
        "threads": Key("int", 0, C.THREADS_DOC, ">= 0 (0: auto)", _nonneg),
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


# ------------------------------------------------------------------ checks
def split_check(s: dict) -> None:
    """The modular task's train/test split must leave both sets non-empty (as ModularTask rounds it)."""
    n = s["p"] ** 2
    n_train = int(round(s["train_fraction"] * n))
    if not 0 < n_train < n:
        raise C.error("system.train_fraction", f"leaves an empty {'train' if n_train == 0 else 'test'} set of the "
                      f"p² = {n} examples of p = {s['p']}", s["train_fraction"])


def nn_checks(cfg: dict) -> None:
    s = cfg["system"]
    if s["precision"] != "default" and cfg["run"]["dtype"] != "float32":
        raise C.error("system.precision", "tf32 and bf16 need run.dtype = 'float32'", s["precision"])
    split_check(s)
    if s["chunk"] is not None and s["strategy"] not in ("chunked", "auto"):
        raise C.error("system.chunk", "applies to strategy 'chunked' or 'auto'", s["chunk"])
    if s["validation_fraction"] is None:
        for name in cfg["cvs"]["names"]:
            if "validation" in name:
                raise C.error("cvs.names", f"{name!r} needs system.validation_fraction", name)
    else:
        n = int(round(s["train_fraction"] * s["p"] ** 2))
        if not 0 < int(round(s["validation_fraction"] * n)) < n:
            raise C.error("system.validation_fraction", f"leaves an empty set of the {n} training examples",
                          s["validation_fraction"])


def train_checks(cfg: dict) -> None:
    o = cfg["optimizer"]
    if len(o["betas"]) != 2:
        raise C.error("optimizer.betas", "must give two values (β1, β2)", o["betas"])
    if not o["lower"] < o["upper"]:
        raise C.error("optimizer.lower", f"must be < optimizer.upper = {o['upper']}", o["lower"])
    if o["wall_at"] is not None and not math.isfinite(o["wall_at"]):
        raise C.error("optimizer.wall_at", "must be a finite number", o["wall_at"])
    if o["name"] == "wand" and o["splitting"] == "verlet" and o["friction"] != 0.0:
        raise C.error("optimizer.friction", "must be 0 for optimizer.splitting = 'verlet', which has no thermostat",
                      o["friction"])
    if cfg["system"]["constraint"] == "box" and o["name"] != "wand":
        raise C.error("system.constraint", "'box' is WanD's reflective box; adamw and sgd take 'none' or 'norm'",
                      cfg["system"]["constraint"])
    C.device_name("train.device", cfg["train"]["device"])
    split_check(cfg["system"])
    if o["name"] == "wand":
        width = (o["upper"] - o["lower"]) / o["bins"]
        C.kernel_checks("optimizer", o["sigma"], 4.0, [o["bins"]])
        C.wall_check("optimizer.wall_strength", o["wall_strength"], width, "quadratic")
        if o["edge_wall_strength"] is not None:
            C.wall_check("optimizer.edge_wall_strength", o["edge_wall_strength"], width, "quadratic")


# ------------------------------------------------------------------ the models' sizes
def network_parameters(s: dict) -> float:
    """Parameters of the ``[system]`` network (models/transformer.py, models/mlp.py)."""
    p = s["p"]
    if s["model"] == "transformer":
        d, hd, m = s["d_model"], s["heads"] * s["d_head"], s["d_mlp"]
        return (p + 1) * d + 3 * d + 3 * hd * d + d * hd + 2 * m * d + m + d + p * d
    h = s["hidden"]
    return h * 2 * p + h + p * h + p


def activations_per_example(s: dict) -> float:
    """Floats a forward pass keeps per example.  The transformer's fast path runs only the last
    position past the key/value tables: query, scores, attention output, residuals, the MLP's
    pre- and post-ReLU activations and the logits (measured at p = 67, d_model 128, CPU: 49 MiB
    per walker against 58 MiB estimated)."""
    p = s["p"]
    if s["model"] == "transformer":
        d, hd, h = s["d_model"], s["heads"] * s["d_head"], s["heads"]
        return hd + 3 * h + 3 * d + 2 * s["d_mlp"] + p
    return 2 * s["hidden"] + p


def network_key(s: dict) -> str:
    """The width key whose doubling grows the network most."""
    keys = ("d_model", "d_mlp", "heads", "d_head", "p") if s["model"] == "transformer" else ("hidden", "p")
    base = network_parameters(s) + activations_per_example(s)
    return "system." + max(keys, key=lambda k: (network_parameters(s | {k: 2 * s[k]})
                                                 + activations_per_example(s | {k: 2 * s[k]})) / base)


def _network_memory(s: dict, b: int, walkers: int = 1) -> list:
    from ..resources import AUTOGRAD_FACTOR, Item

    examples = float(s["p"]) ** 2
    return [Item(network_key(s), "activations", walkers * examples * activations_per_example(s) * b * AUTOGRAD_FACTOR),
            Item("system.p", "data", examples * 3 * 8 * 2)]


def _nn_memory(cfg: dict, b: int) -> list:
    from ..resources import Item

    # + the per-bin sums and counts of test accuracy and loss
    return [Item("landscape.bins", "per-bin observables", math.prod(float(n) for n in cfg["landscape"]["bins"]) * 32),
            *_network_memory(cfg["system"], b, cfg["run"]["walkers"])]


def train_memory(cfg: dict) -> list:
    """The memory of a ``physampler train`` config, item by item."""
    from ..resources import STATE_ARRAYS, Item, kernel_window

    s, o = cfg["system"], cfg["optimizer"]
    b = 8 if cfg["train"]["dtype"] == "float64" else 4
    n = network_parameters(s)
    # parameters, gradients, the optimizer's moments (AdamW) or flat walker state (WanD)
    items = [Item(network_key(s), "parameters and optimizer state", n * b * (STATE_ARRAYS if o["name"] == "wand" else 4)),
             *_network_memory(s, b)]
    if o["name"] == "wand":
        items += [Item("optimizer.bins", "ln L grid", float(o["bins"]) * 8 * 6),
                  Item("optimizer.sigma", "deposit kernel", kernel_window(o["sigma"], 4.0, 1) * 16 * 3)]
    return items


# ------------------------------------------------------------------ builders
def _build(cfg, dtype, device, system=None):
    from .modular import system_from_config

    return Built(*system_from_config(cfg, dtype, device))


def _starts(cfg, system, walkers, gen):
    from .modular import initial_parameters

    return initial_parameters(cfg, system, walkers, gen)


def _describe(s: dict) -> str:
    con = {"box": f"box c = {s['box_c']:g}", "norm": f"|θ| = {s['norm_radius']:g}", "none": "unconstrained"}
    return f"{s['model']} d_model {s['d_model']} on {s['task']} mod {s['p']} ({con[s['constraint']]})"


def _train_what(cfg: dict) -> str:
    return f"{cfg['optimizer']['name']} training of the {cfg['system']['model']}, {cfg['train']['steps']} steps"


def _train_probe(cfg: dict, text: str):
    from .training import Trainer

    trainer = Trainer(cfg)

    def steps(n: int) -> None:
        for _ in range(n):
            trainer.step()

    return steps


def register() -> None:
    """The entry point: kind = "nn", the train config, and a factory result of a network with its data."""
    register_system(SystemKind(
        "nn", NN_KEYS, _build, _starts, cvs=NN_CVS, observable=(), check=nn_checks,
        coordinates=lambda cfg: (network_parameters(cfg["system"]), network_key(cfg["system"])),
        memory=_nn_memory, describe=_describe, identity=NN_IDENTITY, potential=False,
        doc="a network on a modular-arithmetic task through the PyTorch adapter (its walkers feel only CV forces)"))
    register_job_kind(JobKind(
        "train", TRAIN_SCHEMA, train_checks, marker=("optimizer", "train"), section="train",
        resumable=(("train", "steps"), ("output", "directory"), ("train", "device"), ("output", "checkpoint_interval"),
                   ("output", "plot"), ("train", "threads")),
        needs="[system], [optimizer] and [train]", memory=train_memory, describe=_train_what,
        probe=_train_probe))
    from ..systems.builtin import register_factory_result
    from . import count_check
    from .network_task import NetworkTask, build_network_task

    count_check.register()

    register_factory_result(lambda obj: isinstance(obj, NetworkTask), build_network_task, NN_CVS)
