"""Lennard-Jones systems in reduced units (σ = ε = m = k_B = 1; docs/science.md §12).

Pair potential, with the cutoff convention chosen by ``cutoff_mode``:

    u(r)  = 4·(r⁻¹² − r⁻⁶)                        ``none``       (every pair)
    u(r)  = 4·(r⁻¹² − r⁻⁶)            for r < r_c   ``truncated``  (0 beyond; u jumps at r_c)
    u(r)  = 4·(r⁻¹² − r⁻⁶) − u(r_c)   for r < r_c   ``shifted``    (truncated and shifted:
                                                                   continuous u, force jumps)
    F_ij  = (48·r⁻¹⁴ − 24·r⁻⁸)·r_ij for r < r_c    (r_ij = q_i − q_j, force on i)

Clusters (:class:`LJCluster`) are held by a soft confining sphere of radius R_c
around a centre c — the origin (``sphere_centre = "origin"``, c = 0) or the
cluster's centre of mass (``"com"``, c = (1/n)·Σ_j q_j, the convention of the
heat-capacity literature: Frantz, J. Chem. Phys. 102, 3747 (1995); Neirotti,
Calvo, Freeman, Doll, J. Chem. Phys. 112, 10340 (2000), arXiv:physics/0003068) —

    U_wall = k_w · Σ_i (|q_i − c| − R_c)²   for |q_i − c| > R_c,
    F_j    = g_j − (1/n)·Σ_i g_i  with  g_i = −2 k_w (|d_i| − R_c)·d_i/|d_i|,  d_i = q_i − c

(the second term only for ``com``: every atom moves c, so the wall exerts no net
force and the cluster's centre of mass diffuses freely).  The wall is part of the
potential energy (so the CV U includes it); OpenMM reproduces it term by term
(:func:`physampler.references.openmm_system`).
Bulk fluids (:class:`LJBulk`) live in a cubic periodic box with the
minimum-image convention; r_c must not exceed half the box.  Analytic tail
corrections (Allen & Tildesley eq. 2.144) for the ``truncated`` convention:

    U_tail/N = (8/3)·π·ρ·(r_c⁻⁹/3 − r_c⁻³).

The torch implementations here batch walkers on the leading axis and run on any
device; :mod:`physampler.systems.lj_kernels` holds the compiled (numba) CPU
kernels of the same physics, tested to agree to 1e-12.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .. import _checks
from ..system import System

CUTOFF_MODES = ("none", "truncated", "shifted")

#: Cambridge Cluster Database global minima (docs/science.md §12), in ε.
GLOBAL_MINIMA = {13: -44.326801, 38: -173.928427}


def pair_energy(r: float) -> float:
    """4(r⁻¹² − r⁻⁶) for one distance (a plain float)."""
    s6 = r**-6
    return 4.0 * (s6 * s6 - s6)


class CutoffConvention:
    """The cutoff convention of one LJ system: ``mode`` in none | truncated | shifted.

    ``rc2`` is r_c² (∞ for ``none``) and ``shift`` the constant subtracted inside
    r_c (u(r_c) for ``shifted``, else 0).
    """

    def __init__(self, mode: str, cutoff: float | None):
        self.mode = _checks.choice("cutoff_mode", mode, CUTOFF_MODES)
        if self.mode == "none":
            if cutoff is not None:
                raise ValueError(f"cutoff: must be omitted when cutoff_mode is 'none' (got {cutoff!r})")
            self.cutoff = math.inf
        else:
            if cutoff is None:
                raise ValueError(f"cutoff: required when cutoff_mode is {self.mode!r} (got None)")
            self.cutoff = _checks.positive("cutoff", cutoff)
        self.rc2 = self.cutoff**2
        self.shift = pair_energy(self.cutoff) if self.mode == "shifted" else 0.0

    def pair_terms(self, r2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(u(r), (48 r⁻¹⁴ − 24 r⁻⁸)) for squared distances ``r2``; 0 beyond r_c."""
        inv2 = 1.0 / r2
        s6 = inv2 * inv2 * inv2
        u = 4.0 * s6 * (s6 - 1.0) - self.shift
        fr = inv2 * s6 * (48.0 * s6 - 24.0)
        if self.mode != "none":
            inside = r2 < self.rc2
            u = torch.where(inside, u, torch.zeros_like(u))
            fr = torch.where(inside, fr, torch.zeros_like(fr))
        return u, fr


