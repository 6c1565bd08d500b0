"""Wang–Landau molecular dynamics ([P1] eqs. 2, 4, 5; docs/science.md §3).

Equation of motion, per walker, for CVs ξ = (ξ_1 … ξ_K):

    q̈ = −(T0/m) · Σ_k ∂S_tot/∂ξ_k · ∂ξ_k/∂q,     S_tot = S(ξ, t) + Σ S_bias(ξ)

Discrete step t (1-based):
    1. v ← v + a·dt                                        (kick, a from step t−1)
    2. v ← (1 − c_f)·v + √(c_f(2 − c_f)·kT/m)·η           (thermostat)
    3. q ← q + v·dt, then constraints                      (drift)
    4. ξ ← ξ(q);  S ← S + (f_WL(t)/W)·K(ξ), H[ξ] += 1      (deposit, averaging semantics)
    5. a ← −(T0/m)·vjp_ξ(q)[∂S_tot/∂ξ]                     (one backward pass)

Computing the acceleration at the end of the step, after the deposit, is the
same as computing it at the start of the next one, but needs one CV forward and
one backward per step.

``splitting = "baoab"`` orders the same operators as Leimkuhler & Matthews' BAOAB
(AMRX 2013, doi:10.1093/amrx/abs010): half kick, half drift, thermostat, half drift,
constraints, deposit and new acceleration, half kick.  It costs the same one forward
and one backward, and its configurational sampling has no c_f/(2 − c_f) bias (exact
on a harmonic well; docs/science.md §3), which the default "ktd" step above has.  Symbols: T0 = kT = ``kT``, c_f = ``c_f``, dt = ``dt``,
m = system masses, W = walkers sharing the landscape.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from .. import _checks
from ..biases import Bias, total_gradient
from ..constraints import apply_all
from ..cvs import CV, CVSet
from ..faults import check_finite
from ..landscape import Landscape
from ..rng import WalkerRNG
from ..schedules import Schedule
from ..system import System
from .operators import drift, kick, maxwell_boltzmann, thermostat


@dataclass
class WLMDState:
    positions: torch.Tensor  # [W, *shape]
    velocities: torch.Tensor  # [W, *shape]
    accel: torch.Tensor  # [W, *shape], acceleration at ``positions`` under the current S
    cv: torch.Tensor  # [W, K] CV values at ``positions``
    step: int
    rng: WalkerRNG


@dataclass
class WLMDInfo:
    cv: torch.Tensor  # [W, K]
    f_wl: float  # factor used for this step's deposit (before dividing by W)
    in_range: torch.Tensor  # [W] bool: walker deposited on the grid


class WLMD:
    """Wang–Landau MD over a shared :class:`Landscape`.

    Parameters
    ----------
    system : provides the positions' shape and masses (its energy enters only
        through CVs such as :class:`~physampler.cvs.PotentialEnergy`).
    cvs : the CVs, one per landscape axis, in axis order.
    landscape, schedule : S(ξ, t) and f_WL(t); the landscape is updated in place.
    dt, c_f, kT : time step, thermostat coefficient in [0, 1], temperature T0.
    biases, constraints : extra S_bias terms; position constraints after the drift.
    walkers_total : number of walkers sharing the landscape (all processes); each
        deposits f_WL/walkers_total.  Default: the walkers of the state.
    splitting : "ktd" (the [P1] step, default) or "baoab" (see the module docstring).
    """

    SPLITTINGS = ("ktd", "baoab")

    def __init__(
        self,
        system: System,
        cvs: CVSet | CV | list,
        landscape: Landscape,
        schedule: Schedule,
        *,
        dt: float,
        c_f: float,
        kT: float = 1.0,
        biases=(),
        constraints=(),
        walkers_total: int | None = None,
        splitting: str = "ktd",
    ):
        self.splitting = _checks.choice("splitting", splitting, self.SPLITTINGS)
        if not isinstance(system, System):
            raise ValueError(f"system: must be a physampler System (got {type(system).__name__})")
        if not isinstance(cvs, CVSet):
            cvs = CVSet(cvs)
        if not isinstance(landscape, Landscape):
            raise ValueError(f"landscape: must be a Landscape (got {type(landscape).__name__})")
        if len(cvs) != landscape.grid.ndim:
            raise ValueError(f"cvs: must give one CV per landscape axis ({landscape.grid.ndim}) (got {len(cvs)})")
        if not isinstance(schedule, Schedule):
            raise ValueError(f"schedule: must be a Schedule (got {type(schedule).__name__})")
        for b in biases:
            if not isinstance(b, Bias):
                raise ValueError(f"biases: must be Bias objects (got {type(b).__name__})")
        self.system = system
        self.cvs = cvs
        self.landscape = landscape
        self.schedule = schedule
        self.dt = _checks.positive("dt", dt)
        self.c_f = _checks.in_interval("c_f", c_f, 0.0, 1.0)
        self.kT = _checks.positive("kT", kT)
        self.biases = list(biases)
        self.constraints = list(constraints)
        self.walkers_total = None if walkers_total is None else _checks.positive_int("walkers_total", walkers_total)

    # ------------------------------------------------------------------ parts
    def _inv_mass(self, q):
        return 1.0 / torch.as_tensor(self.system.masses, dtype=q.dtype, device=q.device)

    def entropy_gradient(self, xi: torch.Tensor) -> torch.Tensor:
        """∂S_tot/∂ξ = ∂S/∂ξ (+ edge walls) + Σ ∂S_bias/∂ξ, [W, K]."""
        g = self.landscape.gradient(xi)
        b = total_gradient(self.biases, xi)
        return g if b is None else g + b

    def _accel(self, q, xi, vjp, step):
        c = self.entropy_gradient(xi)
        a = vjp(c.to(q.dtype)) * (-self.kT) * self._inv_mass(q)
        check_finite("force", a, step)
        return a

    def refresh(self, state: WLMDState) -> WLMDState:
        """``state`` with its acceleration recomputed under the current S (after the landscape was
        changed from outside, e.g. merged across ranks), positions and CVs unchanged."""
        xi, vjp = self.cvs.value_and_vjp(state.positions)
        return replace(state, accel=self._accel(state.positions, xi, vjp, state.step))

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
        self.landscape.check_range(xi, 0, rng.walkers)
        a = self._accel(positions, xi, vjp, 0)
        return WLMDState(positions, velocities, a, xi, 0, rng)

    def step(self, state: WLMDState):
        t = state.step + 1
        q, rng = state.positions, state.rng
        inv_m = self._inv_mass(q)
        if self.splitting == "ktd":
            v = kick(state.velocities, state.accel, self.dt)
            v = thermostat(v, self.c_f, self.kT, inv_m, rng.normal(q.shape[1:], dtype=q.dtype))
            q = drift(q, v, self.dt)
        else:  # baoab: B A O A here, the last B after the new acceleration
            v = kick(state.velocities, state.accel, 0.5 * self.dt)
            q = drift(q, v, 0.5 * self.dt)
            v = thermostat(v, self.c_f, self.kT, inv_m, rng.normal(q.shape[1:], dtype=q.dtype))
            q = drift(q, v, 0.5 * self.dt)
        q, v = apply_all(self.constraints, q, v)
        xi, vjp = self.cvs.value_and_vjp(q)
        check_finite("CV", xi, t, rng.walkers)
        inside = self.landscape.check_range(xi, t, rng.walkers)
        f = float(self.schedule(t))
        n = self.walkers_total or q.shape[0]
        self.landscape.deposit(xi, f / n, inside)
        for name, values in self.cvs.observables().items():
            self.landscape.observe(name, xi, values, inside)
        a = self._accel(q, xi, vjp, t)
        if self.splitting == "baoab":
            v = kick(v, a, 0.5 * self.dt)
        new = replace(state, positions=q, velocities=v, accel=a, cv=xi, step=t)
        return new, WLMDInfo(cv=xi, f_wl=f, in_range=inside)
