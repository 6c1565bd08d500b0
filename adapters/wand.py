"""WanD: Wang–Landau dynamics as a ``torch.optim`` optimizer ([P1] §5, eq. 7; docs/science.md §9).

    θ̈ = −T0 · ∂S_tot(ξ, t)/∂ξ · ∂ξ/∂θ + η(t) − λ·θ̇,      ξ = ln L(θ),   kT = T0

with ⟨η_i(t) η_j(t′)⟩ = λ(2 − λ)·kT·δ_ij δ(t − t′), S(ξ, t) a 1-D Wang–Landau
landscape on the ln-loss axis built from the loss alone (no test data), and
S_tot = S + walls.  A WanD step *is* one step of the core's
:class:`physampler.WLMD` with one walker whose positions are all optimised
parameters, flattened in parameter-group order, and the single CV ξ = ln L:

    1. v ← v + a·dt                                   (kick)
    2. v ← (1 − λ)·v + √(λ(2 − λ)·kT)·η               (thermostat)
    3. θ ← θ + v·dt, then the box / fixed-norm constraint  (drift)
    4. ξ = ln L(θ) from ``closure``; S += f_WL(t)·K(ξ)  (deposit)
    5. a = −kT·(∂S_tot/∂ξ)·∂ξ/∂θ                      (one backward of c·ln L)

Symbols → arguments: dt = ``lr``, λ = ``friction`` (the c_f of docs/science.md §3),
kT = ``kT``, f_WL(t) = ``schedule``, K = Gaussian of ``sigma`` bins on the grid
``(lower, upper, bins)`` of ln L, walls = ``wall_at``/``wall_strength`` (a
quadratic wall above ``wall_at`` that pushes towards low loss) plus the grid-edge
walls of ``out_of_range = "wall"``.  Masses are 1.  The landscape, schedule,
walls, operators and constraints are the core's own objects; nothing here
re-implements them.

The closure re-evaluates the model and returns the loss L > 0 (e.g. the mean
cross-entropy over the full training set).  It may either return the loss with
its autograd graph (WanD then differentiates c·ln L in one backward, exactly as
the core does for a CV) or call ``loss.backward()`` itself as for L-BFGS (WanD
then uses ∂L/∂θ / L).  ``step`` evaluates the closure at the *new* parameters —
the acceleration of the next step needs it — and returns that loss; the first
step also evaluates it once at the initial parameters.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable

import torch
from torch.optim import Optimizer

from .. import _checks
from ..biases import QuadraticWall
from .schema import WAND_DEFAULTS
from ..constraints import FixedNormShell, ReflectiveBox
from ..cvs import CV, CVSet
from ..faults import NumericalFault
from ..grid import Axis
from ..integrators.splittings import SPLITTINGS, thermostats
from ..integrators.wlmd import BiasedMD, WLMDInfo, WLMDState, engine_state_dict, load_engine_state
from ..landscape import Landscape
from ..methods import WangLandau
from ..rng import WalkerRNG
from ..schedules import InverseTime, Schedule
from ..system import System

__all__ = ["WanD", "wand", "wand_landscape", "thermal_displacement_variance"]


class _Parameters(System):
    """The optimised parameters as one walker of P unit masses; U = L."""

    def __init__(self, params: list[torch.Tensor], cv: "_LogLoss"):
        self.params = params
        self.sizes = [p.numel() for p in params]
        self.shape = (sum(self.sizes),)
        self.masses = 1.0
        self._cv = cv

    def flat(self) -> torch.Tensor:
        return flat_parameters(self.params)

    def load(self, q: torch.Tensor) -> None:
        with torch.no_grad():
            for p, chunk in zip(self.params, torch.split(q[0], self.sizes)):
                p.copy_(chunk.view_as(p))

    def energy(self, q):
        return torch.exp(self._cv.value(q))


class _LogLoss(CV):
    """ξ = ln L(θ) of the closure's loss, evaluated at q by loading q into the parameters."""

    def __init__(self, params: list[torch.Tensor], closure: Callable[[], torch.Tensor]):
        super().__init__("log_train_loss", "1", "ln of the training loss")
        self.params = params
        self.closure = closure
        self.system = _Parameters(params, self)
        self.last_loss: torch.Tensor | None = None
        self.step = 0  # the step being evaluated (for fault reports)

    def _evaluate(self, q):
        self.system.load(q)
        for p in self.params:
            p.grad = None
        with torch.enable_grad():
            loss = self.closure()
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                raise ValueError(f"closure: must return the loss as a one-element tensor (got {type(loss).__name__})")
            loss = loss.reshape(())
        value = float(loss.detach())
        if value == 0.0 or not math.isfinite(value):
            # ln L = −inf or NaN: the loss underflowed (float32 cross-entropy of a perfectly
            # fitted batch) or the parameters blew up; a numerical fault, not a usage error.
            hint = ("keep the walker away from it (a higher lower edge of the ln L grid, or a box: an unconfined "
                    "network's logits can grow until the loss is exactly 0)") if loss.dtype == torch.float64 else \
                "use float64 or keep the walker away from it (a higher lower edge of the ln L grid)"
            raise NumericalFault(f"step {self.step}, walker 0: loss {value!r}, so ln L is not finite; {hint}",
                                 step=self.step, walker=0)
        if value < 0:
            raise ValueError(f"closure: WanD samples ln L, so the loss must be > 0 (got {value:.6g})")
        self.last_loss = loss.detach()
        return loss

    def value(self, q):
        with torch.no_grad():
            return torch.log(self._evaluate(q).detach()).reshape(1)

    def value_and_vjp(self, q):
        """``(ξ [1, 1], vjp)`` as :meth:`physampler.CVSet.value_and_vjp` (see :class:`_LogLossSet`)."""
        loss = self._evaluate(q)
        grads = [p.grad for p in self.params]
        if any(g is not None for g in grads):
            # The closure ran backward itself: ∂ ln L/∂θ = (∂L/∂θ)/L.
            flat = torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                              for g, p in zip(grads, self.params)])[None]
            lval = loss.detach()

            def vjp(coeff):
                return flat * (coeff[:, :1].to(flat.dtype) / lval)

            return torch.log(lval).reshape(1, 1), vjp
        if loss.grad_fn is None:
            raise ValueError("closure: the loss carries no autograd graph and no gradients were computed; return "
                             "the loss of a forward pass on the parameters (optionally after loss.backward())")
        with torch.enable_grad():
            xi = torch.log(loss).reshape(1, 1)

        def vjp(coeff):
            g = torch.autograd.grad(xi, self.params, grad_outputs=coeff.to(xi.dtype), allow_unused=True)
            return torch.cat([(gi if gi is not None else torch.zeros_like(p)).reshape(-1)
                              for gi, p in zip(g, self.params)])[None]

        return xi.detach(), vjp


