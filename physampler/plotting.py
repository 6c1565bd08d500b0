"""Figures of landscape files (matplotlib, Agg backend; no display needed).

1-D landscapes: S(ξ) and, for an energy CV, the configurational heat capacity
C_V(T) = (⟨U²⟩ − ⟨U⟩²)/T² by canonical reweighting — solid where the canonical
weight lies inside the grid, dotted where the grid's edges truncate it
(:mod:`physampler.analysis`), the peak marked with its value.  2-D landscapes: a
heat map of S with the max-entropy curve y*(x) and the entropy-weighted mean ⟨y⟩(x)
([P1] Fig. 1 style), optionally with a trajectory or training history of the same
task overlaid.  Axes carry the CV names and units as a physicist writes them
(ε, k_B T/ε, S/k_B); the title names the system; legends sit below the data.
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


UNIT_SYMBOLS = {"epsilon": "ε", "kT": "k_B T", "1": ""}


def unit_symbol(units: str) -> str:
    """A unit as a physicist writes it on an axis (``epsilon`` → ε; dimensionless → nothing)."""
    return UNIT_SYMBOLS.get(units, units)


def axis_label(long_name: str, units: str) -> str:
    u = unit_symbol(units)
    return f"{long_name} [{u}]" if u else long_name


def describe_system(attrs: dict) -> str:
    """The system of a landscape (from its ``config`` attribute), for a figure title."""
    from .config import ConfigError, parse

    try:
        cfg = parse(str(attrs.get("config", "")))
    except (ConfigError, ValueError):
        return "entropy landscape"
    from .registry import system_kind

    kind = system_kind(cfg["system"]["kind"])
    what = kind.describe(cfg["system"]) if kind.describe is not None else f"{kind.name} system"
    return f"entropy landscape: {what}"


def draw_2d(fig, ax, x, y, entropy):
    """S(x, y) as a heat map (unvisited bins grey) with the max-entropy and the entropy-weighted
    mean curves (:func:`~physampler.analysis.equilibrium_curves`), which it returns."""
    import matplotlib.patheffects as pe

    ax.set_facecolor("0.88")  # unvisited bins (NaN) in grey, so that no curve is drawn white on white
    m = ax.pcolormesh(x, y, entropy.T, shading="nearest", cmap="viridis")
    fig.colorbar(m, ax=ax, label="S / k_B − min")
    curves = equilibrium_curves(x, y, entropy)
    outline = [pe.Stroke(linewidth=3.2, foreground="black"), pe.Normal()]
    ax.plot(curves.x, curves.argmax, "-", color="#ff7f0e", lw=1.8, path_effects=outline,
            label="max-entropy curve y*(x)")
    ax.plot(curves.x, curves.mean, "--", color="#ff00ff", lw=1.4, path_effects=outline,
            label="entropy-weighted mean ⟨y⟩(x)")
    return curves


def landscape_figure(path: str | Path, *, trajectory: str | Path | None = None, temperatures=None):
    """The figure of a landscape file (see the module docstring); returns the matplotlib Figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io import FileError, density_of_states, read_landscape, read_path

    # Wang–Landau files are drawn from the sampler's own S and H (checked by read_landscape), not the exported copy.
    ls, attrs = read_landscape(path)
    if not bool(ls.visited().any()):
        raise FileError(path, "no bin was visited, so there is no landscape to draw")
    sv_all = density_of_states(path, ls, attrs)
    dims = ls.grid.names
    axes_by_name = {a.name: a for a in ls.grid.axes}
    centres = {a.name: a.centres().numpy() for a in ls.grid.axes}
    label = {a.name: axis_label(a.long_name, a.units) for a in ls.grid.axes}
    title = describe_system(attrs)
    if len(dims) == 1:
        d = dims[0]
        u, sv = centres[d], sv_all
        energy = is_energy_axis(d, axes_by_name[d].units)
        fig, axes = plt.subplots(1, 2 if energy else 1, figsize=(10 if energy else 5.5, 4), squeeze=False)
        ax = axes[0, 0]
        ax.plot(u, sv, lw=1.2, label="S(ξ)")
        ax.set_xlabel(label[d])
        ax.set_ylabel("S / k_B − min")
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
            ok = c.contained
            cax = axes[0, 1]
            eu = unit_symbol(axes_by_name[d].units)
            cax.plot(temps, np.where(ok, c.heat_capacity, np.nan), "C0-", lw=1.4, label="C_V (canonical weight "
                     "inside the grid)")
            if not ok.all():
                cax.plot(temps, np.where(ok, np.nan, c.heat_capacity), ":", color="0.5", lw=1.2,
                         label="truncated by the grid's edges")
            inner = np.nonzero(ok)[0]
            if inner.size >= 3:
                k = inner[np.argmax(c.heat_capacity[inner])]
                if inner[0] < k < inner[-1]:  # an interior maximum: a peak, not the end of the range
                    cax.plot([temps[k]], [c.heat_capacity[k]], "o", color="C3", ms=6,
                             label=f"peak C_V / k_B = {c.heat_capacity[k]:.3g} at k_B T = {temps[k]:.3g}"
                                   + (f" {eu}" if eu else ""))
            cax.set_xlabel(f"k_B T / {eu}" if eu and eu != "k_B T" else "k_B T")
            cax.set_ylabel("C_V / k_B (configurational)")
            cax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), fontsize=8, frameon=False)
        fig.suptitle(title)
    elif len(dims) == 2:
        fig, ax = plt.subplots(figsize=(7, 5.2))
        draw_2d(fig, ax, centres[dims[0]], centres[dims[1]], sv_all)
        if trajectory is not None:
            # a sampler trajectory (walker 0) or a training history (e.g. AdamW, [P1] Fig. 1)
            rec = read_path(trajectory, dims, landscape_attrs=attrs)
            ax.plot(rec.values[0], rec.values[1], "k.-", ms=2, lw=0.5, alpha=0.7, label=rec.label)
        ax.set_xlabel(label[dims[0]])
        ax.set_ylabel(label[dims[1]])
        ax.set_title(title, fontsize=10)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=8, frameon=False)
    else:
        raise ValueError(f"landscape: plots need 1 or 2 CVs (got {len(dims)}: {dims})")
    fig.tight_layout()
    return fig


