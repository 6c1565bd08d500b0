"""Compiled block stepping: many steps per Python call on CPU (numba kernels).

A compiled integrator wraps a configured torch integrator (:class:`WLMD` or
:class:`BAOAB`), uses its ``init`` unchanged and replaces ``step`` by a loop
in compiled code that performs the same operations in the same order
(:mod:`physampler.systems.lj_kernels`).  Random numbers come from the same
per-walker streams (:meth:`WalkerRNG.normal_steps`), so for the same seed a
compiled run and a torch run follow the same trajectory up to round-off, and
the state they return is the same dataclass — they can be mixed freely.

Per-step Python overhead is what limits small systems (LJ13: a few hundred
flops per step); the block loop removes it.  Supported: Wang–Landau and a static bias (the
same loop with f = 0: nothing deposited, H still counted) on LJ clusters with ξ = U on a 1-D
landscape, splittings ktd and baoab (the rule of :mod:`physampler.rules`), with the
integrator's ``observe`` CVs recorded between blocks at the same steps as the torch engine;
and periodic LJ (BAOAB), float64, CPU.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..windows import WindowedLandscape
from .. import _checks
from ..biases import LinearWall, QuadraticWall
from ..cvs import PotentialEnergy
from ..faults import NumericalFault, out_of_grid
from ..systems import lj_kernels as K
from ..systems.harmonic import HarmonicWell
from ..systems.lennard_jones import LJBulk, LJCluster
from .md import BAOAB, MDState
from ..rules import compiled_obstacle
from .wlmd import BiasedMD, WLMDState


@dataclass
class BlockInfo:
    cv: torch.Tensor  # [steps, W, K] CV values after each step (WLMD) / [steps, W] potential energy (MD)
    f_wl: np.ndarray | None  # [steps] f_WL used by each step's deposit (WLMD only)


def _cpu_f64(t: torch.Tensor, name: str) -> np.ndarray:
    if t.device.type != "cpu" or t.dtype != torch.float64:
        raise ValueError(f"{name}: compiled integrators need float64 CPU tensors (got {t.dtype} on {t.device})")
    return t.detach().contiguous().numpy().copy()


def _arrays(state, *names) -> list[np.ndarray]:
    """Copies of the state's tensors ``names`` as float64 CPU arrays for the kernels."""
    return [_cpu_f64(getattr(state, n), n) for n in names]


def _raise_fault(status, info, state, cv_out, landscape):
    """Turn a kernel status into the exception the torch path raises, with step and walker."""
    s, w = int(info[0]), int(info[1])
    t = state.step + s + 1
    gw = state.rng.walkers[w]
    if status == K.OUT_OF_GRID:
        raise out_of_grid(landscape.grid, torch.tensor([float(cv_out[s, w])]), t, gw)
    if status == K.NEIGHBOUR_OVERFLOW:
        raise NumericalFault(f"step {t}, walker {gw}: neighbour list overflow (atoms closer than 0.7 sigma)",
                             step=t, walker=gw)
    what = {K.NONFINITE_CV: "CV", K.NONFINITE_FORCE: "force"}[status]
    raise NumericalFault(f"step {t}, walker {gw}: non-finite {what}", step=t, walker=gw)


#: systems the block loop implements: class → the name the rule (physampler.rules) knows it by
COMPILED_SYSTEMS = {LJCluster: "lj_cluster", HarmonicWell: "harmonic"}
#: steps per kernel call when the caller may ask to stop (``run(stop=...)``): the stop request
#: is honoured within this many steps; blocks compose exactly, so the cut changes nothing
STOP_BLOCK = 2000


