"""A ``torch.nn.Module`` plus a data set as a physampler System of W walkers ([P1], [P2]; docs/science.md §7).

Particles are all trainable parameters, flattened into one vector per walker:
positions are [W, P] (masses 1).

**Evaluation strategies** (``strategy``; docs/science.md §7.1).  W walkers' outputs on a data
set can be computed in four ways, which give the same numbers to round-off:

    batched   ``module.forward_batched(params, x)`` with a leading walker axis on every
              parameter (the models of ``physampler.models`` offer it: one bmm per layer)
    vmap      ``torch.func.vmap`` of ``functional_call(module, params, x)`` over all W
    chunked   the same vmap over chunks of ``chunk`` walkers (bounds the activations' memory)
    loop      one plain ``functional_call`` per walker, as a hand-written loop would

``auto`` (default) times each available strategy on the job's own walkers at the first
evaluation — one forward on every data set the CVs need and one backward, after a warm-up;
the loop and the chunks on their first 4 walkers / 2 chunks, scaled by the number of calls —
and keeps the fastest; the plain loop is always a candidate, so auto is never slower than it
beyond the probe's noise.  The choice and the probe's times are in :meth:`run_attrs` (the
output attributes) and :meth:`state_dict` (the checkpoint): a resume repeats the recorded
strategy, so it stays bit for bit.  Two fresh runs with auto may choose differently and then
agree only to round-off; set the strategy for bitwise reproducibility across runs.

**Losses.** ``loss`` is ``"cross_entropy"`` (integer labels), ``"mse"`` (float targets) or any
callable ``loss(outputs [N, ...], targets [N, ...]) -> scalar`` on one walker's outputs
(batched with vmap, or a loop over walkers when the callable does not vmap).

CVs (one forward per data set per step, shared by all CVs on it):

    ln L_train = ln( L(f_θ(x_train), y_train) )                         ``log_train_loss``
    Ã_test     = (1/N) Σ_i sigmoid(k·(z_i,y_i − max_(j≠y_i) z_i,j))     ``smoothed_accuracy``
    logit Ã    = ln(Ã / (1 − Ã))                                        ``logit_smoothed_accuracy``
    ln L_test                                                           ``log_test_loss``
    ln L_val, Ã_val on a validation split carved from the training data  ``log_validation_loss``,
                                                                        ``smoothed_validation_accuracy``
    |θ|        = global L2 norm of all parameters                       ``weight_norm``

(z: logits, y: labels, k = ``sharpness``, [P2]: 5–7).  The accuracy CVs need a classification
loss.  The logit stretches Ã's ends, where a fitted network spends its time, over the grid.
Observables recorded per landscape bin: the true test accuracy (1/N) Σ_i [argmax z_i = y_i]
(classification) or the test loss (otherwise).  The potential energy of the System is L_train
(used by plain MD and minimisers; WLMD only uses the CVs).

Constraints for the parameters: :func:`box_bounds` gives the per-element bound c/√m of the
reflective box (docs/science.md §5; m = a tensor's first dimension by default) for
:class:`physampler.ReflectiveBox`; the fixed-norm shell is :class:`physampler.FixedNormShell`.
"""
from __future__ import annotations

import copy
import math
import time
from typing import Callable, Sequence

import torch
from torch.func import functional_call, vmap

from ..cvs import CV, CVSet, value_and_pullback
from ..system import System

#: the classification CVs of docs/science.md §8
CV_NAMES = ("log_train_loss", "smoothed_accuracy", "log_test_loss", "weight_norm")
#: every CV of the adapter
ALL_CVS = CV_NAMES + ("logit_smoothed_accuracy", "log_validation_loss", "smoothed_validation_accuracy")
ACCURACY_CVS = ("smoothed_accuracy", "logit_smoothed_accuracy", "smoothed_validation_accuracy")
PRECISIONS = ("default", "tf32", "bf16")
BOX_DIMS = ("first", "last", "numel")
STRATEGIES = ("auto", "batched", "vmap", "chunked", "loop")
LOSSES = ("cross_entropy", "mse")
#: timed repetitions of each candidate in the auto probe (after one warm-up)
PROBE_REPEATS = 3


