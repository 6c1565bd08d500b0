"""Files: NetCDF landscapes and trajectories (CF-1.10, via xarray + netcdf4) and checkpoints.

Every file is written atomically: to a temporary file in the same directory,
flushed and fsync'ed, then renamed over the target (and the directory entry
fsync'ed), so a reader — or a run killed at any instant — sees either the old
complete file or the new complete file, never a truncated one.

``landscape.nc``
    dimensions named after the CVs (+ ``nv`` = 2 for cell bounds); coordinates at
    bin centres with ``units``, ``long_name`` and CF ``bounds``; variables
    ``entropy`` (S − min over visited bins, NaN where unvisited — the exported
    landscape), ``histogram`` and ``sampling_entropy`` (S exactly as the sampler
    holds it, every bin, so that a landscape read back continues sampling
    exactly); global attributes ``Conventions = "CF-1.10"``, software version, the
    full config text, seed, walkers, steps done, final f_WL, creation time and the
    kernel parameters.
``trajectory.nc``
    the CVs of every walker at every report step: variables named after the CVs
    over (``time``, ``walker``), coordinate ``step`` along ``time``.
``checkpoint.pt``
    a dict of tensors, numbers and strings written with ``torch.save`` and read
    with ``torch.load(weights_only=True)``: loading never executes pickled code.
"""
from __future__ import annotations

import datetime as _dt
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from .grid import Axis
from .landscape import Landscape

