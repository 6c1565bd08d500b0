"""Standard MD on the physical potential: velocity Verlet and Langevin BAOAB.

Velocity Verlet (NVE):  B(dt/2) A(dt) [F] B(dt/2).
BAOAB (NVT, Leimkuhler & Matthews, Appl. Math. Res. Express 2013):
    B(dt/2) A(dt/2) O A(dt/2) [F] B(dt/2),
with O the thermostat operator at c_f = 1 − e^(−γ·dt) (γ = ``friction``).
Forces F = −∂U/∂q come from the system (autograd or its analytic kernel).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from .. import _checks
from ..constraints import apply_all
from ..faults import check_finite
from ..rng import WalkerRNG
from ..system import System
from .operators import drift, friction_coefficient, kick, maxwell_boltzmann, thermostat


@dataclass
class MDState:
    positions: torch.Tensor  # [W, *shape]
    velocities: torch.Tensor  # [W, *shape]
    forces: torch.Tensor  # [W, *shape]
    energy: torch.Tensor  # [W] potential energy
    step: int = 0
    rng: WalkerRNG | None = None


@dataclass
class MDInfo:
    potential: torch.Tensor  # [W]
    kinetic: torch.Tensor  # [W]


class _MD:
    def __init__(self, system: System, dt: float, constraints=()):
        if not isinstance(system, System):
            raise ValueError(f"system: must be a physampler System (got {type(system).__name__})")
        self.system = system
        self.dt = _checks.positive("dt", dt)
        self.constraints = list(constraints)

    def _inv_mass(self, q):
        return 1.0 / torch.as_tensor(self.system.masses, dtype=q.dtype, device=q.device)

    def _forces(self, q, step):
        u, f = self.system.energy_and_forces(q)
        check_finite("forces", f, step)
        return u, f

    def kinetic(self, state: MDState) -> torch.Tensor:
        m = torch.as_tensor(self.system.masses, dtype=state.velocities.dtype, device=state.velocities.device)
        w = state.velocities.shape[0]
        return 0.5 * (m * state.velocities**2).reshape(w, -1).sum(dim=1)

    def _info(self, state):
        return MDInfo(potential=state.energy, kinetic=self.kinetic(state))


class VelocityVerlet(_MD):
    """Symplectic NVE integrator; ``init(positions, velocities)``."""

    def init(self, positions: torch.Tensor, velocities: torch.Tensor) -> MDState:
        self.system.check_positions(positions)
        if velocities.shape != positions.shape:
            raise ValueError(f"velocities: must match positions {list(positions.shape)} (got {list(velocities.shape)})")
        u, f = self._forces(positions, 0)
        return MDState(positions, velocities, f, u, 0, None)

    def step(self, state: MDState):
        t = state.step + 1
        inv_m = self._inv_mass(state.positions)
        v = kick(state.velocities, state.forces * inv_m, 0.5 * self.dt)
        q = drift(state.positions, v, self.dt)
        q, v = apply_all(self.constraints, q, v)
        u, f = self._forces(q, t)
        v = kick(v, f * inv_m, 0.5 * self.dt)
        new = replace(state, positions=q, velocities=v, forces=f, energy=u, step=t)
        return new, self._info(new)


class BAOAB(_MD):
    """Langevin dynamics at temperature ``kT`` with friction ``friction`` (γ, 1/time)."""

    def __init__(self, system: System, dt: float, kT: float = 1.0, friction: float = 1.0, constraints=()):
        super().__init__(system, dt, constraints)
        self.kT = _checks.positive("kT", kT)
        self.friction = _checks.positive("friction", friction)
        self.c_f = friction_coefficient(self.friction, self.dt)

    def init(self, positions: torch.Tensor, rng: WalkerRNG, velocities: torch.Tensor | None = None) -> MDState:
        self.system.check_positions(positions)
        if len(rng) != positions.shape[0]:
            raise ValueError(f"rng: must hold one stream per walker ({positions.shape[0]}) (got {len(rng)})")
        if velocities is None:
            velocities = maxwell_boltzmann(rng, positions.shape[1:], self.kT, self._inv_mass(positions), positions.dtype)
        u, f = self._forces(positions, 0)
        return MDState(positions, velocities, f, u, 0, rng)

    def step(self, state: MDState):
        t = state.step + 1
        q = state.positions
        inv_m = self._inv_mass(q)
        v = kick(state.velocities, state.forces * inv_m, 0.5 * self.dt)
        q = drift(q, v, 0.5 * self.dt)
        v = thermostat(v, self.c_f, self.kT, inv_m, state.rng.normal(q.shape[1:], dtype=q.dtype))
        q = drift(q, v, 0.5 * self.dt)
        q, v = apply_all(self.constraints, q, v)
        u, f = self._forces(q, t)
        v = kick(v, f * inv_m, 0.5 * self.dt)
        new = replace(state, positions=q, velocities=v, forces=f, energy=u, step=t)
        return new, self._info(new)