def plot_landscape(path: str | Path, out_png: str | Path, *, trajectory: str | Path | None = None,
                   temperatures=None) -> Path:
    """Write :func:`landscape_figure` to ``out_png`` (atomically)."""
    import matplotlib.pyplot as plt

    from .io import atomic_write

    fig = landscape_figure(path, trajectory=trajectory, temperatures=temperatures)
    out_png = Path(out_png)
    atomic_write(out_png, lambda tmp: fig.savefig(tmp, dpi=110, format="png", bbox_inches="tight"))
    plt.close(fig)
    return out_png


def path_analysis_figure(x, y, entropies, rec, numbers: dict, labels=("x", "y")):
    """Left: the first landscape S(x, y) with its curves, the path and its lowest point; right: S
    along the path for each replica landscape (each shifted to its value at the path's start),
    with the barrier's depth in the legend.  ``numbers``: mean and standard error per
    :data:`~physampler.analysis.PATH_NUMBERS` name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .analysis import project_path

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 5))
    draw_2d(fig, ax, x, y, entropies[0])
    ax.plot(rec.values[0], rec.values[1], "k.-", ms=2, lw=0.5, alpha=0.7, label=rec.label)
    bxy = numbers["barrier_x"][0], numbers["barrier_y"][0]
    if np.isfinite(bxy).all():
        ax.plot(*bxy, "rv", ms=8, label="lowest S along the path")
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=8, frameon=False)
    for r, s in enumerate(entropies):
        prof = project_path(x, y, s, rec.values[0], rec.values[1])
        on = prof.on_landscape
        if on.any():
            first = prof.entropy[np.nonzero(on)[0][0]]
            bx.plot(rec.steps[on], prof.entropy[on] - first, "-", lw=1, label=f"replica {r}")
    b, e = numbers["barrier"]
    bx.set_title(f"entropy barrier along the path: {b:.3g}" + (f" ± {e:.2g}" if np.isfinite(e) else "")
                 + " k_B", fontsize=10)
    bx.set_xlabel("step")
    bx.set_ylabel("S along the path − S at its start")
    bx.legend(fontsize=8)
    fig.tight_layout()
    return fig


def difference_figure(landscape, sa, sb, diff, labels=("A", "B")):
    """1-D: S_A and S_B − offset, and their difference below; 2-D: the map of the difference over the
    bins both visited (``diff``: :func:`~physampler.analysis.compare`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes = landscape.grid.axes
    c = [a.centres().numpy() for a in axes]
    lab = [axis_label(a.long_name, a.units) for a in axes]
    title = f"rms {diff.rms:.3g}, max |ΔS| {diff.max_abs:.3g} over {diff.common} common bins"
    if len(axes) == 1:
        fig, (ax, dx) = plt.subplots(2, 1, figsize=(6.5, 6), sharex=True, height_ratios=[2, 1])
        ax.plot(c[0], sa, lw=1.2, label=labels[0])
        ax.plot(c[0], sb - diff.offset, "--", lw=1.2, label=f"{labels[1]} − {diff.offset:.4g}")
        ax.set_ylabel("S / k_B")
        ax.legend(fontsize=8)
        dx.plot(c[0], diff.difference, "k-", lw=1)
        dx.axhline(0, color="0.6", lw=0.8)
        dx.set_ylabel("ΔS / k_B")
        dx.set_xlabel(lab[0])
        ax.set_title(title, fontsize=10)
    elif len(axes) == 2:
        fig, ax = plt.subplots(figsize=(7, 5.2))
        ax.set_facecolor("0.88")
        lim = float(np.nanmax(np.abs(diff.difference)))
        m = ax.pcolormesh(c[0], c[1], diff.difference.T, shading="nearest", cmap="RdBu_r", vmin=-lim, vmax=lim)
        fig.colorbar(m, ax=ax, label=f"S_B − S_A − {diff.offset:.4g}")
        ax.set_xlabel(lab[0])
        ax.set_ylabel(lab[1])
        ax.set_title(title, fontsize=10)
    else:
        raise ValueError(f"landscape: difference plots need 1 or 2 CVs (got {len(axes)})")
    fig.tight_layout()
    return fig


def is_training_history(path: str | Path) -> bool:
    import xarray as xr

    try:
        with xr.open_dataset(path, engine="netcdf4") as ds:
            return ds.attrs.get("title") == "physampler training history"
    except Exception:  # not NetCDF: the caller reports it
        return False


def plot_training(paths, out_png: str | Path) -> Path:
    """Write :func:`training_figure` of the histories ``paths`` to ``out_png`` (atomically)."""
    import matplotlib.pyplot as plt

    from .io import atomic_write

    fig = training_figure(paths)
    out_png = Path(out_png)
    atomic_write(out_png, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return out_png


def training_figure(paths):
    """[P1] Fig. 3 panels for one or more training histories (``physampler train``):
    train/test accuracy vs step, weight norm vs step, test accuracy vs weight norm.
    Several files (e.g. WanD and AdamW, or widths 32/64/128 at norm 30 as in Fig. 5/6)
    share the axes; t_fit and t_gen are marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io import FileError, read_trajectory

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
    # symlog: logarithmic from step 1 on, linear below, so that the initial state (step 0) is drawn
    axes[0].set_xscale("symlog", linthresh=1.0)
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("accuracy")
    axes[0].set_title("accuracy (| t_fit, v t_gen)")
    axes[1].set_xscale("symlog", linthresh=1.0)
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("|θ| (global L2 norm)")
    axes[1].set_title("weight norm")
    axes[2].set_xlabel("|θ|")
    axes[2].set_ylabel("test accuracy")
    axes[2].set_title("test accuracy vs norm")
    for ax in axes:
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def _int_attr(attrs: dict, name: str) -> int:
    """An integer attribute of a history, −1 when missing or not an integer."""
    try:
        v = np.asarray(attrs.get(name, -1)).reshape(-1)
        return int(v[0]) if v.size == 1 else -1
    except (TypeError, ValueError, OverflowError):
        return -1