class _LogLossSet(CVSet):
    """The one-CV set of WanD; its value_and_vjp is the closure's (one forward, one backward)."""

    def __init__(self, cv: _LogLoss):
        super().__init__([cv])
        self.cv = cv

    def values(self, q):
        return self.cv.value(q)[:, None]

    def value_and_vjp(self, q):
        return self.cv.value_and_vjp(q)


def wand_landscape(lower: float = -12.0, upper: float = 2.0, bins: int = 700, *, sigma: float = 1.0,
                   wall_strength: float | None = None, device=None) -> Landscape:
    """The 1-D S(ln L) of WanD (float64), with grid-edge walls."""
    return Landscape([Axis("log_train_loss", lower, upper, bins=bins, long_name="ln of the training loss")],
                     sigma=sigma, out_of_range="wall", wall_strength=wall_strength, device=device)


def _integrator(params, closure, landscape, schedule, *, lr, friction, kT, biases, constraints,
                splitting) -> BiasedMD:
    cv = _LogLoss(params, closure)
    return BiasedMD(cv.system, _LogLossSet(cv), WangLandau(landscape, schedule), dt=lr, c_f=friction, kT=kT,
                    biases=biases, constraints=constraints, walkers_total=1, splitting=splitting)


def wand(params: list[torch.Tensor], closure: Callable[[], torch.Tensor], state: WLMDState | None, *,
         landscape: Landscape, schedule: Schedule, rng: WalkerRNG, lr: float, friction: float, kT: float = 1.0,
         biases=(), constraints=(), splitting: str = "ktd") -> tuple[WLMDState, WLMDInfo, torch.Tensor]:
    """Functional WanD: one step on ``params`` in place (cf. ``torch.optim.sgd.sgd``).

    ``state`` is the integrator state of the previous call (None at the start: the
    closure is evaluated at the initial parameters and velocities are drawn from
    N(0, kT) with ``rng``).  ``splitting``: the core's splitting of the step (docs/science.md §3;
    "ktd" is the [P1] step above).  Returns (new state, step info, loss at the new θ).
    The parameters are overwritten from the state, so they must not be changed in
    between (or pass ``state=None`` to restart the dynamics from them).
    """
    integ = _integrator(params, closure, landscape, schedule, lr=lr, friction=friction, kT=kT, biases=biases,
                        constraints=constraints, splitting=splitting)
    cv = integ.cvs.cv
    if state is None:
        state = integ.init(cv.system.flat(), rng)
    else:
        # Positions come from the parameters (equal to the last step's unless the
        # caller replaced them, e.g. after loading a checkpoint into the model).
        state = replace(state, positions=cv.system.flat(), rng=rng)
    cv.step = state.step + 1
    state, info = integ.step(state)
    return state, info, cv.last_loss


