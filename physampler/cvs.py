"""Collective variables (CVs).

A CV maps positions ``q`` ``[W, *shape]`` to one value per walker ``ξ(q)``
``[W]``.  Several CVs form a :class:`CVSet`, whose values ``[W, K]`` are the axes
of one landscape.  The WLMD force needs only the vector–Jacobian product

    Σ_k c_k · ∂ξ_k/∂q,      c_k = ∂S_tot/∂ξ_k  (held constant),

so :meth:`CVSet.value_and_vjp` returns the values together with a function that
evaluates that product in a single backward pass (docs/science.md §3, step 1), or
from analytic CV gradients when every CV provides them.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from . import _checks
from .system import System


class CV:
    """A differentiable scalar function of the positions of each walker.

    Parameters
    ----------
    name : axis name (used for NetCDF dimensions and plots).
    units : physical units of the value, for labels and CF metadata.
    long_name : human-readable description.
    """

    analytic_gradient = False

    def __init__(self, name: str, units: str = "1", long_name: str | None = None):
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"name: must be an identifier such as 'energy' (got {name!r})")
        self.name = name
        self.units = units
        self.long_name = long_name or name

    def __call__(self, q: torch.Tensor) -> torch.Tensor:
        return self.value(q)

    def value(self, q: torch.Tensor) -> torch.Tensor:
        raise TypeError(f"{type(self).__name__} defines no value(q)")

    def value_and_grad(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ξ [W], ∂ξ/∂q [W, *shape])``; autograd unless a subclass knows better."""
        with torch.enable_grad():
            qg = q.detach().requires_grad_(True)
            xi = self.value(qg)
            (g,) = torch.autograd.grad(xi.sum(), qg)
        return xi.detach(), g


class FunctionCV(CV):
    """Any differentiable scalar function ``fn(q) -> [W]`` written with torch ops."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], name: str, units: str = "1", long_name=None):
        if not callable(fn):
            raise ValueError(f"fn: must be callable q -> [W] (got {fn!r})")
        super().__init__(name, units, long_name)
        self.fn = fn

    def value(self, q):
        return self.fn(q)


class Coordinate(CV):
    """ξ = q[index] of the flattened positions of each walker; ∂ξ/∂q is a one-hot array."""

    analytic_gradient = True

    def __init__(self, index: int = 0, name: str = "x", units: str = "1", long_name: str | None = None):
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ValueError(f"index: must be an integer >= 0 (got {index!r})")
        super().__init__(name, units, long_name or f"coordinate {index}")
        self.index = index

    def value(self, q):
        return q.reshape(q.shape[0], -1)[:, self.index]

    def value_and_grad(self, q):
        g = torch.zeros_like(q)
        g.view(q.shape[0], -1)[:, self.index] = 1.0
        return self.value(q).detach(), g


class PotentialEnergy(CV):
    """ξ = U(q) of a :class:`System`; ∂ξ/∂q = −F uses the system's analytic forces if it has them."""

    def __init__(self, system: System, name: str = "energy", units: str = "epsilon", long_name="potential energy"):
        super().__init__(name, units, long_name)
        self.system = system
        self.analytic_gradient = bool(system.analytic_forces)

    def value(self, q):
        return self.system.energy(q)

    def value_and_grad(self, q):
        u, f = self.system.energy_and_forces(q)
        return u, -f


class CVSet:
    """An ordered tuple of CVs forming the axes of one landscape."""

    def __init__(self, cvs: Sequence[CV] | CV):
        self.cvs = _checks.named_items("cvs", cvs, CV, "CV objects")

    def __len__(self) -> int:
        return len(self.cvs)

    def __iter__(self):
        return iter(self.cvs)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.cvs]

    def observables(self) -> dict[str, torch.Tensor]:
        """Non-CV quantities [W] of the last evaluation, recorded per bin by WLMD (none here)."""
        return {}

    def values(self, q: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.stack([c.value(q) for c in self.cvs], dim=1)

    def value_and_vjp(self, q: torch.Tensor):
        """Return ``(ξ [W, K], vjp)`` with ``vjp(c [W, K]) = Σ_k c_k ∂ξ_k/∂q`` ``[W, *shape]``."""
        if all(c.analytic_gradient for c in self.cvs):
            pairs = [c.value_and_grad(q) for c in self.cvs]
            xi = torch.stack([p[0] for p in pairs], dim=1)
            grads = [p[1] for p in pairs]
            extra = (1,) * (q.ndim - 1)

            def vjp(coeff: torch.Tensor) -> torch.Tensor:
                out = coeff[:, 0].reshape(-1, *extra) * grads[0]
                for k in range(1, len(grads)):
                    out = out + coeff[:, k].reshape(-1, *extra) * grads[k]
                return out

            return xi, vjp

        xi, _, vjp = value_and_pullback(lambda x: (torch.stack([c.value(x) for c in self.cvs], dim=1), ()), q)
        return xi, vjp


def value_and_pullback(fn, q: torch.Tensor):
    """``(ξ, aux, vjp)`` of ``fn(q) -> (ξ [W, K], aux)`` with ``vjp(c) = Σ_k c_k ∂ξ_k/∂q`` in one
    backward pass; ``aux`` (e.g. a test observable) is not differentiated.

    Walkers are independent, so the gradient of Σ_w Σ_k c_wk ξ_wk with respect to q_w is walker w's
    term: one backward pass serves all.  Eagerly this is ``torch.autograd.grad``; inside
    ``torch.compile`` (a captured step, :mod:`physampler.integrators.graph`) ``torch.func.vjp``,
    which the compiler traces without breaking the graph."""
    if torch.compiler.is_compiling():
        xi, pullback, aux = torch.func.vjp(fn, q, has_aux=True)
        return xi, aux, lambda coeff: pullback(coeff.to(xi.dtype))[0]
    with torch.enable_grad():
        qg = q.detach().requires_grad_(True)
        xi, aux = fn(qg)

    def vjp(coeff: torch.Tensor) -> torch.Tensor:
        (g,) = torch.autograd.grad(xi, qg, grad_outputs=coeff.to(xi.dtype))
        return g

    return xi.detach(), aux, vjp
