"""A ``torch.nn.Module`` plus a labelled data set as a physampler System of W walkers ([P1]; docs/science.md §7).

Particles are all trainable parameters, flattened into one vector per walker:
positions are [W, P] (masses 1).  A batch of walkers is evaluated with
``torch.func.functional_call`` vmapped over the leading walker axis of the
unflattened parameters, so W walkers cost one batched forward and one backward;
a module that offers ``forward_batched(params, x)`` (parameters with a leading
walker axis → logits [W, B, C], as the models in ``physampler.models`` do) is
called directly instead, which avoids vmap's generic batching rules (e.g. its
gathers materialise a [W, B, C] index).

CVs (all from one forward on the training set and one on the test set per step):

    ln L_train = ln( (1/N) Σ_i CE(z_i, y_i) )                         ``log_train_loss``
    Ã_test     = (1/N) Σ_i sigmoid(k·(z_i,y_i − max_(j≠y_i) z_i,j))    ``smoothed_accuracy``
    ln L_test                                                         ``log_test_loss``
    |θ|        = global L2 norm of all parameters                     ``weight_norm``

(z: logits, y: labels, k = ``sharpness``, [P2]: 5–7).  The true test accuracy
(1/N) Σ_i [argmax z_i = y_i] is returned as an observable alongside the CVs.
The potential energy of the System is L_train itself (used by plain MD and
minimisers; WLMD only uses the CVs).

Constraints for the parameters: :func:`box_bounds` gives the per-element bound
c/√m of the reflective box (docs/science.md §5; m = a tensor's first dimension by
default) for :class:`physampler.ReflectiveBox`; the fixed-norm shell is
:class:`physampler.FixedNormShell` on the flat vector.
"""
from __future__ import annotations

import copy
import math
from typing import Sequence

import torch
from torch.func import functional_call, vmap

from ..cvs import CV, CVSet
from ..system import System

CV_NAMES = ("log_train_loss", "smoothed_accuracy", "log_test_loss", "weight_norm")
PRECISIONS = ("default", "tf32", "bf16")
BOX_DIMS = ("first", "last", "numel")