CHECKPOINT_FORMAT = 1


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def atomic_write(path: str | Path, writer) -> None:
    """Call ``writer(tmp_path)`` to write a temporary file, fsync it and rename it to ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _bounds(ax: Axis) -> np.ndarray:
    e = ax.edges().numpy()
    return np.stack([e[:-1], e[1:]], axis=1)


def landscape_dataset(landscape: Landscape, *, attrs: dict | None = None):
    """The xarray Dataset of ``landscape`` (see the module docstring)."""
    import xarray as xr

    axes = landscape.grid.axes
    dims = [a.name for a in axes]
    coords = {}
    data = {}
    for a in axes:
        coords[a.name] = (a.name, a.centres().numpy(), {"units": a.units, "long_name": a.long_name,
                                                         "bounds": f"{a.name}_bounds"})
        data[f"{a.name}_bounds"] = ((a.name, "nv"), _bounds(a), {"units": a.units})
    S = landscape.S.detach().cpu().numpy()
    data["entropy"] = (dims, landscape.shifted().detach().cpu().numpy(),
                       {"long_name": "entropy S = ln g + const, minimum over visited bins = 0 (NaN: unvisited)",
                        "units": "1"})
    data["histogram"] = (dims, landscape.H.detach().cpu().numpy(),
                         {"long_name": "visits per bin since the last histogram reset", "units": "1"})
    data["sampling_entropy"] = (dims, S, {"long_name": "S(xi, t) as held by the sampler (unshifted, every bin)",
                                          "units": "1"})
    for name in landscape.observable_sums:
        data[f"mean_{name}"] = (dims, landscape.observable_mean(name).detach().cpu().numpy(),
                                {"long_name": f"mean {name.replace('_', ' ')} of the visits to each bin (NaN: none)",
                                 "units": "1"})
        data[f"sum_{name}"] = (dims, landscape.observable_sums[name].detach().cpu().numpy(),
                               {"long_name": f"sum of {name.replace('_', ' ')} over the visits to each bin", "units": "1"})
        data[f"count_{name}"] = (dims, landscape.observable_counts[name].detach().cpu().numpy(),
                                 {"long_name": f"visits to each bin with {name.replace('_', ' ')} recorded",
                                  "units": "1"})
    base = {
        "Conventions": "CF-1.10",
        "title": "physampler entropy landscape",
        "source": f"physampler {_version()}",
        "date_created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "kernel_sigma_bins": landscape.sigma.tolist(),
        "kernel_cutoff": landscape.cutoff,
        "kernel_edge": landscape.edge,
        "out_of_range": landscape.out_of_range,
        "wall_strength": list(landscape.wall_strength),
    }
    ds = xr.Dataset(data, coords=coords, attrs=base | dict(attrs or {}))
    for name in ds.data_vars:
        if name.endswith("_bounds"):
            continue
        ds[name].encoding["_FillValue"] = np.nan if name == "entropy" or name.startswith("mean_") else None
    for a in axes:
        ds[a.name].encoding["_FillValue"] = None
        ds[f"{a.name}_bounds"].encoding["_FillValue"] = None
    return ds


def _version() -> str:
    from . import __version__

    return __version__


def _clean_attrs(attrs: dict) -> dict:
    out = {}
    for k, v in attrs.items():
        if isinstance(v, bool):
            v = int(v)
        elif isinstance(v, (list, tuple)):
            v = np.asarray(v, dtype=np.float64)
        out[k] = v
    return out


def write_landscape(path: str | Path, landscape: Landscape, *, attrs: dict | None = None) -> None:
    ds = landscape_dataset(landscape, attrs=attrs)
    ds.attrs = _clean_attrs(ds.attrs)
    atomic_write(path, lambda tmp: ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4"))


def read_landscape(path: str | Path, *, device=None) -> tuple[Landscape, dict]:
    """A :class:`Landscape` (with the sampler's S and H, exactly) and the file's global attributes."""
    import xarray as xr

    with xr.open_dataset(path, engine="netcdf4") as ds:
        ds.load()
    dims = list(ds["sampling_entropy"].dims)
    axes = []
    for d in dims:
        b = ds[f"{d}_bounds"].values
        axes.append(Axis(d, float(b[0, 0]), float(b[-1, 1]), bins=b.shape[0], units=ds[d].attrs.get("units", "1"),
                         long_name=ds[d].attrs.get("long_name", d)))
    a = ds.attrs
    ls = Landscape(axes, sigma=[float(x) for x in np.atleast_1d(a["kernel_sigma_bins"])], cutoff=float(a["kernel_cutoff"]),
                   edge=str(a["kernel_edge"]), out_of_range=str(a["out_of_range"]),
                   wall_strength=[float(x) for x in np.atleast_1d(a["wall_strength"])], device=device)
    ls.S.copy_(torch.from_numpy(ds["sampling_entropy"].values))
    ls.H.copy_(torch.from_numpy(ds["histogram"].values))
    for v in ds.data_vars:
        if v.startswith("sum_"):
            name = v[4:]
            ls.observable_sums[name] = torch.from_numpy(ds[v].values.copy()).to(ls.device)
            ls.observable_counts[name] = torch.from_numpy(ds[f"count_{name}"].values.copy()).to(ls.device)
    return ls, dict(a)


def write_trajectory(path: str | Path, steps: np.ndarray, values: np.ndarray, names, units, walkers,
                     *, attrs: dict | None = None, long_names=None, step_name: str = "WLMD step") -> None:
    """CV values [n, W, K] at ``steps`` [n] of walkers ``walkers`` (global indices); also the
    per-step history of ``physampler train`` (one walker: the trained network)."""
    import xarray as xr

    data = {}
    for k, name in enumerate(names):
        long = long_names[k] if long_names is not None else f"{name} of each walker"
        data[name] = (("time", "walker"), values[:, :, k] if values.size else np.zeros((0, len(walkers))),
                      {"units": units[k], "long_name": long})
    ds = xr.Dataset(data, coords={"step": ("time", np.asarray(steps, dtype=np.int64), {"long_name": step_name}),
                                  "walker": ("walker", np.asarray(walkers, dtype=np.int64),
                                             {"long_name": "global walker index"})},
                    attrs=_clean_attrs({"Conventions": "CF-1.10", "title": "physampler CV trajectories",
                                        "source": f"physampler {_version()}"} | dict(attrs or {})))
    for v in ds.variables:
        ds[v].encoding["_FillValue"] = None
    atomic_write(path, lambda tmp: ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4",
                                                unlimited_dims=["time"]))


def read_trajectory(path: str | Path):
    import xarray as xr

    with xr.open_dataset(path, engine="netcdf4") as ds:
        return ds.load()


def save_checkpoint(path: str | Path, payload: dict) -> None:
    """Atomically write a checkpoint (tensors, numbers, strings, lists and dicts of them)."""
    payload = {"format": CHECKPOINT_FORMAT} | payload
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint with ``weights_only=True`` (no pickled code runs)."""
    try:
        out = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a foreign or damaged file: say so in one line
        raise ValueError(f"checkpoint: cannot be read as a physampler checkpoint ({type(e).__name__}) (got {str(path)!r})") from None
    if not isinstance(out, dict) or out.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint: not a physampler checkpoint of format {CHECKPOINT_FORMAT} (got {str(path)!r})")
    return out
