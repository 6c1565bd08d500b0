"""Compiled (numba) CPU kernels for Lennard-Jones systems and harmonic wells.

The physics is that of :mod:`physampler.systems.lennard_jones` (pair term,
cutoff conventions, soft confining sphere, minimum image) with the operation
order of the torch path, so energies and forces agree to round-off (tested to
1e-12 relative).  Everything is float64.

* :func:`cluster_energy_forces` — all pairs, O(n²), for clusters;
* :func:`build_neighbours` / :func:`bulk_energy_forces` — Verlet neighbour list
  for a cubic periodic box, built with a cell list when the box holds ≥ 3 cells
  of edge r_list per side (all pairs otherwise);
* :func:`harmonic_energy_forces` — U = ½ Σ k_i x_i², F = −k x (the
  :class:`~physampler.systems.HarmonicWell` of the validation, docs/science.md §13);
* :func:`wlmd_cluster_block` — a block of Wang–Landau MD steps (kick,
  thermostat, drift, energy/forces, range check, deposit, WL force) for W walkers
  sharing one 1-D landscape S(U), of an LJ cluster or a harmonic well (``energy_kind``),
  identical step by step to :class:`physampler.integrators.WLMD` (see its docstring for
  the equations);
* :func:`baoab_bulk_block` — a block of BAOAB Langevin steps for periodic LJ,
  identical step by step to :class:`physampler.integrators.BAOAB`.

Random numbers are inputs, drawn by the caller from the walkers' streams
(:meth:`physampler.rng.WalkerRNG.normal_steps`), so both paths consume the same
numbers.  Kernels report faults through a status code and the (step, walker)
where they happened; the Python drivers raise.
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np

OK, NONFINITE_CV, OUT_OF_GRID, NONFINITE_FORCE, NEIGHBOUR_OVERFLOW = 0, 1, 2, 3, 4
#: ``energy_kind`` of :func:`wlmd_cluster_block`
LJ_CLUSTER, HARMONIC = 0, 1

_jit = nb.njit(cache=True, fastmath=False, nogil=True)


@_jit
def _pair(f, i, j, d0, d1, d2, r2, shift):
    """Add the pair force of (i, j) at separation d = q_i − q_j (r² = ``r2`` < r_c²) to ``f``; return u(r)."""
    inv2 = 1.0 / r2
    s6 = inv2 * inv2 * inv2
    fr = inv2 * s6 * (48.0 * s6 - 24.0)
    f[i, 0] += fr * d0
    f[i, 1] += fr * d1
    f[i, 2] += fr * d2
    f[j, 0] -= fr * d0
    f[j, 1] -= fr * d1
    f[j, 2] -= fr * d2
    return 4.0 * s6 * (s6 - 1.0) - shift


@_jit
def cluster_energy_forces(x, rc2, shift, radius, k_wall, com, f):
    """U of one cluster ``x`` [n, 3]; writes F = −∂U/∂x into ``f`` [n, 3].  The sphere is centred
    on the origin, or with ``com`` on the centre of mass (then the wall's mean force is removed:
    physampler.systems.lennard_jones module docstring)."""
    n = x.shape[0]
    f[:, :] = 0.0
    u = 0.0
    for i in range(n - 1):
        xi0, xi1, xi2 = x[i, 0], x[i, 1], x[i, 2]
        for j in range(i + 1, n):
            d0 = xi0 - x[j, 0]
            d1 = xi1 - x[j, 1]
            d2 = xi2 - x[j, 2]
            r2 = d0 * d0 + d1 * d1 + d2 * d2
            if r2 < rc2:
                u += _pair(f, i, j, d0, d1, d2, r2, shift)
    c0 = c1 = c2 = 0.0
    if com:
        for i in range(n):
            c0 += x[i, 0]
            c1 += x[i, 1]
            c2 += x[i, 2]
        c0 /= n
        c1 /= n
        c2 /= n
    uw = 0.0
    g0 = g1 = g2 = 0.0
    for i in range(n):
        d0 = x[i, 0] - c0
        d1 = x[i, 1] - c1
        d2 = x[i, 2] - c2
        r = math.sqrt(d0 * d0 + d1 * d1 + d2 * d2)
        ex = r - radius
        if ex > 0.0:
            uw += ex * ex
            c = -2.0 * k_wall * ex / r
            f[i, 0] += c * d0
            f[i, 1] += c * d1
            f[i, 2] += c * d2
            g0 += c * d0
            g1 += c * d1
            g2 += c * d2
    if com and uw > 0.0:
        for i in range(n):
            f[i, 0] -= g0 / n
            f[i, 1] -= g1 / n
            f[i, 2] -= g2 / n
    return u + k_wall * uw


@_jit
def _min_image(d, box):
    return d - box * np.rint(d / box)


@_jit
def _image_r2(x, i, y, j, box):
    """|x_i − y_j|² under the minimum image."""
    d0 = _min_image(x[i, 0] - y[j, 0], box)
    d1 = _min_image(x[i, 1] - y[j, 1], box)
    d2 = _min_image(x[i, 2] - y[j, 2], box)
    return d0 * d0 + d1 * d1 + d2 * d2


@_jit
def build_neighbours(x, box, rlist, start, nbrs):
    """Half neighbour list (j > i) of pairs closer than ``rlist`` under the minimum image.

    Fills ``start`` [n+1] and ``nbrs`` and returns the number of pairs, or −needed
    when ``nbrs`` is too short (the caller grows it and calls again).
    """
    n = x.shape[0]
    rl2 = rlist * rlist
    ncell = int(box / rlist)
    count = 0
    cap = nbrs.shape[0]
    if ncell < 3:
        for i in range(n):
            start[i] = count
            for j in range(i + 1, n):
                if _image_r2(x, i, x, j, box) < rl2:
                    if count < cap:
                        nbrs[count] = j
                    count += 1
        start[n] = count
        return count if count <= cap else -count
    # Cell list: head/next linked lists over ncell³ cells of edge >= rlist.
    nc3 = ncell * ncell * ncell
    head = np.full(nc3, -1, dtype=np.int64)
    nxt = np.full(n, -1, dtype=np.int64)
    cell = np.empty((n, 3), dtype=np.int64)
    for i in range(n):
        for k in range(3):
            y = x[i, k] - box * math.floor(x[i, k] / box)
            c = int(y / box * ncell)
            if c >= ncell:
                c = ncell - 1
            cell[i, k] = c
        ci = (cell[i, 0] * ncell + cell[i, 1]) * ncell + cell[i, 2]
        nxt[i] = head[ci]
        head[ci] = i
    for i in range(n):
        start[i] = count
        for a in range(-1, 2):
            for b in range(-1, 2):
                for c in range(-1, 2):
                    ca = (cell[i, 0] + a) % ncell
                    cb = (cell[i, 1] + b) % ncell
                    cc = (cell[i, 2] + c) % ncell
                    j = head[(ca * ncell + cb) * ncell + cc]
                    while j >= 0:
                        if j > i:
                            if _image_r2(x, i, x, j, box) < rl2:
                                if count < cap:
                                    nbrs[count] = j
                                count += 1
                        j = nxt[j]
    start[n] = count
    return count if count <= cap else -count


@_jit
def bulk_energy_forces(x, box, rc2, shift, start, nbrs, f):
    """U (pair part) of one periodic configuration from its neighbour list; F into ``f``."""
    n = x.shape[0]
    f[:, :] = 0.0
    u = 0.0
    for i in range(n):
        for k in range(start[i], start[i + 1]):
            j = nbrs[k]
            d0 = _min_image(x[i, 0] - x[j, 0], box)
            d1 = _min_image(x[i, 1] - x[j, 1], box)
            d2 = _min_image(x[i, 2] - x[j, 2], box)
            r2 = d0 * d0 + d1 * d1 + d2 * d2
            if r2 < rc2:
                u += _pair(f, i, j, d0, d1, d2, r2, shift)
    return u


@_jit
def _max_displacement2(x, x_ref, box):
    m = 0.0
    for i in range(x.shape[0]):
        r2 = _image_r2(x, i, x_ref, i, box)
        if r2 > m:
            m = r2
    return m


@_jit
def harmonic_energy_forces(x, k, f):
    """U = ½ Σ_i k_i x_i² and f = −k·x of one walker, x and f [n, d], k [n·d] (row-major)."""
    n, d = x.shape[0], x.shape[1]
    u = 0.0
    for i in range(n):
        for j in range(d):
            kk = k[i * d + j]
            u += kk * x[i, j] * x[i, j]
            f[i, j] = -(kk * x[i, j])
    return 0.5 * u


# ------------------------------------------------------------------ landscape
@_jit
def _landscape_gradient(S, xi, lower, width, nb_):
    """∂S/∂ξ at ξ: :meth:`physampler.grid.Grid.interpolate_gradient` in 1-D."""
    u = (xi - lower) / width - 0.5
    if u < 0.0:
        u = 0.0
    if u > nb_ - 1.0:
        u = nb_ - 1.0
    i0 = int(math.floor(u))
    if i0 > nb_ - 2:
        i0 = nb_ - 2
    t = u - i0
    out = 0.0
    for corner in range(2):
        j = i0 + corner
        s = min(max(j, 1), nb_ - 2)
        shift = float(j - s)
        d = ((2.0 * shift - 1.0) * S[s - 1] - 4.0 * shift * S[s] + (2.0 * shift + 1.0) * S[s + 1]) / (2.0 * width)
        wt = t if corner == 1 else 1.0 - t
        out = out + wt * d if corner == 1 else wt * d
    return out


@_jit
def _deposit(S, H, xi, h, lower, width, nb_, sigma, cutoff, reflect, kw):
    """S += h·K(ξ), H[bin(ξ)] += 1: :meth:`physampler.landscape.Landscape.deposit` in 1-D."""
    u = (xi - lower) / width - 0.5
    r = int(math.ceil(cutoff * sigma))
    j0 = int(np.rint(u))
    total = 0.0
    for o in range(2 * r + 1):
        d = (j0 - r + o) - u
        w = math.exp(-0.5 * (d / sigma) ** 2) if abs(d) <= cutoff * sigma else 0.0
        kw[o] = w
        total += w
    for o in range(2 * r + 1):
        j = j0 - r + o
        w = kw[o] / total
        if reflect:
            m = j % (2 * nb_)
            if m >= nb_:
                m = 2 * nb_ - 1 - m
            S[m] += w * h
        elif 0 <= j < nb_:
            S[j] += w * h
    b = int(math.floor((xi - lower) / width))
    b = min(max(b, 0), nb_ - 1)
    H[b] += 1.0


@_jit
def _wall_gradient(xi, at, strength, sign, kind):
    ex = xi - at if sign > 0 else at - xi
    if ex <= 0.0:
        return 0.0
    if kind == 0:
        return sign * 2.0 * strength * ex
    return sign * strength


@_jit
def _edge_gradient(xi, at, strength, sign, max_slope):
    """A grid-edge wall: quadratic, its slope capped at ``max_slope`` (QuadraticWall(max_slope=...))."""
    g = _wall_gradient(xi, at, strength, sign, 0)
    if g > max_slope:
        return max_slope
    if g < -max_slope:
        return -max_slope
    return g


@_jit
def wlmd_cluster_block(x, v, a, cv, S, H, noise, fvals, rc2, shift, radius, k_wall, com,
                       lower, upper, width, sigma, cutoff, reflect, raise_oor, edge_beta,
                       bias_at, bias_strength, bias_sign, bias_kind,
                       dt, c_f, kT, walkers_total, baoab, cv_out, info, energy_kind, stiffness):
    """Run ``len(fvals)`` WLMD steps on clusters or harmonic wells; ξ = U.  State arrays are
    updated in place.

    The splitting is ktd (B O A F) or, with ``baoab``, B½ A½ O A½ F B½, in the operations and
    order of :class:`physampler.integrators.BiasedMD`.

    x, v, a : [W, n, d] positions, velocities, accelerations (clusters: d = 3; a harmonic well's
    [W, N] positions as [W, N, 1]); cv : [W] current U.  energy_kind : LJ_CLUSTER (rc2 … com
    apply) or HARMONIC (``stiffness`` [n·d] applies).
    S, H : [bins] landscape and histogram (shared).  noise : [W, steps, n, 3].
    fvals : f_WL of each step.  com : the sphere is centred on the centre of mass.  edge_beta : β of the lower and upper edge walls (0 under 'raise'), then the
    largest slope of each (inf: none).
    bias_* : extra walls on U (kind 0 quadratic, 1 linear; sign +1 upper, −1 lower).
    cv_out : [steps, W] U after each step.  info : int64 [2], set to (step index, walker)
    of a fault.  Returns a status code (OK or the fault).
    """
    W, n, dims = x.shape[0], x.shape[1], x.shape[2]
    nsteps = fvals.shape[0]
    nb_ = S.shape[0]
    f = np.empty((W, n, dims))
    kw = np.empty(2 * int(math.ceil(cutoff * sigma)) + 1)
    inside = np.empty(W, dtype=np.bool_)
    sig_v = math.sqrt(c_f * (2.0 - c_f) * kT * 1.0) if c_f != 0.0 else 0.0
    damp = 1.0 - c_f
    hdt = 0.5 * dt
    for s in range(nsteps):
        for w in range(W):
            for i in range(n):
                for k in range(dims):
                    if baoab:
                        vv = v[w, i, k] + a[w, i, k] * hdt
                        xx = x[w, i, k] + vv * hdt
                        if c_f != 0.0:
                            vv = damp * vv + sig_v * noise[w, s, i, k]
                        x[w, i, k] = xx + vv * hdt
                    else:
                        vv = v[w, i, k] + a[w, i, k] * dt
                        if c_f != 0.0:
                            vv = damp * vv + sig_v * noise[w, s, i, k]
                        x[w, i, k] = x[w, i, k] + vv * dt
                    v[w, i, k] = vv
            if energy_kind == HARMONIC:
                u = harmonic_energy_forces(x[w], stiffness, f[w])
            else:
                u = cluster_energy_forces(x[w], rc2, shift, radius, k_wall, com, f[w])
            cv[w] = u
            cv_out[s, w] = u
        for w in range(W):
            if not math.isfinite(cv[w]):
                info[0] = s
                info[1] = w
                return NONFINITE_CV
        for w in range(W):
            inside[w] = cv[w] >= lower and cv[w] <= upper
            if raise_oor and not inside[w]:
                info[0] = s
                info[1] = w
                return OUT_OF_GRID
        h = fvals[s] / walkers_total
        for w in range(W):
            if inside[w]:
                _deposit(S, H, cv[w], h, lower, width, nb_, sigma, cutoff, reflect, kw)
        bad = -1
        for w in range(W):
            # Outside the grid only an inward slope of S is kept (see Landscape.gradient).
            g = _landscape_gradient(S, cv[w], lower, width, nb_)
            if cv[w] < lower and g > 0.0:
                g = 0.0
            elif cv[w] > upper and g < 0.0:
                g = 0.0
            if edge_beta[0] > 0.0:
                g = g + _edge_gradient(cv[w], lower, edge_beta[0], -1.0, edge_beta[2])
                g = g + _edge_gradient(cv[w], upper, edge_beta[1], 1.0, edge_beta[3])
            nbias = bias_at.shape[0]
            if nbias > 0:
                b = _wall_gradient(cv[w], bias_at[0], bias_strength[0], bias_sign[0], bias_kind[0])
                for m in range(1, nbias):
                    b = b + _wall_gradient(cv[w], bias_at[m], bias_strength[m], bias_sign[m], bias_kind[m])
                g = g + b
            for i in range(n):
                for k in range(dims):
                    aa = (g * (-f[w, i, k])) * (-kT)
                    a[w, i, k] = aa
                    if baoab:
                        v[w, i, k] = v[w, i, k] + aa * hdt
                    if bad < 0 and not math.isfinite(aa):
                        bad = w
        if bad >= 0:
            info[0] = s
            info[1] = bad
            return NONFINITE_FORCE
    return OK


@_jit
def baoab_bulk_block(x, v, f, u, noise, box, rc2, shift, rlist, skin, x_ref, start, nbrs,
                     dt, c_f, kT, u_out, info):
    """``noise.shape[1]`` BAOAB steps for W periodic walkers (unit masses), in place.

    x, v, f : [W, n, 3]; u : [W] pair energy at x.  x_ref : [W, n, 3] positions
    at the last neighbour-list build; start : [W, n+1], nbrs : [W, cap] the lists
    (rebuilt when an atom has moved more than skin/2).  u_out : [steps, W].
    Returns a status code with info = (step index, walker) of a fault;
    NEIGHBOUR_OVERFLOW means more neighbours than the capacity the driver sized
    for atoms no closer than 0.7σ — a collapsed configuration, reported as a fault.
    """
    W, n = x.shape[0], x.shape[1]
    nsteps = noise.shape[1]
    sig_v = math.sqrt(c_f * (2.0 - c_f) * kT * 1.0) if c_f != 0.0 else 0.0
    damp = 1.0 - c_f
    hdt = 0.5 * dt
    half_skin2 = (0.5 * skin) ** 2
    for s in range(nsteps):
        for w in range(W):
            for i in range(n):
                for k in range(3):
                    vv = v[w, i, k] + f[w, i, k] * 1.0 * hdt
                    xx = x[w, i, k] + vv * hdt
                    if c_f != 0.0:
                        vv = damp * vv + sig_v * noise[w, s, i, k]
                    xx = xx + vv * hdt
                    xx = xx - box * math.floor(xx / box)
                    x[w, i, k] = xx
                    v[w, i, k] = vv
            if _max_displacement2(x[w], x_ref[w], box) > half_skin2:
                cnt = build_neighbours(x[w], box, rlist, start[w], nbrs[w])
                if cnt < 0:
                    info[0] = s
                    info[1] = w
                    return NEIGHBOUR_OVERFLOW
                x_ref[w, :, :] = x[w]
            uu = bulk_energy_forces(x[w], box, rc2, shift, start[w], nbrs[w], f[w])
            u[w] = uu
            u_out[s, w] = uu
            if not math.isfinite(uu):
                info[0] = s
                info[1] = w
                return NONFINITE_FORCE
            for i in range(n):
                for k in range(3):
                    v[w, i, k] = v[w, i, k] + f[w, i, k] * 1.0 * hdt
    return OK