class _LJ(System):
    analytic_forces = True

    def __init__(self, n: int, cutoff_mode: str, cutoff: float | None, dtype, device):
        self.n = _checks.positive_int("n", n)
        if self.n < 2:
            raise ValueError(f"n: must be >= 2 atoms (got {n})")
        self.convention = CutoffConvention(cutoff_mode, cutoff)
        self.shape = (self.n, 3)
        self.masses = 1.0
        self.dtype = dtype
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        i, j = torch.triu_indices(self.n, self.n, 1)
        self._i = i.to(self.device)
        self._j = j.to(self.device)

    def _displacements(self, q):
        return q[:, self._i] - q[:, self._j]  # [W, P, 3]

    def _pairs(self, q):
        d = self._displacements(q)
        u, fr = self.convention.pair_terms((d * d).sum(dim=-1))
        return d, u, fr

    def _pair_forces(self, d, fr, q):
        fij = fr[..., None] * d
        f = torch.zeros_like(q)
        f.index_add_(1, self._i, fij)
        f.index_add_(1, self._j, -fij)
        return f

    @property
    def cutoff_mode(self) -> str:
        return self.convention.mode

    @property
    def cutoff(self) -> float:
        return self.convention.cutoff


SPHERE_CENTRES = ("origin", "com")


class LJCluster(_LJ):
    """n LJ atoms in a soft confining sphere of radius ``radius`` (R_c) around the origin or
    the centre of mass (module docstring).

    Parameters
    ----------
    n : atoms.
    radius : R_c in σ.
    wall_stiffness : k_w in ε/σ² (default 100: an atom 0.1σ outside costs 1 ε).
    sphere_centre : ``"origin"`` (default) or ``"com"``.
    cutoff_mode, cutoff : pair cutoff convention (clusters default to none).
    """

    def __init__(self, n: int, radius: float, *, wall_stiffness: float = 100.0, sphere_centre: str = "origin",
                 cutoff_mode: str = "none", cutoff: float | None = None, dtype=torch.float64, device=None):
        super().__init__(n, cutoff_mode, cutoff, dtype, device)
        self.radius = _checks.positive("radius", radius)
        self.wall_stiffness = _checks.positive("wall_stiffness", wall_stiffness)
        self.sphere_centre = _checks.choice("sphere_centre", sphere_centre, SPHERE_CENTRES)

    def _wall(self, q):
        d = q - q.mean(dim=1, keepdim=True) if self.sphere_centre == "com" else q
        r = d.norm(dim=-1)  # [W, n]
        ex = torch.clamp(r - self.radius, min=0.0)
        u = self.wall_stiffness * (ex * ex).sum(dim=1)
        # g_i = −2 k (r − R) d/r; ex = 0 inside, so r > R > 0 wherever it matters.
        f = (-2.0 * self.wall_stiffness * ex / torch.clamp(r, min=self.radius))[..., None] * d
        if self.sphere_centre == "com":
            f = f - f.mean(dim=1, keepdim=True)
        return u, f

    def energy(self, q):
        _, u, _ = self._pairs(q)
        uw, _ = self._wall(q)
        return u.sum(dim=1) + uw

    def energy_and_forces(self, q):
        d, u, fr = self._pairs(q)
        uw, fw = self._wall(q)
        return u.sum(dim=1) + uw, self._pair_forces(d, fr, q) + fw

    def forces(self, q):
        return self.energy_and_forces(q)[1]

    def global_minimum(self) -> float | None:
        """The Cambridge Cluster Database global minimum for this n (untruncated LJ), if tabulated."""
        return GLOBAL_MINIMA.get(self.n) if self.cutoff_mode == "none" else None