class WanD(Optimizer):
    """Wang–Landau dynamics on ln L as an optimizer (see the module docstring for the equations).

    Every default comes from :data:`physampler.adapters.schema.WAND_DEFAULTS` — the same values as
    ``physampler train`` and docs/config.md: dt = 1e-3, λ = 0.03, kT = 1,
    f_WL = InverseTime(F = 3000, t_WL = 500), the ln L grid −8 … 2 in 500 bins with a
    kernel of 10 bins, and a wall β = 1e4 above ln L = −5; no box, no fixed norm.

    Parameters
    ----------
    params : iterable of parameters or parameter groups.  Groups may differ in
        ``box`` and nothing else: the time step, friction and temperature belong to
        the one landscape.  ``box = c`` confines every element of a tensor to
        |θ_i| ≤ c/√m, m = the tensor's first dimension (reflective walls): a hard
        constraint, not a regulariser — c = 1.5 bounds a [64, 2] weight at 0.19 and
        keeps a generic MLP from fitting; it suits the modular-arithmetic transformer it
        was found on.  None (default) = unbounded.
    lr : time step dt (> 0).
    friction : λ in [0, 1] (per-step damping; noise λ(2 − λ)·kT).
    kT : temperature T0 = kT (> 0; 1 in [P1]).
    schedule : f_WL(t), a :class:`physampler.Schedule`.
    lower, upper, bins, sigma : the ln L grid and the kernel width in bins.
    wall_at, wall_strength : quadratic wall β·(ξ − ξ0)² above ξ0 = ``wall_at`` pushing
        towards low loss ([P1] §5); None for no wall.  ``edge_wall_strength``: the
        grid-edge walls (default 1/bin width²).
    norm : keep the global L2 norm of all parameters at this value (the fixed-norm
        shell: rescale after every drift and remove the radial velocity).
    seed : seed of the thermostat's random stream (default: drawn from torch's
        global generator, so ``torch.manual_seed`` controls it).
    splitting : the core's splitting of the step: ``ktd`` (default, the [P1] step), ``baoab``,
        ``obabo``, or ``verlet`` (friction 0); docs/science.md §3.

    Per-parameter state lives in ``self.state[p]`` as in ``torch.optim``: ``velocity`` and
    ``acceleration`` (tensors shaped like p) and ``step``; the shared landscape, random stream and
    last ln L are under the ``wand`` entry of :meth:`state_dict`.

    F and β act per unit of ln L on all P parameters together, so they must grow with
    P: the defaults were found at P ≈ 1.4e4 and hold at 4.5e3 (tests/test_wand.py).
    """

    def __init__(self, params, lr: float = WAND_DEFAULTS["lr"], *, friction: float = WAND_DEFAULTS["friction"],
                 kT: float = WAND_DEFAULTS["kT"], schedule: Schedule | None = None,
                 lower: float = WAND_DEFAULTS["lower"], upper: float = WAND_DEFAULTS["upper"],
                 bins: int = WAND_DEFAULTS["bins"], sigma: float = WAND_DEFAULTS["sigma"],
                 wall_at: float | None = WAND_DEFAULTS["wall_at"], wall_strength: float = WAND_DEFAULTS["wall_strength"],
                 edge_wall_strength: float | None = None, box: float | None = None, norm: float | None = None,
                 seed: int | None = None, splitting: str = "ktd"):
        _checks.positive("lr", lr)
        _checks.in_interval("friction", friction, 0.0, 1.0)
        self.splitting = _checks.choice("splitting", splitting, tuple(SPLITTINGS))
        if not thermostats(self.splitting) and friction != 0.0:
            raise ValueError(f"friction: splitting {splitting!r} has no thermostat; set friction = 0 (got {friction!r})")
        _checks.positive("kT", kT)
        if schedule is None:
            schedule = InverseTime(F=WAND_DEFAULTS["F"], t_wl=WAND_DEFAULTS["t_wl"])
        if not isinstance(schedule, Schedule):
            raise ValueError(f"schedule: must be a physampler Schedule (got {type(schedule).__name__})")
        if box is not None:
            _checks.positive("box", box)
        if norm is not None:
            _checks.positive("norm", norm)
        if wall_at is not None:
            if not (isinstance(wall_at, (int, float)) and math.isfinite(wall_at)):
                raise ValueError(f"wall_at: must be a finite number or None (got {wall_at!r})")
            _checks.positive("wall_strength", wall_strength)
        if seed is None:
            seed = int(torch.randint(0, 2**62, (), dtype=torch.int64))
        self.seed = _checks.non_negative_int("seed", seed)
        self.schedule = schedule
        self.grid_spec = dict(lower=lower, upper=upper, bins=bins, sigma=sigma, wall_strength=edge_wall_strength)
        self.wall_at, self.wall_strength, self.norm = wall_at, wall_strength, norm
        defaults = dict(lr=lr, friction=friction, kT=kT, box=box)
        super().__init__(params, defaults)
        first = self.param_groups[0]
        device = first["params"][0].device
        dtype = first["params"][0].dtype
        for i, g in enumerate(self.param_groups):
            for key in ("lr", "friction", "kT"):
                if g[key] != first[key]:
                    raise ValueError(f"param_groups[{i}].{key}: WanD integrates all groups with one {key}; "
                                     f"must equal {first[key]!r} (got {g[key]!r})")
            if g["box"] is not None:
                _checks.positive(f"param_groups[{i}].box", g["box"])
            for p in g["params"]:
                if p.device != device or p.dtype != dtype:
                    raise ValueError(f"param_groups[{i}]: every parameter must share one device and dtype "
                                     f"({device}, {dtype}) (got {p.device}, {p.dtype})")
        self.landscape = wand_landscape(lower, upper, bins, sigma=sigma, wall_strength=edge_wall_strength,
                                        device=device)
        self._rng = WalkerRNG(self.seed, 1, device=device)
        self._cv: torch.Tensor | None = None  # ln L at the current parameters, [1, 1] (None before the first step)
        self._constraint_list = None  # built at the first step (groups are fixed from then on)
        self.last_info: WLMDInfo | None = None

    # ------------------------------------------------------------------ parts
    def _params(self) -> list[torch.Tensor]:
        return [p for g in self.param_groups for p in g["params"]]

    def biases(self) -> list:
        """The fixed S_bias terms on the ln L axis that every step adds to S (the wall above ``wall_at``)."""
        return [] if self.wall_at is None else [QuadraticWall(0, self.wall_at, self.wall_strength, "upper")]

    def _constraints(self):
        if self._constraint_list is None:
            self._constraint_list = self._build_constraints()
        return self._constraint_list

    @staticmethod
    def _box_bound(p: torch.Tensor, c: float | None) -> float:
        """c/√m with m = the tensor's first dimension (its output neurons); ∞ without a box."""
        return math.inf if c is None else c / math.sqrt(p.shape[0] if p.ndim else 1)

    def _build_constraints(self):
        out = []
        if any(g["box"] is not None for g in self.param_groups):
            parts = [torch.full((p.numel(),), self._box_bound(p, g["box"]), dtype=torch.float64)
                     for g in self.param_groups for p in g["params"]]
            out.append(ReflectiveBox(torch.cat(parts)))
        if self.norm is not None:
            out.append(FixedNormShell(self.norm))
        return out

    @torch.no_grad()
    def project_(self) -> None:
        """Move the parameters into the constraint set before the first step: every element into
        its box [−c/√m, c/√m] (clamped, as the sampler clamps its starts), then all of them onto
        the fixed-norm shell |θ| = R.  A default initialisation can lie outside (e.g. |θ| 21.2
        against 17.6 inside the c = 1.5 box of examples/train), which the first step would
        otherwise reflect in, so that step 0 of a history is not a state of the constrained system."""
        for g in self.param_groups:
            for p in g["params"]:
                b = self._box_bound(p, g["box"])
                if math.isfinite(b):
                    p.clamp_(-b, b)
        if self.norm is not None:
            params = self._params()
            scale = self.norm / torch.linalg.vector_norm(torch.cat([p.reshape(-1) for p in params]))
            for p in params:
                p.mul_(scale.to(p.dtype))

    def add_param_group(self, param_group):
        if getattr(self, "_cv", None) is not None:
            raise ValueError("param_group: WanD's walker is all parameters at once; add groups before the first step")
        super().add_param_group(param_group)
        self._constraint_list = None

    # ------------------------------------------------------------------- step
    def _walker(self) -> WLMDState | None:
        """The core's one-walker state assembled from the per-parameter state (None before the first step)."""
        if self._cv is None:
            return None
        params = self._params()

        def flat(key):
            return torch.cat([self.state[p][key].reshape(-1) for p in params])[None]

        return WLMDState(positions=flat_parameters(params), velocities=flat("velocity"), accel=flat("acceleration"),
                         cv=self._cv, step=int(self.state[params[0]]["step"]), rng=self._rng)

    def _scatter(self, walker: WLMDState) -> None:
        """The walker's velocity and acceleration, cut back into each parameter's state."""
        start = 0
        for p in self._params():
            n = p.numel()
            self.state[p].update(velocity=walker.velocities[0, start:start + n].view_as(p).clone(),
                                 acceleration=walker.accel[0, start:start + n].view_as(p).clone(), step=walker.step)
            start += n
        self._cv = walker.cv

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor:  # type: ignore[override]
        """One WLMD step; returns the loss at the updated parameters."""
        if closure is None:
            raise ValueError("closure: WanD needs the loss to build its landscape; call step(closure) with a "
                             "closure that re-evaluates the model and returns the loss")
        g = self.param_groups[0]
        walker, self.last_info, loss = wand(
            self._params(), closure, self._walker(), landscape=self.landscape, schedule=self.schedule, rng=self._rng,
            lr=g["lr"], friction=g["friction"], kT=g["kT"], biases=self.biases(), constraints=self._constraints(),
            splitting=self.splitting)
        self._scatter(walker)
        return loss

    @property
    def velocities(self) -> torch.Tensor | None:
        """The flat velocity vector [P] (None before the first step)."""
        w = self._walker()
        return None if w is None else w.velocities[0]

    @property
    def steps(self) -> int:
        return 0 if self._cv is None else int(self.state[self._params()[0]]["step"])

    # ------------------------------------------------------------- state dict
    def state_dict(self) -> dict:
        """torch.optim's state dict (per-parameter ``velocity``, ``acceleration``, ``step``) plus the
        shared ``wand`` entry: ``seed``, ``schedule`` and the core's engine state format
        (:func:`~physampler.integrators.wlmd.engine_state_dict`: ``splitting``, ``method``,
        ``landscape``, ``step``, ``cv``, ``rng``) without the walker's arrays, which are the
        parameters themselves and their per-parameter state.  Plain tensors and numbers only
        (loads with ``torch.load(weights_only=True)``)."""
        sd = super().state_dict()
        engine = engine_state_dict(self._method(), self.splitting, self._walker())
        for key in ("positions", "velocities", "accel"):
            engine.pop(key, None)
        engine.setdefault("rng", self._rng.state_dict())  # before the first step: no walker yet
        sd["wand"] = {"seed": self.seed, "schedule": {"kind": type(self.schedule).__name__, **self.schedule.params()}} \
            | engine
        return sd

    def _method(self) -> WangLandau:
        return WangLandau(self.landscape, self.schedule)

    def load_state_dict(self, state_dict: dict) -> None:
        if "wand" not in state_dict:
            raise ValueError("state_dict: not a WanD state (no 'wand' entry)")
        sd = dict(state_dict)
        ws = sd.pop("wand")
        sched = {"kind": type(self.schedule).__name__, **self.schedule.params()}
        if dict(ws["schedule"]) != sched:
            raise ValueError(f"state_dict: schedule differs from this optimizer's (got {dict(ws['schedule'])}, "
                             f"have {sched})")
        if ws.get("splitting", "ktd") != self.splitting:
            raise ValueError(f"state_dict: splitting {ws.get('splitting')!r} differs from this optimizer's "
                             f"{self.splitting!r}")
        params = self._params()
        if "cv" in ws:
            for i, p in enumerate(params):
                st = sd["state"].get(i, {})
                for key in ("velocity", "acceleration"):
                    if not isinstance(st.get(key), torch.Tensor) or tuple(st[key].shape) != tuple(p.shape):
                        got = list(st[key].shape) if isinstance(st.get(key), torch.Tensor) else None
                        raise ValueError(f"state_dict: state[{i}].{key} must be a tensor of the parameter's shape "
                                         f"{list(p.shape)} (got {got})")
        super().load_state_dict(sd)
        load_engine_state(self._method(), self.splitting, {k: v for k, v in ws.items() if k not in ("seed", "schedule")})
        self.seed = int(ws["seed"])
        self._rng = WalkerRNG(self.seed, 1, device=self.landscape.device)
        self._rng.load_state_dict(ws["rng"])
        self._cv = ws["cv"].to(params[0].device) if "cv" in ws else None


