"""Holonomic and box constraints, applied after every drift: ``(q, v) ← c.apply(q, v)``.

All act per walker on tensors with a leading walker axis.
"""
from __future__ import annotations

import abc

import torch

from . import _checks


class Constraint(abc.ABC):
    @abc.abstractmethod
    def apply(self, q: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the constrained positions and velocities."""


class ReflectiveBox(Constraint):
    """|q| ≤ B elementwise (B = ``bound``, broadcastable to the per-walker shape; +inf
    leaves an element free, e.g. parameters outside an optimizer's boxed groups).

    On crossing, q ← 2B − q (or −2B − q) and v ← −v (docs/science.md §5); positions more
    than one box width away are folded back as many times as needed, and v flips
    once per reflection.
    """

    def __init__(self, bound):
        b = torch.as_tensor(bound, dtype=torch.float64)
        if torch.isnan(b).any() or (b <= 0).any():
            raise ValueError(f"bound: must be > 0, or +inf for an unbounded element (got {b.tolist()})")
        self.bound = b
        self._cached = (None, None)  # ((device, dtype), bound converted to them)

    def _bounds(self, q):
        """(B, −B) in ``q``'s dtype on its device."""
        key = (q.device, q.dtype)
        if self._cached[0] != key:  # one conversion per device and dtype, not per step
            b = self.bound.to(q.device, q.dtype)
            self._cached = (key, (b, -b))
        return self._cached[1]

    def apply(self, q, v):
        b, nb = self._bounds(q)
        # One crossing (|q| ≤ 3B, every real step): q ← 2·clamp(q) − q, exact for q inside (2q − q = q),
        # and v flips where q was outside.  Few passes over [W, P] and no floating remainder: for a
        # network the walkers' parameters do not fit in cache, and each pass is a trip to memory.
        r = torch.clamp(q, nb, b)
        out = q != r
        q1 = r.mul_(2).sub_(q)  # r is this call's own: in place, the same two roundings as 2·r − q
        v1 = torch.where(out, -v, v)
        far = q1.abs() > b  # crossed more than once: fold on the triangle wave
        # the test is a host sync: on CUDA, and in a compiled step, fold unconditionally
        if q.device.type == "cuda" or torch.compiler.is_compiling() or bool(far.any()):
            qf, vf = self._fold(q, v, b)
            q1, v1 = torch.where(far, qf, q1), torch.where(far, vf, v1)
        return q1, v1

    @staticmethod
    def _fold(q, v, b):
        """The mirror image of q in [−B, B] on a triangle wave of period 4B (any number of crossings),
        and v flipped when the parity of crossings is odd: exactly when the fold lands on the wave's
        descending half."""
        y = torch.remainder(q + b, 4 * b)
        down = y > 2 * b
        return torch.where(down, 3 * b - y, y - b), torch.where(down, -v, v)

    def check(self, q) -> bool:
        return bool((q.abs() <= self.bound.to(q.device, q.dtype)).all())


class PeriodicBox(Constraint):
    """Periodic orthorhombic box of edge lengths L (positions [W, n, d]), origin at 0.

    Positions are wrapped into [0, L); :meth:`minimum_image` maps displacements
    to the nearest image.
    """

    def __init__(self, lengths):
        L = torch.as_tensor(lengths, dtype=torch.float64)
        if L.ndim > 1 or not torch.isfinite(L).all() or (L <= 0).any():
            raise ValueError(f"lengths: must be a positive scalar or vector of box edges (got {L.tolist()})")
        self.lengths = L

    def apply(self, q, v):
        L = self.lengths.to(q.device, q.dtype)
        return torch.remainder(q, L), v

    def minimum_image(self, dr):
        L = self.lengths.to(dr.device, dr.dtype)
        return dr - L * torch.round(dr / L)


class ConfiningSphere(Constraint):
    """Hard sphere of radius R around ``center`` for particles [W, n, d].

    A particle that ends a drift at R < r ≤ 2R is mirrored to r' = 2R − r along
    its radius and its radial velocity is reversed (elastic reflection); larger
    overshoots (a time step far too long) are folded back with period 2R, so the
    result always lies inside.
    """

    def __init__(self, radius: float, center=None):
        self.radius = _checks.positive("radius", radius)
        self.center = None if center is None else torch.as_tensor(center, dtype=torch.float64)

    def apply(self, q, v):
        c = 0.0 if self.center is None else self.center.to(q.device, q.dtype)
        d = q - c
        r = d.norm(dim=-1, keepdim=True)
        R = self.radius
        out = r > R
        rhat = d / torch.clamp(r, min=torch.finfo(q.dtype).tiny)
        y = torch.remainder(r, 2 * R)
        r_new = torch.where(y > R, 2 * R - y, y)
        flip = out & (torch.remainder(torch.floor(r / R), 2) == 1)
        q_new = torch.where(out, c + rhat * r_new, q)
        vr = (v * rhat).sum(dim=-1, keepdim=True)
        v_new = torch.where(flip, v - 2 * vr * rhat, v)
        return q_new, v_new


class FixedNormShell(Constraint):
    """Global L2 norm |q| = R per walker ([P1] §4.2, R = 30): after each drift
    rescale all coordinates of a walker to norm R and remove the radial component
    of its velocity (v ← v − (v·q̂) q̂)."""

    def __init__(self, radius: float):
        self.radius = _checks.positive("radius", radius)

    def apply(self, q, v):
        w = q.shape[0]
        flat = q.reshape(w, -1)
        n = flat.norm(dim=1, keepdim=True)
        qhat = flat / n
        vf = v.reshape(w, -1)
        vf = vf - (vf * qhat).sum(dim=1, keepdim=True) * qhat
        return (qhat * self.radius).reshape(q.shape), vf.reshape(v.shape)


def apply_all(constraints, q, v):
    for c in constraints:
        q, v = c.apply(q, v)
    return q, v
