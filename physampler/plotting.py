"""Figures of landscape files (matplotlib, Agg backend; no display needed).

1-D landscapes: S(ξ) and, for an energy CV, the configurational heat capacity
C_V(T) = (⟨U²⟩ − ⟨U⟩²)/T² by canonical reweighting.  2-D landscapes: a heat map
of S with the max-entropy curve y*(x) and the entropy-weighted mean ⟨y⟩(x)
([P1] Fig. 1 style), optionally with a trajectory overlaid.  Axes carry the CV
names and units from the file.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .analysis import canonical, equilibrium_curves


def default_temperatures(u: np.ndarray, s: np.ndarray, n: int = 40) -> np.ndarray:
    """Temperatures spanning the microcanonical T(U) = 1/(dS/dU) over the middle 90 % of the sampled range."""
    ok = np.isfinite(s)
    slope = np.gradient(s[ok], u[ok])
    t = 1.0 / slope[slope > 0]
    if t.size < 2:
        return np.linspace(0.1, 1.0, n)
    lo, hi = np.percentile(t, [5, 95])
    return np.linspace(lo, hi, n)


def is_energy_axis(name: str, units: str) -> bool:
    return name == "energy" or units in ("epsilon", "kT", "eV", "kJ/mol")


def plot_landscape(path: str | Path, out_png: str | Path, *, trajectory: str | Path | None = None,
                   temperatures=None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io import FileError, atomic_write, read_landscape, read_trajectory

    # Drawn from the sampler's own S and H (checked by read_landscape), not from the exported copy.
    ls, attrs = read_landscape(path)
    if not bool(ls.visited().any()):
        raise FileError(path, "no bin was visited, so there is no landscape to draw")
    sv_all = ls.shifted().numpy()
    dims = ls.grid.names
    axes_by_name = {a.name: a for a in ls.grid.axes}
    centres = {a.name: a.centres().numpy() for a in ls.grid.axes}
    label = {a.name: f"{a.long_name} [{a.units}]" for a in ls.grid.axes}
    if len(dims) == 1:
        d = dims[0]
        u, sv = centres[d], sv_all
        energy = is_energy_axis(d, axes_by_name[d].units)
        fig, axes = plt.subplots(1, 2 if energy else 1, figsize=(10 if energy else 5.5, 4), squeeze=False)
        ax = axes[0, 0]
        ax.plot(u, sv, lw=1.2)
        ax.set_xlabel(label[d])
        ax.set_ylabel("S − min S")
        ax.set_title("entropy landscape")
        if energy:
            if temperatures is None:
                temperatures = attrs.get("temperatures")
            try:
                temps = np.atleast_1d(np.asarray(temperatures, dtype=float)) if temperatures is not None else None
            except (TypeError, ValueError):  # a hand-edited attribute: fall back to the default range
                temps = None
            if temps is not None:
                temps = temps[np.isfinite(temps) & (temps > 0)]
            if temps is None or temps.size < 2:
                temps = default_temperatures(u, sv)
            else:
                temps = np.linspace(temps.min(), temps.max(), 60)
            c = canonical(u, sv, temps)
            axes[0, 1].plot(temps, c.heat_capacity, lw=1.2)
            axes[0, 1].set_xlabel("T [energy units, k_B = 1]")
            axes[0, 1].set_ylabel("C_V,conf / k_B")
            axes[0, 1].set_title("heat capacity (configurational)")
    elif len(dims) == 2:
        x, y = centres[dims[0]], centres[dims[1]]
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        m = ax.pcolormesh(x, y, sv_all.T, shading="nearest", cmap="viridis")
        fig.colorbar(m, ax=ax, label="S − min S")
        curves = equilibrium_curves(x, y, sv_all)
        ax.plot(curves.x, curves.argmax, "w-", lw=1.5, label="max-entropy y*(x)")
        ax.plot(curves.x, curves.mean, "r--", lw=1.2, label="entropy-weighted mean")
        if trajectory is not None:
            # a sampler trajectory (walker 0) or a training history (e.g. AdamW, [P1] Fig. 1)
            tr = read_trajectory(trajectory, dims)
            if tr[dims[0]].ndim != 2 or not tr.sizes.get("time", 0):
                raise FileError(trajectory, f"holds no records of {dims[0]} and {dims[1]} over (time, walker)")
            ax.plot(tr[dims[0]].values[:, 0], tr[dims[1]].values[:, 0], "k.-", ms=2, lw=0.5, alpha=0.7,
                    label=str(tr.attrs.get("label", "walker 0")))
        ax.set_xlabel(label[dims[0]])
        ax.set_ylabel(label[dims[1]])
        ax.legend(loc="best", fontsize=8)
    else:
        raise ValueError(f"landscape: plots need 1 or 2 CVs (got {len(dims)}: {dims})")
    fig.tight_layout()
    out_png = Path(out_png)
    atomic_write(out_png, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return out_png


def is_training_history(path: str | Path) -> bool:
    import xarray as xr

    try:
        with xr.open_dataset(path, engine="netcdf4") as ds:
            return ds.attrs.get("title") == "physampler training history"
    except Exception:  # not NetCDF: the caller reports it
        return False


def plot_training(paths, out_png: str | Path) -> Path:
    """[P1] Fig. 3 panels for one or more training histories (``physampler train``):
    train/test accuracy vs step, weight norm vs step, test accuracy vs weight norm.
    Several files (e.g. WanD and AdamW, or widths 32/64/128 at norm 30 as in Fig. 5/6)
    share the axes; t_fit and t_gen are marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io import FileError, atomic_write, read_trajectory

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for i, path in enumerate(paths):
        ds = read_trajectory(path, ("train_accuracy", "test_accuracy", "weight_norm"))
        if ds["train_accuracy"].ndim != 2:
            raise FileError(path, "training history variables must be over (time, walker)")
        label = str(ds.attrs.get("label", Path(path).parent.name or Path(path).stem))
        color = f"C{i}"
        step = ds["step"].values
        tr, te, norm = (ds[v].values[:, 0] for v in ("train_accuracy", "test_accuracy", "weight_norm"))
        axes[0].plot(step, tr, "--", color=color, lw=1, label=f"{label} train")
        axes[0].plot(step, te, "-", color=color, lw=1.4, label=f"{label} test")
        for t, mark in ((_int_attr(ds.attrs, "t_fit"), "|"), (_int_attr(ds.attrs, "t_gen"), "v")):
            if t >= 0:
                axes[0].plot([t], [1.02], mark, color=color, ms=8)
        axes[1].plot(step, norm, color=color, lw=1.4, label=label)
        axes[2].plot(norm, te, color=color, lw=1.2, label=label)
    axes[0].set_xscale("log")
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("accuracy")
    axes[0].set_title("accuracy (| t_fit, v t_gen)")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("|θ| (global L2 norm)")
    axes[1].set_title("weight norm")
    axes[2].set_xlabel("|θ|")
    axes[2].set_ylabel("test accuracy")
    axes[2].set_title("test accuracy vs norm")
    for ax in axes:
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    out_png = Path(out_png)
    atomic_write(out_png, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return out_png


def _int_attr(attrs: dict, name: str) -> int:
    """An integer attribute of a history, −1 when missing or not an integer."""
    try:
        v = np.asarray(attrs.get(name, -1)).reshape(-1)
        return int(v[0]) if v.size == 1 else -1
    except (TypeError, ValueError, OverflowError):
        return -1
