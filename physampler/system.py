"""Systems: positions with a leading walker axis and a potential energy.

A system maps positions ``q`` of shape ``[W, *shape]`` (W walkers, each a full
copy of the system) to the potential energy ``U(q)`` of shape ``[W]``.  The
energy is the source of truth: ``forces`` defaults to ``F = -dU/dq`` by autograd,
and subclasses may override it with an analytic kernel that the tests compare
against autograd.
"""
from __future__ import annotations

import abc
from typing import Sequence

import torch


class System(abc.ABC):
    """Base class.

    Attributes
    ----------
    shape : per-walker shape of the positions (e.g. ``(N,)`` or ``(n_atoms, 3)``).
    masses : tensor broadcastable to ``shape`` (default 1).
    """

    shape: tuple[int, ...]
    masses: torch.Tensor | float = 1.0
    #: True when ``forces`` is an analytic kernel rather than autograd.
    analytic_forces: bool = False

    @abc.abstractmethod
    def energy(self, q: torch.Tensor) -> torch.Tensor:
        """Potential energy ``U(q)`` of every walker, shape ``[W]``."""

    def forces(self, q: torch.Tensor) -> torch.Tensor:
        """``F = -dU/dq`` by reverse-mode autograd (one backward pass for all walkers)."""
        return autograd_forces(self.energy, q)

    def energy_and_forces(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.analytic_forces:
            return self.energy(q), self.forces(q)
        with torch.enable_grad():
            qg = q.detach().requires_grad_(True)
            u = self.energy(qg)
            (g,) = torch.autograd.grad(u.sum(), qg)
        return u.detach(), -g

    def check_positions(self, q: torch.Tensor) -> None:
        if tuple(q.shape[1:]) != tuple(self.shape):
            raise ValueError(
                f"positions: must have shape [W, {', '.join(map(str, self.shape))}] "
                f"for {type(self).__name__} (got {list(q.shape)})"
            )

    def state_dict(self) -> dict:
        """Choices the system made while running that a resume must repeat to stay bit for bit
        (plain values; default none).  The job checkpoint stores it under ``system``."""
        return {}

    def load_state_dict(self, sd: dict) -> None:
        """Load :meth:`state_dict`; a system without such choices accepts only an empty one."""
        if sd:
            raise ValueError(f"system state: {type(self).__name__} keeps none (got entries {sorted(sd)})")

    def run_attrs(self) -> dict:
        """Output attributes describing those choices (name → str or number); default none."""
        return {}

    def degrees_of_freedom(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n


def autograd_forces(energy, q: torch.Tensor) -> torch.Tensor:
    """``-d(sum_w U_w)/dq``; walkers are independent so this is the per-walker force."""
    with torch.enable_grad():
        qg = q.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(energy(qg).sum(), qg)
    return -g


def as_tensor(values: Sequence[float] | torch.Tensor | float, *, dtype=torch.float64, device=None) -> torch.Tensor:
    return torch.as_tensor(values, dtype=dtype, device=device)