class LJBulk(_LJ):
    """n LJ atoms in a cubic periodic box of edge ``box`` (minimum image).

    Give ``box`` or ``density`` (ρ = n/box³).  ``tail_correction`` adds the
    constant U_tail of the module docstring to the energy (``truncated`` only;
    forces are unchanged).
    """

    def __init__(self, n: int, *, box: float | None = None, density: float | None = None, cutoff: float = 2.5,
                 cutoff_mode: str = "shifted", tail_correction: bool = False, dtype=torch.float64, device=None):
        if (box is None) == (density is None):
            raise ValueError(f"box: give exactly one of box or density (got box={box!r}, density={density!r})")
        super().__init__(n, cutoff_mode, cutoff if cutoff_mode != "none" else None, dtype, device)
        if cutoff_mode == "none":
            raise ValueError("cutoff_mode: must be 'truncated' or 'shifted' for a periodic system (got 'none')")
        self.box = _checks.positive("box", box) if box is not None else (self.n / _checks.positive("density", density)) ** (1 / 3)
        if self.cutoff > 0.5 * self.box:
            raise ValueError(f"cutoff: must be <= half the box ({0.5 * self.box:.6g}) for the minimum image (got {self.cutoff})")
        if tail_correction and self.cutoff_mode != "truncated":
            raise ValueError(f"tail_correction: needs cutoff_mode 'truncated' (got {self.cutoff_mode!r})")
        self.tail_correction = bool(tail_correction)

    @property
    def density(self) -> float:
        return self.n / self.box**3

    def tail_energy(self) -> float:
        """U_tail (whole system) of the module docstring; 0 unless ``tail_correction``."""
        if not self.tail_correction:
            return 0.0
        rc = self.cutoff
        return self.n * (8.0 / 3.0) * math.pi * self.density * (rc**-9 / 3.0 - rc**-3)

    def _displacements(self, q):
        d = q[:, self._i] - q[:, self._j]
        return d - self.box * torch.round(d / self.box)

    def energy(self, q):
        _, u, _ = self._pairs(q)
        return u.sum(dim=1) + self.tail_energy()

    def energy_and_forces(self, q):
        d, u, fr = self._pairs(q)
        return u.sum(dim=1) + self.tail_energy(), self._pair_forces(d, fr, q)

    def forces(self, q):
        return self.energy_and_forces(q)[1]


# ---------------------------------------------------------------- structures
def fcc_lattice(cells: int, box: float) -> np.ndarray:
    """4·cells³ positions of an fcc lattice filling a cubic box of edge ``box``."""
    cells = _checks.positive_int("cells", cells)
    a = box / cells
    basis = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]], dtype=np.float64)
    idx = np.stack(np.meshgrid(*(np.arange(cells),) * 3, indexing="ij"), axis=-1).reshape(-1, 1, 3)
    return ((idx + basis[None]) * a + 0.25 * a).reshape(-1, 3)


def icosahedron13(nn: float = 2 ** (1 / 6)) -> np.ndarray:
    """Centre plus the 12 vertices of a regular icosahedron at radius ``nn`` (13 × 3)."""
    p = (1 + 5**0.5) / 2
    v = []
    for s1 in (-1, 1):
        for s2 in (-1, 1):
            v += [(0, s1, s2 * p), (s1, s2 * p, 0), (s2 * p, 0, s1)]
    v = np.array(v, dtype=np.float64)
    v *= nn / np.linalg.norm(v[0])
    return np.vstack([np.zeros((1, 3)), v])


def random_cluster(n: int, radius: float, rng: np.random.Generator, *, min_distance: float = 0.9) -> np.ndarray:
    """n points uniform in a sphere of ``radius`` with all pair distances ≥ ``min_distance``
    (random sequential addition; raises if the sphere is too full)."""
    out = np.zeros((0, 3))
    for _ in range(n):
        for _attempt in range(100000):
            p = rng.uniform(-radius, radius, 3)
            if p @ p > radius * radius:
                continue
            if out.shape[0] == 0 or np.min(np.sum((out - p) ** 2, axis=1)) >= min_distance**2:
                out = np.vstack([out, p])
                break
        else:
            raise ValueError(f"radius: too small to place {n} atoms {min_distance} apart (got {radius})")
    return out