def thermal_displacement_variance(steps: int, lr: float, kT: float, friction: float) -> float:
    """Variance of one free parameter's displacement after ``steps`` WanD steps from a thermal start
    (docs/science.md §9, "The thermal drift of the norm"):

        Var = dt²·T·[t + 2·Σ_{k=1}^{t−1} (t − k)·(1 − λ)^k]  →  dt²·T·t·(2 − λ)/λ   (t ≫ 1/λ)

    from the velocity autocorrelation ⟨v_n v_{n+k}⟩ = T·(1 − λ)^k of the ``ktd`` thermostat; t =
    ``steps``, dt = ``lr``, T = ``kT``, λ = ``friction``.  P free parameters drift by √(P·Var): the
    norm growth of a walker that nothing confines."""
    t = _checks.non_negative_int("steps", steps)
    r = 1.0 - _checks.in_interval("friction", friction, 0.0, 1.0)
    k = torch.arange(1, max(t, 1), dtype=torch.float64)
    return float(lr * lr * kT * (t + 2.0 * torch.sum((t - k) * r**k)))


def flat_parameters(params: list[torch.Tensor]) -> torch.Tensor:
    """All parameters as one walker, [1, P], in parameter-group order."""
    return torch.cat([p.detach().reshape(-1) for p in params])[None]