class ModuleSystem(System):
    """W walkers of ``module`` on (train, test) data.

    Parameters
    ----------
    module : the network; its parameters' shapes define the particle vector (its own
        values are only used by :meth:`initial_positions`).
    train, test : (inputs, integer labels) of the full training and test sets.
    sharpness : k of the smoothed accuracy.
    dtype, device : of the parameters and data (float64 for exact tests; float32 on GPUs).
    precision : ``default`` (matmuls in ``dtype``), ``tf32`` (float32 matmuls on TF32 tensor
        cores, CUDA only; a no-op on CPU) or ``bf16`` (network forward under bfloat16
        autocast; losses, CVs and parameters stay in ``dtype``).  Opt-in only: the tests
        bound the change of the CVs against float32.
    compile : ``torch.compile`` the batched forward (TorchInductor fuses the elementwise
        work that dominates a step; its backward is compiled with it).  The first
        evaluation pays the compilation (≈ 30 s for the d_model 32 transformer on a CPU);
        a test bounds the change of the CVs and their gradients against eager.
    """

    analytic_forces = False

    def __init__(self, module: torch.nn.Module, train, test, *, sharpness: float = 6.0, dtype=torch.float32,
                 device=None, precision: str = "default", compile: bool = False):
        if not isinstance(module, torch.nn.Module):
            raise ValueError(f"module: must be a torch.nn.Module (got {type(module).__name__})")
        if not (isinstance(sharpness, (int, float)) and math.isfinite(sharpness) and sharpness > 0):
            raise ValueError(f"sharpness: must be a finite number > 0 (got {sharpness!r})")
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dtype = dtype
        self.module = copy.deepcopy(module).to(self.device, dtype)
        self.names = [n for n, p in self.module.named_parameters() if p.requires_grad]
        params = dict(self.module.named_parameters())
        self.shapes = [tuple(params[n].shape) for n in self.names]
        self.sizes = [params[n].numel() for n in self.names]
        self.shape = (sum(self.sizes),)
        self.masses = 1.0
        self.sharpness = float(sharpness)
        if precision not in PRECISIONS:
            raise ValueError(f"precision: must be one of {', '.join(PRECISIONS)} (got {precision!r})")
        if precision != "default" and dtype != torch.float32:
            raise ValueError(f"precision: {precision!r} applies to float32 parameters (got {dtype})")
        self.precision = precision
        if not isinstance(compile, bool):
            raise ValueError(f"compile: must be true or false (got {compile!r})")
        self.compiled = compile
        self.train = tuple(t.to(self.device) for t in train)
        self.test = tuple(t.to(self.device) for t in test)
        for name, (x, y) in (("train", self.train), ("test", self.test)):
            if y.dtype not in (torch.int64, torch.int32) or y.ndim != 1 or len(x) != len(y) or len(y) == 0:
                raise ValueError(f"{name}: must be (inputs [N, ...], integer labels [N]) with N > 0 "
                                 f"(got {tuple(x.shape)} and {tuple(y.shape)} {y.dtype})")
        buffers = {n: b for n, b in self.module.named_buffers()}
        self._buffers_dict = buffers

        if callable(getattr(self.module, "forward_batched", None)) and not buffers:
            # The module evaluates W parameter sets itself (explicit walker axis, bmm).
            self._batched = lambda q, x: self.module.forward_batched(self.unflatten(q), x)
        else:
            def logits(flat_params, x):
                return functional_call(self.module, (self.unflatten_one(flat_params), buffers), (x,))

            self._batched = vmap(logits, in_dims=(0, None))
        if compile:
            # dynamic=False: one graph per (W, data set) shape, which a run keeps fixed.
            self._batched = torch.compile(self._batched, dynamic=False)

    # ------------------------------------------------------------ parameters
    def unflatten_one(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        return {n: t.view(s) for n, t, s in zip(self.names, torch.split(flat, self.sizes), self.shapes)}

    def unflatten(self, q: torch.Tensor) -> dict[str, torch.Tensor]:
        """[W, P] → {name: [W, *shape]} (views)."""
        w = q.shape[0]
        return {n: t.reshape(w, *s) for n, t, s in zip(self.names, torch.split(q, self.sizes, dim=1), self.shapes)}

    def flatten_module(self, module: torch.nn.Module | None = None) -> torch.Tensor:
        """The parameter vector [P] of ``module`` (default: the system's own copy)."""
        params = dict((module or self.module).named_parameters())
        return torch.cat([params[n].detach().reshape(-1) for n in self.names]).to(self.device, self.dtype)

    def load_into(self, flat: torch.Tensor, module: torch.nn.Module | None = None) -> torch.nn.Module:
        """A copy of the module (or ``module`` itself) holding the parameters ``flat`` [P]."""
        m = module if module is not None else copy.deepcopy(self.module)
        params = dict(m.named_parameters())
        with torch.no_grad():
            for n, t in self.unflatten_one(flat).items():
                params[n].copy_(t)
        return m

    def initial_positions(self, walkers: int, *, generator: torch.Generator | None = None, init=None) -> torch.Tensor:
        """[W, P]: the module's own parameters for every walker, or ``init(generator) -> module`` per walker."""
        if init is None:
            return self.flatten_module().expand(walkers, -1).clone()
        return torch.stack([self.flatten_module(init(generator)) for _ in range(walkers)])

    def box_bounds(self, c: float = 3.0, dim: str = "first") -> torch.Tensor:
        """Per-element bound c/√m, m = each tensor's first dimension (``first``), last (``last``,
        fan-in of a [out, in] weight) or element count (``numel``) — docs/science.md §5."""
        if dim not in BOX_DIMS:
            raise ValueError(f"dim: must be one of {', '.join(BOX_DIMS)} (got {dim!r})")
        if not (math.isfinite(c) and c > 0):
            raise ValueError(f"c: must be finite and > 0 (got {c!r})")
        parts = []
        for shape, size in zip(self.shapes, self.sizes):
            m = (shape[0] if shape else 1) if dim == "first" else (shape[-1] if shape else 1) if dim == "last" else size
            parts.append(torch.full((size,), c / math.sqrt(m), dtype=torch.float64))
        return torch.cat(parts)

    # ------------------------------------------------------------ evaluation
    def logits(self, q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """[W, N, C] logits of every walker on inputs ``x`` (in ``dtype``, whatever the precision)."""
        if self.precision == "bf16":
            with torch.autocast(self.device.type, dtype=torch.bfloat16):
                return self._batched(q, x).to(self.dtype)
        if self.precision == "tf32" and self.device.type == "cuda":
            old = torch.backends.cuda.matmul.allow_tf32
            torch.backends.cuda.matmul.allow_tf32 = True
            try:
                return self._batched(q, x)
            finally:
                torch.backends.cuda.matmul.allow_tf32 = old
        return self._batched(q, x)

    def energy(self, q):
        z = self.logits(q, self.train[0])
        return cross_entropy(z, self.train[1])

    def evaluate(self, q: torch.Tensor, names: Sequence[str]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The CVs ``names`` [W] each (differentiable in q) and the true test accuracy [W] (not)."""
        out = {}
        if "log_train_loss" in names:
            out["log_train_loss"] = torch.log(cross_entropy(self.logits(q, self.train[0]), self.train[1]))
        zt = self.logits(q, self.test[0])
        yt = self.test[1]
        if "smoothed_accuracy" in names:
            out["smoothed_accuracy"] = smoothed_accuracy(zt, yt, self.sharpness)
        if "log_test_loss" in names:
            out["log_test_loss"] = torch.log(cross_entropy(zt, yt))
        if "weight_norm" in names:
            out["weight_norm"] = q.norm(dim=1)
        with torch.no_grad():
            acc = (zt.argmax(dim=-1) == yt).to(torch.float64).mean(dim=1)
        return out, acc


def cross_entropy(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy per walker: z [W, N, C], y [N] → [W]."""
    logp = torch.log_softmax(z, dim=-1)
    return -logp.gather(-1, y.expand(z.shape[0], -1).unsqueeze(-1)).squeeze(-1).mean(dim=1)


def smoothed_accuracy(z: torch.Tensor, y: torch.Tensor, k: float) -> torch.Tensor:
    """Ã = mean_i sigmoid(k·(z_i,y − max_(j≠y) z_i,j)) per walker: z [W, N, C] → [W]."""
    idx = y.expand(z.shape[0], -1).unsqueeze(-1)
    correct = z.gather(-1, idx).squeeze(-1)
    others = z.scatter(-1, idx, float("-inf")).max(dim=-1).values
    return torch.sigmoid(k * (correct - others)).mean(dim=1)


class ModuleCV(CV):
    """One of the adapter's CVs (``CV_NAMES``); evaluate several together with :class:`ModuleCVSet`."""

    UNITS = {"log_train_loss": "1", "smoothed_accuracy": "1", "log_test_loss": "1", "weight_norm": "1"}
    LONG = {"log_train_loss": "ln of the mean training cross-entropy", "smoothed_accuracy":
            "smoothed test accuracy (sigmoid surrogate)", "log_test_loss": "ln of the mean test cross-entropy",
            "weight_norm": "global L2 norm of the parameters"}

    def __init__(self, system: ModuleSystem, name: str):
        if name not in CV_NAMES:
            raise ValueError(f"name: must be one of {', '.join(CV_NAMES)} (got {name!r})")
        super().__init__(name, self.UNITS[name], self.LONG[name])
        self.system = system

    def value(self, q):
        return self.system.evaluate(q, [self.name])[0][self.name]


class ModuleCVSet(CVSet):
    """The adapter's CVs on one landscape, sharing one train and one test forward per evaluation.

    ``last_accuracy`` holds the true test accuracy [W] of the last evaluation (an observable).
    """

    def __init__(self, system: ModuleSystem, names: Sequence[str]):
        super().__init__([ModuleCV(system, n) for n in names])
        self.system = system
        self.last_accuracy: torch.Tensor | None = None

    def observables(self):
        return {} if self.last_accuracy is None else {"test_accuracy": self.last_accuracy}

    def values(self, q):
        with torch.no_grad():
            vals, acc = self.system.evaluate(q, self.names)
        self.last_accuracy = acc
        return torch.stack([vals[n] for n in self.names], dim=1)

    def value_and_vjp(self, q):
        with torch.enable_grad():
            qg = q.detach().requires_grad_(True)
            vals, acc = self.system.evaluate(qg, self.names)
            xi = torch.stack([vals[n] for n in self.names], dim=1)
        self.last_accuracy = acc

        def vjp(coeff):
            (g,) = torch.autograd.grad(xi, qg, grad_outputs=coeff.to(xi.dtype))
            return g

        return xi.detach(), vjp