class CompiledWLMD:
    """WLMD on an :class:`LJCluster` or a :class:`HarmonicWell` with ξ = its potential energy,
    in compiled blocks.

    Parameters
    ----------
    wlmd : a Wang–Landau :class:`BiasedMD` (e.g. :class:`WLMD`) whose system is an LJCluster or
        a HarmonicWell, whose single CV is that
        system's :class:`PotentialEnergy`, on a 1-D CPU landscape, with walls
        (:class:`QuadraticWall`/:class:`LinearWall`) as the only biases and no
        constraints (the confining sphere is part of the cluster's energy).
    """

    def __init__(self, wlmd: BiasedMD):
        if not isinstance(wlmd, BiasedMD):
            raise ValueError(f"wlmd: must be a WLMD integrator (got {type(wlmd).__name__})")
        sysm = wlmd.system
        cvs = list(wlmd.cvs)
        energy = len(cvs) == 1 and isinstance(cvs[0], PotentialEnergy) and cvs[0].system is sysm
        why = compiled_obstacle(system=COMPILED_SYSTEMS.get(type(sysm), type(sysm).__name__),
                                cvs=["energy"] if energy else [c.name + "*" for c in cvs], device=wlmd.landscape.device.type,
                                dtype="float64", splitting=wlmd.splitting, method=wlmd.method.kind,
                                potential=wlmd.potential)
        if why:
            raise ValueError(f"wlmd: the compiled engine needs {why} (the system's own PotentialEnergy as the one CV); "
                             "use its step()")
        if wlmd.constraints:
            raise ValueError(f"wlmd.constraints: compiled WLMD takes none (got {len(wlmd.constraints)})")
        ls = wlmd.landscape
        for b in wlmd.biases:
            if type(b) not in (QuadraticWall, LinearWall) or b.axis != 0:
                raise ValueError(f"wlmd.biases: compiled WLMD supports walls on U only (got {type(b).__name__})")
        if not bool((torch.as_tensor(sysm.masses) == 1.0).all()):
            raise ValueError("system.masses: compiled WLMD assumes unit masses (reduced LJ units)")
        self.wlmd = wlmd
        self.system = sysm
        self.landscape = ls
        self.schedule = wlmd.schedule
        ax = ls.grid.axes[0]
        self._grid = (ax.lower, ax.upper, ax.width)
        b = wlmd.biases
        self._bias = (
            np.array([x.at for x in b], dtype=np.float64),
            np.array([x.strength for x in b], dtype=np.float64),
            np.array([1.0 if x.side == "upper" else -1.0 for x in b], dtype=np.float64),
            np.array([0 if isinstance(x, QuadraticWall) else 1 for x in b], dtype=np.int64),
        )
        beta = ls.wall_strength[0] if ls.out_of_range == "wall" else 0.0  # 0: no edge walls under 'raise'
        cap = [w.max_slope if w.max_slope is not None else np.inf for w in ls.walls] or [np.inf, np.inf]
        self._edge_beta = np.array([beta, beta, cap[0], cap[-1]], dtype=np.float64)

    def init(self, positions: torch.Tensor, rng, velocities: torch.Tensor | None = None) -> WLMDState:
        return self.wlmd.init(positions, rng, velocities)

    def state_dict(self, state: WLMDState | None = None) -> dict:
        """The torch engine's format (:func:`~physampler.integrators.wlmd.engine_state_dict`): a
        checkpoint of either engine resumes on the other."""
        return self.wlmd.state_dict(state)

    def load_state_dict(self, sd: dict, rng=None) -> WLMDState | None:
        return self.wlmd.load_state_dict(sd, rng)

    def step(self, state: WLMDState):
        """One step (for :class:`~physampler.runner.Runner`); prefer :meth:`run` for speed."""
        from .wlmd import WLMDInfo

        new, info = self.run(state, 1)
        return new, WLMDInfo(cv=new.cv, f_wl=float(info.f_wl[0]), in_range=self.landscape.in_range(new.cv))

    def run(self, state: WLMDState, steps: int, *, stop=None) -> tuple[WLMDState, BlockInfo]:
        """Advance ``steps`` WLMD steps, or fewer once ``stop()`` is true (asked every
        ``STOP_BLOCK`` steps); the landscape is updated in place.  With ``observe`` CVs the block
        is cut at every multiple of ``observe_every`` and they are recorded there, on the
        positions and CV of that step, as the torch engine's F operator does."""
        steps = _checks.positive_int("steps", steps)
        w = self.wlmd
        parts = []
        end = state.step + steps
        while state.step < end:
            cut = end if stop is None else min(end, state.step + STOP_BLOCK)
            if w.observe:
                cut = min(cut, (state.step // w.observe_every + 1) * w.observe_every)
            state, info = self._block(state, cut - state.step)
            if w.observe and state.step % w.observe_every == 0:
                w.record_observed(state.positions, state.cv, self.landscape.in_range(state.cv))
            parts.append(info)
            if stop is not None and stop():
                break
        if len(parts) == 1:
            return state, parts[0]
        return state, BlockInfo(cv=torch.cat([p.cv for p in parts]), f_wl=np.concatenate([p.f_wl for p in parts]))

    def _block(self, state: WLMDState, steps: int) -> tuple[WLMDState, BlockInfo]:
        w = self.wlmd
        x, v, a, cv = _arrays(state, "positions", "velocities", "accel", "cv")
        shape = x.shape
        if x.ndim == 2:  # a harmonic well's [W, N]: the kernel's [W, n, d] with d = 1
            x, v, a = (t.reshape(t.shape[0], t.shape[1], 1) for t in (x, v, a))
        cv = cv[:, 0].copy()
        noise = state.rng.normal_steps(steps, shape[1:], dtype=torch.float64).numpy().reshape(
            x.shape[0], steps, *x.shape[1:])
        # a static bias is the same loop with nothing deposited (S += 0·K leaves S bitwise unchanged)
        fvals = np.zeros(steps) if self.schedule is None else self.schedule.values(state.step + 1, steps)
        S = self.landscape.S.numpy()
        H = self.landscape.H.numpy()
        cv_out = np.empty((steps, x.shape[0]))
        info = np.zeros(2, dtype=np.int64)
        lo, hi, width = self._grid
        ls = self.landscape
        walkers = float(w.walkers_total or x.shape[0])
        if isinstance(ls, WindowedLandscape):
            # windows do not interact within a block: each runs on its own S over its own range, with
            # the deposit averaged over its W/K walkers, exactly as the torch engine's batched step
            labels = ls.window.cpu().numpy()
            for k, (klo, khi) in enumerate(ls.windows.ranges()):
                idx = np.nonzero(labels == k)[0]
                if not idx.size:
                    continue
                parts = [np.ascontiguousarray(t[idx]) for t in (x, v, a, cv, noise)]
                out_k = np.empty((steps, idx.size))
                status = self._kernel(*parts, S[k], H[k], fvals, klo, khi, width, walkers, out_k, info)
                x[idx], v[idx], a[idx], cv[idx] = parts[:4]
                cv_out[:, idx] = out_k
                if status != K.OK:
                    info[1] = idx[info[1]]
                    _raise_fault(status, info, state, cv_out, ls)
        else:
            status = self._kernel(x, v, a, cv, noise, S, H, fvals, lo, hi, width, walkers, cv_out, info)
            if status != K.OK:
                _raise_fault(status, info, state, cv_out, ls)
        cvt = torch.from_numpy(cv)[:, None]
        x, v, a = (torch.from_numpy(t.reshape(shape)) for t in (x, v, a))
        new = replace(state, positions=x, velocities=v, accel=a, cv=cvt, step=state.step + steps)
        return new, BlockInfo(cv=torch.from_numpy(cv_out)[:, :, None], f_wl=fvals)

    def _kernel(self, x, v, a, cv, noise, S, H, fvals, lo, hi, width, walkers, cv_out, info) -> int:
        """One kernel call over walkers [W, …] on the 1-D grid [lo, hi] of S, H (updated in place)."""
        w = self.wlmd
        if isinstance(self.system, HarmonicWell):
            kind, lj, stiffness = K.HARMONIC, (0.0, 0.0, 0.0, 0.0, False), _cpu_f64(self.system.stiffness, "stiffness")
        else:
            c = self.system.convention
            kind, stiffness = K.LJ_CLUSTER, np.zeros(1)
            lj = (c.rc2, c.shift, self.system.radius, self.system.wall_stiffness, self.system.sphere_centre == "com")
        return K.wlmd_cluster_block(
            x, v, a, cv, S, H, noise, fvals, *lj,
            lo, hi, width, float(self.landscape.sigma[0]), self.landscape.cutoff, self.landscape.edge == "reflect",
            self.landscape.out_of_range == "raise", self._edge_beta, *self._bias,
            w.dt, w.c_f, w.kT, walkers, w.splitting == "baoab", cv_out, info, kind,
            stiffness,
        )


class CompiledBAOAB:
    """BAOAB Langevin dynamics of :class:`LJBulk` in compiled blocks, with a Verlet
    neighbour list (r_list = r_c + ``skin``, rebuilt when an atom has moved more
    than skin/2 since the last build, which keeps every pair inside r_c listed).

    ``baoab`` must carry a :class:`~physampler.constraints.PeriodicBox` of the
    system's box as its only constraint (positions are wrapped into [0, L)).
    """

    def __init__(self, baoab: BAOAB, skin: float = 0.3):
        from ..constraints import PeriodicBox

        if not isinstance(baoab, BAOAB):
            raise ValueError(f"baoab: must be a BAOAB integrator (got {type(baoab).__name__})")
        sysm = baoab.system
        if not isinstance(sysm, LJBulk):
            raise ValueError(f"baoab.system: compiled BAOAB supports LJBulk (got {type(sysm).__name__})")
        cons = baoab.constraints
        if len(cons) != 1 or not isinstance(cons[0], PeriodicBox) or not torch.allclose(
                cons[0].lengths, torch.tensor(sysm.box, dtype=torch.float64)):
            raise ValueError("baoab.constraints: must be exactly one PeriodicBox with the system's box edge")
        self.baoab = baoab
        self.system = sysm
        self.skin = _checks.positive("skin", skin)
        # r_list may exceed L/2: minimum-image distances change continuously wherever they are < L/2 ≥ r_c,
        # so a pair can only enter r_c after having been listed.
        self.rlist = sysm.cutoff + self.skin
        # Half-list capacity: atoms no closer than 0.7σ pack at most 0.7405·((r_list + 0.35)/0.35)³ per sphere.
        per_atom = min(sysm.n - 1, math.ceil(0.7405 * ((self.rlist + 0.35) / 0.35) ** 3 / 2) + 8)
        self._cap = sysm.n * per_atom
        self._lists = None  # (x_ref, start, nbrs) for the walkers of the last state

    def init(self, positions: torch.Tensor, rng, velocities: torch.Tensor | None = None) -> MDState:
        state = self.baoab.init(positions, rng, velocities)
        self._lists = None
        return state

    def _build(self, x):
        W, n = x.shape[0], x.shape[1]
        start = np.zeros((W, n + 1), dtype=np.int64)
        nbrs = np.zeros((W, self._cap), dtype=np.int64)
        for w in range(W):
            if K.build_neighbours(x[w], self.system.box, self.rlist, start[w], nbrs[w]) < 0:
                raise NumericalFault(f"walker {w}: neighbour list overflow (atoms closer than 0.7 sigma)", step=-1, walker=w)
        return x.copy(), start, nbrs

    def run(self, state: MDState, steps: int) -> tuple[MDState, BlockInfo]:
        steps = _checks.positive_int("steps", steps)
        b = self.baoab
        x, v, f, u = _arrays(state, "positions", "velocities", "forces", "energy")
        u = u - self.system.tail_energy()
        if self._lists is None or self._lists[0].shape != x.shape:
            self._lists = self._build(x)
        x_ref, start, nbrs = self._lists
        noise = state.rng.normal_steps(steps, x.shape[1:], dtype=torch.float64).numpy()
        u_out = np.empty((steps, x.shape[0]))
        info = np.zeros(2, dtype=np.int64)
        conv = self.system.convention
        status = K.baoab_bulk_block(x, v, f, u, noise, self.system.box, conv.rc2, conv.shift, self.rlist, self.skin,
                                    x_ref, start, nbrs, b.dt, b.c_f, b.kT, u_out, info)
        if status != K.OK:
            _raise_fault(status, info, state, u_out, None)
        tail = self.system.tail_energy()
        new = replace(state, positions=torch.from_numpy(x), velocities=torch.from_numpy(v), forces=torch.from_numpy(f),
                      energy=torch.from_numpy(u + tail), step=state.step + steps)
        return new, BlockInfo(cv=torch.from_numpy(u_out + tail), f_wl=None)