class ModuleSystem(System):
    """W walkers of ``module`` on (train, test) data.

    Parameters
    ----------
    module : the network; its parameters' shapes define the particle vector (its own
        values are only used by :meth:`initial_positions`).
    train, test : (inputs, targets) of the full training and test sets: integer labels [N]
        for ``cross_entropy``, float targets for ``mse``, anything the callable takes.
    loss : ``cross_entropy`` (default), ``mse`` or a callable (module docstring).
    validation : a fraction in (0, 1) of the training set carved off as a validation set
        (drawn with ``validation_seed``; the rest stays the training set), or None.
    sharpness : k of the smoothed accuracy.
    dtype, device : of the parameters and data (float64 for exact tests; float32 on GPUs).
    precision : ``default`` (matmuls in ``dtype``), ``tf32`` (float32 matmuls on TF32 tensor
        cores, CUDA only; a no-op on CPU) or ``bf16`` (network forward under bfloat16
        autocast; losses, CVs and parameters stay in ``dtype``).  Opt-in only: the tests
        bound the change of the CVs against float32.
    compile : ``torch.compile`` the chosen strategy's forward (TorchInductor fuses the
        elementwise work that dominates a step; its backward is compiled with it).  The first
        evaluation pays the compilation (≈ 30 s for the d_model 32 transformer on a CPU); a
        test bounds the change of the CVs and their gradients against eager.  Auto probes
        the eager strategies and compiles the winner.
    strategy, chunk : the evaluation strategy (module docstring) and the walkers per chunk of
        ``chunked`` (default: the probe tries 4 and 16).
    """

    analytic_forces = False

    def __init__(self, module: torch.nn.Module, train, test, *, loss: str | Callable = "cross_entropy",
                 validation: float | None = None, validation_seed: int = 0, sharpness: float = 6.0,
                 dtype=torch.float32, device=None, precision: str = "default", compile: bool = False,
                 strategy: str = "auto", chunk: int | None = None):
        if not isinstance(module, torch.nn.Module):
            raise ValueError(f"module: must be a torch.nn.Module (got {type(module).__name__})")
        if not (isinstance(sharpness, (int, float)) and math.isfinite(sharpness) and sharpness > 0):
            raise ValueError(f"sharpness: must be a finite number > 0 (got {sharpness!r})")
        if not (callable(loss) or loss in LOSSES):
            raise ValueError(f"loss: must be one of {', '.join(LOSSES)} or a callable (got {loss!r})")
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy: must be one of {', '.join(STRATEGIES)} (got {strategy!r})")
        if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1):
            raise ValueError(f"chunk: must be an integer >= 1 (got {chunk!r})")
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
        self.loss = loss if callable(loss) else str(loss)
        self.classification = self.loss == "cross_entropy"
        if precision not in PRECISIONS:
            raise ValueError(f"precision: must be one of {', '.join(PRECISIONS)} (got {precision!r})")
        if precision != "default" and dtype != torch.float32:
            raise ValueError(f"precision: {precision!r} applies to float32 parameters (got {dtype})")
        self.precision = precision
        if not isinstance(compile, bool):
            raise ValueError(f"compile: must be true or false (got {compile!r})")
        self.compiled = compile
        self.data = {"train": self._data("train", train), "test": self._data("test", test)}
        if validation is not None:
            self.data["train"], self.data["validation"] = self._carve(self.data["train"], validation, validation_seed)
        self.train, self.test = self.data["train"], self.data["test"]
        self._buffers_dict = {n: b for n, b in self.module.named_buffers()}
        self._loss_batched = None
        self.strategy, self.chunk = strategy, chunk
        self.chosen: tuple[str, int | None] | None = None if strategy == "auto" else (strategy, chunk)
        if strategy == "batched" and not self.has_batched():
            raise ValueError("strategy: 'batched' needs a module with forward_batched(params, x) and no buffers")
        self.probe_ms: dict[str, float | str] = {}
        self._probe_note = ""  # the probe's times as recorded in a loaded state
        self._forward = None if self.chosen is None else self._make(*self.chosen)

    # ------------------------------------------------------------ data
    def _data(self, name, pair):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(t, torch.Tensor) for t in pair)):
            raise ValueError(f"{name}: must be a pair (inputs, targets) of tensors")
        x, y = (t.to(self.device) for t in pair)
        if len(x) != len(y) or len(y) == 0:
            raise ValueError(f"{name}: inputs and targets must hold the same N > 0 examples "
                             f"(got {tuple(x.shape)} and {tuple(y.shape)})")
        if self.classification and (y.dtype not in (torch.int64, torch.int32) or y.ndim != 1):
            raise ValueError(f"{name}: loss 'cross_entropy' needs integer labels [N] (got {tuple(y.shape)} {y.dtype})")
        if self.loss == "mse" and not y.dtype.is_floating_point:
            raise ValueError(f"{name}: loss 'mse' needs float targets (got {y.dtype})")
        if x.dtype.is_floating_point:
            x = x.to(self.dtype)
        if y.dtype.is_floating_point:
            y = y.to(self.dtype)
        return x, y

    @staticmethod
    def _carve(train, fraction, seed):
        """(train, validation): ``fraction`` of the training examples, a seeded random subset."""
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
            raise ValueError(f"validation: must be a fraction in (0, 1) of the training set (got {fraction!r})")
        n = len(train[1])
        k = int(round(fraction * n))
        if not 0 < k < n:
            raise ValueError(f"validation: {fraction} of {n} training examples leaves an empty "
                             f"{'validation' if k == 0 else 'training'} set")
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed))).to(train[1].device)
        val, rest = perm[:k].sort().values, perm[k:].sort().values
        return (train[0][rest], train[1][rest]), (train[0][val], train[1][val])

    def check_cvs(self, names: Sequence[str]) -> None:
        """ValueError naming a CV this system cannot give."""
        for n in names:
            if n not in ALL_CVS:
                raise ValueError(f"cvs: {n!r} is not a CV of a network; allowed: {', '.join(ALL_CVS)}")
            if n in ACCURACY_CVS and not self.classification:
                raise ValueError(f"cvs: {n!r} needs a classification loss (cross_entropy); this network's loss is "
                                 f"{self.loss if isinstance(self.loss, str) else 'a callable'}")
            if "validation" in n and "validation" not in self.data:
                raise ValueError(f"cvs: {n!r} needs a validation split (validation = a fraction of the training set)")

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

    # ------------------------------------------------------------ strategies
    def has_batched(self) -> bool:
        return callable(getattr(self.module, "forward_batched", None)) and not self._buffers_dict

    def _one(self, flat, xs):
        return self._call(self.unflatten_one(flat), xs)

    def _call(self, params, xs):
        return tuple(functional_call(self.module, (params, self._buffers_dict), (x,)) for x in xs)

    def _make(self, name: str, chunk: int | None):
        """The forward of strategy ``name``: q [W, P] and a tuple of inputs xs → a tuple of outputs
        [W, N_i, ...].  The parameters are unpacked once for all the data sets: each unpacking
        costs a gather of the gradient in the backward (a concatenation of W·P numbers)."""
        if name == "batched":
            def fn(q, xs):
                params = self.unflatten(q)
                return tuple(self.module.forward_batched(params, x) for x in xs)
        elif name == "loop":
            one = torch.compile(self._call, dynamic=False) if self.compiled else self._call
            n = len(self.names)

            # The walkers' parameters as views of q whose backward writes each gradient once into
            # one [W, P] tensor (WalkerViews): q[w] would cost W dense [W, P] zero tensors summed,
            # an unbind and a split a concatenation per walker and then a stack of the W rows.
            def loop(q, xs):
                views = WalkerViews.apply(q, self.sizes, self.shapes)
                per = [one(dict(zip(self.names, views[w * n:(w + 1) * n])), xs) for w in range(q.shape[0])]
                return tuple(torch.stack(z) for z in zip(*per))
            return loop
        else:
            fn = vmap(self._one, in_dims=(0, None))
        if self.compiled:
            # dynamic=False: one graph per (walkers, data set) shape, which a run keeps fixed.
            fn = torch.compile(fn, dynamic=False)
        if name == "chunked":
            size = chunk or 16

            def chunked(q, xs):
                parts = [fn(c, xs) for c in torch.split(q, size)]
                return tuple(torch.cat(z) for z in zip(*parts))
            return chunked
        return fn

    def candidates(self, walkers: int) -> list[tuple[str, int | None]]:
        """The strategies auto tries for ``walkers`` walkers (chunk sizes below W only)."""
        out = [("batched", None)] if self.has_batched() else []
        out.append(("vmap", None))
        out += [("chunked", c) for c in ((self.chunk,) if self.chunk else (4, 16)) if c < walkers]
        return out + [("loop", None)]

    def _probe(self, q: torch.Tensor, names: Sequence[str]) -> tuple[str, int | None]:
        """The fastest candidate on the job's walkers ``q`` (forward on the CVs' data and one backward)."""
        compiled, self.compiled = self.compiled, False  # probe eager; compile the winner
        best, self.probe_ms = None, {}
        try:
            for cand in self.candidates(q.shape[0]):
                label = cand[0] if cand[1] is None else f"{cand[0]}:{cand[1]}"
                fn = self._make(*cand)
                # The loop and the chunks cost a sum of equal calls: time a few on the first
                # walkers and scale by the number of calls (a probe over 10⁵ walkers stays short).
                part = {"loop": 4, "chunked": 2 * (cand[1] or 16)}.get(cand[0], q.shape[0])
                sub = q[: min(part, q.shape[0])]
                calls = {"loop": 1, "chunked": cand[1] or 16}.get(cand[0], q.shape[0])
                scale = math.ceil(q.shape[0] / calls) / math.ceil(sub.shape[0] / calls)
                try:
                    times = [self._time_once(fn, sub, names) for _ in range(PROBE_REPEATS + 1)][1:]
                except Exception as e:  # a module vmap cannot batch: the candidate drops out
                    self.probe_ms[label] = f"failed ({type(e).__name__})"
                    continue
                self.probe_ms[label] = round(1e3 * scale * sorted(times)[len(times) // 2], 3)
                if best is None or self.probe_ms[label] < self.probe_ms[best[1]]:
                    best = (cand, label)
        finally:
            self.compiled = compiled
        if best is None:
            raise RuntimeError(f"no evaluation strategy runs this module: {self.probe_ms}")
        return best[0]

    def _time_once(self, fn, q, names) -> float:
        sync = torch.cuda.synchronize if q.device.type == "cuda" else (lambda: None)
        sync()
        t0 = time.perf_counter()
        with torch.enable_grad():
            qg = q.detach().clone().requires_grad_(True)
            vals, _ = self._evaluate(fn, qg, names)
            torch.autograd.grad(sum(v.sum() for v in vals.values()), qg, allow_unused=True)
        sync()
        return time.perf_counter() - t0

    def forward_fn(self, q: torch.Tensor, names: Sequence[str]):
        """The chosen strategy's forward, probing first under auto (at the first evaluation)."""
        if self._forward is None:
            self.chosen = self._probe(q, names)
            self._forward = self._make(*self.chosen)
        return self._forward

    def state_dict(self) -> dict:
        """The strategy in use (a resume repeats it: strategies agree only to round-off)."""
        if self.chosen is None:
            return {}
        return {"strategy": self.chosen[0], "chunk": self.chosen[1] or 0, "probe": self.probe_note()}

    def load_state_dict(self, sd: dict) -> None:
        """Use the recorded strategy; a checkpoint without one (written before strategies existed)
        ran ``batched`` when the module has it, else ``vmap``."""
        name = sd.get("strategy", "batched" if self.has_batched() else "vmap")
        chunk, probe = sd.get("chunk", 0), sd.get("probe", "")
        if (name not in STRATEGIES[1:] or isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 0
                or not isinstance(probe, str)):
            raise ValueError(f"system state: strategy {name!r:.40} chunk {chunk!r:.20} is not one of "
                             f"{', '.join(STRATEGIES[1:])} with a chunk >= 0")
        if self.strategy != "auto" and (self.strategy, self.chunk or 0) != (name, chunk):
            raise ValueError(f"strategy: the checkpoint ran {name!r}; resume with 'auto' or {name!r}, since "
                             f"strategies agree only to round-off (got {self.strategy!r})")
        if name == "batched" and not self.has_batched():
            raise ValueError("system state: the checkpoint ran 'batched' but this module has no forward_batched")
        self.chosen = (name, chunk or None)
        self._forward = self._make(*self.chosen)
        self._probe_note = probe

    def probe_note(self) -> str:
        """The auto probe's median times per candidate (ms), as recorded."""
        if self.probe_ms:
            return "; ".join(f"{k} {v}" for k, v in self.probe_ms.items())
        return self._probe_note

    def run_attrs(self) -> dict:
        if self.chosen is None:
            return {}
        name = self.chosen[0] if self.chosen[1] is None else f"{self.chosen[0]}:{self.chosen[1]}"
        out = {"nn_strategy": name + (" (compiled)" if self.compiled else "")}
        if self.probe_note():
            out["nn_strategy_probe_ms"] = self.probe_note()
        return out

    # ------------------------------------------------------------ evaluation
    def _outputs(self, fn, q: torch.Tensor, xs: tuple) -> tuple:
        """``fn(q, xs)`` at the configured precision, the outputs in ``dtype``."""
        if self.precision == "bf16":
            with torch.autocast(self.device.type, dtype=torch.bfloat16):
                return tuple(z.to(self.dtype) for z in fn(q, xs))
        if self.precision == "tf32" and self.device.type == "cuda":
            old = torch.backends.cuda.matmul.allow_tf32
            torch.backends.cuda.matmul.allow_tf32 = True
            try:
                return fn(q, xs)
            finally:
                torch.backends.cuda.matmul.allow_tf32 = old
        return fn(q, xs)

    def logits(self, q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """[W, N, ...] outputs of every walker on inputs ``x`` (in ``dtype``, whatever the precision)."""
        return self._outputs(self.forward_fn(q, ("log_train_loss",)), q, (x,))[0]

    def loss_per_walker(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The loss of each walker's outputs z [W, N, ...] on targets y: [W]."""
        if self.loss == "cross_entropy":
            return cross_entropy(z, y)
        if self.loss == "mse":
            return mean_squared_error(z, y)
        if self._loss_batched is None:
            try:
                batched = vmap(self.loss, in_dims=(0, None))
                batched(z[:1].detach(), y)
                self._loss_batched = batched
            except Exception:  # a loss vmap cannot batch: one call per walker
                self._loss_batched = lambda zz, yy: torch.stack([self.loss(zz[w], yy) for w in range(zz.shape[0])])
        out = self._loss_batched(z, y)
        if tuple(out.shape) != (z.shape[0],):
            raise ValueError(f"loss: the callable must return one number per call (got shape {list(out.shape[1:])})")
        return out

    def energy(self, q):
        return self.loss_per_walker(self.logits(q, self.train[0]), self.train[1])

    #: each data set with its loss CV and accuracy CV
    _SPLITS = (("train", "log_train_loss", None), ("validation", "log_validation_loss", "smoothed_validation_accuracy"),
               ("test", "log_test_loss", "smoothed_accuracy"))

    def _evaluate(self, fn, q, names):
        out = {}
        # the test set's outputs are always computed: they give the observable
        splits = [s for s, loss_cv, acc_cv in self._SPLITS if s == "test" or loss_cv in names or acc_cv in names]
        z = dict(zip(splits, self._outputs(fn, q, tuple(self.data[s][0] for s in splits))))
        outputs = z.__getitem__

        for split, loss_cv, acc_cv in self._SPLITS:
            y = self.data.get(split, (None, None))[1]
            if loss_cv in names:
                out[loss_cv] = torch.log(self.loss_per_walker(outputs(split), y))
            if acc_cv in names or (split == "test" and "logit_smoothed_accuracy" in names):
                a = smoothed_accuracy(outputs(split), y, self.sharpness)
                if acc_cv in names:
                    out[acc_cv] = a
                if split == "test" and "logit_smoothed_accuracy" in names:
                    out["logit_smoothed_accuracy"] = torch.log(a) - torch.log1p(-a)
        if "weight_norm" in names:
            out["weight_norm"] = q.norm(dim=1)
        with torch.no_grad():
            zt, yt = outputs("test"), self.test[1]
            obs = ((zt.argmax(dim=-1) == yt).to(torch.float64).mean(dim=1) if self.classification
                   else self.loss_per_walker(zt, yt).to(torch.float64))
        return out, obs

    def evaluate(self, q: torch.Tensor, names: Sequence[str]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The CVs ``names`` [W] each (differentiable in q) and the test observable [W] (not): the
        true test accuracy (classification) or the test loss."""
        return self._evaluate(self.forward_fn(q, names), q, names)

    @property
    def observable(self) -> str:
        """The name of the per-bin observable of :meth:`evaluate`."""
        return "test_accuracy" if self.classification else "test_loss"


class WalkerViews(torch.autograd.Function):
    """q [W, P] → every walker's parameter tensors, walker-major (W·n views of q, shapes ``shapes``).

    The backward writes each incoming gradient straight into its slice of one [W, P] tensor (zeros
    for a parameter that got none): every number is written once.  ``unbind`` then ``split``
    writes it twice — a concatenation per walker, then a stack of the W rows — which at 16
    walkers of a 1M-parameter MLP cost 12 % of the whole step (benchmarks/RESULTS.md)."""

    @staticmethod
    def _pieces(t, sizes, shapes):
        """Every walker's parameter tensors as views of t [W, P], walker-major."""
        return [p.view(s) for row in t.unbind(0) for p, s in zip(torch.split(row, list(sizes)), shapes)]

    @staticmethod
    def forward(q, sizes, shapes):
        return tuple(WalkerViews._pieces(q, sizes, shapes))

    @staticmethod
    def setup_context(ctx, inputs, output):
        # a separate setup_context: torch.func.vjp (the captured step, cvs.value_and_pullback) needs it
        q, sizes, shapes = inputs
        ctx.meta = (q.shape, q.dtype, q.device, sizes, shapes)

    @staticmethod
    def backward(ctx, *grads):
        shape, dtype, device, sizes, shapes = ctx.meta
        g = torch.empty(shape, dtype=dtype, device=device)
        # the same views as the forward's, so each gradient (of any strides) is copied once into place
        for dst, gk in zip(WalkerViews._pieces(g, sizes, shapes), grads):
            if gk is None:
                dst.zero_()
            else:
                dst.copy_(gk)
        return g, None, None


def cross_entropy(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy per walker: z [W, N, C], y [N] → [W]."""
    logp = torch.log_softmax(z, dim=-1)
    return -logp.gather(-1, y.expand(z.shape[0], -1).unsqueeze(-1)).squeeze(-1).mean(dim=1)


def mean_squared_error(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean of (z − y)² over examples and outputs per walker: z [W, N, ...], y [N, ...] → [W]
    (a network with one output [W, N, 1] against targets [N] is compared as [W, N])."""
    if z.ndim == y.ndim + 2 and z.shape[-1] == 1:
        z = z.squeeze(-1)
    if tuple(z.shape[1:]) != tuple(y.shape):
        raise ValueError(f"loss 'mse': outputs {list(z.shape[1:])} per walker do not match targets {list(y.shape)}")
    return (z - y).square().flatten(1).mean(dim=1)


def smoothed_accuracy(z: torch.Tensor, y: torch.Tensor, k: float) -> torch.Tensor:
    """Ã = mean_i sigmoid(k·(z_i,y − max_(j≠y) z_i,j)) per walker: z [W, N, C] → [W]."""
    idx = y.expand(z.shape[0], -1).unsqueeze(-1)
    correct = z.gather(-1, idx).squeeze(-1)
    others = z.scatter(-1, idx, float("-inf")).max(dim=-1).values
    return torch.sigmoid(k * (correct - others)).mean(dim=1)


class ModuleCV(CV):
    """One of the adapter's CVs (``ALL_CVS``); evaluate several together with :class:`ModuleCVSet`."""

    LONG = {"log_train_loss": "ln of the mean training loss", "smoothed_accuracy":
            "smoothed test accuracy (sigmoid surrogate)", "log_test_loss": "ln of the mean test loss",
            "weight_norm": "global L2 norm of the parameters",
            "logit_smoothed_accuracy": "logit of the smoothed test accuracy",
            "log_validation_loss": "ln of the mean validation loss",
            "smoothed_validation_accuracy": "smoothed validation accuracy (sigmoid surrogate)"}

    def __init__(self, system: ModuleSystem, name: str):
        if name not in ALL_CVS:
            raise ValueError(f"name: must be one of {', '.join(ALL_CVS)} (got {name!r})")
        system.check_cvs([name])
        super().__init__(name, "1", self.LONG[name])
        self.system = system

    def value(self, q):
        return self.system.evaluate(q, [self.name])[0][self.name]


class ModuleCVSet(CVSet):
    """The adapter's CVs on one landscape, sharing one forward per data set per evaluation.

    ``last_accuracy`` holds the test observable [W] of the last evaluation (true test accuracy,
    or test loss for a non-classification loss), recorded per bin under ``system.observable``.
    """

    def __init__(self, system: ModuleSystem, names: Sequence[str]):
        super().__init__([ModuleCV(system, n) for n in names])
        self.system = system
        self.last_accuracy: torch.Tensor | None = None

    def observables(self):
        return {} if self.last_accuracy is None else {self.system.observable: self.last_accuracy}

    def values(self, q):
        with torch.no_grad():
            vals, acc = self.system.evaluate(q, self.names)
        self.last_accuracy = acc
        return torch.stack([vals[n] for n in self.names], dim=1)

    def value_and_vjp(self, q):
        def fn(x):
            vals, acc = self.system.evaluate(x, self.names)
            return torch.stack([vals[n] for n in self.names], dim=1), acc

        xi, self.last_accuracy, vjp = value_and_pullback(fn, q)
        return xi, vjp
