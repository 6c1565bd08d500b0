"""Biased molecular dynamics: any bias method on any splitting (docs/science.md §3, §4).

Equation of motion, per walker, for CVs ξ = (ξ_1 … ξ_K):

    q̈ = [P]·F(q)/m − (T0/m) · Σ_k ∂S_tot/∂ξ_k · ∂ξ_k/∂q,     S_tot = S_m(ξ, t) + Σ S_bias(ξ)

with S_m the method's grid bias (:mod:`physampler.methods`), [P] = 1 when the walkers also
feel the system's potential (``potential``; metadynamics) and 0 for Wang–Landau MD ([P1]
eqs. 2, 4, 5).  One step applies the operators of its splitting
(:mod:`.splittings`); the F operator is

    constraints;  ξ ← ξ(q);  the method's deposit (e.g. S ← S + (f_WL(t)/W)·K(ξ), H[ξ] += 1);
    a ← [P]·F/m − (T0/m)·vjp_ξ(q)[∂S_tot/∂ξ]                (one backward pass)

The default splitting "ktd" (kick, thermostat, drift, then F) is the [P1] step: its kick
uses the acceleration computed at the end of the previous step, after that step's deposit,
which is the same as computing it at the start of the step but needs one CV forward and one
backward per step.  Symbols: T0 = kT = ``kT``, c_f = ``c_f``, dt = ``dt``, m = system
masses, W = walkers sharing the landscape (``walkers_total``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from .. import _checks
from ..biases import Bias, total_gradient
from ..constraints import apply_all
from ..cvs import CV, CVSet, PotentialEnergy
from ..faults import CV_FAULT, FORCE_FAULT, RANGE_FAULT, FaultLog, check_finite, finite_rows
from ..landscape import Landscape
from ..rng import WalkerRNG
from ..schedules import Schedule
from ..system import System
from ..methods import Method, WangLandau
from .operators import drift, kick, maxwell_boltzmann, noise_scale, thermostat
from .splittings import SPLITTINGS, partial_friction, thermostats


@dataclass
class WLMDState:
    positions: torch.Tensor  # [W, *shape]
    velocities: torch.Tensor  # [W, *shape]
    accel: torch.Tensor  # [W, *shape], acceleration at ``positions`` under the current S
    cv: torch.Tensor  # [W, K] CV values at ``positions``
    step: int
    rng: WalkerRNG
    faults: FaultLog | None = None  # deferred fault checks: each walker's first fault since the last check


@dataclass
class WLMDInfo:
    cv: torch.Tensor  # [W, K]
    f_wl: float  # factor used for this step's deposit (before dividing by W)
    in_range: torch.Tensor  # [W] bool: walker deposited on the grid


class BiasedMD:
    """A bias method carried by a splitting of the shared operators.

    Parameters
    ----------
    system : provides the positions' shape and masses, and the potential when ``potential``.
    cvs : the CVs, one per landscape axis, in axis order.
    method : a :class:`~physampler.methods.Method` (its landscape is updated in place).
    dt, c_f, kT : time step, thermostat coefficient per step in [0, 1], temperature T0.
    splitting : ``ktd`` (default), ``baoab``, ``obabo`` or ``verlet`` (:mod:`.splittings`).
    potential : whether the walkers also feel the system's forces; default: the method's
        ``physical_default`` (False for Wang–Landau, True for metadynamics).
    biases, constraints : extra S_bias terms; position constraints after the last drift.
    walkers_total : number of walkers sharing the landscape (all processes); each
        deposits f/walkers_total.  Default: the walkers of the state.
    observe : CVs that are recorded, not biased: their mean per landscape bin
        (``landscape.observe``), the input of canonical reweighting of observables
        (:func:`physampler.analysis.reweight_observables`).
    observe_every : record them at the steps t with t % observe_every == 0 (subsampling a
        Markov chain leaves each bin's mean unbiased and saves the cost of costly ones).
    fault_check : when NaN/Inf CVs and forces and CVs off a ``raise`` grid are reported:
        ``step`` — by every :meth:`step` (a host sync per step); ``block`` — accumulated on the
        device (:class:`~physampler.faults.FaultLog`) and raised by :meth:`run` at the end of
        its block, or by :meth:`check_faults`, naming the same step and walker (a faulted
        walker deposits nothing meanwhile, so the landscape stays clean); ``auto`` (default):
        ``block`` on CUDA, ``step`` elsewhere.
    capture : how :meth:`run` steps: ``none`` (default, :meth:`step` after step); ``compile`` or
        ``cuda_graph`` — the whole step captured (:class:`~.graph.CapturedSteps`: counter-based
        noise, faults checked at the end of the block, compiled or replayed as a CUDA graph).
    """

    SPLITTINGS = tuple(SPLITTINGS)
    #: torch.compile's backend for ``capture = "compile"`` (tests trace with "aot_eager" to stay fast)
    compile_backend = "inductor"
    #: on the CPU, the operators between two force evaluations run over blocks of walkers of about
    #: this many bytes per tensor (:meth:`advance`)
    row_block_bytes = 4 << 20

    def __init__(
        self,
        system: System,
        cvs: CVSet | CV | list,
        method: Method,
        *,
        dt: float,
        c_f: float,
        kT: float = 1.0,
        splitting: str = "ktd",
        potential: bool | None = None,
        biases=(),
        constraints=(),
        walkers_total: int | None = None,
        observe=(),
        observe_every: int = 1,
        fault_check: str = "auto",
        capture: str = "none",
    ):
        self.splitting = _checks.choice("splitting", splitting, self.SPLITTINGS)
        if not isinstance(system, System):
            raise ValueError(f"system: must be a physampler System (got {type(system).__name__})")
        if not isinstance(cvs, CVSet):
            cvs = CVSet(cvs)
        if not isinstance(method, Method):
            raise ValueError(f"method: must be a physampler Method (got {type(method).__name__})")
        if len(cvs) != method.landscape.grid.ndim:
            raise ValueError(f"cvs: must give one CV per landscape axis ({method.landscape.grid.ndim}) (got {len(cvs)})")
        for b in biases:
            if not isinstance(b, Bias):
                raise ValueError(f"biases: must be Bias objects (got {type(b).__name__})")
        self.system = system
        self.cvs = cvs
        self.method = method
        self.dt = _checks.positive("dt", dt)
        self.c_f = _checks.in_interval("c_f", c_f, 0.0, 1.0)
        if not thermostats(self.splitting) and self.c_f != 0.0:
            raise ValueError(f"c_f: splitting {self.splitting!r} has no thermostat; set c_f = 0 (got {c_f!r})")
        self.kT = _checks.positive("kT", kT)
        self.potential = method.physical_default if potential is None else bool(potential)
        self.biases = list(biases)
        self.constraints = list(constraints)
        self.walkers_total = None if walkers_total is None else _checks.positive_int("walkers_total", walkers_total)
        self.observe = list(observe)
        for c in self.observe:
            if not isinstance(c, CV):
                raise ValueError(f"observe: must be CV objects (got {type(c).__name__})")
        if len({c.name for c in self.observe} | set(cvs.names)) != len(self.observe) + len(cvs):
            raise ValueError(f"observe: names must be unique and differ from the biased CVs' {cvs.names} "
                             f"(got {[c.name for c in self.observe]})")
        self.observe_every = _checks.positive_int("observe_every", observe_every)
        self.fault_check = _checks.choice("fault_check", fault_check, ("auto", "step", "block"))
        self.capture = _checks.choice("capture", capture, ("none", "compile", "cuda_graph"))
        self._captured = None  # (CapturedSteps, the state it last returned): run() continues it
        m = system.masses
        self._unit_masses = bool((torch.as_tensor(m) == 1.0).all())
        self._ops = SPLITTINGS[self.splitting]
        self._segments = _segments(self._ops)
        self._c = {h: partial_friction(self.c_f, h) for op, h in self._ops if op == "O"}
        self._consts = {}  # (dtype, device) → (1/m, thermostat noise scales): built once, not per step

    @property
    def landscape(self) -> Landscape:
        return self.method.landscape

    @property
    def schedule(self) -> Schedule | None:
        return self.method.schedule

    # ------------------------------------------------------------------ parts
    def _inv_mass(self, q):
        return self._constants(q)[0]

    def _constants(self, q):
        """(1/m, {h: thermostat noise scale}) in ``q``'s dtype on its device, cached: a step then
        creates no tensor from host numbers (a copy to the device, which CUDA graphs cannot hold)."""
        key = (q.dtype, q.device)
        if key not in self._consts:
            inv_m = 1.0 / torch.as_tensor(self.system.masses, dtype=q.dtype, device=q.device)
            self._consts[key] = (inv_m, {h: noise_scale(c, self.kT, inv_m, q.dtype, q.device)
                                         for h, c in self._c.items()})
        return self._consts[key]

    def entropy_gradient(self, xi: torch.Tensor) -> torch.Tensor:
        """∂S_tot/∂ξ = ∂S_m/∂ξ (+ edge walls) + Σ ∂S_bias/∂ξ, [W, K]."""
        g = self.method.gradient(xi)
        b = total_gradient(self.biases, xi)
        return g if b is None else g + b

    def deferred(self, q: torch.Tensor) -> bool:
        """Whether faults of walkers at ``q`` are accumulated rather than raised by each step."""
        return self.fault_check == "block" or (self.fault_check == "auto" and q.device.type == "cuda")

    def acceleration(self, q, xi, vjp, step, walkers=None, faults: FaultLog | None = None):
        """a = [P]·F(q)/m − (T0/m)·Σ_k ∂S_tot/∂ξ_k·∂ξ_k/∂q; a non-finite value raises with the step
        and walker (or, with ``faults``, is recorded there)."""
        c = self.entropy_gradient(xi)
        if not self.potential and self._unit_masses:
            # −T0 folded into the [W, K] coefficients: one pass over [W, P] fewer (two with m = 1)
            a = vjp((c * -self.kT).to(q.dtype))
        else:
            f = vjp(c.to(q.dtype)) * (-self.kT)
            if self.potential:
                f = f + self.system.forces(q)
            a = f * self._inv_mass(q)
        if faults is None:
            check_finite("force", a, step, walkers)
        else:
            faults.record(FORCE_FAULT, ~finite_rows(a), step, xi)
        return a

    def record_observed(self, q: torch.Tensor, xi: torch.Tensor, inside: torch.Tensor) -> None:
        """Add the ``observe`` CVs at positions ``q`` to the per-bin sums of the bins of ``xi``."""
        with torch.no_grad():
            for c in self.observe:
                self.landscape.observe(c.name, xi, c.value(q), inside)

    def refresh(self, state: WLMDState) -> WLMDState:
        """``state`` with its acceleration recomputed under the current S (after the landscape was
        changed from outside, e.g. merged across ranks), positions and CVs unchanged."""
        xi, vjp = self.cvs.value_and_vjp(state.positions)
        return replace(state, accel=self.acceleration(state.positions, xi, vjp, state.step, state.rng.walkers))

    # ------------------------------------------------------------- init/step
    def init(self, positions: torch.Tensor, rng: WalkerRNG, velocities: torch.Tensor | None = None) -> WLMDState:
        """Initial state; velocities default to Maxwell–Boltzmann N(0, kT/m).

        The landscape is left untouched (the first deposit happens at step 1)."""
        self.system.check_positions(positions)
        w = positions.shape[0]
        if len(rng) != w:
            raise ValueError(f"rng: must hold one stream per walker ({w}) (got {len(rng)})")
        inv_m = self._inv_mass(positions)
        if velocities is None:
            velocities = maxwell_boltzmann(rng, positions.shape[1:], self.kT, inv_m, positions.dtype)
        elif velocities.shape != positions.shape:
            raise ValueError(f"velocities: must match positions {list(positions.shape)} (got {list(velocities.shape)})")
        check_finite("positions", positions, 0, rng.walkers)
        xi, vjp = self.cvs.value_and_vjp(positions)
        check_finite("CV", xi, 0, rng.walkers)
        self.method.check_range(xi, 0, rng.walkers)
        a = self.acceleration(positions, xi, vjp, 0, rng.walkers)
        faults = FaultLog(w, len(self.cvs), xi.device) if self.deferred(positions) else None
        return WLMDState(positions, velocities, a, xi, 0, rng, faults)

    def check_faults(self, state: WLMDState) -> None:
        """Raise the first fault the deferred checks recorded in ``state`` (one host sync)."""
        if state.faults is not None:
            state.faults.raise_first(state.rng.walkers, self.landscape.grid)

    def _screen(self, xi, t, faults: FaultLog):
        """Deferred checks of the CVs: (in-grid mask, CVs safe to deposit at).  A walker with
        non-finite CVs, or off a ``raise`` grid, is recorded and treated as off the grid, at the
        grid's lower corner (its deposit weight is then exactly 0)."""
        finite = torch.isfinite(xi).all(dim=1)
        faults.record(CV_FAULT, ~finite, t, xi)
        inside = self.landscape.in_range(xi) & finite
        if self.landscape.out_of_range == "raise":
            faults.record(RANGE_FAULT, ~inside, t, xi)
        corner = torch.as_tensor(self.landscape.grid.lower_edges, dtype=xi.dtype, device=xi.device)
        return inside, torch.where(finite[:, None], xi, corner)

    def _force_step(self, q, v, t, rng, faults: FaultLog | None = None):
        """The F operator: CVs, the method's deposit and per-bin observables, new acceleration
        (the constraints were applied by the operators before it, :meth:`_operators`)."""
        xi, vjp = self.cvs.value_and_vjp(q)
        if faults is None:
            check_finite("CV", xi, t, rng.walkers)
            inside = self.method.check_range(xi, t, rng.walkers)
        else:
            inside, xi = self._screen(xi, t, faults)
        f = self.method.update(xi, t, inside, self.walkers_total or q.shape[0])
        for name, values in self.cvs.observables().items():
            self.landscape.observe(name, xi, values, inside)
        if self.observe:
            due = t % self.observe_every == 0
            if isinstance(t, torch.Tensor):  # a captured step: no branch on a device value
                self.record_observed(q, xi, inside & due)
            elif due:
                self.record_observed(q, xi, inside)
        a = self.acceleration(q, xi, vjp, t, rng.walkers, faults)
        return q, v, xi, a, WLMDInfo(cv=xi, f_wl=f, in_range=inside)

    def advance(self, q, v, a, t, rng, faults: FaultLog | None = None):
        """The operators of one step on plain tensors: positions, velocities and acceleration
        [W, *shape] at step t − 1 → ``(q, v, a, ξ, info)`` at step ``t``.

        ``t`` is a Python int, or a 0-d int64 tensor on the device: then f(t) is computed there
        (:meth:`~physampler.schedules.Schedule.tensor`) and, with ``faults`` and a
        :class:`~physampler.rng.CounterRNG`, the step reads nothing back from the device and
        creates no tensor from host numbers, so ``torch.compile(fullgraph=True)`` and CUDA
        graphs capture it whole (:mod:`.graph`).

        On the CPU the kicks, thermostats, drifts and constraints between two force evaluations
        run walker block by walker block (:meth:`_row_block`), each block's values written once:
        for a network's [W, P] parameters, every operator over all walkers at once is a pass
        through main memory and a fresh allocation of W·P numbers (page faults), where a block
        stays in cache.  Each element sees the same operations in the same order, so the result
        is the same bit for bit; the noise is drawn for all walkers first, as before.
        """
        inv_m, scales = self._constants(q)
        xi = info = None
        for k, seg in enumerate(self._segments):
            if seg is None:
                if k == 0 or self._segments[k - 1] is None:  # no operators before this F to apply them
                    q, v = apply_all(self.constraints, q, v)
                q, v, xi, a, info = self._force_step(q, v, t, rng, faults)
                continue
            constrain = k + 1 < len(self._segments) and self._segments[k + 1] is None
            noise = [rng.normal(q.shape[1:], dtype=q.dtype) for op, _ in seg if op == "O"]
            rows = self._row_block(q)
            if rows is None:
                q, v = self._operators(seg, q, v, a, noise, inv_m, scales, constrain)
                continue
            moves_q = constrain or any(op == "A" for op, _ in seg)
            qo = torch.empty_like(q) if moves_q else q
            vo = torch.empty_like(v)
            for i in range(0, q.shape[0], rows):
                b = slice(i, i + rows)
                qb, vb = self._operators(seg, q[b], v[b], a[b], [n[b] for n in noise], inv_m, scales, constrain)
                if moves_q:
                    qo[b] = qb
                vo[b] = vb
            q, v = qo, vo
        return q, v, a, xi, info

    def _operators(self, seg, q, v, a, noise, inv_m, scales, constrain: bool):
        """The kicks, thermostats and drifts of ``seg`` on walkers (q, v, a), the noise of its
        thermostats in order; then the constraints when F follows."""
        draws = iter(noise)
        for op, h in seg:
            if op == "B":
                v = kick(v, a, h * self.dt)
            elif op == "A":
                q = drift(q, v, h * self.dt)
            else:
                v = thermostat(v, self._c[h], self.kT, inv_m, next(draws), scales[h])
        if constrain:
            q, v = apply_all(self.constraints, q, v)
        return q, v

    def _row_block(self, q) -> int | None:
        """Walkers per block of the operators (:meth:`advance`), or None for all at once: on the
        GPU and in a captured step (one kernel per operator, or one fused kernel, is right there),
        and when all walkers fit in one block.  Constraints act on each walker alone."""
        if q.device.type != "cpu" or torch.compiler.is_compiling() or q.dim() < 2:
            return None
        rows = max(1, self.row_block_bytes // max(1, q[0].numel() * q.element_size()))
        return rows if rows < q.shape[0] else None

    def step(self, state: WLMDState):
        """One step of the splitting; under deferred fault checks (``fault_check``) a fault is
        recorded in ``state.faults`` and raised by :meth:`run` or :meth:`check_faults`."""
        t = state.step + 1
        faults = state.faults
        if faults is None and self.deferred(state.positions):
            faults = FaultLog(state.positions.shape[0], len(self.cvs), state.positions.device)
        q, v, a, xi, info = self.advance(state.positions, state.velocities, state.accel, t, state.rng, faults)
        return replace(state, positions=q, velocities=v, accel=a, cv=xi, step=t, faults=faults), info

    def log_density_of_states(self) -> torch.Tensor:
        """ln g(ξ) + const on the grid: the method's ln ρ(ξ), plus U/kT along a
        :class:`~physampler.cvs.PotentialEnergy` axis when the walkers feel the potential
        (then ρ ∝ g·e^(−U/kT)).  With the potential on and no energy axis it is ln ρ = −F/kT."""
        ln = self.method.log_density(self.kT)
        if self.potential:
            for k, cv in enumerate(self.cvs):
                if isinstance(cv, PotentialEnergy):
                    shape = [1] * ln.ndim
                    shape[k] = -1
                    ln = ln + (self.landscape.grid.axes[k].centres().to(ln.device) / self.kT).reshape(shape)
        return ln

    # ----------------------------------------------------------- persistence
    def state_dict(self, state: WLMDState | None = None) -> dict:
        """The one checkpoint format of every engine (:func:`engine_state_dict`): the method and
        splitting, and with ``state`` its walkers."""
        return engine_state_dict(self.method, self.splitting, state)

    def load_state_dict(self, sd: dict, rng: WalkerRNG | None = None) -> WLMDState | None:
        """Load :meth:`state_dict` (the landscape in place); with walker entries and ``rng`` (this
        job's streams, loaded from the entries) returns their :class:`WLMDState`, checked against
        the system and CVs: ``ValueError`` naming the entry that does not fit."""
        load_engine_state(self.method, self.splitting, sd)
        if rng is None or "positions" not in sd:
            return None
        return walker_state(sd, rng, shape=(len(rng), *self.system.shape), cvs=len(self.cvs))

    def run(self, state: WLMDState, steps: int, *, stop=None) -> tuple[WLMDState, WLMDInfo | None]:
        """``steps`` steps, or fewer once ``stop()`` (asked after every step) is true; returns the
        state and the last step's info — the block interface the compiled engine shares.  Faults
        recorded by deferred checks are raised at the end, naming their step and walker."""
        steps = _checks.non_negative_int("steps", steps)
        if self.capture != "none":
            return self._run_captured(state, steps, stop)
        info = None
        for _ in range(steps):
            state, info = self.step(state)
            if stop is not None and stop():
                break
        self.check_faults(state)
        return state, info

    def _run_captured(self, state: WLMDState, steps: int, stop):
        """:meth:`run` on the captured step; it is built (compiled, or recorded as a CUDA graph) once
        and continued while ``state`` is the one it returned last (info: None)."""
        from .graph import CapturedSteps

        if self._captured is None or self._captured[1] is not state:
            self._captured = (CapturedSteps(self, state, mode=self.capture, backend=self.compile_backend), None)
        cs = self._captured[0]
        cs.run(steps, stop)
        out = cs.state()
        self._captured = (cs, out)
        self.check_faults(out)
        return out, None


#: the walker entries of the engine state format: name → kind
WALKER_ENTRIES = ("step", "positions", "velocities", "accel", "cv", "rng")


def _segments(ops) -> list:
    """A splitting as runs of its elementwise operators, with None for each F."""
    out, run = [], []
    for op, h in ops:
        if op == "F":
            if run:
                out.append(tuple(run))
            out.append(None)
            run = []
        else:
            run.append((op, h))
    if run:
        out.append(tuple(run))
    return out


def engine_state_dict(method: Method, splitting: str, state: WLMDState | None = None) -> dict:
    """The one engine state format (torch and compiled engines, WanD, every checkpoint), flat and
    made of plain tensors and numbers (``torch.load(weights_only=True)``):

    ``splitting``, ``method`` (its kind) and the method's own entries (``landscape``: S, H and the
    per-bin observables, shared by all walkers); with ``state`` the walkers: ``step``,
    ``positions``, ``velocities``, ``accel`` [W, *shape], ``cv`` [W, K] and ``rng`` (their streams).
    """
    m = dict(method.state_dict())
    sd = {"splitting": splitting, "method": m.pop("kind")} | m
    if state is not None:
        sd |= {"step": state.step, "rng": state.rng.state_dict()}
        sd |= {k: getattr(state, k).detach().cpu().clone() for k in ("positions", "velocities", "accel", "cv")}
    return sd


def load_engine_state(method: Method, splitting: str, sd: dict) -> None:
    """Load the method part of :func:`engine_state_dict` (a state written before the splitting and
    method were recorded is taken to be of this engine's)."""
    _checks.same("integrator state: splitting", sd.get("splitting", splitting), splitting)
    entries = {k: v for k, v in sd.items() if k not in WALKER_ENTRIES and k != "splitting"}
    method.load_state_dict(entries | {"kind": entries.pop("method", method.kind)})


def _float_entry(sd: dict, key: str, shape: tuple) -> torch.Tensor:
    t = sd[key]
    if not isinstance(t, torch.Tensor) or not t.dtype.is_floating_point or tuple(t.shape) != tuple(shape):
        got = f"{list(t.shape)} {t.dtype}" if isinstance(t, torch.Tensor) else type(t).__name__
        raise ValueError(f"entry {key!r} must be a float tensor of shape {list(shape)} for this job (got {got})")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"entry {key!r} holds NaN or Inf")
    return t


def walker_state(sd: dict, rng: WalkerRNG, *, shape: tuple, cvs: int, device=None, dtype=None) -> WLMDState:
    """The :class:`WLMDState` of the walker entries of ``sd``, their streams loaded into ``rng``;
    ``ValueError`` naming the entry that does not fit ``shape`` [W, *system shape] and ``cvs``."""
    step = sd["step"]
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"entry 'step' must be an integer >= 0 (got {step!r:.40})")
    q, v, a = (_float_entry(sd, k, shape) for k in ("positions", "velocities", "accel"))
    cv = _float_entry(sd, "cv", (shape[0], cvs))
    try:
        rng.load_state_dict(sd["rng"])
    except (KeyError, ValueError, TypeError, RuntimeError, IndexError, AttributeError) as e:
        raise ValueError(f"random streams do not fit this job ({type(e).__name__}: {e})") from None
    d = {"device": device, "dtype": dtype or q.dtype}
    return WLMDState(q.to(**d), v.to(**d), a.to(**d), cv.to(device), step, rng)


class WLMD(BiasedMD):
    """Wang–Landau MD ([P1]): :class:`~physampler.methods.WangLandau` over ``landscape`` with
    ``schedule``, walkers feeling no potential, on the ``ktd`` splitting unless told otherwise.

    Parameters are those of :class:`BiasedMD`, with ``landscape`` and ``schedule`` in place
    of ``method``.
    """

    def __init__(self, system: System, cvs, landscape: Landscape, schedule: Schedule, **kwargs):
        super().__init__(system, cvs, WangLandau(landscape, schedule), **kwargs)
